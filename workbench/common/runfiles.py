"""The files every job folder is made of, and the one liveness check of the processes that write them.

One clock (`now_iso`, UTC) for every timestamp the workbench writes; one atomic writer (`write_json`), so a
reader never sees half a file; `update_json` serialises read-modify-write with a lock file, so the page and the
child process never lose each other's changes; JSON lines that tolerate a half-written last line.

`process_alive(pid, start_time)` answers "is the process that this status file names still running?": False
when the pid is gone, is a zombie (a zombie child of this process is reaped on the way), or was reused by
another process (its start time, field 22 of /proc/<pid>/stat, differs from the one recorded at start).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import fcntl
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any


def now_iso() -> str:
    """The current time in UTC, to the second (`2026-12-03T04:15:12+00:00`)."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def write_text(path: str | Path, text: str) -> None:
    """Atomic write: a unique temporary file in the same folder, flushed to disk, then renamed over `path`."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def raise_if_disk_full(exc: BaseException, what: str, kept: str, where: str | Path | None = None) -> None:
    """Raise a `StorageError` (from `exc`) when `exc` is a write the disk refused because it is full (ENOSPC, or a
    quota), in both languages: `what` was being done ("Splitting 'faq'"), `kept` says what is still as it was (`Text`s,
    or plain English), `where` the folder it was writing (else the file the error names). Returns for any other error,
    which the caller re-raises (a bug keeps its traceback)."""
    from workbench.common.errors import StorageError
    from workbench.common.texts import pick

    sqlite_full = "database or disk is full" in str(exc)  # SQLITE_FULL, as Chroma reports it
    if not (isinstance(exc, OSError) and exc.errno in DISK_FULL) and not sqlite_full:
        return
    if where is None and getattr(exc, "filename", None):
        where = Path(exc.filename).parent
    where = f" ({where})" if where else ""
    raise StorageError(f"{what}: the disk is full{where}. {kept} Free some space and try again.",
                       ko=f"{pick(what, 'ko')}: 디스크가 가득 찼습니다{where}. {pick(kept, 'ko')} 공간을 비운 뒤 다시 "
                          f"하세요.") from exc


def write_texts(files: Mapping[str | Path, str]) -> None:
    """Write several files so that a full disk changes none of them: every new content goes to a temporary file beside
    its target first (where a full disk fails, and they are removed), then each is renamed over its target (renames
    need no space). Only a crash between two of those renames could leave one file new and another old."""
    done: list[tuple[str, Path]] = []
    try:
        for path, text in files.items():
            path = Path(path)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            done.append((tmp, path))
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
    except BaseException:
        for tmp, _ in done:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        raise
    for tmp, path in done:
        os.replace(tmp, path)


def json_text(data: Any) -> str:
    """The JSON text `write_json` writes (readable Korean, indented)."""
    return json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n"


def write_json(path: str | Path, data: Any) -> None:
    """Atomic JSON write (a reader never sees half a file)."""
    write_text(path, json_text(data))


def read_json(path: str | Path, default: Any = None) -> Any:
    """The JSON in `path`, or `default` when it is missing or unreadable."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError, UnicodeDecodeError, json.JSONDecodeError,
            RecursionError):  # nested too deeply for the parser: as unreadable as broken JSON
        return default


