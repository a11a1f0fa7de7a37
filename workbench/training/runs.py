"""Training runs as child processes: run directories, start, poll, cancel, resume, export.

A run lives in `<workspace>/runs/<run_id>/` (run ids sort by time: `20261129-171500-smollm2-135m`):

    config.json       the TrainConfig, written before anything runs
    status.json       state (pending | running | completed | failed | cancelled), pid, step, error, ...
    metrics.jsonl     one JSON line per log: loss, eval_loss, learning_rate, grad_norm, tokens_per_s, eta_s ...
    checkpoints/      Trainer checkpoints (resume continues from the newest)
    adapter/          the final (best) LoRA adapter + the tokenizer used in training
    merged/           the merged 16-bit model, after `export --merged`
    logs/train.log    stdout / stderr of the training process

The training process is `python -m workbench train RUN_DIR` (under `torchrun` for several processes), started by
the generic job runner (`workbench.jobs.runner`) in its own process group. Cancel sends SIGTERM to that group: the process
saves a checkpoint at the end of the current step and marks the run cancelled; a forced cancel (SIGKILL) is recorded
as cancelled by the runner. A process that dies without a word (kill -9 from outside, a reboot) is noticed by the
next poll: the run is marked failed. `resume_run` continues a cancelled or failed run from its newest checkpoint.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from workbench import jobs
from workbench.common.config import Workspace
from workbench.common.errors import ConfigError, JobError, NotFoundError
from workbench.common.runfiles import last_checkpoint, locked, now_iso, process_start_time, update_status, write_json
from workbench.common.texts import Text, state_ko
from workbench.jobs import TERMINAL, process_alive  # noqa: F401  (part of this module's interface)
from workbench.training.finetune import TrainConfig, resolve_backend, resolve_settings
from workbench.training.train_progress import collect_metrics


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


def new_run_dir(config: TrainConfig, workspace: Workspace | None = None) -> Path:
    """A new run folder `runs/YYYYMMDD-HHMMSS-<model>` (ids sort by time)."""
    ws = workspace or Workspace.default()
    return jobs.new_job_dir(ws.runs, _slug(config.base_model))


def _run_dir(run_id: str, workspace: Workspace | None) -> Path:
    ws = workspace or Workspace.default()
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", run_id or ""):
        raise NotFoundError(f"{run_id!r} is not a run id. `python -m workbench runs list` shows the runs.",
                            ko=f"{run_id!r}은(는) 실행 id가 아닙니다. `python -m workbench runs list`로 실행 "
                               f"목록을 볼 수 있습니다.")
    return ws.runs / run_id


# --- reading runs ---------------------------------------------------------------------------------------------


def get_run(run_id: str, workspace: Workspace | None = None) -> RunInfo:
    """Read one run; a run whose process died without a word is marked failed here.

    Raises:
        NotFoundError: no such run.
    """
    path = _run_dir(run_id, workspace)
    if not (path / "config.json").is_file():
        raise NotFoundError(f"Run {run_id!r} does not exist in {path.parent}. `python -m workbench runs list` shows the runs.",
                            ko=f"실행 {run_id!r}이(가) {path.parent}에 없습니다. `python -m workbench runs list`로 "
                               f"실행 목록을 볼 수 있습니다.")
    config = TrainConfig.load(path / "config.json")
    return RunInfo(run_id, path, config, jobs.job_status(path, lost=lambda status: _lost_message(path, status)))


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


def _lost_message(path: Path, status: dict[str, Any]) -> str:
    """The error of a run whose process is gone without a final state: killed (kill -9, OOM killer) or a reboot."""
    ckpt = last_checkpoint(path)
    where = f"Resume continues from {ckpt.name}." if ckpt else "No checkpoint was written yet: resume starts again."
    where_ko = f"재개하면 {ckpt.name}부터 이어 갑니다." if ckpt else "아직 체크포인트가 없어 재개하면 처음부터 시작합니다."
    return Text(f"The training process (pid {status.get('pid')}) stopped without reporting (killed?). {where}",
                f"학습 프로세스(pid {status.get('pid')})가 알리지 않고 멈췄습니다 (강제 종료?). {where_ko}")


# --- creating and starting ------------------------------------------------------------------------------------


def create_run(config: TrainConfig, workspace: Workspace | None = None) -> RunInfo:
    """Check the dataset, resolve the backend, write config.json and a pending status.json.

    Raises:
        NotFoundError: the dataset does not exist or has not been split, or the context collection does not exist.
        ConfigError: the backend is not installed, or a setting this machine cannot run (an 8-bit optimizer or 4-bit
            without CUDA, float16 on CPU): refused here, before a run exists, not by the child process 0.1 s later.
        ModelError / OfflineError: the base model is neither registered, a model folder, nor a reachable Hub id.
    """
    from workbench.dataset.alpaca import dataset_info
    from workbench.models.registry import check_model

    ws = (workspace or Workspace.default()).ensure()
    info = dataset_info(config.dataset, ws)
    if not info.split:
        raise NotFoundError(f"Dataset {config.dataset!r} has not been split yet. Split it first: "
                            f"`python -m workbench dataset split {config.dataset}`.",
                            ko=f"데이터셋 {config.dataset!r}은(는) 아직 분할되지 않았습니다. 먼저 분할하세요: "
                               f"`python -m workbench dataset split {config.dataset}`.")
    config = config.replace(backend=resolve_backend(config.backend))
    resolve_settings(config)  # settings this machine cannot run: no run, no "resume" that cannot work
    # A missing base model would otherwise fail only in the child process, minutes later.
    check_model(config.base_model, ws)
    if config.context != "none":  # so would an unknown context collection (40 s later, after the model loaded)
        from workbench.kb.vectordb import open_collection

        try:
            open_collection(config.context_collection, ws)
        except NotFoundError as exc:
            raise NotFoundError(f"TrainConfig.context_collection = {config.context_collection!r}: {exc}",
                                ko=f"TrainConfig.context_collection = {config.context_collection!r}: "
                                   f"{exc.message('ko')}") from exc
    path = new_run_dir(config, ws)
    run_id = path.name
    (path / "logs").mkdir()
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
    return jobs.child_env(workspace_root=workspace.root)


def start_run(run_id: str, workspace: Workspace | None = None) -> RunInfo:
    """Start (or restart, for resume) the training process of a run in the background.

    Raises:
        JobError: the run is already running, or its process cannot be started.
    """
    ws = workspace or Workspace.default()
    run = get_run(run_id, ws)
    if run.state in ("pending", "running") and process_alive(run.status.get("pid"), run.status.get("start_time")):
        raise JobError(f"Run {run_id} is already running (pid {run.status['pid']}). Cancel it first.",
                       ko=f"실행 {run_id}이(가) 이미 실행 중입니다 (pid {run.status['pid']}). 먼저 취소하세요.")
    jobs.start_job(run.path, child_command(run.path, run.config.num_processes), kind="train", env=child_env(ws),
                   log_name="logs/train.log")
    return get_run(run_id, ws)


def start_training(config: TrainConfig, workspace: Workspace | None = None) -> RunInfo:
    """Create a run for `config` and start its training process; returns at once."""
    run = create_run(config, workspace)
    return start_run(run.id, workspace)


def cancel_run(run_id: str, workspace: Workspace | None = None, *, force: bool = False) -> RunInfo:
    """Ask the training process to stop: it saves a checkpoint at the end of the current step and marks the run
    cancelled. `force` kills it at once (SIGKILL, recorded as cancelled; resume continues from the last saved
    checkpoint).

    Raises:
        JobError: the run is not running.
    """
    ws = workspace or Workspace.default()
    run = get_run(run_id, ws)
    if run.state not in ("pending", "running"):
        raise JobError(f"Run {run_id} is {run.state}, not running: nothing to cancel.",
                       ko=f"실행 {run_id}은(는) {state_ko(run.state)} 상태로, 실행 중이 아닙니다: 취소할 것이 "
                          f"없습니다.")
    jobs.cancel_job(run.path, force=force, wait=5.0 if force else 0.0)
    return get_run(run_id, ws)


def resume_run(run_id: str, workspace: Workspace | None = None) -> RunInfo:
    """Continue a cancelled or failed (or killed) run from its newest checkpoint, in a new process.

    Raises:
        JobError: the run is running or already completed.
    """
    ws = workspace or Workspace.default()
    run = get_run(run_id, ws)
    if run.state == "completed":
        raise JobError(f"Run {run_id} already completed: start a new run instead.",
                       ko=f"실행 {run_id}은(는) 이미 완료되었습니다: 새 실행을 시작하세요.")
    if run.state in ("pending", "running") and process_alive(run.status.get("pid"), run.status.get("start_time")):
        raise JobError(f"Run {run_id} is still running (pid {run.status.get('pid')}). Cancel it first.",
                       ko=f"실행 {run_id}이(가) 아직 실행 중입니다 (pid {run.status.get('pid')}). 먼저 취소하세요.")
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
            raise JobError(f"Run {run_id} is still {run.state} after {timeout:.0f} s.",
                           ko=f"실행 {run_id}이(가) {timeout:.0f}초 뒤에도 {state_ko(run.state)} 상태입니다.")
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
    from workbench.training.trainer import merge_adapter

    ws = workspace or Workspace.default()
    run = get_run(run_id, ws)
    report = progress or (lambda m, f: None)
    if run.adapter_dir is None:
        raise NotFoundError(f"Run {run_id} has no adapter yet (state: {run.state}). Wait for it to finish, or resume it.",
                            ko=f"실행 {run_id}에는 아직 어댑터가 없습니다 (상태: {state_ko(run.state)}). 끝나기를 "
                               f"기다리거나 재개하세요.")
    out: dict[str, Any] = {"adapter": str(run.adapter_dir), "merged": None, "url": None}
    # One export of a run at a time: two merges into one merged/ at once left it without weights or crashed.
    with locked(run.path / "export", timeout=0, busy=Text(
            f"Run {run_id} is being exported by another process. Wait for that export to finish, then try again.",
            f"실행 {run_id}을(를) 다른 프로세스가 내보내는 중입니다. 그 내보내기가 끝난 뒤 다시 하세요.")):
        for stale in run.path.glob(".merged.*"):  # what a killed export left
            shutil.rmtree(stale, ignore_errors=True)
        if merged:
            base = run.status.get("resolved_base_model") or run.config.base_model
            merged_dir = merge_adapter(run.adapter_dir, base, run.path / "merged", workspace=ws,
                                       progress=lambda m, f: report(m, f * (0.6 if push else 1.0)))
            out["merged"] = str(merged_dir)
        if push:
            folder = Path(out["merged"]) if merged else run.adapter_dir
            out["url"] = push_model_folder(folder, push, private=private, token=token,
                                           progress=lambda m, f: report(m, (0.6 if merged else 0.0) + f * (0.4 if merged else 1.0)))
        update_status(run.path, exported={**(get_run(run_id, ws).status.get("exported") or {}),
                                          **{k: v for k, v in out.items() if v}})
    return out


def push_model_folder(folder: Path, repo_id: str, *, private: bool = False, token: str | None = None,
                      progress: Callable[[str, float], None] | None = None) -> str:
    from workbench.dataset.hub import push_folder

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
    proc = jobs.spawn(cmd, run.path / "logs" / "export.log", env=env)
    update_status(run.path, export_pid=proc.pid, export_start_time=process_start_time(proc.pid),
                  export_started_at=now_iso())
    return proc


def export_running(run: RunInfo) -> bool:
    """Whether the run's export process (`start_export`) still runs."""
    return process_alive(run.status.get("export_pid"), run.status.get("export_start_time"))
