"""Training runs as child processes: run directories, start, poll, cancel, resume, export.

A run lives in `<workspace>/runs/<run_id>/` (run ids sort by time: `20261129-171500-smollm2-135m`):

    config.json       the TrainConfig, written before anything runs
    status.json       state (pending | running | completed | failed | cancelled), pid, step, error, ...
    metrics.jsonl     one JSON line per log: loss, eval_loss, learning_rate, grad_norm, tokens_per_s, eta_s ...
    checkpoints/      Trainer checkpoints (resume continues from the newest)
    adapter/          the final (best) LoRA adapter + the tokenizer used in training
    merged/           the merged 16-bit model, after `export --merged`
    logs/train.log    stdout / stderr of the training process

The training process is `python -m workbench train RUN_DIR` (under `torchrun` for several processes), started in
its own process group with an argument list, never a shell. Cancel sends SIGTERM to that group: the process saves
a checkpoint at the end of the current step and marks the run cancelled. A process that dies without a word
(SIGKILL, a reboot) is noticed by the next poll: the run is marked failed, and `resume_run` continues it from its
newest checkpoint.
"""

from __future__ import annotations

import dataclasses
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from workbench.config import PROJECT_DIR, Workspace
from workbench.errors import ConfigError, JobError, NotFoundError
from workbench.finetune import (TrainConfig, collect_metrics, last_checkpoint, now_iso, read_json, resolve_backend,
                                update_status, write_json)

TERMINAL = ("completed", "failed", "cancelled")
_CHILDREN: dict[int, subprocess.Popen] = {}  # processes this process started, so that they are reaped


@dataclasses.dataclass
class RunInfo:
    """One run directory, as read now."""

    id: str
    path: Path
    config: TrainConfig
    status: dict[str, Any]

    @property
    def state(self) -> str:
        return str(self.status.get("state", "pending"))

    @property
    def adapter_dir(self) -> Path | None:
        p = self.path / "adapter"
        return p if (p / "adapter_config.json").is_file() else None

    @property
    def merged_dir(self) -> Path | None:
        p = self.path / "merged"
        return p if (p / "config.json").is_file() else None

    @property
    def log_path(self) -> Path:
        return self.path / "logs" / "train.log"

    @property
    def last_checkpoint(self) -> Path | None:
        return last_checkpoint(self.path)

    def metrics(self) -> list[dict[str, Any]]:
        return collect_metrics(self.path / "metrics.jsonl")

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "path": str(self.path), "state": self.state, "status": self.status,
                "config": self.config.to_dict(), "adapter_dir": str(self.adapter_dir) if self.adapter_dir else None,
                "merged_dir": str(self.merged_dir) if self.merged_dir else None}


# --- ids and folders ------------------------------------------------------------------------------------------


def _slug(text: str) -> str:
    name = Path(text).name if Path(text).exists() else text.split("/")[-1]
    return re.sub(r"[^A-Za-z0-9.]+", "-", name).strip("-").lower()[:40] or "model"


def new_run_id(config: TrainConfig, workspace: Workspace | None = None) -> str:
    ws = workspace or Workspace.default()
    base = f"{time.strftime('%Y%m%d-%H%M%S')}-{_slug(config.base_model)}"
    run_id, n = base, 2
    while (ws.runs / run_id).exists():
        run_id, n = f"{base}-{n}", n + 1
    return run_id


def _run_dir(run_id: str, workspace: Workspace | None) -> Path:
    ws = workspace or Workspace.default()
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", run_id or ""):
        raise NotFoundError(f"{run_id!r} is not a run id. `python -m workbench runs list` shows the runs.")
    return ws.runs / run_id


# --- reading runs ---------------------------------------------------------------------------------------------


