"""The job runner on a tiny real child process: start, status, progress, cancel, force cancel, kill -9, pid reuse,
zombies reaped, and the child side (`job_context`) in this process."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest

from workbench.common.errors import ConfigError, JobError, NotFoundError
from workbench.common.runfiles import process_start_time, read_json, update_json, write_json
from workbench.jobs.runner import (
    cancel_job,
    job_context,
    job_status,
    list_jobs,
    log_tail,
    read_progress,
    start_job,
    wait_job,
)

CHILD = """
import sys, time
from workbench.jobs.runner import job_context
folder, steps, pause = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
with job_context(folder, throttle=0) as ctx:
    print("child started", flush=True)
    done = 0
    for i in range(steps):
        if ctx.cancelled:
            break
        if i == 2 and len(sys.argv) > 4:
            raise RuntimeError("the third step broke\\nsecond line")
        time.sleep(pause)
        done += 1
        ctx.progress(f"step {done}", done / steps, step=done)
    ctx.result(steps_done=done)
"""


def start(folder: Path, steps: int = 3, pause: float = 0.05, *extra: str) -> dict:
    return start_job(folder, [sys.executable, "-c", CHILD, str(folder), str(steps), str(pause), *extra], kind="toy")


def state_of(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


def test_a_job_runs_reports_progress_and_completes(tmp_path):
    folder = tmp_path / "job"
    status = start(folder)
    assert status["kind"] == "toy" and status["pid"] and status["start_time"] == process_start_time(status["pid"])
    done = wait_job(folder, timeout=60)
    assert done["state"] == "completed", log_tail(folder)
    assert done["steps_done"] == 3 and done["fraction"] == 1.0 and done["error"] is None
    assert [p["step"] for p in read_progress(folder)] == [1, 2, 3]
    assert "child started" in log_tail(folder)
    assert list_jobs(tmp_path) == [folder] and list_jobs(tmp_path, kind="train") == []
    with pytest.raises(JobError, match="is completed, not running"):
        cancel_job(folder)
    # started again in the same folder (a resume): a new process, the first creation time
    again = start(folder)
    assert again["pid"] != status["pid"] and again["created_at"] == done["created_at"]
    assert wait_job(folder, timeout=60)["state"] == "completed"


def test_a_finished_child_is_reaped_by_the_next_status_poll(tmp_path):
    """This process lives long, like the Streamlit server: its finished children must not stay zombies."""
    folder = tmp_path / "job"
    pid = start(folder, 1, 0.0)["pid"]
    for _ in range(400):
        if state_of(pid) == "Z":
            break
        time.sleep(0.05)
    assert state_of(pid) == "Z"  # finished, nobody has asked yet
    assert job_status(folder)["state"] == "completed"
    assert state_of(pid) is None  # reaped


def test_cancel_stops_after_the_current_step(tmp_path):
    folder = tmp_path / "job"
    start(folder, 200, 0.05)
    wait_job(folder, timeout=60, until=lambda s: s.get("state") == "running" and (s.get("fraction") or 0) > 0)
    cancel_job(folder)
    status = wait_job(folder, timeout=30)
    assert status["state"] == "cancelled" and status["cancel_requested"] and status["error"] is None
    assert 0 < status["steps_done"] < 200  # it wrote its final state itself


def test_force_cancel_kills_and_records_cancelled(tmp_path):
    folder = tmp_path / "job"
    start(folder, 200, 0.05)
    wait_job(folder, timeout=60, until=lambda s: s.get("state") == "running")
    status = cancel_job(folder, force=True)
    assert status["state"] == "cancelled" and status["cancel_forced"] and "steps_done" not in status


def test_kill_9_from_outside_marks_the_job_failed(tmp_path):
    folder = tmp_path / "job"
    pid = start(folder, 200, 0.05)["pid"]
    wait_job(folder, timeout=60, until=lambda s: s.get("state") == "running")
    os.killpg(pid, signal.SIGKILL)
    status = wait_job(folder, timeout=30)
    assert status["state"] == "failed" and f"pid {pid}) stopped without reporting" in status["error"]


def test_an_error_in_the_child_is_recorded_in_one_line(tmp_path):
    folder = tmp_path / "job"
    start(folder, 5, 0.0, "fail")
    status = wait_job(folder, timeout=60)
    assert status["state"] == "failed" and status["error"] == "RuntimeError: the third step broke"
    assert "Traceback" in log_tail(folder)  # the whole traceback stays in the log


def test_a_reused_pid_is_not_taken_for_the_job(tmp_path):
    folder = tmp_path / "job"
    # this process has the recorded pid, but it started at another time: the job's own process is gone
    write_json(folder.mkdir() or folder / "status.json",
               {"kind": "toy", "state": "running", "pid": os.getpid(), "start_time": process_start_time(os.getpid()) - 7})
    assert job_status(folder)["state"] == "failed"
    update_json(folder / "status.json", state="running", cancel_requested=True)
    assert job_status(folder)["state"] == "cancelled"  # gone after a cancel request: cancelled


def test_a_running_job_is_not_started_twice(tmp_path):
    folder = tmp_path / "job"
    start(folder, 200, 0.05)
    try:
        with pytest.raises(JobError, match="already running"):
            start(folder)
    finally:
        cancel_job(folder, force=True)
    with pytest.raises(NotFoundError, match="not a job folder"):
        job_status(tmp_path / "nothing")


def test_job_context_in_this_process_records_its_own_pid_and_errors(tmp_path):
    with job_context(tmp_path) as ctx:
        status = read_json(tmp_path / "status.json")
        assert status["state"] == "running" and status["pid"] == os.getpid()
        ctx.progress("half", 0.5, rows=3)
    assert read_json(tmp_path / "status.json")["state"] == "completed"
    assert read_progress(tmp_path)[-1]["rows"] == 3
    with pytest.raises(ConfigError):
        with job_context(tmp_path):
            raise ConfigError("chunk_size must be positive (got 0). Set it to 1000.\nmore")
    status = read_json(tmp_path / "status.json")
    assert status["state"] == "failed" and status["error"] == "chunk_size must be positive (got 0). Set it to 1000."


def test_two_starts_of_one_job_at_once_start_one_process(tmp_path):
    """A double click, or the page and the CLI together: exactly one start succeeds, the other is told it runs."""
    import threading

    folder = tmp_path / "job"
    outcomes: list[str] = []

    def go() -> None:
        try:
            start(folder, 40, 0.05)
            outcomes.append("started")
        except JobError as exc:
            outcomes.append("refused" if "already running" in str(exc) else str(exc))

    threads = [threading.Thread(target=go) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sorted(outcomes) == ["refused", "refused", "refused", "started"]
    cancel_job(folder)
    assert wait_job(folder, timeout=60)["state"] == "cancelled"
