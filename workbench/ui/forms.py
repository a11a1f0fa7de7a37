"""Config fields drawn from their `setting()` metadata, so that no page restates a label, a bound or a choice.

`config_field(TrainConfig, "lora_r", key="finetune.lora_r")` picks the widget from the field's type (bool ->
checkbox, `Literal` -> selectbox, int / float -> number input, str -> text input, tuple -> multiselect, dict ->
JSON text) and takes its label, tooltip, bounds, step, default and choice labels from the config, in the current
language. `config_form` draws several; `build_config` turns the values into the config or shows why it cannot.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar, get_args, get_origin

import streamlit as st

from workbench.common.config import BaseConfig
from workbench.common.errors import ConfigError
from workbench.ui.i18n import lang, t

C = TypeVar("C", bound=BaseConfig)


class _Invalid:
    """What a field returns when its text cannot be read (bad JSON); `build_config` then builds nothing."""

    def __repr__(self) -> str:
        return "INVALID"


INVALID = _Invalid()
_UNSET: Any = object()


def base_type(hint: Any) -> Any:
    """`int | None` -> int; `dict[str, Any] | None` -> dict; `tuple[str, ...]` -> tuple; others unchanged."""
    origin = get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in get_args(hint) if a is not type(None)]
        return base_type(args[0]) if len(args) == 1 else hint
    return origin or hint


def _float_step(default: Any, lo: float | None, hi: float | None) -> float:
    """A step of the default's order of magnitude (0.7 -> 0.1, 2e-4 -> 1e-4); 0.01 / 0.1 for a zero default."""
    if isinstance(default, (int, float)) and default:
        return 10.0 ** math.floor(math.log10(abs(float(default))))
    return 0.01 if lo is not None and hi is not None and hi - lo <= 1 else 0.1


def _narrow(name: str, lo: Any, hi: Any, min_value: Any, max_value: Any) -> tuple[Any, Any]:
    """A page may narrow a field's range (a teaching slider), never widen it past the config's bounds."""
    if min_value is not None:
        if lo is not None and min_value < lo:
            raise ValueError(f"{name}: min_value {min_value} is below the config's minimum {lo}")
        lo = min_value
    if max_value is not None:
        if hi is not None and max_value > hi:
            raise ValueError(f"{name}: max_value {max_value} is above the config's maximum {hi}")
        hi = max_value
    return lo, hi


def config_field(
    cls: type[BaseConfig],
    name: str,
    *,
    key: str,
    container: Any = None,
    value: Any = _UNSET,
    disabled: bool = False,
    options: Sequence[Any] | None = None,
    format_func: Callable[[Any], str] | None = None,
    accept_new_options: bool = False,
    widget: str | None = None,
    min_value: float | None = None,
    max_value: float | None = None,
    step: float | None = None,
    label: str | None = None,
    placeholder: str | None = None,
) -> Any:
    """Draw field `name` of `cls` and return its value (already of the field's type).

    Args:
        key: the widget key (AppTest and session state use it). When the key already holds a value in
            `st.session_state`, that value wins and `value` is not passed (Streamlit warns about both).
        container: where to draw (a column, an expander, `st.sidebar`); default: the page.
        value: the initial value; default: the config's default.
        options: offer these values in a selectbox (a str field picked from a list, e.g. datasets).
        format_func: how options are shown; default: the field's choice labels in the current language.
        widget: override the widget ("radio", "toggle", "slider", "text_area", "password").
        min_value, max_value: narrow the config's bounds (never widen them).
        step: the number's step, where the field's own would not suit a narrowed range.
        label: a page-specific label (already translated); default: the field's label.
    Returns:
        The value, or `INVALID` for a JSON field whose text does not parse (an error is shown beside it).
    """
    code = lang()
    hint = cls.field_type(name)
    base = base_type(hint)
    # What every widget gets: where, its label and tooltip in the current language, its key, and the first value.
    w = _Widget(where=container if container is not None else st,
                kind=widget or cls.field_info(name).metadata.get("widget"),
                text=label if label is not None else cls.label(name, code),
                common={"key": key, "help": cls.help(name, code) or None, "disabled": disabled},
                initial=cls.default_of(name) if value is _UNSET else value, fresh=key not in st.session_state)
    show = format_func or (lambda v: cls.choice_label(name, v, code))
    choices = cls.choices(name)
    if base in (tuple, list):
        if options is None and choices is None:  # free items (e.g. module names): offer the default ones, accept others
            options, accept_new_options = list(dict.fromkeys([*(w.initial or ()), *cls.default_of(name)])), True
        picked = _multiselect(w, list(options if options is not None else choices), show, accept_new_options)
        return tuple(picked) if base is tuple else list(picked)
    if options is not None or choices is not None:
        return _choice(w, list(options if options is not None else choices), show, accept_new_options)
    if base is bool:
        draw = w.where.toggle if w.kind == "toggle" else w.where.checkbox
        return bool(draw(w.text, **({"value": bool(w.initial)} if w.fresh else {}), **w.common))
    if base in (int, float):
        lo, hi = _narrow(name, *cls.bounds(name), min_value, max_value)
        step = step or cls.field_info(name).metadata.get("step")
        return _number(w, base, lo, hi, step or (1 if base is int else _float_step(cls.default_of(name), lo, hi)))
    if base is dict:
        return _json(w, none_when_empty=type(None) in get_args(hint), placeholder=placeholder)
    kwargs = {"value": "" if w.initial is None else str(w.initial)} if w.fresh else {}
    if w.kind == "text_area":
        return w.where.text_area(w.text, placeholder=placeholder, **kwargs, **w.common)
    return w.where.text_input(w.text, type="password" if w.kind == "password" else "default", placeholder=placeholder,
                              **kwargs, **w.common)


