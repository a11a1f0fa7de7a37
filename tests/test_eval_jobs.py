"""Evaluations on the job runner: folders, status of a killed process, and a real child started, cancelled, killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from apphelpers import split_csv_dataset

from workbench.common.errors import JobError
from workbench.common.runfiles import update_json
from workbench.compare.eval_jobs import (
    cancel_evaluation,
    evaluation_status,
    list_evaluations,
    new_eval_dir,
    read_progress,
    start_evaluation,
)
from workbench.compare.evaluation import EvalConfig, load_results


def test_an_evaluation_folder_holds_its_config_and_a_pending_status(workspace, tmp_path):
    cfg = EvalConfig(dataset="shop", sources=("base",), embedding_model="")
    folder = new_eval_dir(cfg, workspace)
    assert folder.parent == workspace.root / "evals" and folder.name.endswith("-shop")
    assert EvalConfig.load(folder / "config.json").to_dict() == cfg.to_dict()
    status = evaluation_status(folder)
    assert (status["kind"], status["state"], status["pid"], status["done"]) == ("evaluation", "pending", None, 0)
    assert list_evaluations(workspace) == [folder] and read_progress(folder) == []
    # a pending evaluation without a process: cancelling records it
    assert cancel_evaluation(folder)["state"] == "cancelled"
    with pytest.raises(JobError, match="is cancelled, not running"):
        cancel_evaluation(folder)
    again = new_eval_dir(cfg, workspace, tmp_path / "mine")
    assert evaluation_status(again)["state"] == "pending"


def test_an_evaluation_whose_process_died_is_failed(workspace):
    folder = new_eval_dir(EvalConfig(dataset="shop", sources=("base",), embedding_model=""), workspace)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    update_json(folder / "status.json", state="running", pid=dead.pid)
    status = evaluation_status(folder)
    assert status["state"] == "failed" and f"pid {dead.pid}) ended without finishing" in status["error"]


def wait_until(folder, states, timeout):
    deadline = time.time() + timeout
    while evaluation_status(folder)["state"] not in states and time.time() < deadline:
        time.sleep(0.2)
    return evaluation_status(folder)


@pytest.mark.slow
def test_background_evaluation_job_completes_cancels_and_dies(workspace, smollm2_dir, tmp_path):
    split_csv_dataset(workspace, "tiny", [[f"Question number {i}?", "", f"Answer {i}."] for i in range(6)], tmp_path,
                      test_size=0.34)
    cfg = EvalConfig(dataset="tiny", base_model=str(smollm2_dir), sources=("base",), limit=1,
                     generation={"max_new_tokens": 4}, embedding_model="")
    folder = start_evaluation(cfg, workspace)
    assert folder.parent == workspace.root / "evals"
    status = wait_until(folder, ("completed", "failed", "cancelled"), 240)
    assert status["state"] == "completed", (status, (folder / "eval.log").read_text()[-2000:])
    assert (status["done"], status["total"]) == (1, 1) and status["pid"] and status["start_time"]
    assert len(load_results(folder)) == 1 and (folder / "report.html").is_file()
    # the progress names the source that answers now, as it starts (not the one that just finished)
    step = next(p for p in read_progress(folder) if p.get("source"))
    assert (step["done"], step["message"], step["message_ko"]) == (0, "Row 1/1: answering with base",
                                                                   "1/1행: 기본 모델(으)로 답하는 중")
    # a second job, cancelled right away, ends as cancelled (not failed)
    folder2 = start_evaluation(cfg, workspace)
    cancel_evaluation(folder2)
    assert wait_until(folder2, ("completed", "failed", "cancelled"), 60)["state"] == "cancelled"
    # a third, killed from outside while it runs, ends as failed
    folder3 = start_evaluation(cfg, workspace)
    pid = evaluation_status(folder3)["pid"]
    assert wait_until(folder3, ("running",), 60)["state"] == "running"
    os.killpg(pid, signal.SIGKILL)
    status = wait_until(folder3, ("completed", "failed", "cancelled"), 30)
    assert status["state"] == "failed" and "ended without finishing (killed?)" in status["error"]


def _claim(folders, barrier, results):  # a forked child: one `evaluate --out folder` per round, up to its claim
    from workbench.common.config import Workspace

    for n, folder in enumerate(folders):
        barrier.wait()
        try:
            new_eval_dir(EvalConfig(dataset="shop", sources=("base",), embedding_model=""), Workspace.default(), folder)
            results.put((n, "claimed"))
        except JobError as exc:
            results.put((n, str(exc)))
        barrier.wait()  # stay alive (the claim's pid) until the other one has tried too


def test_two_evaluations_out_to_one_folder_at_once_only_one_runs(workspace, tmp_path):
    """Issue #23: `evaluate --out DIR` into a running evaluation's folder was accepted; its results were lost and both
    exited 0. 50 rounds of two real processes claiming one folder at the same moment."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    folders = [tmp_path / f"out{n}" for n in range(50)]
    barrier, results = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_claim, args=(folders, barrier, results)) for _ in range(2)]
    for p in procs:
        p.start()
    got: dict[int, list[str]] = {}
    for _ in range(2 * len(folders)):
        n, result = results.get(timeout=60)
        got.setdefault(n, []).append(result)
    for p in procs:
        p.join(30)
    for n, folder in enumerate(folders):
        pair = sorted(got[n], key=lambda r: r != "claimed")
        assert pair[0] == "claimed" and pair[1].startswith(f"{folder} holds an evaluation that is still running"), (n, pair)
    # once its process is gone, the folder may be used again
    assert new_eval_dir(EvalConfig(dataset="shop", sources=("base",), embedding_model=""), workspace, folders[0]) == folders[0]


@pytest.mark.slow
def test_evaluate_out_into_a_background_evaluations_folder_is_refused(workspace, smollm2_dir, tmp_path):
    split_csv_dataset(workspace, "tiny", [[f"Question number {i}?", "", f"Answer {i}."] for i in range(12)], tmp_path,
                      test_size=0.5)
    cfg = EvalConfig(dataset="tiny", base_model=str(smollm2_dir), sources=("base",), generation={"max_new_tokens": 32},
                     embedding_model="", batch_size=1)
    folder = start_evaluation(cfg, workspace)
    try:
        r = subprocess.run([sys.executable, "-m", "workbench", "evaluate", "--dataset", "tiny", "--base-model",
                            str(smollm2_dir), "--limit", "1", "--embedding-model", "", "--out", str(folder)],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 2 and r.stderr.startswith(f"error: {folder} holds an evaluation that is still running"), \
            r.stderr
        assert evaluation_status(folder)["state"] in ("pending", "running")  # the background one goes on
        assert EvalConfig.load(folder / "config.json").to_dict() == cfg.to_dict()
    finally:
        cancel_evaluation(folder, force=True)
