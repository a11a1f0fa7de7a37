from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Literal

import pytest

from workbench.common.config import BaseConfig, Workspace, setting
from workbench.common.errors import ConfigError


@dataclass
class DemoConfig(BaseConfig):
    mode: Literal["chars", "bytes"] = setting("chars", "how to count", help_ko="세는 방법")
    size: int = setting(500, "chunk size", min=1, max=10_000)
    targets: tuple[str, ...] = setting(default_factory=lambda: ("q_proj", "v_proj"), help="modules")
    note: str | None = setting(None, "free text")

    def validate(self) -> None:
        super().validate()
        if self.mode == "bytes" and self.size < 4:
            raise ConfigError(f"DemoConfig.size = {self.size} is too small for bytes: use at least 4.")


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_round_trip(tmp_path, suffix):
    cfg = DemoConfig(mode="bytes", size=300, targets=("a", "b"), note="한국어 메모")
    path = cfg.save(tmp_path / f"cfg{suffix}")
    again = DemoConfig.load(path)
    assert again == cfg
    assert again.to_dict() == cfg.to_dict()
    assert isinstance(again.targets, tuple)
    assert "한국어 메모" in path.read_text(encoding="utf-8")  # not \\u-escaped


def test_literal_choice_message_names_field_value_and_choices():
    with pytest.raises(ConfigError) as e:
        DemoConfig(mode="tokens")
    assert str(e.value) == "DemoConfig.mode = 'tokens' is not one of 'chars', 'bytes'. Pick one of those values."


def test_bounds_and_cross_field_rules():
    with pytest.raises(ConfigError, match=r"DemoConfig.size = 0 is below the minimum 1"):
        DemoConfig(size=0)
    with pytest.raises(ConfigError, match=r"above the maximum 10000"):
        DemoConfig(size=20_000)
    with pytest.raises(ConfigError, match="too small for bytes"):
        DemoConfig(mode="bytes", size=2)
    with pytest.raises(ConfigError, match="too small for bytes"):
        DemoConfig().replace(mode="bytes", size=3)


def test_unknown_keys_are_rejected_with_the_known_ones():
    with pytest.raises(ConfigError, match=r"has no setting 'chunk_sise'.*Known settings: mode, note, size, targets"):
        DemoConfig.from_dict({"chunk_sise": 3})


def test_load_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        DemoConfig.load(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid json"):
        DemoConfig.load(bad)


def test_help_text_for_the_ui():
    assert DemoConfig.help("mode") == "how to count"
    assert DemoConfig.help("mode", "ko") == "세는 방법"
    assert DemoConfig.help("size", "ko") == "chunk size"  # falls back to English
    assert DemoConfig.choices("mode") == ("chars", "bytes")
    assert DemoConfig.choices("size") is None


def test_workspace_env_override_and_layout(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path / "home"))
    ws = Workspace.default().ensure()
    assert ws.root == (tmp_path / "home").resolve()
    assert sorted(p.name for p in ws.root.iterdir()) == ["datasets", "models", "runs", "vectorstore"]
    assert ws.inside("datasets/shop") == ws.root / "datasets" / "shop"
    with pytest.raises(ConfigError, match="outside the workspace"):
        ws.inside("../../etc/passwd")
    with pytest.raises(ConfigError, match="outside the workspace"):
        ws.inside("/etc/passwd")


def _all_configs() -> list[type[BaseConfig]]:
    """Every BaseConfig subclass defined in workbench (its modules imported first)."""
    import importlib
    import pkgutil

    import workbench

    for m in pkgutil.walk_packages(workbench.__path__, "workbench."):
        if m.name.split(".")[1] not in ("ui", "__main__"):
            importlib.import_module(m.name)

    def subclasses(cls: type) -> list[type]:
        return [s for c in cls.__subclasses__() for s in (c, *subclasses(c))]

    return [c for c in subclasses(BaseConfig) if c.__module__.startswith("workbench.")]


