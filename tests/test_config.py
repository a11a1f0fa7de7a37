from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pytest

from workbench.config import BaseConfig, Workspace, setting
from workbench.errors import ConfigError


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