@contextlib.contextmanager
def locked(path: str | Path, *, shared: bool = False, timeout: float | None = None, what: str = "",
           busy: str | None = None, waiting: Callable[[], None] | None = None) -> Iterator[None]:
    """A lock on `.<name>.lock` beside `path` (between processes and threads): exclusive for a writer, `shared` for
    readers that must not see a write half done. Waits for the holder (a crashed holder's lock goes with its process);
    with `timeout`, gives up after that many seconds (0: at once).

    Not re-entrant: a function holding the lock calls only unlocked helpers.

    Args:
        busy: the message of the JobError when the lock is not free in time (a `Text` keeps its Korean);
            by default one made from `what`.
        waiting: called once when the lock is not free at once (to tell the user why nothing happens yet).

    Raises:
        JobError: the lock was not free within `timeout` (another process is writing `what`).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
    with open(path.with_name(f".{path.name}.lock"), "a") as f:
        deadline = None if timeout is None else time.monotonic() + timeout
        told = waiting is None
        while True:
            try:
                fcntl.flock(f.fileno(), mode | (fcntl.LOCK_NB if deadline is not None or not told else 0))
                break
            except BlockingIOError:
                if not told:
                    told = True
                    waiting()  # type: ignore[misc]
                    continue
                if time.monotonic() >= deadline:  # type: ignore[operator]
                    from workbench.common.errors import JobError

                    if busy:
                        raise JobError(busy, ko=getattr(busy, "ko", None)) from None
                    raise JobError(f"{what or path.name} is busy: another process is writing it. Try again when it "
                                   f"is done.",
                                   ko=f"{what or path.name}을(를) 다른 프로세스가 쓰고 있습니다. 끝난 뒤 다시 "
                                      f"하세요.") from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def replace_dir(new: str | Path, target: str | Path) -> None:
    """Put the finished folder `new` where `target` is, whole: `target` (if any) is renamed aside, `new` renamed into
    its place, and the old one removed. A reader (or a crash) meets the old folder, the new one or, for the instant
    between the two renames, none: never a mix. If the second rename fails, the old folder goes back. `new` must be on
    the same file system (beside `target`)."""
    new, target = Path(new), Path(target)
    if not target.exists():
        new.rename(target)
        return
    aside = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
    old = aside / target.name
    target.rename(old)
    try:
        new.rename(target)
    except BaseException:
        old.rename(target)
        shutil.rmtree(aside, ignore_errors=True)
        raise
    shutil.rmtree(aside, ignore_errors=True)


def update_json(path: str | Path, **changes: Any) -> dict[str, Any]:
    """Merge `changes` into the JSON object in `path` (created if missing); returns the new object.

    Serialised with a lock file, so two writers (the page and the child) never lose each other's changes.
    """
    with locked(path):
        data = read_json(path, {})
        data = data if isinstance(data, dict) else {}
        data.update(changes)
        write_json(path, data)
    return data


def append_jsonl(path: str | Path, record: Mapping[str, Any]) -> None:
    """Append one JSON line (one write call, so lines of concurrent writers do not interleave)."""
    line = json.dumps(dict(record), ensure_ascii=False, default=str) + "\n"
    with open(path, "a", encoding="utf-8") as f:
        f.write(line)


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Every complete JSON line of `path` ([] when missing); a line being written right now is skipped."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except (FileNotFoundError, IsADirectoryError):
        return []
    out = []
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


# --- processes ------------------------------------------------------------------------------------------------


def _stat_fields(pid: int) -> list[str] | None:
    """Fields 3.. of /proc/<pid>/stat (after the command name, which may hold spaces and parentheses)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def process_start_time(pid: int) -> int | None:
    """When `pid` started, in clock ticks since boot (field 22 of /proc/<pid>/stat); None if unknown."""
    fields = _stat_fields(pid)
    try:
        return int(fields[19]) if fields else None  # fields[0] is field 3 (state), so field 22 is fields[19]
    except (IndexError, ValueError):
        return None


def process_alive(pid: int | None, start_time: int | None = None) -> bool:
    """Whether `pid` is running (not a zombie) and is still the process that started at `start_time`.

    A zombie child of this process is reaped here (a finished child otherwise stays a zombie for as long
    as the parent, the Streamlit server, runs).
    """
    if not pid:
        return False
    pid = int(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # someone else's process with that pid: /proc still tells its state and start time
    fields = _stat_fields(pid)
    if fields is None:  # no /proc (not Linux) or gone since the kill: trust the signal
        return Path(f"/proc/{pid}").exists() or not Path("/proc/self").exists()
    if fields[0] in ("Z", "X"):
        if int(fields[1]) == os.getpid():  # our own child: reap it
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
        return False
    if start_time is not None and process_start_time(pid) != int(start_time):
        return False  # the pid was reused by another process
    return True


# --- training run folders ---------------------------------------------------------------------------------------


def update_status(run_dir: str | Path, **changes: Any) -> dict[str, Any]:
    """Merge `changes` into `<run_dir>/status.json` (locked, atomic); returns the new status."""
    return update_json(Path(run_dir) / "status.json", **changes)


def append_metrics(run_dir: str | Path, record: Mapping[str, Any]) -> None:
    """One line of `<run_dir>/metrics.jsonl`."""
    append_jsonl(Path(run_dir) / "metrics.jsonl", record)


def last_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest complete `checkpoints/checkpoint-<step>` (one with trainer_state.json)."""
    ckpts = []
    for p in (Path(run_dir) / "checkpoints").glob("checkpoint-*"):
        try:
            step = int(p.name.rsplit("-", 1)[1])
        except ValueError:
            continue
        if (p / "trainer_state.json").is_file():
            ckpts.append((step, p))
    return max(ckpts)[1] if ckpts else None