# Tooltips say what a setting does and how to choose it; measurements belong in docs/settings-notes.md.
BENCHMARK_PROSE = re.compile(
    r"measured|측정|benchmark|벤치마크"  # the words themselves
    r"|\b\d+(?:\.\d+)?\s*(?:s|ms|초|GiB|MiB|GB|tok/s|tokens/s)(?![\w/])"  # timings, memory, throughput with a number
    r"|\d+-core|\bH200\b|\bA100\b"  # the machines they were measured on
)


def test_every_setting_has_labels_and_help_in_both_languages():
    configs = _all_configs()
    assert {"ChunkingConfig", "RetrievalConfig", "TrainConfig", "GenerationConfig", "EvalConfig"} <= {c.__name__ for c in configs}
    missing = [f"{c.__name__}.{f.name}: {k}" for c in configs for f in dataclasses.fields(c)
               for k in ("label", "label_ko", "help", "help_ko") if not str(f.metadata.get(k, "")).strip()]
    assert missing == []


def test_no_help_text_carries_benchmark_prose():
    found = [f"{c.__name__}.{f.name} ({k}): {m.group(0)!r}" for c in _all_configs() for f in dataclasses.fields(c)
             for k in ("help", "help_ko") for m in [BENCHMARK_PROSE.search(f.metadata[k])] if m]
    assert found == []
    assert BENCHMARK_PROSE.search("a padded batch took 0.43 s on an H200")
    assert BENCHMARK_PROSE.search("활성값 +0.46 GiB") and BENCHMARK_PROSE.search("0.84초")
    assert not BENCHMARK_PROSE.search("Seconds to wait for one reply (the tutorial: 0.1).")


@dataclass
class LabelledConfig(BaseConfig):
    mode: Literal["auto", "fast", "slow"] = setting("auto", "how", help_ko="방법", label="Mode", label_ko="방식",
                                                   choice_labels={"fast": ("quick", "빠르게")})
    rate: float = setting(0.5, "rate", label="Rate", min=0.0, max=1.0, step=0.05)
    modules: tuple[Literal["q", "v"], ...] = setting(default_factory=lambda: ("q",), help="modules")


def test_introspection_for_the_forms():
    assert LabelledConfig.label("mode") == "Mode" and LabelledConfig.label("mode", "ko") == "방식"
    assert LabelledConfig.label("rate", "ko") == "Rate"  # falls back to English
    assert LabelledConfig.label("modules") == "modules"  # falls back to the name
    assert LabelledConfig.bounds("rate") == (0.0, 1.0) and LabelledConfig.bounds("mode") == (None, None)
    assert LabelledConfig.field_info("rate").metadata["step"] == 0.05
    assert LabelledConfig.field_type("rate") is float
    assert LabelledConfig.default_of("modules") == ("q",) and LabelledConfig.default_of("rate") == 0.5
    assert LabelledConfig.choices("modules") == ("q", "v")
    assert LabelledConfig.choice_label("mode", "fast", "ko") == "빠르게"
    assert LabelledConfig.choice_label("mode", "auto", "ko") == "자동"  # the common labels
    assert LabelledConfig.choice_label("mode", "slow") == "slow"
    assert LabelledConfig.field_names() == ("mode", "rate", "modules")
    with pytest.raises(KeyError, match="no setting 'nope'"):
        LabelledConfig.label("nope")


@dataclass
class TypedConfig(BaseConfig):
    steps: int = setting(0, "steps")
    rate: float = setting(2e-4, "rate")
    flag: bool = setting(False, "flag")
    name: str = setting("shop-qa", "name")
    targets: tuple[str, ...] = setting(default_factory=lambda: ("q_proj",), help="modules")
    extra: dict[str, int] | None = setting(None, "extra")


@pytest.mark.parametrize("field,given,expected", [
    ("steps", "30", 30), ("steps", 30.0, 30), ("rate", "2e-4", 2e-4), ("rate", 1, 1.0), ("flag", "true", True),
    ("flag", "False", False), ("flag", 1, True), ("flag", 0, False), ("name", 2024, "2024"), ("targets", ["a", "b"], ("a", "b")),
    ("targets", "q_proj, v_proj", ("q_proj", "v_proj")), ("extra", {"a": "3"}, {"a": 3}), ("extra", None, None),
])
def test_values_are_coerced_where_unambiguous(field, given, expected):
    value = getattr(TypedConfig.from_dict({field: given}), field)
    assert value == expected and type(value) is type(expected)


