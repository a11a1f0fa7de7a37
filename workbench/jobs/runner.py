"""One runner for every child process: training, evaluation, dataset generation, large ingests.

A job is a folder. The parent (the page, the CLI) starts `python -m workbench ... FOLDER` with `start_job`, polls
`job_status` and `read_progress`, and stops it with `cancel_job`; the child wraps its work in `job_context`, which
keeps the folder's files current:

    status.json       kind, state (pending | running | completed | failed | cancelled), pid, start_time, error, ...
    progress.jsonl    one JSON line per progress report: time, message, fraction, and what the job adds
    <log_name>        stdout / stderr of the child

The child runs in its own process group (an argument list, never a shell; stdin closed), so cancel reaches
everything it started (torchrun workers, tokenizer pools). `cancel_job` sends SIGTERM: the child finishes its
current step and records 'cancelled'. `force` sends SIGKILL and the runner records 'cancelled' for it. A child that
dies without a word (kill -9 from outside, the OOM killer, a reboot) is noticed by the next `job_status`: 'failed'.
The pid is recorded with its start time (field 22 of /proc/<pid>/stat), so a reused pid is not mistaken for the
job; finished children of this process are reaped on every poll, so none stays a zombie while the server runs.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from workbench.common.config import PROJECT_DIR
from workbench.common.errors import JobError, NotFoundError, WorkbenchError, error_text
from workbench.common.runfiles import (
    append_jsonl,
    locked,
    now_iso,
    process_start_time,
    read_json,
    read_jsonl,
    update_json,
)
from workbench.common.runfiles import process_alive as _pid_alive
from workbench.common.texts import Text, both, state_ko

STATUS_FILE, PROGRESS_FILE = "status.json", "progress.jsonl"
ACTIVE = ("pending", "running")
TERMINAL = ("completed", "failed", "cancelled")
JOB_ENV = "WORKBENCH_JOB_DIR"
"""Set in the child's environment to its folder: the runner records the pid, so the child does not."""

_CHILDREN: dict[int, subprocess.Popen] = {}  # processes this process started: polled (reaped) on every status read
_LOCK = threading.Lock()


# --- processes ------------------------------------------------------------------------------------------------


def reap_children() -> None:
    """Collect the exit status of every finished child this process started (no zombies left behind)."""
    with _LOCK:
        for pid, proc in list(_CHILDREN.items()):
            if proc.poll() is not None:
                _CHILDREN.pop(pid, None)


def process_alive(pid: int | None, start_time: int | None = None) -> bool:
    """Whether the process `pid` (started at `start_time`, clock ticks since boot) still runs; reaps it if not."""
    if not pid:
        return False
    with _LOCK:
        child = _CHILDREN.get(int(pid))
        if child is not None:  # our own child: poll() is exact and reaps it
            if child.poll() is None:
                return True
            _CHILDREN.pop(int(pid), None)
            return False
    return _pid_alive(int(pid), start_time)


