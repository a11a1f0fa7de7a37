"""A dataset's split on disk: its files written whole, made visible together with meta.json in one step, read together.

A split is a folder of its own inside the dataset folder, named by when it was made and its seed:

    datasets/<name>/split-20261203-041512-seed42/
        train.csv  train.jsonl  validation.csv  validation.jsonl  test.csv  test.jsonl  leakage.json

and meta.json's split record names it (`"dir"`). `write_split` writes the files into a hidden folder (each one
flushed to disk), renames it to its name, and then has meta.json (replaced atomically, `runfiles.write_json`) name it:
that replace is the one step that makes a split visible. A crash, a kill or a full disk before it leaves the previous
split, files and record, as they were (the folder it was writing is removed, by the next split if the process was
killed); after it, the new split is whole. The previous split's folder is removed after the switch.

Readers take the dataset's *read* lock (shared) for the time it takes to read meta.json and the files it names; a
split takes it exclusively only to switch meta.json and remove the previous folder. So a reader never waits for a
split's work (85 s for 100,000 rows) and never meets the files of two splits. Writers of a dataset serialise on
another lock (`workbench.dataset.alpaca`).

Datasets split before this layout have their files at the top of the dataset folder (a record without "dir"): they
are read there, and their next split removes them.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from workbench.common.errors import ConfigError
from workbench.common.runfiles import locked, write_json, write_text

SPLITS: tuple[str, ...] = ("train", "validation", "test")
LEAKAGE_FILE = "leakage.json"
_PREFIX, _NEW = "split-", ".split-new-"


def split_folder(folder: Path, record: Mapping[str, Any]) -> Path:
    """The folder that holds the files of the split `record` (meta.json's "split") of the dataset in `folder`."""
    return folder / str(record.get("dir") or "")


def split_path(folder: Path, record: Mapping[str, Any], split: str, fmt: str = "jsonl") -> Path:
    """One file of a split: `fmt` "csv" or "jsonl"."""
    return split_folder(folder, record) / f"{split}.{fmt}"


@contextlib.contextmanager
def read_lock(folder: Path, *, shared: bool = True) -> Iterator[None]:
    """The dataset's read lock (`datasets/.<name>.read.lock`): readers share it; a split holds it alone only while it
    switches meta.json to its new folder and removes the old one (a fraction of a second)."""
    with locked(folder.with_name(folder.name + ".read"), shared=shared):
        yield


def split_indices(n: int, config: Any) -> tuple[list[int], list[int], list[int]]:
    """Row positions of (train, validation, test), exactly as scikit-learn's `train_test_split` gives them:
    first `train_test_split(rows, test_size, random_state=seed)`, then the same on the train part with
    `val_size` (the tutorial's 9:1, then 8:2). The positions depend only on n and the config (a `SplitConfig`).

    Raises:
        ConfigError: too few rows for the requested split.
    """
    from sklearn.model_selection import train_test_split

    idx = list(range(n))
    try:
        train_full, test = train_test_split(idx, test_size=config.test_size, random_state=config.seed)
        if config.val_size > 0:
            train, val = train_test_split(train_full, test_size=config.val_size, random_state=config.seed)
        else:
            train, val = list(train_full), []
    except ValueError as exc:
        raise ConfigError(
            f"Cannot split {n} rows with test_size={config.test_size}, val_size={config.val_size}: {exc}. "
            f"Add rows or lower the sizes.",
            ko=f"{n}개 행을 test_size={config.test_size}, val_size={config.val_size}로 나눌 수 없습니다: {exc}. "
               f"행을 더하거나 비율을 낮추세요."
        ) from exc
    return list(train), list(val), list(test)


def unsplit_train(train: list[dict[str, Any]], val: list[dict[str, Any]], record: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The train part of the 9:1 split in scikit-learn's order (train and validation together), rebuilt from the
    train and validation rows by inverting the second split, which depends only on the number of rows and the seed."""
    if not val:
        return train
    from sklearn.model_selection import train_test_split

    m = len(train) + len(val)
    a, b = train_test_split(list(range(m)), test_size=record["val_size"], random_state=record["seed"])
    full: list[dict[str, Any] | None] = [None] * m
    for pos, row in zip(a, train):
        full[pos] = row
    for pos, row in zip(b, val):
        full[pos] = row
    return [r for r in full if r is not None]


def write_split(folder: Path, parts: Mapping[str, Sequence[Mapping[str, Any]]], columns: Sequence[str],
                leaks: Sequence[Mapping[str, Any]], record: Mapping[str, Any], publish: Callable[[dict[str, Any]], None],
                ) -> dict[str, Any]:
    """Write the split `parts` (train / validation / test rows) and `leaks` into a folder of their own, then call
    `publish(record)` (which writes meta.json) under the exclusive read lock, then remove the previous split's files.
    The caller holds the dataset's write lock. Returns the record, with "dir".

    Raises:
        OSError: a file could not be written (a full disk): nothing changed, the previous split is whole.
    """
    import pandas as pd

    remove_unpublished(folder, keep=None)  # what a killed split left
    tmp = Path(tempfile.mkdtemp(prefix=_NEW, dir=folder))
    try:
        for split, rows in parts.items():
            write_text(tmp / f"{split}.csv", pd.DataFrame(list(rows), columns=list(columns)).to_csv(index=False))
            write_text(tmp / f"{split}.jsonl", "".join(json.dumps(dict(r), ensure_ascii=False, default=str) + "\n"
                                                       for r in rows))
        write_json(tmp / LEAKAGE_FILE, list(leaks))
        stamp = re.sub(r"\D", "", str(record["created"])[:19])  # 2026-12-03T04:15:12 -> 20261203041512
        name = _free_name(folder, f"{_PREFIX}{stamp[:8]}-{stamp[8:]}-seed{record['seed']}")
        tmp.rename(folder / name)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    record = {**record, "dir": name}
    with read_lock(folder, shared=False):
        try:
            publish(record)
        except BaseException:
            shutil.rmtree(folder / name, ignore_errors=True)  # meta.json still names the previous split
            raise
        remove_unpublished(folder, keep=name)
    return record


def remove_unpublished(folder: Path, keep: str | None) -> None:
    """Remove every split folder but `keep` (None: the one meta.json names now), and the files of the old layout at
    the top of the dataset folder once a split folder is published. The caller holds the write lock."""
    if keep is None:
        try:
            keep = (json.loads((folder / "meta.json").read_text(encoding="utf-8")).get("split") or {}).get("dir")
        except (OSError, ValueError, AttributeError):
            return  # no readable meta.json: not ours to clean
    for p in folder.iterdir():
        if p.is_dir() and p.name.startswith((_PREFIX, _NEW)) and p.name != keep:
            shutil.rmtree(p, ignore_errors=True)
    if keep:
        for name in [f"{s}.{fmt}" for s in SPLITS for fmt in ("csv", "jsonl")] + [LEAKAGE_FILE]:
            (folder / name).unlink(missing_ok=True)


def _free_name(folder: Path, base: str) -> str:
    name, n = base, 1
    while (folder / name).exists():
        n += 1
        name = f"{base}-{n}"
    return name


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