@dataclasses.dataclass
class _Widget:
    where: Any  # st, a column, an expander
    kind: str | None  # the widget hint ("radio", "slider", ...)
    text: str  # the label
    common: dict[str, Any]  # key, help, disabled
    initial: Any  # the value to start from
    fresh: bool  # the key holds no value yet: only then is `initial` passed (else Streamlit warns)


def _multiselect(w: _Widget, opts: list[Any], show: Callable[[Any], str], accept_new: bool) -> list[Any]:
    kwargs = {"default": list(w.initial or ())} if w.fresh else {}
    return w.where.multiselect(w.text, opts, format_func=show, accept_new_options=accept_new, **kwargs, **w.common)


def _choice(w: _Widget, opts: list[Any], show: Callable[[Any], str], accept_new: bool) -> Any:
    kwargs = {"index": opts.index(w.initial) if w.initial in opts else 0} if w.fresh and opts else {}
    if w.kind == "radio":
        return w.where.radio(w.text, opts, format_func=show, horizontal=True, **kwargs, **w.common)
    return w.where.selectbox(w.text, opts, format_func=show, accept_new_options=accept_new, **kwargs, **w.common)


def _number(w: _Widget, base: type, lo: float | None, hi: float | None, step: float) -> int | float:
    num = int if base is int else float
    lo, hi = (None if lo is None else num(lo)), (None if hi is None else num(hi))
    kwargs = {"value": num(w.initial)} if w.fresh else {}
    if w.kind == "slider" and lo is not None and hi is not None:
        return num(w.where.slider(w.text, lo, hi, step=num(step), **kwargs, **w.common))
    fmt = {"format": "%g"} if base is float else {}
    return num(w.where.number_input(w.text, min_value=lo, max_value=hi, step=num(step), **fmt, **kwargs, **w.common))


def _json(w: _Widget, *, none_when_empty: bool, placeholder: str | None) -> Any:
    """A mapping edited as JSON text; empty text is None (or {} for a field that cannot be None)."""
    kwargs = {"value": json.dumps(w.initial, ensure_ascii=False) if w.initial else ""} if w.fresh else {}
    raw = w.where.text_input(w.text, placeholder=placeholder, **kwargs, **w.common)
    if not raw.strip():
        return None if none_when_empty else {}
    try:
        parsed = json.loads(raw)
    except ValueError as exc:
        parsed, problem = None, str(exc)
    else:
        problem = "" if isinstance(parsed, dict) else t("not an object", "객체가 아님")
    if problem:
        w.where.error(t(f"{w.text}: not a JSON object ({problem})", f"{w.text}: JSON 객체가 아닙니다 ({problem})"), icon="⚠️")
        return INVALID
    return parsed


def config_form(
    cls: type[BaseConfig],
    names: Iterable[str],
    *,
    key_prefix: str,
    defaults: BaseConfig | Mapping[str, Any] | None = None,
    columns: int = 1,
    container: Any = None,
    keys: Mapping[str, str] | None = None,
    field_args: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """Draw several fields of `cls` in `columns` columns and return `{name: value}`.

    Args:
        key_prefix: widget keys are `key_prefix + name` unless `keys` names another.
        defaults: initial values (a config or a mapping); the config's defaults otherwise.
        field_args: extra `config_field` arguments per field (e.g. `{"dataset": {"options": names}}`).
    """
    names = list(names)
    where = container if container is not None else st
    if isinstance(defaults, BaseConfig):
        defaults = defaults.to_dict()
    cols = where.columns(columns) if columns > 1 else [where]
    values: dict[str, Any] = {}
    for i, name in enumerate(names):
        extra = dict((field_args or {}).get(name, {}))
        if defaults is not None and name in defaults and "value" not in extra:
            extra["value"] = defaults[name]
        values[name] = config_field(cls, name, key=(keys or {}).get(name, f"{key_prefix}{name}"),
                                    container=cols[i % len(cols)], **extra)
    return values


def config_sections(
    cls: type[BaseConfig],
    sections: Mapping[str, Sequence[str]],
    titles: Mapping[str, tuple[str, str]],
    *,
    key_prefix: str,
    expanded: Iterable[str] = (),
    **form_args: Any,
) -> dict[str, Any]:
    """`config_form` once per section, each in an expander titled `titles[section]` (English, Korean)."""
    values: dict[str, Any] = {}
    for section, names in sections.items():
        with st.expander(t(*titles[section]), expanded=section in set(expanded)):
            values |= config_form(cls, names, key_prefix=key_prefix, **form_args)
    return values


def set_form_values(config: BaseConfig, key_prefix: str) -> None:
    """Load a config into the widgets of a form drawn with `key_prefix` (a preset); `st.rerun()` to show it."""
    for name, value in config.to_dict().items():
        st.session_state[f"{key_prefix}{name}"] = list(value) if isinstance(value, tuple) else value


def clear_form_values(cls: type[BaseConfig], key_prefix: str) -> None:
    """Forget what the user set in a form drawn with `key_prefix`: its widgets start from the defaults again."""
    for name in cls.field_names():
        st.session_state.pop(f"{key_prefix}{name}", None)


def build_config(cls: type[C], values: Mapping[str, Any], container: Any = None) -> C | None:
    """`cls.from_dict(values)`, or None after showing the `ConfigError` (its message names the field and the fix).

    A field that returned `INVALID` has already shown its error; nothing is built then.
    """
    if any(v is INVALID for v in values.values()):
        return None
    try:
        return cls.from_dict(dict(values))
    except ConfigError as exc:
        (container if container is not None else st).error(str(exc), icon="⚠️")
        return None
