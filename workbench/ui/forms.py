"""Config fields drawn from their `setting()` metadata, so that no page restates a label, a bound or a choice.

`config_field(TrainConfig, "lora_r", key="finetune.lora_r")` picks the widget from the field's type (bool ->
checkbox, `Literal` -> selectbox, int / float -> number input, str -> text input, tuple -> multiselect, dict ->
JSON text) and takes its label, tooltip, bounds, step, default and choice labels from the config, in the current
language. `config_form` draws several; `build_config` turns the values into the config or shows why it cannot.
"""

from __future__ import annotations

import json
import math
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar, get_args, get_origin

import streamlit as st

from workbench.config import BaseConfig
from workbench.errors import ConfigError
from workbench.ui.i18n import lang, t

C = TypeVar("C", bound=BaseConfig)


class _Invalid:
    """What a field returns when its text cannot be read (bad JSON); `build_config` then builds nothing."""

    def __repr__(self) -> str:
        return "INVALID"


INVALID = _Invalid()
_UNSET: Any = object()


def _base_type(hint: Any) -> Any:
    """`int | None` -> int; `dict[str, Any] | None` -> dict; `tuple[str, ...]` -> tuple; others unchanged."""
    origin = get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in get_args(hint) if a is not type(None)]
        return _base_type(args[0]) if len(args) == 1 else hint
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
    where = container if container is not None else st
    hint = cls.field_type(name)
    meta = cls.field_info(name).metadata
    kind = widget or meta.get("widget")
    base = _base_type(hint)
    code = lang()
    common: dict[str, Any] = {"key": key, "help": cls.help(name, code) or None, "disabled": disabled}
    text = label if label is not None else cls.label(name, code)
    initial = cls.default_of(name) if value is _UNSET else value
    fresh = key not in st.session_state  # only then does the widget take an initial value from us
    show = format_func or (lambda v: cls.choice_label(name, v, code))
    choices = cls.choices(name)

    if base in (tuple, list):
        if options is None and choices is None:  # free items (e.g. module names): offer the default ones, accept others
            options, accept_new_options = list(dict.fromkeys([*(initial or ()), *cls.default_of(name)])), True
        opts = list(options if options is not None else choices)
        kwargs = {"default": list(initial or ())} if fresh else {}
        picked = where.multiselect(text, opts, format_func=show, accept_new_options=accept_new_options,
                                   **kwargs, **common)
        return tuple(picked) if base is tuple else list(picked)

    if options is not None or choices is not None:
        opts = list(options if options is not None else choices)
        kwargs = {"index": opts.index(initial) if initial in opts else 0} if fresh and opts else {}
        if kind == "radio":
            return where.radio(text, opts, format_func=show, horizontal=True, **kwargs, **common)
        return where.selectbox(text, opts, format_func=show, accept_new_options=accept_new_options, **kwargs, **common)

    if base is bool:
        draw = where.toggle if kind == "toggle" else where.checkbox
        return bool(draw(text, **({"value": bool(initial)} if fresh else {}), **common))

    if base in (int, float):
        lo, hi = _narrow(name, *cls.bounds(name), min_value, max_value)
        num = int if base is int else float
        lo, hi = (None if lo is None else num(lo)), (None if hi is None else num(hi))
        step = step or meta.get("step") or (1 if base is int else _float_step(cls.default_of(name), lo, hi))
        kwargs = {"value": num(initial)} if fresh else {}
        if kind == "slider" and lo is not None and hi is not None:
            return num(where.slider(text, lo, hi, step=num(step), **kwargs, **common))
        fmt = {"format": "%g"} if base is float else {}
        return num(where.number_input(text, min_value=lo, max_value=hi, step=num(step), **fmt, **kwargs, **common))

    if base is dict:  # edited as JSON text; empty means None (or {} for a field without None)
        kwargs = {"value": json.dumps(initial, ensure_ascii=False) if initial else ""} if fresh else {}
        raw = where.text_input(text, placeholder=placeholder, **kwargs, **common)
        if not raw.strip():
            return None if type(None) in get_args(hint) else {}
        try:
            parsed = json.loads(raw)
        except ValueError as exc:
            parsed, problem = None, str(exc)
        else:
            problem = "" if isinstance(parsed, dict) else t("not an object", "객체가 아님")
        if problem:
            where.error(t(f"{text}: not a JSON object ({problem})", f"{text}: JSON 객체가 아닙니다 ({problem})"), icon="⚠️")
            return INVALID
        return parsed

    kwargs = {"value": "" if initial is None else str(initial)} if fresh else {}
    if kind == "text_area":
        return where.text_area(text, placeholder=placeholder, **kwargs, **common)
    return where.text_input(text, type="password" if kind == "password" else "default", placeholder=placeholder,
                            **kwargs, **common)


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