def spawn(argv: Sequence[str], log_path: Path, *, env: Mapping[str, str] | None = None,
          cwd: Path = PROJECT_DIR) -> subprocess.Popen:
    """Start `argv` in its own process group, stdin closed, stdout and stderr appended to `log_path`.

    Raises:
        JobError: the process could not be started.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    reap_children()
    with open(log_path, "a", encoding="utf-8") as log:
        log.write(f"\n=== {now_iso()} start: {' '.join(argv)}\n")
        log.flush()
        try:
            proc = subprocess.Popen(list(argv), cwd=str(cwd), env=dict(env) if env is not None else None, stdout=log,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        except OSError as exc:
            raise JobError(f"Could not start `{' '.join(argv[:4])} ...`: {exc}",
                           ko=f"`{' '.join(argv[:4])} ...`을(를) 시작하지 못했습니다: {exc}") from exc
    with _LOCK:
        _CHILDREN[proc.pid] = proc
    return proc


def child_env(extra: Mapping[str, str] | None = None, workspace_root: Path | None = None) -> dict[str, str]:
    """The environment of a child: this one, the project on PYTHONPATH, unbuffered output, `extra` on top.

    API keys typed into a page travel this way, never through a file or the argument list.
    """
    env = dict(os.environ)
    if workspace_root is not None:
        env["WORKBENCH_HOME"] = str(workspace_root)
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    # OpenMP threads that spin while they wait are 5-8x slower when other processes share the cores (measured on
    # 2 busy cores: 47 s against 6 s for one SmolLM2 step); passive waiting costs nothing on an idle machine.
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PROJECT_DIR), env.get("PYTHONPATH", "")) if p)
    env.update(extra or {})
    return env


# --- the parent side ------------------------------------------------------------------------------------------


def start_job(folder: str | Path, argv: Sequence[str], *, kind: str, env: Mapping[str, str] | None = None,
              log_name: str = "job.log", **fields: Any) -> dict[str, Any]:
    """Start the child `argv` for the job in `folder` (created if needed); returns its status at once.

    The status goes 'pending' with the pid and its start time; the child makes it 'running'. `fields` are
    recorded in status.json too. `env` is the child's whole environment (see `child_env`).

    Raises:
        JobError: the job is already running, or its process cannot be started.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    # One start at a time: the check, the pending status and the pid are one step, so a double click (or the page
    # and the CLI) cannot start two processes for one job.
    with locked(folder / "start"):
        current = read_json(folder / STATUS_FILE, {}) or {}
        if current.get("state") in ACTIVE and process_alive(current.get("pid"), current.get("start_time")):
            raise JobError(f"The {kind} job in {folder} is already running (pid {current['pid']}). Cancel it first.",
                           ko=f"{folder}의 작업이 이미 실행 중입니다 (pid {current['pid']}). 먼저 취소하세요.")
        created = {} if current.get("created_at") else {"created_at": now_iso()}  # a restart (resume) keeps the first
        update_json(folder / STATUS_FILE, kind=kind, state="pending", pid=None, start_time=None, ended_at=None,
                    error=None, error_ko=None, cancel_requested=False, cancel_forced=False, log=log_name, **created, **fields)
        env = dict(env if env is not None else child_env())
        env[JOB_ENV] = str(folder.resolve())
        try:
            proc = spawn(argv, folder / log_name, env=env)
        except JobError as exc:
            update_json(folder / STATUS_FILE, state="failed", ended_at=now_iso(), error=str(exc), error_ko=error_text(exc, "ko"))
            raise
        # Only pid and start time: the child may already have written 'running', which must not go back to pending.
        return update_json(folder / STATUS_FILE, pid=proc.pid, start_time=process_start_time(proc.pid))


def job_status(folder: str | Path, *, lost: Callable[[dict[str, Any]], str] | None = None) -> dict[str, Any]:
    """status.json of a job; an active job whose process is gone becomes 'cancelled' (if cancel was asked) or
    'failed' (with `lost(status)` as the error, a generic one without it).

    Raises:
        NotFoundError: `folder` is not a job folder.
    """
    folder = Path(folder)
    reap_children()
    status = read_json(folder / STATUS_FILE)
    if not isinstance(status, dict):
        raise NotFoundError(f"{folder} is not a job folder (no readable {STATUS_FILE}).",
                            ko=f"{folder}은(는) 작업 폴더가 아닙니다 (읽을 수 있는 {STATUS_FILE}이 없습니다).")
    if status.get("state") not in ACTIVE or not status.get("pid"):
        return status  # finished, or created and never started
    if process_alive(status["pid"], status.get("start_time")):
        return status
    fresh = read_json(folder / STATUS_FILE, {}) or {}
    if fresh.get("state") not in ACTIVE:
        return fresh  # it finished between the two reads
    if fresh.get("cancel_requested"):
        return update_json(folder / STATUS_FILE, state="cancelled", ended_at=now_iso())
    error = lost(fresh) if lost else Text(f"The {fresh.get('kind', 'job')} process (pid {fresh['pid']}) stopped without "
                                          f"reporting (killed?). Start it again.",
                                          f"작업 프로세스(pid {fresh['pid']})가 알리지 않고 멈췄습니다 (강제 종료?). 다시 시작하세요.")
    return update_json(folder / STATUS_FILE, state="failed", ended_at=now_iso(), **both(error, "error"))


