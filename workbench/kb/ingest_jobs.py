"""Large ingests (and the freshness demo's re-ingest) as jobs on the runner (`workbench.jobs.runner`).

Small ingests stay inline on the page; `is_large(paths)` says when a child process is worth it (more than
`LARGE_INGEST_BYTES` or `LARGE_INGEST_FILES`). A job lives in `<workspace>/jobs/ingest/<YYYYMMDD-HHMMSS>-<name>/`:

    chunking.json     the ChunkingConfig, written before anything runs
    request.json      paths (absolute), collection, embedding, encoding
    status.json       kind 'ingest', state, pid, message, fraction, and at the end chunks / added / removed
    progress.jsonl    one line per progress report (loading, embedding batches, writing, the lexical index)
    report.json       the IngestReport at the end
    ingest.log        stdout / stderr of the child

The child is `python -m workbench ingest --from-dir DIR`. Cancel stops it at the next progress report; the
collection may then hold part of the new chunks, and ingesting the same files again brings it in step.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench import jobs
from workbench.common.config import Workspace
from workbench.common.errors import ConfigError
from workbench.common.progress import Progress
from workbench.common.runfiles import read_json, write_json

if TYPE_CHECKING:  # pragma: no cover
    from workbench.kb.chunking import ChunkingConfig

KIND = "ingest"
LOG_FILE = "ingest.log"
LARGE_INGEST_BYTES = 2_000_000
LARGE_INGEST_FILES = 20


def ingests_root(workspace: Workspace | None = None) -> Path:
    return (workspace or Workspace.default()).root / "jobs" / "ingest"


def _files(paths: Sequence[str | Path]) -> list[Path]:
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out.extend(f for f in p.rglob("*") if f.is_file())
        else:
            out.append(p)
    return out


def is_large(paths: Sequence[str | Path]) -> bool:
    """Whether ingesting `paths` (files or folders) is worth a child process: more than `LARGE_INGEST_FILES`
    files or `LARGE_INGEST_BYTES` bytes."""
    files = _files(paths)
    return len(files) > LARGE_INGEST_FILES or sum(f.stat().st_size for f in files if f.exists()) > LARGE_INGEST_BYTES


def start_ingest(paths: Sequence[str | Path], collection: str, chunking: ChunkingConfig | None = None,
                 embedding: str | None = None, workspace: Workspace | None = None, encoding: str = "auto") -> Path:
    """Write an ingest folder and start its child process; returns the folder at once. `encoding`: the text files'
    encoding ("auto" detects it).


    Raises:
        ConfigError: no paths, or a path that does not exist.
        JobError: the process could not be started.
    """
    from workbench.kb.chunking import ChunkingConfig
    from workbench.kb.vectordb import chroma_name

    ws = workspace or Workspace.default()
    resolved = [Path(p).resolve() for p in paths]
    if not resolved:
        raise ConfigError("Nothing to ingest: give at least one file or folder.",
                          ko="넣을 것이 없습니다: 파일이나 폴더를 하나 이상 주세요.")
    missing = [str(p) for p in resolved if not p.exists()]
    if missing:
        raise ConfigError(f"Cannot ingest {', '.join(missing[:3])}: no such file or folder.",
                          ko=f"{', '.join(missing[:3])}을(를) 넣을 수 없습니다: 그런 파일이나 폴더가 없습니다.")
    folder = jobs.new_job_dir(ingests_root(ws), chroma_name(collection))
    (chunking or ChunkingConfig()).save(folder / "chunking.json")
    write_json(folder / "request.json", {"paths": [str(p) for p in resolved], "collection": collection,
                                         "embedding": embedding, "encoding": encoding})
    jobs.start_job(folder, jobs.python_argv("ingest", "--from-dir", str(folder)), kind=KIND,
                   env=jobs.child_env(workspace_root=ws.root), log_name=LOG_FILE, collection=collection)
    return folder


def ingest_status(folder: str | Path) -> dict[str, Any]:
    """status.json of an ingest (a killed one reads 'failed').

    Raises:
        NotFoundError: not a job folder.
    """
    return jobs.job_status(folder)


def cancel_ingest(folder: str | Path, *, force: bool = False) -> dict[str, Any]:
    """Stop the ingest at its next progress report (or at once with `force`).

    Raises:
        JobError: the ingest is not running.
    """
    return jobs.cancel_job(folder, force=force, wait=5.0 if force else 0.0)


def ingest_report(folder: str | Path) -> dict[str, Any] | None:
    """The IngestReport (as `to_dict()`) once the ingest completed, else None."""
    return read_json(Path(folder) / "report.json")


def run_ingest_dir(folder: str | Path, workspace: Workspace | None = None,
                   progress: Progress | None = None) -> dict[str, Any]:
    """The child's entry point: ingest the folder's request, write report.json.

    Raises:
        ConfigError: none of the files could be read; and everything `ingest_paths` raises.
    """
    from workbench.kb.chunking import ChunkingConfig
    from workbench.kb.ingest import ingest_paths

    folder = Path(folder)
    request = read_json(folder / "request.json", {}) or {}
    chunking = ChunkingConfig.load(folder / "chunking.json")
    report: dict[str, Any] = {}
    with jobs.job_context(folder) as ctx:

        def step(message: str, fraction: float) -> None:
            ctx.check()  # ingest_paths has no cancel of its own: stop at the next report
            ctx.progress(message, fraction)
            if progress:
                progress(message, fraction)

        result = ingest_paths(request["paths"], request["collection"], chunking, request.get("embedding"),
                              workspace or Workspace.default(), step, encoding=request.get("encoding") or "auto")
        report = result.to_dict()
        write_json(folder / "report.json", report)
        if not result.sources:
            raise ConfigError(f"None of the {len(result.errors)} file(s) could be read; nothing was ingested.",
                              ko=f"파일 {len(result.errors)}개 중 하나도 읽지 못해 아무것도 넣지 않았습니다.")
        ctx.result(chunks=result.chunks, added=result.added, removed=result.removed, errors=len(result.errors))
    return report
