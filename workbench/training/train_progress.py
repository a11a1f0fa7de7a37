"""Training progress: the TrainerCallback that writes metrics.jsonl and keeps status.json current, and its helpers.

The UI and the CLI read the same files (`collect_metrics`, `eta_text`); under torchrun only rank 0 writes, and the
cancel flag is agreed on by every rank. Heavy imports (torch, transformers) stay inside functions.
"""

from __future__ import annotations

import json
import math
import os
import signal
import time
from pathlib import Path
from typing import Any

from workbench.common.runfiles import append_metrics, read_jsonl, update_status
from workbench.common.texts import Text


class Cancelled(BaseException):
    """SIGTERM arrived before training started (nothing to checkpoint yet).

    A BaseException, as KeyboardInterrupt is: the signal lands wherever the process is, often inside `import torch` or a
    library's `try: ... except Exception` availability check, which swallowed an Exception and left torch half imported
    (the run then failed with an ImportError or a 'partially initialized module' error instead of being cancelled)."""


class CancelFlag:
    """SIGTERM sets the flag; the training callback saves a checkpoint and stops at the next step end. Before
    training starts there is nothing to save, so the signal ends the process at once."""

    def __init__(self) -> None:
        self.set = False
        self.in_training = False

    def install(self) -> None:
        def handler(signum: int, frame: Any) -> None:
            self.set = True
            if not self.in_training:
                raise Cancelled()

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)


def rank() -> int:
    """This process's rank under torchrun (0 without it)."""
    return int(os.environ.get("RANK", "0"))


