"""Run files: one UTC clock, atomic JSON, locked updates, JSON lines, and the liveness check of a process."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from workbench.common.runfiles import (
    append_jsonl,
    now_iso,
    process_alive,
    process_start_time,
    read_json,
    read_jsonl,
    update_json,
    write_json,
)


def test_now_iso_is_utc():
    stamp = dt.datetime.fromisoformat(now_iso())
    assert stamp.utcoffset() == dt.timedelta(0)
    assert abs((dt.datetime.now(dt.timezone.utc) - stamp).total_seconds()) < 5


def test_write_json_is_atomic_and_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "status.json"
    write_json(path, {"state": "running", "name": "한국어"})
    write_json(path, {"state": "completed"})
    assert read_json(path) == {"state": "completed"}
    assert [p.name for p in tmp_path.iterdir()] == ["status.json"]
    assert read_json(tmp_path / "missing.json", {"x": 1}) == {"x": 1}
    (tmp_path / "bad.json").write_text("{half")
    assert read_json(tmp_path / "bad.json") is None


def test_update_json_from_many_threads_loses_nothing(tmp_path):
    path = tmp_path / "status.json"
    write_json(path, {})

    def writer(i: int) -> None:
        for j in range(20):
            update_json(path, **{f"k{i}-{j}": j})

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(read_json(path)) == 80


def test_read_jsonl_skips_a_half_written_last_line(tmp_path):
    path = tmp_path / "progress.jsonl"
    assert read_jsonl(path) == []
    append_jsonl(path, {"step": 1})
    append_jsonl(path, {"step": 2, "message": "둘"})
    with path.open("a") as f:
        f.write('{"step": 3, "mess')
    assert read_jsonl(path) == [{"step": 1}, {"step": 2, "message": "둘"}]


def test_process_alive_checks_pid_start_time_and_reaps_a_zombie_child():
    assert process_alive(os.getpid(), process_start_time(os.getpid()))
    assert not process_alive(None)
    # pid reuse: the recorded start time belongs to another process that had this pid
    assert not process_alive(os.getpid(), process_start_time(os.getpid()) - 1)
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    stat = Path(f"/proc/{child.pid}/stat")
    for _ in range(200):  # until it is a zombie (finished, not reaped)
        if stat.read_text().rsplit(")", 1)[1].split()[0] == "Z":
            break
        time.sleep(0.05)
    assert not process_alive(child.pid)
    assert not stat.exists()  # reaped: no zombie left behind
    child.poll()


def test_replace_dir_puts_a_whole_folder_in_place_and_keeps_the_old_one_on_failure(tmp_path):
    from workbench.common.runfiles import replace_dir

    target = tmp_path / "merged"
    first = tmp_path / ".new1"
    first.mkdir()
    (first / "a").write_text("1")
    replace_dir(first, target)
    assert (target / "a").read_text() == "1" and not first.exists()
    second = tmp_path / ".new2"
    second.mkdir()
    (second / "b").write_text("2")
    replace_dir(second, target)
    assert sorted(p.name for p in target.iterdir()) == ["b"]
    with pytest.raises(FileNotFoundError):
        replace_dir(tmp_path / ".missing", target)  # the second rename fails: the old folder goes back
    assert sorted(p.name for p in target.iterdir()) == ["b"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["merged"]  # nothing left aside


def test_a_busy_lock_says_what_it_was_told(tmp_path):
    from workbench.common.errors import JobError
    from workbench.common.runfiles import locked
    from workbench.common.texts import Text

    with locked(tmp_path / "x"):
        with pytest.raises(JobError) as e:
            with locked(tmp_path / "x", timeout=0, busy=Text("Busy.", "사용 중.")):
                pass
    assert (str(e.value), e.value.ko) == ("Busy.", "사용 중.")


def test_write_texts_changes_all_files_or_none(tmp_path):
    from workbench.common.runfiles import write_texts

    a, b = tmp_path / "raw.jsonl", tmp_path / "meta.json"
    write_texts({a: "rows\n", b: "{}\n"})
    assert (a.read_text(), b.read_text()) == ("rows\n", "{}\n")
    with pytest.raises(FileNotFoundError):  # the second one cannot be written: the first is not replaced either
        write_texts({a: "new rows\n", tmp_path / "missing" / "meta.json": "{}"})
    assert a.read_text() == "rows\n" and sorted(p.name for p in tmp_path.iterdir()) == ["meta.json", "raw.jsonl"]