def cancel_job(folder: str | Path, *, force: bool = False, wait: float = 5.0) -> dict[str, Any]:
    """Stop a job: SIGTERM to its process group (it stops after the current step and records 'cancelled'), or with
    `force` SIGKILL (recorded 'cancelled' here, since the child cannot). Waits up to `wait` s for it to end.

    Raises:
        JobError: the job is not running, or its process may not be signalled.
    """
    folder = Path(folder)
    status = job_status(folder)
    if status.get("state") not in ACTIVE:
        raise JobError(f"The {status.get('kind', 'job')} job in {folder.name} is {status.get('state')}, not running: "
                       f"nothing to cancel.",
                       ko=f"{folder.name}의 작업은 {state_ko(status.get('state'))} 상태로, 실행 중이 아닙니다: "
                          f"취소할 것이 없습니다.")
    pid = status.get("pid")
    update_json(folder / STATUS_FILE, cancel_requested=True, cancel_forced=force)
    if not pid or not process_alive(pid, status.get("start_time")):
        return update_json(folder / STATUS_FILE, state="cancelled", ended_at=now_iso())
    try:
        os.killpg(int(pid), signal.SIGKILL if force else signal.SIGTERM)  # the whole group
    except ProcessLookupError:
        pass
    except PermissionError as exc:
        raise JobError(f"Not allowed to stop process {pid} of {folder.name}: {exc}",
                       ko=f"{folder.name}의 프로세스 {pid}을(를) 멈출 권한이 없습니다: {exc}") from exc
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline and process_alive(pid, status.get("start_time")):
        time.sleep(0.05)
    return job_status(folder)


def wait_job(folder: str | Path, *, timeout: float = 3600.0, poll: float = 0.2,
             until: Callable[[dict[str, Any]], bool] | None = None) -> dict[str, Any]:
    """Poll until the job ends (or `until(status)` holds); returns the status.

    Raises:
        JobError: the timeout passed first.
    """
    t0 = time.monotonic()
    while True:
        status = job_status(folder)
        if until(status) if until else status.get("state") in TERMINAL:
            return status
        if time.monotonic() - t0 > timeout:
            raise JobError(f"The job in {folder} is still {status.get('state')} after {timeout:.0f} s.",
                           ko=f"{folder}의 작업이 {timeout:.0f}초 뒤에도 {state_ko(status.get('state'))} 상태입니다.")
        time.sleep(poll)


def read_progress(folder: str | Path) -> list[dict[str, Any]]:
    """Every progress line the job wrote so far."""
    return read_jsonl(Path(folder) / PROGRESS_FILE)


def list_jobs(root: str | Path, kind: str | None = None) -> list[Path]:
    """Job folders directly under `root` (of one `kind`, if given), oldest first (ids sort by time)."""
    root = Path(root)
    if not root.is_dir():
        return []
    out = []
    for p in sorted(root.iterdir()):
        status = read_json(p / STATUS_FILE) if p.is_dir() else None
        if isinstance(status, dict) and (kind is None or status.get("kind") == kind):
            out.append(p)
    return out


