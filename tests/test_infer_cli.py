"""`python -m workbench ask / evaluate / evaluations`, as a user runs them (real subprocesses, the real SmolLM2)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def cli(*args: str) -> subprocess.CompletedProcess:
    # WORKBENCH_HOME comes from the `workspace` fixture (monkeypatched into os.environ).
    return subprocess.run([sys.executable, "-m", "workbench", *args], cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_user_errors_are_one_line(workspace):
    r = cli("evaluate", "--dataset", "nope", "--json")
    assert r.returncode == 2 and r.stderr.startswith("error: Dataset 'nope' does not exist")
    r = cli("evaluate", "--dataset", "d", "--sources", "base,ft")
    assert r.returncode == 2 and "need a fine-tuned adapter" in r.stderr and r.stderr.count("\n") == 1
    r = cli("evaluations", "list", "--json")
    assert r.returncode == 0 and json.loads(r.stdout) == []
    r = cli("evaluations", "show")
    assert r.returncode == 2 and "needs the evaluation folder" in r.stderr


@pytest.mark.slow
def test_ask_answers_with_the_base_model(workspace, smollm2_dir):
    r = cli("ask", "What is the capital of France?", "--base-model", str(smollm2_dir), "--max-new-tokens", "12", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert "Paris" in out["answer"] and out["source"] == "base" and out["template"] == "chat"
    assert out["stopped"] == "stop_token" and 0 < out["completion_tokens"] <= 12 and out["warnings"] == []


@pytest.mark.slow
def test_evaluate_prints_aggregates_and_writes_the_report(workspace, smollm2_dir, tmp_path):
    from workbench.alpaca import DatasetConfig, SplitConfig, import_dataset, split_dataset

    src = tmp_path / "rows.csv"
    with src.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["instruction", "input", "output"])
        for i in range(6):
            w.writerow([f"What is {i} plus {i}?", "", f"{2 * i}"])
    import_dataset(src, DatasetConfig(name="sums", tokenizer=""), workspace=workspace)
    split_dataset("sums", SplitConfig(test_size=0.34, val_size=0.0), workspace=workspace)
    out_dir = tmp_path / "report"
    r = cli("evaluate", "--dataset", "sums", "--base-model", str(smollm2_dir), "--limit", "1", "--max-new-tokens", "4",
            "--embedding-model", "", "--json", "--out", str(out_dir))
    assert r.returncode == 0, r.stderr
    agg = json.loads(r.stdout)
    assert list(agg["sources"]) == ["base"] and agg["rows"] == 1
    f1 = agg["sources"]["base"]["metrics"]["char_f1"]
    assert f1["n"] == 1 and 0 <= f1["mean"] <= 1
    assert {p.name for p in out_dir.iterdir()} >= {"config.json", "results.csv", "summary.json", "report.md", "report.html"}
    assert "[100%] Report written" in r.stderr
