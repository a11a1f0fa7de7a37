"""`python -m workbench train / runs / export` as a user runs them (subprocesses, a real workspace)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_finetune import color_rows, make_dataset  # noqa: E402  (tests/ is on sys.path under pytest)

ROOT = Path(__file__).resolve().parent.parent


def cli(*args: str, ws, timeout: float = 600) -> subprocess.CompletedProcess:
    env = dict(os.environ, WORKBENCH_HOME=str(ws.root))
    return subprocess.run([sys.executable, "-m", "workbench", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.mark.parametrize("args,message", [
    (["train"], "error: Name the dataset to train on: --dataset NAME"),
    (["train", "--dataset", "boxes", "--set", "max_steps=5", "--set", "num_train_epochs=3"],
     "error: TrainConfig: max_steps = 5 would silently override num_train_epochs = 3"),
    (["train", "--dataset", "boxes", "--set", "eval_strategy=no"], "error: TrainConfig: load_best_model_at_end needs evaluations"),
    (["train", "--dataset", "nope"], "error: Dataset 'nope' does not exist"),
    (["train", "--dataset", "boxes", "--set", "context=raft"], "error: TrainConfig.context = 'raft' needs context_collection"),
    (["train", "--dataset", "boxes", "--set", "nonsense"], "error: --set 'nonsense' must look like key=value"),
    (["runs", "show", "20990101-000000-x"], "error: Run '20990101-000000-x' does not exist"),
    (["export", "20990101-000000-x"], "error: Say what to export: --merged"),
])
def test_user_errors_are_one_line_and_exit_2(workspace, args, message):
    make_dataset(workspace, "boxes", color_rows(8), color_rows(2, start=50))
    r = cli(*args, ws=workspace, timeout=120)
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith(message) and r.stderr.count("\n") == 1


def test_runs_list_on_an_empty_workspace(workspace):
    r = cli("runs", "list", "--json", ws=workspace, timeout=120)
    assert r.returncode == 0 and json.loads(r.stdout) == []


def test_train_with_raft_context_records_it_and_a_missing_collection_is_refused_before_a_run_starts(workspace):
    """Issue #23: an unknown context_collection started a run that failed 40 s later, after the model loaded."""
    from langchain_core.documents import Document

    from workbench.kb import ingest
    from workbench.training.finetune import TrainConfig
    from workbench.training.runs import create_run

    make_dataset(workspace, "boxes", color_rows(8), color_rows(2, start=50))
    r = cli("train", "--dataset", "boxes", "--set", "context=raft", "--set", "context_collection=no-such-kb",
            "--set", "context_oracle_share=0.5", "--follow", "--json", ws=workspace, timeout=300)
    assert r.returncode == 2 and r.stdout == "", r.stdout
    assert r.stderr.startswith("error: TrainConfig.context_collection = 'no-such-kb': There is no collection 'no-such-kb'")
    assert not workspace.runs.is_dir() or list(workspace.runs.iterdir()) == []  # nothing was started
    ingest.ingest_documents([Document("빨간 상자는 3번 선반에 있습니다.", metadata={"source": "boxes.txt"})], "kb",
                            workspace=workspace)
    run = create_run(TrainConfig(dataset="boxes", context="raft", context_collection="kb", context_oracle_share=0.5),
                     workspace)
    config = json.loads((run.path / "config.json").read_text())
    assert (config["context"], config["context_collection"], config["context_oracle_share"]) == ("raft", "kb", 0.5)


@pytest.mark.slow
def test_train_follow_then_runs_list_show_and_export(workspace, tmp_path):
    make_dataset(workspace, "boxes", color_rows(16), color_rows(4, start=50))
    cfg = tmp_path / "train.yaml"
    from workbench.training.finetune import TrainConfig

    TrainConfig(dataset="boxes", backend="transformers", max_steps=2, eval_steps=2, save_steps=2,
                per_device_train_batch_size=4).save(cfg)
    r = cli("train", "--config", str(cfg), "--follow", ws=workspace)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    run_id = lines[0]
    assert lines[-1] == f"{run_id}: completed"
    assert any(line.startswith("step 2  loss") and "tok/s" in line for line in lines)
    assert any(line.startswith("step 2  eval_loss") for line in lines)
    listed = json.loads(cli("runs", "list", "--json", ws=workspace).stdout)
    assert [(x["id"], x["state"], x["step"]) for x in listed] == [(run_id, "completed", 2)]
    shown = json.loads(cli("runs", "show", run_id, "--json", ws=workspace).stdout)
    assert shown["config"]["backend"] == "transformers" and len([m for m in shown["metrics"] if "loss" in m]) == 2
    text = cli("runs", "show", run_id, ws=workspace).stdout
    assert "state      completed" in text and "max_seq_length: 512 (CPU default)" in text
    # a completed run cannot be resumed or cancelled; offline, a push fails with the reason and keeps the files
    assert "already completed" in cli("runs", "resume", run_id, ws=workspace).stderr
    pushed = cli("export", run_id, "--push", "someone/boxes-lora", ws=workspace)
    assert pushed.returncode == 2 and "Hugging Face Hub" in pushed.stderr and "kept" in pushed.stderr
    # the child-process form: a RUN_DIR and a new-run flag together make no sense
    assert cli("train", str(workspace.runs / run_id), "--dataset", "boxes", ws=workspace).returncode == 2