def log_tail(folder: str | Path, lines: int = 20) -> str:
    """The last lines of the job's log."""
    folder = Path(folder)
    name = (read_json(folder / STATUS_FILE, {}) or {}).get("log") or "job.log"
    try:
        return "\n".join((folder / name).read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return ""


# --- the child side -------------------------------------------------------------------------------------------


def one_line(exc: BaseException, lang: str = "en") -> str:
    """An error in one line for the UI: the message of a WorkbenchError (in `lang`), the type and message of anything
    else."""
    full = error_text(exc, lang).strip()
    text = full.splitlines()[0] if full else ""
    return text[:500] if isinstance(exc, WorkbenchError) else f"{type(exc).__name__}: {text}"[:500]


def _error_fields(exc: BaseException | None) -> dict[str, str | None]:
    """status.json's `error` and `error_ko` for an exception (None: no error)."""
    if exc is None:
        return {"error": None, "error_ko": None}
    return {"error": one_line(exc), "error_ko": one_line(exc, "ko")}


class Cancelled(Exception):
    """Raised by `JobContext.check()` once cancel was asked: `job_context` records 'cancelled' and swallows it."""


class JobContext:
    """What the child's work sees: a cancel Event (set by SIGTERM), `progress(...)`, and `result(...)`."""

    def __init__(self, folder: Path, throttle: float) -> None:
        self.folder = folder
        self.cancel = threading.Event()
        self.final: dict[str, Any] = {}
        self._throttle = throttle
        self._last = 0.0

    @property
    def cancelled(self) -> bool:
        return self.cancel.is_set()

    def progress(self, message: str, fraction: float, **extra: Any) -> None:
        """Append a progress line and keep status.json current (at most once per `throttle` s, and at the end)."""
        append_jsonl(self.folder / PROGRESS_FILE, {"time": now_iso(), **both(message),
                                                   "fraction": round(float(fraction), 4), **extra})
        self.status(message, fraction, **extra)

    def status(self, message: str, fraction: float, **extra: Any) -> None:
        """Only status.json (throttled): for work that writes its own progress lines."""
        now = time.monotonic()
        if now - self._last >= self._throttle or fraction >= 1.0:
            self._last = now
            update_json(self.folder / STATUS_FILE, **both(message), fraction=round(float(fraction), 4), **extra)

    def check(self) -> None:
        """Raise `Cancelled` once cancel was asked (for work with no cancel of its own: call it between steps)."""
        if self.cancel.is_set():
            raise Cancelled()

    def result(self, **fields: Any) -> None:
        """Fields to record in status.json with the final state."""
        self.final.update(fields)


@contextlib.contextmanager
def job_context(folder: str | Path, *, throttle: float = 1.0) -> Iterator[JobContext]:
    """Run the body as the job of `folder`: 'running' now; at the end 'completed', 'cancelled' (SIGTERM arrived
    or `ctx.cancel` was set; `ctx.check()` raising `Cancelled` ends the body quietly) or 'failed' with the error
    in one line (the exception goes on, for the log).

    Started without the runner (`python -m workbench ... --from-dir` in a terminal), it records its own pid.
    """
    folder = Path(folder)
    ctx = JobContext(folder, throttle)
    old = None
    if threading.current_thread() is threading.main_thread():
        old = signal.signal(signal.SIGTERM, lambda signum, frame: ctx.cancel.set())
    own = {}
    if os.environ.get(JOB_ENV) != str(folder.resolve()):
        own = {"pid": os.getpid(), "start_time": process_start_time(os.getpid())}
    if (read_json(folder / STATUS_FILE, {}) or {}).get("cancel_requested"):  # cancelled before this process was up
        ctx.cancel.set()
    update_json(folder / STATUS_FILE, state="running", started_at=now_iso(), ended_at=None, error=None, error_ko=None, **own)
    try:
        yield ctx
    except Cancelled:
        update_json(folder / STATUS_FILE, state="cancelled", ended_at=now_iso(), **ctx.final)
    except BaseException as exc:
        # cancelled work may end in an error of its own ("no rows came out (cancelled)"): still a cancel
        cancelled = ctx.cancelled and isinstance(exc, (KeyboardInterrupt, WorkbenchError))
        update_json(folder / STATUS_FILE, state="cancelled" if cancelled else "failed", ended_at=now_iso(),
                    **_error_fields(None if isinstance(exc, KeyboardInterrupt) else exc), **ctx.final)
        raise
    else:
        update_json(folder / STATUS_FILE, state="cancelled" if ctx.cancelled else "completed", ended_at=now_iso(),
                    **ctx.final)
    finally:
        if old is not None:
            signal.signal(signal.SIGTERM, old)


def new_job_dir(root: str | Path, name: str) -> Path:
    """A new folder `root/YYYYMMDD-HHMMSS-<name>` (UTC; `-2`, `-3` ... when taken), made with an exclusive mkdir so
    that two starts in the same second never share one."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    base = f"{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{re.sub(r'[^A-Za-z0-9._-]', '_', name).strip('_')[:40] or 'job'}"
    for n in itertools.count(1):
        folder = root / (base if n == 1 else f"{base}-{n}")
        try:
            folder.mkdir()
            return folder
        except FileExistsError:
            continue
    raise AssertionError("unreachable")


def python_argv(*args: str) -> list[str]:
    """`python -m workbench ARGS` with this interpreter."""
    return [sys.executable, "-m", "workbench", *args]
