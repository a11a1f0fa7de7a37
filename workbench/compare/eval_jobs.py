"""Batch evaluations as jobs on the runner (`workbench.jobs.runner`): folders, start, status, cancel, the child's entry point.

An evaluation lives in `runs/<run_id>/eval/<id>/` (or `evals/<id>/` without a training run), id
`YYYYMMDD-HHMMSS-<dataset>`:

    config.json       the EvalConfig, written before anything runs
    status.json       kind 'evaluation', state, pid, start_time, done / total, message, error
    progress.jsonl    one line as each batch starts with a source (done before it, total, fraction, message)
    results.csv       one line per row and source; summary.json, report.md, report.html at the end
    eval.log          stdout / stderr of the child

The child is `python -m workbench evaluate --from-dir DIR`. SIGTERM stops it after the current batch, with a
partial report and state 'cancelled'.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from workbench import jobs
from workbench.common.config import Workspace
from workbench.common.errors import JobError
from workbench.common.progress import Progress
from workbench.common.runfiles import locked, process_start_time, read_json, update_json
from workbench.common.texts import Text, state_ko
from workbench.compare.eval_config import (  # noqa: F401
    CONFIG_FILE,
    LOG_FILE,
    PROGRESS_FILE,
    STATUS_FILE,
    EvalConfig,
    evals_root,
    list_evaluations,
)
from workbench.compare.report import REPORT_HTML, REPORT_MD, RESULTS_FILE, SUMMARY_FILE  # noqa: F401  (files of an evaluation folder)

KIND = "evaluation"


def _pending(path: Path, **owner: Any) -> None:
    update_json(path / STATUS_FILE, **{"kind": KIND, "state": "pending", "pid": None, "start_time": None, "started_at": None,
                                       "ended_at": None, "error": None, "cancel_requested": False, "done": 0, "total": 0,
                                       **owner})


def new_eval_dir(config: EvalConfig, workspace: Workspace | None = None, folder: str | Path | None = None) -> Path:
    """A fresh folder for one evaluation (sortable id `YYYYMMDD-HHMMSS-<dataset>`, or `folder`), config written first.

    A given `folder` (`evaluate --out DIR`) is claimed for this process, which runs the evaluation itself: its pid goes
    into status.json in the same locked step as the check, so a second `--out` of the same folder is refused while this
    one runs.

    Raises:
        JobError: `folder` holds an evaluation that is still running (its results would be overwritten).
    """
    if folder is not None:
        path = Path(folder)
        path.mkdir(parents=True, exist_ok=True)
        with locked(path / "start"):  # the lock `jobs.start_job` takes: a check and a claim are one step
            _refuse_running(path)
            for name in (STATUS_FILE, SUMMARY_FILE, REPORT_MD, REPORT_HTML):
                (path / name).unlink(missing_ok=True)
            config.save(path / CONFIG_FILE)
            _pending(path, pid=os.getpid(), start_time=process_start_time(os.getpid()))
        return path
    path = jobs.new_job_dir(evals_root(config.run_id, workspace), config.dataset)
    config.save(path / CONFIG_FILE)
    _pending(path)
    return path


def _refuse_running(path: Path) -> None:
    status = read_json(path / STATUS_FILE, {}) or {}
    if status.get("state") in jobs.ACTIVE and jobs.process_alive(status.get("pid"), status.get("start_time")):
        raise JobError(f"{path} holds an evaluation that is still running (pid {status['pid']}); writing there would "
                       f"lose its results. Choose another --out folder, or cancel it first (`workbench evaluations "
                       f"cancel {path}`).",
                       ko=f"{path}에는 아직 실행 중인 평가가 있습니다 (pid {status['pid']}). 거기에 쓰면 그 결과를 "
                          f"잃습니다. 다른 --out 폴더를 고르거나 먼저 취소하세요 (`workbench evaluations cancel {path}`).")


def evaluation_status(folder: str | Path) -> dict[str, Any]:
    """status.json of an evaluation; a running one whose process is gone is reported failed (or cancelled, if
    cancel was asked).

    Raises:
        NotFoundError: not an evaluation folder.
    """
    return jobs.job_status(folder, lost=lambda s: Text(f"The evaluation process (pid {s.get('pid')}) ended without "
                                                       f"finishing (killed?). Start it again.",
                                                       f"평가 프로세스(pid {s.get('pid')})가 끝내지 못하고 멈췄습니다 "
                                                       f"(강제 종료?). 다시 시작하세요."))


def start_evaluation(config: EvalConfig, workspace: Workspace | None = None, env: Mapping[str, str] | None = None) -> Path:
    """Write the evaluation folder and run it in a child process; returns the folder.

    `env` adds environment variables for the child only (an API key typed into the page is passed this way
    and never written to disk).

    Raises:
        NotFoundError: the dataset split, run, adapter or collection is missing.
        JobError: the process could not be started.
    """
    from workbench.compare.evaluation import check_evaluation

    ws = workspace or Workspace.default()
    check_evaluation(config, ws)
    folder = new_eval_dir(config, ws)
    jobs.start_job(folder, jobs.python_argv("evaluate", "--from-dir", str(folder)), kind=KIND,
                   env=jobs.child_env(env, workspace_root=ws.root), log_name=LOG_FILE)
    return folder


def cancel_evaluation(folder: str | Path, *, force: bool = False) -> dict[str, Any]:
    """Ask the evaluation process to stop (SIGTERM): it finishes the current batch and writes a partial report.
    `force` kills it at once (SIGKILL; no report).

    Raises:
        JobError: the evaluation is not running.
    """
    folder = Path(folder)
    status = evaluation_status(folder)
    if status.get("state") not in jobs.ACTIVE:
        raise JobError(f"The evaluation in {folder.name} is {status.get('state')}, not running: nothing to cancel.",
                       ko=f"{folder.name}의 평가는 {state_ko(status.get('state'))} 상태로, 실행 중이 아닙니다: "
                          f"취소할 것이 없습니다.")
    return jobs.cancel_job(folder, force=force, wait=5.0 if force else 0.0)


def read_progress(folder: str | Path) -> list[dict[str, Any]]:
    """The progress lines so far (done, total, fraction, message)."""
    return jobs.read_progress(folder)


def run_evaluation_dir(folder: str | Path, workspace: Workspace | None = None, progress: Progress | None = None) -> dict[str, Any]:
    """Run the evaluation whose config.json is in `folder` (the child process's entry point).

    Keeps status.json current; SIGTERM stops it after the current batch with state 'cancelled'.
    """
    from workbench.compare.evaluation import run_evaluation

    folder = Path(folder)
    config = EvalConfig.load(folder / CONFIG_FILE)
    with jobs.job_context(folder) as ctx:

        def report(message: str, fraction: float) -> None:
            if progress:
                progress(message, fraction)
            last = read_progress(folder)[-1:] or [{"done": 0, "total": 0}]
            ctx.status(message, fraction, done=last[0]["done"], total=last[0]["total"])  # run_evaluation writes the lines

        summary = run_evaluation(config, folder, workspace, report, cancel=ctx.cancel)
        if not summary["cancelled"]:
            ctx.cancel.clear()  # SIGTERM after the last answer: the report is complete
        last = read_progress(folder)[-1:] or [{"done": 0, "total": 0}]
        ctx.result(done=last[0]["done"], total=last[0]["total"])
    return summary