@pytest.mark.parametrize("field,given,message", [
    ("steps", "abc", "TypedConfig.steps = 'abc' is not a whole number. Use an integer such as 30."),
    ("steps", "1.5", "TypedConfig.steps = '1.5' is not a whole number."),
    ("steps", 1.5, "TypedConfig.steps = 1.5 is not a whole number."),
    ("steps", True, "TypedConfig.steps = True is not a whole number."),
    ("steps", None, "TypedConfig.steps is empty (null). Give it a whole number"),
    ("rate", "abc", "TypedConfig.rate = 'abc' is not a number."),
    ("rate", float("nan"), "TypedConfig.rate = nan is not a finite number."),
    ("rate", "inf", "TypedConfig.rate = 'inf' is not a finite number."),
    ("rate", False, "TypedConfig.rate = False is not a number."),
    ("flag", 2, "TypedConfig.flag = 2 is not true or false."),
    ("flag", "maybe", "TypedConfig.flag = 'maybe' is not true or false."),
    ("name", ["a"], "TypedConfig.name = ['a'] is not text."),
    ("name", True, "TypedConfig.name = True is not text."),
    ("targets", 5, "TypedConfig.targets = 5 is not a list."),
    ("targets", [1, None], "TypedConfig.targets[1] is empty (null)."),
    ("extra", [1], "TypedConfig.extra = [1] is not a mapping."),
    ("extra", {"a": "x"}, "TypedConfig.extra['a'] = 'x' is not a whole number."),
])
def test_wrong_types_are_one_line_errors_naming_field_value_and_fix(field, given, message):
    with pytest.raises(ConfigError) as e:
        TypedConfig.from_dict({field: given})
    assert str(e.value).startswith(message) and "\n" not in str(e.value)


def test_replace_checks_types_too():
    with pytest.raises(ConfigError, match="TypedConfig.steps = 'x'"):
        TypedConfig().replace(steps="x")


def test_pages_read_only_inside_the_workspace_the_examples_or_allowed_folders(tmp_path, monkeypatch):
    from workbench.common.config import PROJECT_DIR

    ws = Workspace(tmp_path / "ws")
    monkeypatch.delenv("WORKBENCH_ALLOW_PATHS", raising=False)
    assert ws.readable("datasets/qa.csv") == (tmp_path / "ws" / "datasets" / "qa.csv").resolve()
    assert ws.readable(PROJECT_DIR / "examples" / "x.csv") == (PROJECT_DIR / "examples" / "x.csv").resolve()
    for outside in ("/etc/passwd", "../elsewhere/qa.csv", str(tmp_path / "other" / "qa.csv")):
        with pytest.raises(ConfigError, match=r"is outside the workspace .* allow its folder with WORKBENCH_ALLOW_PATHS="):
            ws.readable(outside)
    monkeypatch.setenv("WORKBENCH_ALLOW_PATHS", f"/nowhere{__import__('os').pathsep}{tmp_path / 'other'}")
    assert ws.readable(tmp_path / "other" / "qa.csv") == (tmp_path / "other" / "qa.csv").resolve()
    with pytest.raises(ConfigError):
        ws.readable("/etc/passwd")


def test_the_server_watches_no_files():
    """Streamlit watches the checkout, workspace included, by default: a training run's writes kept it busy (#17)."""
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    cfg = tomllib.loads((root / ".streamlit" / "config.toml").read_text(encoding="utf-8"))
    assert cfg["server"]["fileWatcherType"] == "none"
    assert cfg["server"]["runOnSave"] is False
    assert cfg["server"]["address"] == "127.0.0.1"  # the settings that were there stay
    assert "fileWatcherType" not in (root / "Makefile").read_text(encoding="utf-8")  # `make run` uses the file
