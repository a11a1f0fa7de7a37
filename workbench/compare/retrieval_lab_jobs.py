"""The retrieval lab as a background job on the runner (`workbench.jobs.runner`).

A lab lives in `<workspace>/jobs/retrieval-lab/<YYYYMMDD-HHMMSS>-<collection>/`:

    lab.json          the LabConfig, written before anything runs
    status.json       kind 'retrieval-lab', state, pid, message, fraction, and at the end the best setting
    progress.jsonl    one line per progress report
    report.json       the lab's report (`retrieval_lab.run_lab`) at the end
    lab.log           stdout / stderr of the child

The child is `python -m workbench retrieval-eval --from-dir DIR`. Cancel stops it at its next progress report; its
scratch collections are deleted on the way out (and, were it killed, by the next lab).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from workbench import jobs
from workbench.common.config import Workspace
from workbench.common.progress import Progress
from workbench.common.runfiles import read_json, write_json
from workbench.compare.retrieval_lab import LabConfig, run_lab

KIND = "retrieval-lab"
CONFIG_FILE, REPORT_FILE, LOG_FILE = "lab.json", "report.json", "lab.log"


def labs_root(workspace: Workspace | None = None) -> Path:
    return (workspace or Workspace.default()).root / "jobs" / "retrieval-lab"


def save_questions_csv(name: str, data: bytes, workspace: Workspace | None = None) -> Path:
    """Keep an uploaded questions CSV in `jobs/retrieval-lab/uploads/` under a name the file system takes (a
    300-character name raised OSError: `documents.safe_name` shortens it, unique); returns its path.

    Raises:
        ConfigError: the file could not be written (the message says why).
    """
    from workbench.common.errors import ConfigError
    from workbench.common.runfiles import raise_if_disk_full
    from workbench.common.texts import Text
    from workbench.kb.documents import safe_name

    path = labs_root(workspace) / "uploads" / (safe_name(Path(name).name) or "questions.csv")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    except OSError as exc:
        raise_if_disk_full(exc, Text(f"Saving {path.name}", f"{path.name} 저장"),
                           Text("Nothing was started.", "아무것도 시작하지 않았습니다."), path.parent)
        raise ConfigError(f"The uploaded CSV could not be saved ({exc.strerror}). Rename it and upload it again.",
                          ko=f"올린 CSV를 저장하지 못했습니다 ({exc.strerror}). 이름을 바꿔 다시 올리세요.") from exc
    return path


def start_lab(config: LabConfig, workspace: Workspace | None = None) -> Path:
    """Write a lab folder (config first) and start its child process; returns the folder at once.

    Raises:
        ConfigError: no collection. NotFoundError: no such collection.
        JobError: the process could not be started.
    """
    from workbench.common.errors import ConfigError
    from workbench.kb.vectordb import chroma_name, collection_info

    ws = workspace or Workspace.default()
    if not config.collection:
        raise ConfigError("The retrieval lab needs a collection: pick one.", ko="검색 실험실에는 컬렉션이 필요합니다: 하나 고르세요.")
    collection_info(config.collection, ws)
    folder = jobs.new_job_dir(labs_root(ws), chroma_name(config.collection))
    config.save(folder / CONFIG_FILE)
    jobs.start_job(folder, jobs.python_argv("retrieval-eval", "--from-dir", str(folder), "--quiet"), kind=KIND,
                   env=jobs.child_env(workspace_root=ws.root), log_name=LOG_FILE, collection=config.collection)
    return folder


def lab_status(folder: str | Path) -> dict[str, Any]:
    """status.json of a lab (a killed one reads 'failed').

    Raises:
        NotFoundError: not a job folder.
    """
    return jobs.job_status(folder)


def cancel_lab(folder: str | Path, *, force: bool = False) -> dict[str, Any]:
    """Stop the lab at its next progress report (or at once with `force`).

    Raises:
        JobError: the lab is not running.
    """
    return jobs.cancel_job(folder, force=force, wait=5.0 if force else 0.0)


def lab_report(folder: str | Path) -> dict[str, Any] | None:
    """The report once the lab completed, else None."""
    return read_json(Path(folder) / REPORT_FILE)


def run_lab_dir(folder: str | Path, workspace: Workspace | None = None, progress: Progress | None = None) -> dict[str, Any]:
    """The child's entry point: run the folder's lab, write report.json."""
    folder = Path(folder)
    config = LabConfig.load(folder / CONFIG_FILE)
    with jobs.job_context(folder) as ctx:

        def step(message: str, fraction: float) -> None:
            ctx.check()  # the lab has no cancel of its own: stop at the next report (scratch collections are removed)
            ctx.progress(message, fraction)
            if progress:
                progress(message, fraction)

        report = run_lab(config, workspace or Workspace.default(), step)
        write_json(folder / REPORT_FILE, report)
        ctx.result(best=report["best"], questions=report["questions"])
    return report