def world_size() -> int:
    """How many processes train together under torchrun (1 without it)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


class Tracker:
    """Timing, memory peaks and the ETA of one training session (plain Python: the callback below feeds it)."""

    def __init__(self) -> None:
        self.train_time = 0.0  # seconds spent in optimizer steps this session (evaluations and saves excluded)
        self.mark = time.perf_counter()
        self.session_steps = 0
        self.start_step = 0
        self.last_tokens = 0
        self.last_time = 0.0
        self.eval_time = 0.0
        self.evals = 0
        self.peaks: dict[str, float] = {}  # GiB by phase: load (before training), train (steps), eval
        self.memory_trace = _MemoryTrace.from_env()  # diagnostics only (bench/memsnap.py)

    def begin(self, state: Any) -> None:
        self.last_tokens = int(state.num_input_tokens_seen or 0)
        self.start_step = state.global_step  # > 0 when resumed from a checkpoint
        self._peak("load")
        if self.memory_trace:
            self.memory_trace.start()
        self.mark = time.perf_counter()

    def step(self, state: Any) -> None:
        now = time.perf_counter()
        self.train_time += now - self.mark
        self.mark = now
        self.session_steps += 1
        if self.memory_trace:
            self.memory_trace.step(state, self.session_steps, gpu_mem_gb())
        self._peak("train")

    def evaluated(self, metrics: Any) -> None:
        if metrics and "eval_runtime" in metrics:
            self.eval_time += float(metrics["eval_runtime"])
            self.evals += 1
        self._peak("eval")
        self.mark = time.perf_counter()

    def _peak(self, phase: str) -> None:
        """Fold the allocator's peak since the last call into `phase`, then start a new window: the peaks of
        loading, of training steps and of evaluations are kept apart (the evaluation batch is not the training one)."""
        mem = gpu_mem_gb(reset=True)
        if mem is not None:
            self.peaks[phase] = max(self.peaks.get(phase, 0.0), mem)

    def peak(self, phase: str = "train") -> float | None:
        """The highest peak of any phase so far (GiB), after folding the current window into `phase`."""
        self._peak(phase if self.session_steps else "load")
        return max(self.peaks.values()) if self.peaks else None

    def summary(self, state: Any) -> dict[str, Any]:
        """Whole-session throughput and memory, for status.json at the end."""
        tokens = int(state.num_input_tokens_seen or 0)
        out: dict[str, Any] = {
            "train_step_seconds": round(self.train_time, 2),
            "tokens_per_s": round(tokens / self.train_time, 1) if self.train_time > 0 and not self.start_step else None}
        if self.peaks:
            out["peak_gpu_mem_gb"] = max(self.peaks.values())
            out["peak_gpu_mem_gb_by_phase"] = dict(self.peaks)
        return out

    def eta(self, state: Any) -> float | None:
        if not self.session_steps or not state.max_steps:
            return None
        per_step = self.train_time / self.session_steps
        left = max(state.max_steps - state.global_step, 0)
        per_eval = self.eval_time / self.evals if self.evals else 0.0
        evals_left = left / max(float(getattr(state, "eval_steps", 0) or 0), 1.0) if per_eval else 0
        return round(left * per_step + evals_left * per_eval, 1)

    def log_record(self, state: Any, logs: Any) -> dict[str, Any] | None:
        """The metrics.jsonl line for one Trainer log (None for the final summary, which goes to status.json)."""
        record: dict[str, Any] = {"step": state.global_step, "epoch": round(state.epoch or 0.0, 4)}
        for key in ("loss", "eval_loss", "learning_rate", "grad_norm"):
            if key in logs and logs[key] is not None:
                record[key] = float(logs[key])
        if "loss" not in record and "eval_loss" not in record:
            return None
        if "loss" in record:
            tokens = int(state.num_input_tokens_seen or 0)
            dt = self.train_time - self.last_time
            if dt > 0 and tokens > self.last_tokens:
                record["tokens_per_s"] = round((tokens - self.last_tokens) / dt, 1)
            self.last_tokens, self.last_time = tokens, self.train_time
            record["tokens_seen"] = tokens
        mem = self.peak()
        if mem is not None:
            record["gpu_mem_gb"] = mem
        eta = self.eta(state)
        if eta is not None:
            record["eta_s"] = eta
        record["time"] = round(time.time(), 3)
        return record


def make_progress_callback(run_dir: Path, flag: CancelFlag | None = None) -> Any:
    """A `TrainerCallback` that appends one JSON line per log to metrics.jsonl and keeps status.json current.

    tokens/s counts real (non-padding) input tokens over training time only (evaluations excluded), across all
    processes. Under torchrun only rank 0 writes; the cancel flag is agreed on by all ranks (an all-reduce), so
    every process stops at the same step.
    """
    from transformers import TrainerCallback

    class ProgressCallback(TrainerCallback):
        def __init__(self) -> None:
            self.tracker = Tracker()

        def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            self.tracker.begin(state)
            if state.is_world_process_zero:
                update_status(run_dir, state="running", step=state.global_step, max_steps=state.max_steps,
                              start_step=state.global_step)

        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            self.tracker.step(state)
            if _agree_on_cancel(flag, args):
                control.should_save = True
                control.should_training_stop = True
            if state.is_world_process_zero:
                # an evaluation follows this step (the default flow callback, called first, decided it): say so, as
                # the final one can take minutes with an ETA of 0
                update_status(run_dir, step=state.global_step, epoch=round(state.epoch or 0.0, 4),
                              eta_s=self.tracker.eta(state), phase="evaluating" if control.should_evaluate else "training")

        def on_evaluate(self, args: Any, state: Any, control: Any, metrics: Any = None, **kw: Any) -> None:
            self.tracker.evaluated(metrics)
            if state.is_world_process_zero:
                update_status(run_dir, phase="saving" if state.global_step >= state.max_steps else "training")

        def on_train_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if state.is_world_process_zero:
                update_status(run_dir, phase="saving")  # the adapter and the tokenizer are written next

        def on_save(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            self.tracker.mark = time.perf_counter()
            if state.is_world_process_zero:
                update_status(run_dir, last_checkpoint=str(Path(args.output_dir) / f"checkpoint-{state.global_step}"),
                              best_checkpoint=state.best_model_checkpoint)

        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
            if not state.is_world_process_zero or not logs:
                return
            record = self.tracker.log_record(state, logs)
            if record is not None:
                append_metrics(run_dir, record)
                self.tracker.mark = time.perf_counter()

        def peak(self, phase: str = "train") -> float | None:
            return self.tracker.peak(phase)

        def summary(self, state: Any) -> dict[str, Any]:
            return self.tracker.summary(state)

    return ProgressCallback()


class _MemoryTrace:
    """Where a training step's GPU memory goes: with WORKBENCH_CUDA_MEMORY_SNAPSHOT=PREFIX, the allocator's history of
    the first WORKBENCH_CUDA_MEMORY_SNAPSHOT_STEPS (default 3) steps goes to PREFIX.pickle (torch's memory_viz
    format, read by bench/memsnap.py) and every step's peak and tokens to PREFIX.steps.jsonl. Costs time while it
    records; nothing happens without the variable or without CUDA."""

    def __init__(self, prefix: str, steps: int) -> None:
        self.prefix, self.steps, self.recording, self.tokens = prefix, steps, False, 0

    @classmethod
    def from_env(cls) -> _MemoryTrace | None:
        import sys

        prefix = os.environ.get("WORKBENCH_CUDA_MEMORY_SNAPSHOT")
        torch = sys.modules.get("torch")
        if not prefix or torch is None or not torch.cuda.is_available() or rank() != 0:
            return None
        return cls(prefix, int(os.environ.get("WORKBENCH_CUDA_MEMORY_SNAPSHOT_STEPS", "3")))

    def _write(self, record: dict[str, Any]) -> None:
        with open(self.prefix + ".steps.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

    def start(self) -> None:
        import torch

        self._write({"start_allocated_gb": torch.cuda.memory_allocated() / 2**30})
        torch.cuda.memory._record_memory_history(max_entries=2_000_000, stacks="python")
        self.recording = True

    def step(self, state: Any, step: int, peak_gb: float | None) -> None:
        import torch

        tokens = int(state.num_input_tokens_seen or 0)
        self._write({"step": step, "peak_gb": peak_gb, "tokens": tokens - self.tokens,
                     "allocated_gb": torch.cuda.memory_allocated() / 2**30})
        self.tokens = tokens
        if self.recording and step >= self.steps:
            torch.cuda.memory._dump_snapshot(self.prefix + ".pickle")
            torch.cuda.memory._record_memory_history(enabled=None)
            self.recording = False


def _agree_on_cancel(flag: CancelFlag | None, args: Any) -> bool:
    local = bool(flag and flag.set)
    if world_size() <= 1:
        return local
    import torch
    import torch.distributed as dist

    if not dist.is_available() or not dist.is_initialized():
        return local
    t = torch.tensor([1 if local else 0], device=args.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def gather(value: Any) -> list[Any]:
    """`value` from every process (rank order); [value] without torch.distributed."""
    import sys

    torch = sys.modules.get("torch")
    if world_size() <= 1 or torch is None or not torch.distributed.is_initialized():
        return [value]
    out: list[Any] = [None] * world_size()
    torch.distributed.all_gather_object(out, value)
    return out


def gpu_mem_gb(reset: bool = False) -> float | None:
    """Peak GPU memory allocated by this process (GiB) since the start or the last reset; None without CUDA."""
    import sys

    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available():
        return None
    peak = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    if reset:
        torch.cuda.reset_peak_memory_stats()
    return peak


def collect_metrics(path: Path) -> list[dict[str, Any]]:
    """The lines of a metrics.jsonl (a half-written last line is skipped)."""
    return read_jsonl(path)


def eta_text(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "?"
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


def phase_text(status: dict[str, Any]) -> Text | None:
    """What a running run does beyond its steps, for the ETA's place: the (final) evaluation or the saving; None while
    it trains (then the ETA says it) or once it ended."""
    if status.get("state") not in ("pending", "running"):
        return None
    phase, step, last = status.get("phase"), status.get("step") or 0, status.get("max_steps") or 0
    if phase == "evaluating":
        return (Text("final evaluation…", "최종 평가 중…") if last and step >= last
                else Text("evaluating…", "평가 중…"))
    if phase == "saving":
        return Text("saving the adapter…", "어댑터 저장 중…")
    return None
