"""Configuration: the dataclass pattern every stage uses, and the workspace location.

Each stage owns one `XConfig` dataclass in its own module (`ChunkingConfig` in `chunking.py`,
`TrainConfig` in `finetune.py`, ...), the way PEFT keeps one config beside each method. They all
derive from `BaseConfig`, which gives them:

- `setting(default, help, label=..., ...)`: a field whose label, help text, bounds and choice labels
  (English and Korean) the UI's forms (`workbench.ui.forms`) draw it from;
- every field coerced and type-checked against its annotation at construction (`int`, `float`,
  `bool`, `str`, `Literal[...]`, `tuple[X, ...]`, `dict`, `X | None`): strings that read unambiguously
  as the type ("30", "2e-4", "true") are converted, anything else (NaN, a bool for a number, "1.5"
  for an int, a number for a list) is a `ConfigError`; then `Literal[...]` choices and numeric
  bounds are checked, with one-line messages that name the field, the value and the fix;
- a JSON / YAML round trip (`to_dict`, `from_dict`, `save`, `load`) that rejects unknown keys.

The workspace is one directory (default: the project directory, overridable with
`WORKBENCH_HOME`) holding `vectorstore/`, `datasets/`, `runs/` and `models/`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import types
import typing
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar, get_args, get_origin

from workbench.common.errors import ConfigError

C = TypeVar("C", bound="BaseConfig")

PROJECT_DIR = Path(__file__).resolve().parents[2]  # workbench/common/config.py -> the checkout
WORKSPACE_ENV = "WORKBENCH_HOME"
# Folders (os.pathsep-separated) that a page may read from besides the workspace and the project's examples.
ALLOW_PATHS_ENV = "WORKBENCH_ALLOW_PATHS"

# How the choices many settings share are shown, unless a field's `choice_labels` says otherwise.
COMMON_CHOICE_LABELS: dict[Any, tuple[str, str]] = {
    None: ("(auto)", "(자동)"), "auto": ("auto", "자동"), "on": ("on", "켬"), "off": ("off", "끔"),
    "none": ("none", "없음"), "ko": ("Korean", "한국어"), "en": ("English", "영어"),
    "train": ("train", "학습"), "validation": ("validation", "검증"), "test": ("test", "테스트"),
    "alpaca": ("Alpaca", "Alpaca"), "alpaca-tutorial": ("the tutorial's instruction / response", "튜토리얼의 지시 / 응답"),
    "chat": ("the model's chat template", "모델의 채팅 템플릿"),
}


def setting(
    default: Any = dataclasses.MISSING,
    help: str = "",
    *,
    help_ko: str = "",
    label: str = "",
    label_ko: str = "",
    min: float | None = None,
    max: float | None = None,
    step: float | None = None,
    choice_labels: dict[Any, tuple[str, str]] | None = None,
    widget: str | None = None,
    default_factory: Any = dataclasses.MISSING,
) -> Any:
    """A config field with the metadata a form needs to draw it.

    Args:
        help, help_ko: what the setting does and how to choose it (the widget's tooltip).
        label, label_ko: the widget's short label ("Chunk size" / "청크 크기").
        min, max: numeric bounds, checked at construction and used as the widget's range.
        step: the number input's step (default: 1 for integers, a rule on the default for floats).
        choice_labels: `{value: (English, Korean)}` for the values of a `Literal[...]` field.
        widget: a hint only where the type does not decide the widget ("radio", "toggle", "slider",
            "text_area", "password").
    """
    metadata = {"help": help, "help_ko": help_ko or help, "label": label, "label_ko": label_ko or label,
                "min": min, "max": max, "step": step, "choice_labels": dict(choice_labels or {}), "widget": widget}
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


@dataclasses.dataclass
class BaseConfig:
    """Base for every stage config. Subclasses add fields with `setting(...)` and may override
    `validate()` for rules that involve several fields (call `super().validate()` first)."""

    # Name shown in error messages ("ChunkingConfig.chunk_size ...").
    _label: ClassVar[str] = ""

    def __post_init__(self) -> None:
        self.validate()

    # --- validation -------------------------------------------------------------------------
    def validate(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            hint = hints.get(f.name)
            value = _coerce(getattr(self, f.name), hint, f"{self._name()}.{f.name}")
            # Frozen subclasses too: the coerced value replaces what the caller gave.
            object.__setattr__(self, f.name, value)
            choices = _literal_choices(hint)
            if choices is not None and value not in choices:
                raise ConfigError(
                    f"{self._name()}.{f.name} = {value!r} is not one of {', '.join(map(repr, choices))}. "
                    f"Pick one of those values.",
                    ko=f"{self._name()}.{f.name} = {value!r}은(는) {', '.join(map(repr, choices))} 중 하나가 "
                       f"아닙니다. 그중 하나를 고르세요."
                )
            lo, hi = f.metadata.get("min"), f.metadata.get("max")
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                if lo is not None and value < lo:
                    raise ConfigError(f"{self._name()}.{f.name} = {value} is below the minimum {lo}. Use a value >= {lo}.",
                                      ko=f"{self._name()}.{f.name} = {value}은(는) 최솟값 {lo}보다 작습니다. "
                                         f"{lo} 이상을 쓰세요.")
                if hi is not None and value > hi:
                    raise ConfigError(f"{self._name()}.{f.name} = {value} is above the maximum {hi}. Use a value <= {hi}.",
                                      ko=f"{self._name()}.{f.name} = {value}은(는) 최댓값 {hi}보다 큽니다. {hi} "
                                         f"이하를 쓰세요.")

    @classmethod
    def _name(cls) -> str:
        return cls._label or cls.__name__

    # --- introspection for the UI -----------------------------------------------------------
    @classmethod
    def help(cls, name: str, lang: str = "en") -> str:
        """The help text of field `name`, in `lang` ("en" or "ko")."""
        return cls.field_info(name).metadata.get("help_ko" if lang == "ko" else "help", "")

    @classmethod
    def choices(cls, name: str) -> tuple[Any, ...] | None:
        """The allowed values of a `Literal[...]` field (or of the items of a tuple of them), or None."""
        hint = cls.field_type(name)
        if _is_tuple(hint):
            args = [a for a in get_args(hint) if a is not Ellipsis]
            return _literal_choices(args[0]) if len(args) == 1 else None
        return _literal_choices(hint)

    @classmethod
    def field_info(cls, name: str) -> dataclasses.Field:
        """The dataclass field `name` (its `metadata` holds what `setting()` was given)."""
        for f in dataclasses.fields(cls):
            if f.name == name:
                return f
        raise KeyError(f"{cls._name()} has no setting {name!r}")

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def field_type(cls, name: str) -> Any:
        """The resolved type hint of field `name` (e.g. `int`, `Literal["a", "b"]`, `tuple[str, ...]`)."""
        cls.field_info(name)
        return typing.get_type_hints(cls)[name]

    @classmethod
    def label(cls, name: str, lang: str = "en") -> str:
        """The short label of field `name` in `lang`; its name with spaces when it has none."""
        meta = cls.field_info(name).metadata
        return meta.get("label_ko" if lang == "ko" else "label") or meta.get("label") or name.replace("_", " ")

    @classmethod
    def bounds(cls, name: str) -> tuple[float | None, float | None]:
        """The (min, max) of field `name`; None where unbounded."""
        meta = cls.field_info(name).metadata
        return meta.get("min"), meta.get("max")

    @classmethod
    def default_of(cls, name: str) -> Any:
        """The default value of field `name` (a fresh one for `default_factory` fields)."""
        f = cls.field_info(name)
        if f.default_factory is not dataclasses.MISSING:
            return f.default_factory()
        return None if f.default is dataclasses.MISSING else f.default

    @classmethod
    def choice_label(cls, name: str, value: Any, lang: str = "en") -> str:
        """How a choice of field `name` is shown: its `choice_labels` entry, else the value itself."""
        labels = cls.field_info(name).metadata.get("choice_labels") or {}
        pair = labels.get(value) or COMMON_CHOICE_LABELS.get(value)
        if pair is None:
            return str(value)
        return pair[1] if lang == "ko" else pair[0]

    # --- round trip ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls: type[C], data: dict[str, Any]) -> C:
        """Build from a mapping; unknown keys are an error (a typo must not be silently ignored)."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(
                f"{cls._name()} has no setting {', '.join(map(repr, unknown))}. "
                f"Known settings: {', '.join(sorted(known))}.",
                ko=f"{cls._name()}에는 {', '.join(map(repr, unknown))} 설정이 없습니다. 있는 설정: {', '.join(sorted(known))}."
            )
        hints = typing.get_type_hints(cls)
        kwargs = {}
        for key, value in data.items():
            if isinstance(value, list) and _is_tuple(hints.get(key)):
                value = tuple(value)
            kwargs[key] = value
        return cls(**kwargs)

    def replace(self: C, **changes: Any) -> C:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def save(self, path: str | Path) -> Path:
        """Write as JSON, or YAML when the suffix is .yaml/.yml."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix in (".yaml", ".yml"):
            import yaml

            path.write_text(yaml.safe_dump(self.to_dict(), allow_unicode=True, sort_keys=False), encoding="utf-8")
        else:
            path.write_text(json.dumps(self.to_dict(), ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls: type[C], path: str | Path) -> C:
        """Read a config written by `save` (JSON or YAML)."""
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"Config file {path} does not exist. Check the path or write one with `save()`.",
                              ko=f"설정 파일 {path}이(가) 없습니다. 경로를 확인하거나 `save()`로 만드세요.")
        text = path.read_text(encoding="utf-8")
        try:
            if path.suffix in (".yaml", ".yml"):
                import yaml

                data = yaml.safe_load(text) or {}
            else:
                data = json.loads(text)
        except Exception as exc:  # yaml and json raise different types; both mean "not parseable"
            raise ConfigError(f"Config file {path} is not valid {path.suffix.lstrip('.') or 'JSON'}: {exc}",
                              ko=f"설정 파일 {path}이(가) 올바른 {path.suffix.lstrip('.') or 'JSON'}이 아닙니다: "
                                 f"{exc}") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"Config file {path} must hold a mapping of setting names to values.",
                              ko=f"설정 파일 {path}에는 설정 이름과 값의 매핑이 있어야 합니다.")
        return cls.from_dict(data)


_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """`value` as the type `hint` says, or a ConfigError naming `where`, the value and the fix.

    Values come from JSON/YAML, `--set key=value` (JSON where it parses) and widgets: a string is converted where it
    reads unambiguously as the type; a bool is never a number, "1.5" is not an int, NaN and infinity are no settings.
    """
    if hint is None or hint is Any:
        return value
    origin, args = get_origin(hint), get_args(hint)
    if origin is Literal:
        return value  # checked against its choices by `validate`
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        if any(get_origin(a) is Literal for a in options):
            return value
        errors = []
        for option in options:
            try:
                return _coerce(value, option, where)
            except ConfigError as exc:
                errors.append(exc)
        raise errors[0]
    if value is None:
        raise ConfigError(f"{where} is empty (null). Give it a {_type_words(hint)}, or leave the setting out for its default.",
                          ko=f"{where}이(가) 비어 있습니다 (null). {_type_words(hint)} 값을 주거나, 기본값을 "
                             f"쓰려면 설정을 빼세요.")
    if hint is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower() if isinstance(value, str) or type(value) is int else None  # `--set flag=1`: 1
        if text in _TRUE + _FALSE:
            return text in _TRUE
        raise ConfigError(f"{where} = {value!r} is not true or false. Use true or false.",
                          ko=f"{where} = {value!r}은(는) true / false가 아닙니다. true 또는 false를 쓰세요.")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and math.isfinite(value) and value.is_integer():
            return int(value)
        if isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+\s*", value):
            return int(value)
        raise ConfigError(f"{where} = {value!r} is not a whole number. Use an integer such as 30.",
                          ko=f"{where} = {value!r}은(는) 정수가 아닙니다. 30 같은 정수를 쓰세요.")
    if hint is float:
        number: Any = value
        if isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                number = None
        if isinstance(number, (int, float)) and not isinstance(number, bool):
            if not math.isfinite(number):
                raise ConfigError(f"{where} = {value!r} is not a finite number. Use a number such as 0.0002.",
                                  ko=f"{where} = {value!r}은(는) 유한한 숫자가 아닙니다. 0.0002 같은 숫자를 쓰세요.")
            return float(number)
        raise ConfigError(f"{where} = {value!r} is not a number. Use a number such as 0.0002.",
                          ko=f"{where} = {value!r}은(는) 숫자가 아닙니다. 0.0002 같은 숫자를 쓰세요.")
    if hint is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return str(value)  # `--set dataset=2024` reads 2024 as JSON; the name is the text
        raise ConfigError(f"{where} = {value!r} is not text. Use a string, e.g. in quotes.",
                          ko=f"{where} = {value!r}은(는) 텍스트가 아닙니다. 따옴표 안의 문자열처럼 텍스트를 쓰세요.")
    if origin in (tuple, list, dict) or hint in (tuple, list, dict):
        return _coerce_container(value, hint, origin, args, where)
    return value


def _coerce_container(value: Any, hint: Any, origin: Any, args: tuple[Any, ...], where: str) -> Any:
    """`_coerce` for tuple, list and dict hints (their items coerced one by one)."""
    if origin is tuple or hint is tuple:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]  # `--set target_modules=q_proj,v_proj`
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} = {value!r} is not a list. Use a list such as [\"q_proj\", \"v_proj\"].",
                              ko=f"{where} = {value!r}은(는) 목록이 아닙니다. [\"q_proj\", \"v_proj\"] 같은 목록을 "
                                 f"쓰세요.")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
        if args and len(args) != len(value):
            raise ConfigError(f"{where} = {value!r} must have {len(args)} items. Give exactly {len(args)}.",
                              ko=f"{where} = {value!r}에는 항목이 {len(args)}개 있어야 합니다. 정확히 {len(args)}개를 "
                                 f"주세요.")
        return tuple(_coerce(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(args, value))) if args else tuple(value)
    if origin is list or hint is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} = {value!r} is not a list. Use a list, e.g. [\"a\", \"b\"].",
                              ko=f"{where} = {value!r}은(는) 목록이 아닙니다. 목록을 쓰세요. 예: [\"a\", \"b\"].")
        return [_coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(value)] if args else list(value)
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where} = {value!r} is not a mapping. Use a JSON object such as {{\"key\": \"value\"}}.",
                              ko=f"{where} = {value!r}은(는) 매핑이 아닙니다. {{\"key\": \"value\"}} 같은 JSON "
                                 f"객체를 쓰세요.")
        if len(args) == 2:
            return {_coerce(k, args[0], f"{where} key"): _coerce(v, args[1], f"{where}[{k!r}]") for k, v in value.items()}
        return value
    return value


def _type_words(hint: Any) -> str:
    words = {bool: "true or false", int: "whole number", float: "number", str: "text"}
    if hint in words:
        return words[hint]
    return {tuple: "list", list: "list", dict: "mapping"}.get(get_origin(hint) or hint, "value")


def _literal_choices(hint: Any) -> tuple[Any, ...] | None:
    if hint is None:
        return None
    if get_origin(hint) is Literal:
        return get_args(hint)
    # `Literal[...] | None`
    args = get_args(hint)
    if args and any(get_origin(a) is Literal for a in args):
        out: list[Any] = []
        for a in args:
            out.extend(get_args(a) if get_origin(a) is Literal else ([None] if a is type(None) else []))
        return tuple(out)
    return None


def _is_tuple(hint: Any) -> bool:
    return hint is tuple or get_origin(hint) is tuple


# --- the workspace ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Workspace:
    """Where everything a user makes lives. `Workspace.default()` honours `WORKBENCH_HOME`."""

    root: Path

    @classmethod
    def default(cls) -> "Workspace":
        env = os.environ.get(WORKSPACE_ENV)
        return cls(Path(env).expanduser().resolve() if env else PROJECT_DIR)

    @property
    def vectorstore(self) -> Path:
        return self.root / "vectorstore"

    @property
    def datasets(self) -> Path:
        return self.root / "datasets"

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    @property
    def models(self) -> Path:
        return self.root / "models"

    def ensure(self) -> "Workspace":
        for p in (self.vectorstore, self.datasets, self.runs, self.models):
            p.mkdir(parents=True, exist_ok=True)
        return self

    def inside(self, path: str | Path) -> Path:
        """Resolve `path` and make sure it stays inside the workspace (uploads, names from users)."""
        p = (self.root / path).resolve()
        if p != self.root.resolve() and self.root.resolve() not in p.parents:
            raise ConfigError(f"{path!s} points outside the workspace {self.root}. Use a plain file or folder name.",
                              ko=f"{path!s}은(는) 작업 공간 {self.root} 밖을 가리킵니다. 평범한 파일이나 폴더 "
                                 f"이름을 쓰세요.")
        return p

    def readable(self, path: str | Path) -> Path:
        """`path` resolved, if a page may read it: inside the workspace, the project's `examples/`, or a folder listed
        in `WORKBENCH_ALLOW_PATHS` (os.pathsep-separated). A page's "path on this machine" box must not read
        /etc/passwd or another user's files for whoever can reach the app.

        Raises:
            ConfigError: the path is elsewhere (the message says how to allow a folder).
        """
        p = Path(path).expanduser()
        p = (p if p.is_absolute() else self.root / p).resolve()
        extra = [Path(x).expanduser().resolve() for x in os.environ.get(ALLOW_PATHS_ENV, "").split(os.pathsep) if x.strip()]
        for base in (self.root.resolve(), (PROJECT_DIR / "examples").resolve(), *extra):
            if p == base or base in p.parents:
                return p
        raise ConfigError(f"{path!s} is outside the workspace ({self.root}) and the examples. Copy it into the workspace, "
                          f"upload it, or allow its folder with {ALLOW_PATHS_ENV}=/that/folder.",
                          ko=f"{path!s}은(는) 작업 공간({self.root})과 예제 밖에 있습니다. 작업 공간으로 복사하거나, "
                             f"업로드하거나, {ALLOW_PATHS_ENV}=/그/폴더 로 그 폴더를 허용하세요.")