def get_run(run_id: str, workspace: Workspace | None = None) -> RunInfo:
    """Read one run; a run whose process died without a word is marked failed here.

    Raises:
        NotFoundError: no such run.
    """
    path = _run_dir(run_id, workspace)
    if not (path / "config.json").is_file():
        raise NotFoundError(f"Run {run_id!r} does not exist in {path.parent}. `python -m workbench runs list` shows the runs.")
    config = TrainConfig.load(path / "config.json")
    status = read_json(path / "status.json", {}) or {}
    status = _check_alive(path, status)
    return RunInfo(run_id, path, config, status)


def list_runs(workspace: Workspace | None = None) -> list[RunInfo]:
    """Every run of the workspace, newest first (runs with an unreadable config are skipped)."""
    ws = workspace or Workspace.default()
    if not ws.runs.is_dir():
        return []
    out = []
    for p in sorted(ws.runs.iterdir(), reverse=True):
        if (p / "config.json").is_file():
            try:
                out.append(get_run(p.name, ws))
            except (ConfigError, NotFoundError):
                continue
    return out


def _check_alive(path: Path, status: dict[str, Any]) -> dict[str, Any]:
    if status.get("state") not in ("pending", "running"):
        return status
    pid = status.get("pid")
    if pid is None:
        # "pending" without a process: created but never started, or the start failed before the pid was written
        return status
    if process_alive(int(pid), path if status.get("pid_is_child", True) else None):
        return status
    # The process is gone but never wrote a final state: killed (SIGKILL, OOM killer) or the machine restarted.
    fresh = read_json(path / "status.json", {}) or {}
    if fresh.get("state") not in ("pending", "running"):
        return fresh  # it finished between the two reads
    ckpt = last_checkpoint(path)
    where = f"Resume continues from {ckpt.name}." if ckpt else "No checkpoint was written yet: resume starts again."
    return update_status(path, state="failed", ended_at=now_iso(),
                         error=f"The training process (pid {pid}) stopped without reporting (killed?). {where}")


def process_alive(pid: int, run_dir: Path | None = None) -> bool:
    """Whether `pid` runs (not a zombie) and, on Linux, is still this run's process (pids get reused)."""
    child = _CHILDREN.get(pid)
    if child is not None:  # started by this process: poll() reaps it and is exact (no exec race, no pid reuse)
        if child.poll() is None:
            return True
        _CHILDREN.pop(pid, None)
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    proc = Path(f"/proc/{pid}")
    if proc.is_dir():
        try:
            if proc.joinpath("stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                return False
            if run_dir is not None:
                cmd = proc.joinpath("cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                return run_dir.name in cmd
        except (OSError, IndexError):
            return False
    return True


# --- creating and starting ------------------------------------------------------------------------------------


def create_run(config: TrainConfig, workspace: Workspace | None = None) -> RunInfo:
    """Check the dataset, resolve the backend, write config.json and a pending status.json.

    Raises:
        NotFoundError: the dataset does not exist or has not been split.
        ConfigError: the backend is not installed.
    """
    from workbench.alpaca import dataset_info

    ws = (workspace or Workspace.default()).ensure()
    info = dataset_info(config.dataset, ws)
    if not info.split:
        raise NotFoundError(f"Dataset {config.dataset!r} has not been split yet. Split it first: "
                            f"`python -m workbench dataset split {config.dataset}`.")
    config = config.replace(backend=resolve_backend(config.backend))
    run_id = new_run_id(config, ws)
    path = ws.runs / run_id
    (path / "logs").mkdir(parents=True)
    (path / "checkpoints").mkdir()
    config.save(path / "config.json")
    write_json(path / "status.json", {
        "state": "pending", "pid": None, "created_at": now_iso(), "started_at": None, "ended_at": None, "error": None,
        "step": 0, "max_steps": None, "resolved_base_model": None, "best_checkpoint": None, "train_seconds": None,
    })
    return get_run(run_id, ws)


def child_command(run_dir: Path, num_processes: int = 1) -> list[str]:
    """The argument list of the training process (torchrun for several processes)."""
    if num_processes > 1:
        return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={num_processes}",
                "-m", "workbench", "train", str(run_dir)]
    return [sys.executable, "-m", "workbench", "train", str(run_dir)]


def child_env(workspace: Workspace) -> dict[str, str]:
    env = dict(os.environ)
    env["WORKBENCH_HOME"] = str(workspace.root)
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    # OpenMP threads that spin while they wait are 5-8x slower when other processes share the cores (measured on
    # 2 busy cores: 47 s against 6 s for one SmolLM2 step); passive waiting costs nothing on an idle machine.
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PROJECT_DIR), env.get("PYTHONPATH", "")) if p)
    return env


