"""A split on disk (workbench.dataset.splitfiles): written into a folder of its own, visible only once meta.json names it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from workbench.dataset.splitfiles import (
    SPLITS,
    read_jsonl,
    read_lock,
    remove_unpublished,
    split_indices,
    split_path,
    unsplit_train,
    write_split,
)

ROWS = [{"instruction": f"Q{i}", "input": "", "output": f"A{i}"} for i in range(10)]
RECORD = {"seed": 7, "created": "2026-12-03T04:15:12+00:00", "test_size": 0.2, "val_size": 0.25}


def _parts():
    return {"train": ROWS[:6], "validation": ROWS[6:8], "test": ROWS[8:]}


def _publish(folder: Path):
    def publish(record):
        (folder / "meta.json").write_text(json.dumps({"name": folder.name, "split": record}))
    return publish


def _meta(folder: Path) -> dict:
    return json.loads((folder / "meta.json").read_text())["split"]


def test_a_split_is_one_folder_that_meta_json_names(tmp_path):
    folder = tmp_path / "faq"
    folder.mkdir()
    (folder / "meta.json").write_text(json.dumps({"name": "faq", "split": None}))
    record = write_split(folder, _parts(), ["instruction", "input", "output"], [{"test_row": 1}], RECORD, _publish(folder))
    assert record["dir"] == "split-20261203-041512-seed7" and _meta(folder) == record
    assert sorted(p.name for p in (folder / record["dir"]).iterdir()) == sorted(
        [f"{s}.{f}" for s in SPLITS for f in ("csv", "jsonl")] + ["leakage.json"])
    assert read_jsonl(split_path(folder, record, "test")) == ROWS[8:]
    assert split_path(folder, record, "test", "csv").read_text().splitlines() == ["instruction,input,output", "Q8,,A8",
                                                                                  "Q9,,A9"]
    again = write_split(folder, _parts(), ["instruction", "input", "output"], [], RECORD, _publish(folder))
    assert again["dir"] == "split-20261203-041512-seed7-2"  # same second, same seed: its own folder
    assert sorted(p.name for p in folder.iterdir()) == ["meta.json", again["dir"]]  # the previous one is gone


def test_a_failure_before_meta_json_names_it_leaves_the_previous_split_whole(tmp_path):
    folder = tmp_path / "faq"
    folder.mkdir()
    (folder / "meta.json").write_text(json.dumps({"name": "faq", "split": None}))
    first = write_split(folder, _parts(), ["instruction"], [], RECORD, _publish(folder))

    def fail(record):
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        write_split(folder, {"train": ROWS[:2], "validation": [], "test": ROWS[2:]}, ["instruction"], [],
                    {**RECORD, "seed": 8}, fail)
    assert _meta(folder) == first and sorted(p.name for p in folder.iterdir()) == ["meta.json", first["dir"]]
    assert read_jsonl(split_path(folder, first, "train")) == ROWS[:6]


def test_what_a_killed_split_left_is_removed_by_the_next_one_and_old_top_level_files_go_too(tmp_path):
    folder = tmp_path / "faq"
    folder.mkdir()
    legacy = {"seed": 42}  # a split of the old layout: its files at the top of the folder
    (folder / "meta.json").write_text(json.dumps({"name": "faq", "split": legacy}))
    for s in SPLITS:
        (folder / f"{s}.jsonl").write_text(json.dumps(ROWS[0]) + "\n")
    (folder / ".split-new-abc").mkdir()
    (folder / "split-20990101-000000-seed1").mkdir()  # renamed, but meta.json never named it
    assert read_jsonl(split_path(folder, legacy, "test")) == [ROWS[0]]  # the old layout is still read
    remove_unpublished(folder, keep=None)
    assert sorted(p.name for p in folder.iterdir()) == ["meta.json"] + sorted(f"{s}.jsonl" for s in SPLITS)
    record = write_split(folder, _parts(), ["instruction"], [], RECORD, _publish(folder))
    assert sorted(p.name for p in folder.iterdir()) == ["meta.json", record["dir"]]


def test_split_indices_and_their_inverse():
    from types import SimpleNamespace

    from sklearn.model_selection import train_test_split

    tr, va, te = split_indices(10, SimpleNamespace(test_size=0.2, val_size=0.25, seed=7))
    assert sorted(tr + va + te) == list(range(10)) and (len(tr), len(va), len(te)) == (6, 2, 2)
    train_full, _ = train_test_split(list(range(10)), test_size=0.2, random_state=7)
    assert unsplit_train([ROWS[i] for i in tr], [ROWS[i] for i in va], RECORD) == [ROWS[i] for i in train_full]


def test_readers_share_the_read_lock_and_a_split_waits_only_for_them(tmp_path):
    from workbench.common.errors import JobError
    from workbench.common.runfiles import locked

    folder = tmp_path / "faq"
    folder.mkdir()
    with read_lock(folder), read_lock(folder):  # two readers at once
        with pytest.raises(JobError):
            with locked(folder.with_name("faq.read"), timeout=0):  # the split's switch waits for them
                pass
