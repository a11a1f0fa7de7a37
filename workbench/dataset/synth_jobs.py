"""Dataset generation as a job on the runner (`workbench.jobs.runner`), so no thread lives in the page's session.

A generation lives in `<workspace>/jobs/generate/<YYYYMMDD-HHMMSS>-<name>/`:

    config.json       the SynthConfig, written before anything runs
    request.json      dataset name, collection, overwrite, chunk limit
    status.json       kind 'generate', state, pid, message, fraction, and at the end dataset, rows, requests, ...
    progress.jsonl    one line per chunk answered
    rows.jsonl        the generated rows; result.json: counts, failures (chunk, attempts, reason, last reply)
    generate.log      stdout / stderr of the child

The child is `python -m workbench dataset generate --from-dir DIR`; at the end it saves the rows as a dataset
(also after a cancel, if any rows exist), as `generate_dataset` always did. An API key typed into the page
reaches the child through its environment only, never a file or the argument list.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from workbench import jobs
from workbench.common.config import Workspace
from workbench.common.errors import ConfigError
from workbench.common.progress import Progress
from workbench.common.runfiles import read_json, write_json, write_text
from workbench.common.texts import Text
from workbench.dataset.synth import SynthConfig

KIND = "generate"
LOG_FILE = "generate.log"


def generations_root(workspace: Workspace | None = None) -> Path:
    return (workspace or Workspace.default()).root / "jobs" / "generate"


def start_generation(name: str, collection: str, config: SynthConfig, *, api_key: str | None = None,
                     workspace: Workspace | None = None, overwrite: bool = False,
                     limit_chunks: int | None = None) -> Path:
    """Write a generation folder and start its child process; returns the folder at once.

    Raises:
        ConfigError: a bad dataset name, a dataset of that name exists and `overwrite` is off, or no model is named.
        NotFoundError: the collection does not exist (both checked here, before a job exists, not in the child).
        JobError: the process could not be started.
    """
    from workbench.dataset.alpaca import check_name, dataset_dir
    from workbench.dataset.synth import check_model_name
    from workbench.kb.vectordb import open_collection

    ws = workspace or Workspace.default()
    check_name(name)
    check_model_name(config)
    open_collection(collection, ws)
    if (dataset_dir(name, ws) / "meta.json").exists() and not overwrite:
        raise ConfigError(f"Dataset {name!r} already exists. Choose another name, or replace it (--force / 'replace').",
                          ko=f"데이터셋 {name!r}이(가) 이미 있습니다. 다른 이름을 고르거나 바꿔 쓰세요 (--force "
                             f"/ 'replace').")
    folder = jobs.new_job_dir(generations_root(ws), name)
    config.save(folder / "config.json")
    write_json(folder / "request.json", {"name": name, "collection": collection, "overwrite": overwrite,
                                         "limit_chunks": limit_chunks})
    env = {("ANTHROPIC_API_KEY" if config.provider == "anthropic" else "OPENAI_API_KEY"): api_key} if api_key else None
    jobs.start_job(folder, jobs.python_argv("dataset", "generate", "--from-dir", str(folder)), kind=KIND,
                   env=jobs.child_env(env, workspace_root=ws.root), log_name=LOG_FILE, dataset=name)
    return folder


def generation_status(folder: str | Path) -> dict[str, Any]:
    """status.json of a generation (a killed one reads 'failed').

    Raises:
        NotFoundError: not a job folder.
    """
    return jobs.job_status(folder)


def cancel_generation(folder: str | Path, *, force: bool = False) -> dict[str, Any]:
    """Stop after the current request (the rows so far are still saved), or at once with `force`.

    Raises:
        JobError: the generation is not running.
    """
    return jobs.cancel_job(folder, force=force, wait=5.0 if force else 0.0)


def generation_result(folder: str | Path) -> dict[str, Any] | None:
    """result.json: rows, requests, chunks used, seconds, cancelled, note, failures; None before the end."""
    return read_json(Path(folder) / "result.json")


def list_generations(workspace: Workspace | None = None) -> list[Path]:
    """Generation folders, oldest first."""
    return jobs.list_jobs(generations_root(workspace), kind=KIND)


def run_generation_dir(folder: str | Path, workspace: Workspace | None = None,
                       progress: Progress | None = None) -> dict[str, Any]:
    """The child's entry point: generate from the folder's config, write rows and result, save the dataset.

    Raises:
        GenerationError: no row came out; and everything `generate_dataset` raises.
    """
    import json

    from workbench.dataset.synth import chunks_from_collection, generate_dataset

    folder = Path(folder)
    config = SynthConfig.load(folder / "config.json")
    request = read_json(folder / "request.json", {}) or {}
    ws = workspace or Workspace.default()
    with jobs.job_context(folder) as ctx:

        def report(message: str, fraction: float) -> None:
            ctx.progress(message, fraction)
            if progress:
                progress(message, fraction)

        report(Text("Reading the chunks",
                    "청크 읽는 중"), 0.0)
        chunks = chunks_from_collection(request["collection"], ws, limit=request.get("limit_chunks"))
        info, result = generate_dataset(request["name"], chunks, config, collection=request["collection"], workspace=ws,
                                        overwrite=bool(request.get("overwrite")), progress=report, cancel=ctx.cancel)
        write_text(folder / "rows.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in result.rows))
        out = {**result.to_dict(), "failures": [f.to_dict() for f in result.failures], "dataset": info.name}
        write_json(folder / "result.json", out)
        ctx.result(dataset=info.name, rows=len(result.rows), requests=result.requests, chunks_used=result.chunks_used,
                   seconds=result.seconds, note=result.note, failures=len(result.failures))
    return out