def start_run(run_id: str, workspace: Workspace | None = None) -> RunInfo:
    """Start (or restart, for resume) the training process of a run in the background.

    Raises:
        JobError: the run is already running, or its process cannot be started.
    """
    ws = workspace or Workspace.default()
    run = get_run(run_id, ws)
    if run.state in ("pending", "running") and run.status.get("pid") and process_alive(int(run.status["pid"]), run.path):
        raise JobError(f"Run {run_id} is already running (pid {run.status['pid']}). Cancel it first.")
    run.path.joinpath("logs").mkdir(exist_ok=True)
    log = open(run.log_path, "a", encoding="utf-8")
    log.write(f"\n=== {now_iso()} start: {' '.join(child_command(run.path, run.config.num_processes))}\n")
    log.flush()
    try:
        proc = subprocess.Popen(child_command(run.path, run.config.num_processes), cwd=str(PROJECT_DIR),
                                env=child_env(ws), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    except OSError as exc:
        raise JobError(f"Could not start the training process for run {run_id}: {exc}") from exc
    finally:
        log.close()
    _CHILDREN[proc.pid] = proc
    update_status(run.path, state="pending", pid=proc.pid, pid_is_child=True, error=None, ended_at=None)
    return get_run(run_id, ws)


def start_training(config: TrainConfig, workspace: Workspace | None = None) -> RunInfo:
    """Create a run for `config` and start its training process; returns at once."""
    run = create_run(config, workspace)
    return start_run(run.id, workspace)


def cancel_run(run_id: str, workspace: Workspace | None = None, *, force: bool = False) -> RunInfo:
    """Ask the training process to stop: it saves a checkpoint at the end of the current step and marks the run
    cancelled. `force` kills it at once (SIGKILL; resume continues from the last saved checkpoint).

    Raises:
        JobError: the run is not running.
    """
    ws = workspace or Workspace.default()
    run = get_run(run_id, ws)
    pid = run.status.get("pid")
    if run.state not in ("pending", "running"):
        raise JobError(f"Run {run_id} is {run.state}, not running: nothing to cancel.")
    if not pid:
        update_status(run.path, state="cancelled", ended_at=now_iso())
        return get_run(run_id, ws)
    sig = signal.SIGKILL if force else signal.SIGTERM
    try:
        os.killpg(int(pid), sig)  # the whole group: torchrun and its workers stop at the same step
    except ProcessLookupError:
        pass
    except PermissionError as exc:
        raise JobError(f"Not allowed to stop process {pid} of run {run_id}: {exc}") from exc
    return get_run(run_id, ws)


def resume_run(run_id: str, workspace: Workspace | None = None) -> RunInfo:
    """Continue a cancelled or failed (or killed) run from its newest checkpoint, in a new process.

    Raises:
        JobError: the run is running or already completed.
    """
    ws = workspace or Workspace.default()
    run = get_run(run_id, ws)
    if run.state == "completed":
        raise JobError(f"Run {run_id} already completed: start a new run instead.")
    if run.state == "running" or (run.state == "pending" and run.status.get("pid")
                                  and process_alive(int(run.status["pid"]), run.path)):
        raise JobError(f"Run {run_id} is still running (pid {run.status.get('pid')}). Cancel it first.")
    return start_run(run_id, ws)


def wait_run(run_id: str, workspace: Workspace | None = None, *, timeout: float = 3600.0, poll: float = 0.5,
             until: Callable[[RunInfo], bool] | None = None) -> RunInfo:
    """Poll until the run reaches a final state (or `until(run)` holds).

    Raises:
        JobError: the timeout passed first.
    """
    t0 = time.time()
    while True:
        run = get_run(run_id, workspace)
        if (until(run) if until else run.state in TERMINAL):
            return run
        if time.time() - t0 > timeout:
            raise JobError(f"Run {run_id} is still {run.state} after {timeout:.0f} s.")
        time.sleep(poll)


def follow_run(run_id: str, workspace: Workspace | None = None, *, poll: float = 1.0) -> Iterator[dict[str, Any]]:
    """Yield each new metrics line as it is written, then the final status (with key "final": True)."""
    seen = 0
    while True:
        run = get_run(run_id, workspace)
        lines = run.metrics()
        for rec in lines[seen:]:
            yield rec
        seen = len(lines)
        if run.state in TERMINAL:
            yield {"final": True, **run.status}
            return
        time.sleep(poll)


# --- export (merge, push) as a child process -------------------------------------------------------------------


def export_run(run_id: str, workspace: Workspace | None = None, *, merged: bool = True, push: str | None = None,
               private: bool = False, token: str | None = None,
               progress: Callable[[str, float], None] | None = None) -> dict[str, Any]:
    """Merge a run's adapter into its base model (`merged/`) and/or push the adapter or the merged model.

    Returns:
        {"adapter": path, "merged": path | None, "url": hub url | None}

    Raises:
        NotFoundError: the run has no adapter yet.
        OfflineError: pushing while the Hub is unreachable (the local files stay).
    """
    from workbench.finetune import merge_adapter

    ws = workspace or Workspace.default()
    run = get_run(run_id, ws)
    report = progress or (lambda m, f: None)
    if run.adapter_dir is None:
        raise NotFoundError(f"Run {run_id} has no adapter yet (state: {run.state}). Wait for it to finish, or resume it.")
    out: dict[str, Any] = {"adapter": str(run.adapter_dir), "merged": None, "url": None}
    if merged:
        base = run.status.get("resolved_base_model") or run.config.base_model
        merged_dir = merge_adapter(run.adapter_dir, base, run.path / "merged", workspace=ws,
                                   progress=lambda m, f: report(m, f * (0.6 if push else 1.0)))
        out["merged"] = str(merged_dir)
    if push:
        folder = Path(out["merged"]) if merged else run.adapter_dir
        out["url"] = push_model_folder(folder, push, private=private, token=token,
                                       progress=lambda m, f: report(m, (0.6 if merged else 0.0) + f * (0.4 if merged else 1.0)))
    update_status(run.path, exported={**(run.status.get("exported") or {}), **{k: v for k, v in out.items() if v}})
    return out


def push_model_folder(folder: Path, repo_id: str, *, private: bool = False, token: str | None = None,
                      progress: Callable[[str, float], None] | None = None) -> str:
    from workbench.hub import push_folder

    return push_folder(folder, repo_id, "model", private, token, progress)


def start_export(run_id: str, workspace: Workspace | None = None, *, merged: bool = True, push: str | None = None,
                 private: bool = False, token: str | None = None) -> subprocess.Popen:
    """`export_run` in a background process (`python -m workbench export ...`), logging to logs/export.log.
    A token goes through the environment, never the argument list."""
    ws = workspace or Workspace.default()
    run = get_run(run_id, ws)
    cmd = [sys.executable, "-m", "workbench", "export", run_id, "--json"]
    if merged:
        cmd.append("--merged")
    if push:
        cmd += ["--push", push] + (["--private"] if private else [])
    env = child_env(ws)
    if token:
        env["HF_TOKEN"] = token
    log = open(run.path / "logs" / "export.log", "a", encoding="utf-8")
    try:
        proc = subprocess.Popen(cmd, cwd=str(PROJECT_DIR), env=env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    finally:
        log.close()
    _CHILDREN[proc.pid] = proc
    update_status(run.path, export_pid=proc.pid, export_started_at=now_iso())
    return proc
