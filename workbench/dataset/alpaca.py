"""The dataset store: Alpaca rows (instruction / input / output) saved, edited, split and loaded.

On disk, one dataset is one folder `<workspace>/datasets/<name>/`:
  raw.jsonl        the imported / edited rows (JSON Lines keep a number a number, so "non-text"
                   stays detectable after a save; nothing is coerced behind the user's back)
  meta.json        source, column map, creation time, settings and, once split, the split record
  split-<created>-seed<seed>/   written by `split_dataset` (`workbench.dataset.splitfiles`: whole, or not at all):
      train.csv/.jsonl, validation.csv/.jsonl, test.csv/.jsonl, and leakage.json (test rows whose question nearly
      repeats a training row)
Training and evaluation read only the split files (`load_split`), never raw.jsonl.

Reading sources and mapping columns: `workbench.dataset.alpaca_io`; checks: `workbench.dataset.alpaca_checks`; the prompts the
rows become: `workbench.models.prompts`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from workbench.common.config import BaseConfig, Workspace, setting
from workbench.common.errors import ConfigError, DocumentError, NotFoundError
from workbench.common.progress import Progress, no_progress
from workbench.common.runfiles import (
    json_text,
    locked,
    now_iso,
    raise_if_disk_full,
    replace_dir,
    write_json,
    write_text,
    write_texts,
)
from workbench.common.texts import Text, pick
from workbench.dataset.alpaca_checks import (
    Issue,
    Leak,
    find_leakage,
    issue_rows,
    load_tokenizer,
    model_max_tokens,
    summarize_issues,
    validate_rows,
)
from workbench.dataset.alpaca_io import (
    ALPACA_COLUMNS,
    DatasetConfig,
    apply_column_map,
    check_name,
    read_source,
    resolve_column_map,
)
from workbench.dataset.splitfiles import (
    LEAKAGE_FILE,
    SPLITS,
    read_jsonl,
    read_lock,
    split_folder,
    split_indices,
    split_path,
    unsplit_train,
    write_split,
)

SplitName = Literal["train", "validation", "test"]
RAW_FILE = "raw.jsonl"
META_FILE = "meta.json"




@dataclasses.dataclass
class SplitConfig(BaseConfig):
    """How a dataset is split: train / test with scikit-learn, then validation out of train (the tutorial's 9:1, 8:2)."""

    test_size: float = setting(0.1, "Share of rows held out as the test split (the tutorial: 0.1).",
                               help_ko="테스트로 떼어 둘 비율 (튜토리얼: 0.1).", min=0.01, max=0.9,
                               label="Test share", label_ko="테스트 비율", step=0.05)
    seed: int = setting(42, "random_state of train_test_split: the same seed gives the same split.",
                        help_ko="train_test_split의 random_state: 같은 시드는 같은 분할을 만듭니다.", min=0, max=2**32 - 1,
                        label="Seed", label_ko="시드")
    val_size: float = setting(0.2, "Share of the training rows held out for validation during training (0: none).",
                              help_ko="학습 중 검증에 쓸, 학습 행에서 떼어 낼 비율 (0: 없음).", min=0.0, max=0.9,
                              label="Validation share of train", label_ko="학습 중 검증 비율", step=0.05)
    leakage_threshold: float = setting(0.9, "A test question at least this similar (character n-grams, 0..1) to a training question is reported as leakage.",
                                       help_ko="학습 질문과 이만큼 (문자 n-gram 유사도, 0..1) 비슷한 테스트 질문은 누수로 보고합니다.", min=0.5, max=1.0,
                                       label="Leakage threshold", label_ko="누수 기준", step=0.01)


@dataclasses.dataclass
class DatasetInfo:
    """What `list_datasets` and `dataset show` report about one dataset."""

    name: str
    path: Path
    rows: int
    columns: list[str]
    source: dict[str, Any]
    column_map: dict[str, str]
    created: str
    updated: str
    split: dict[str, Any] | None  # seed, test_size, val_size, sizes, created, leakage count, ...
    split_stale: bool  # raw rows changed after the split was made
    settings: dict[str, Any] = dataclasses.field(default_factory=dict)  # tokenizer and max_tokens of the length check

    @property
    def sizes(self) -> dict[str, int]:
        return dict(self.split["sizes"]) if self.split else {}

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["path"] = str(self.path)
        return d


@dataclasses.dataclass
class ImportReport:
    info: DatasetInfo
    issues: list[Issue]
    encoding: str | None
    encoding_warning: str = ""  # the decoder guessed the encoding: check the text

    def to_dict(self) -> dict[str, Any]:
        return {"dataset": self.info.to_dict(), "encoding": self.encoding, "encoding_warning": self.encoding_warning,
                **summarize_issues(self.issues),
                "issues": [i.to_dict() for i in self.issues]}


@dataclasses.dataclass
class SplitReport:
    info: DatasetInfo
    sizes: dict[str, int]
    leaks: list[Leak]

    def to_dict(self) -> dict[str, Any]:
        return {"dataset": self.info.name, "sizes": self.sizes, "split": self.info.split,
                "leakage": [lk.to_dict() for lk in self.leaks]}


# --- names, folders, metadata -----------------------------------------------------------------


def dataset_dir(name: str, workspace: Workspace | None = None) -> Path:
    ws = workspace or Workspace.default()
    return ws.datasets / check_name(name)


_now = now_iso


def _read_meta(folder: Path) -> dict[str, Any]:
    try:
        return json.loads((folder / META_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise NotFoundError(f"Dataset {folder.name!r} does not exist in {folder.parent}. "
                            f"Import or generate it first (`python -m workbench dataset list` shows what exists).",
                            ko=f"데이터셋 {folder.name!r}이(가) {folder.parent}에 없습니다. 먼저 가져오거나 생성하세요 "
                               f"(`python -m workbench dataset list`로 있는 것을 볼 수 있습니다).") from None


def _write_meta(folder: Path, meta: dict[str, Any]) -> None:
    write_json(folder / META_FILE, meta)


def _jsonl(rows: Iterable[Mapping[str, Any]]) -> str:
    return "".join(json.dumps(dict(r), ensure_ascii=False, default=str) + "\n" for r in rows)


def _write_jsonl(path: Path, rows: Iterable[Mapping[str, Any]]) -> None:
    write_text(path, _jsonl(rows))


_read_jsonl = read_jsonl


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""


def _info(folder: Path, meta: dict[str, Any]) -> DatasetInfo:
    split = meta.get("split")
    return DatasetInfo(
        name=meta.get("name", folder.name),
        path=folder,
        rows=int(meta.get("rows", 0)),
        columns=list(meta.get("columns", [])),
        source=dict(meta.get("source", {})),
        column_map=dict(meta.get("column_map", {})),
        created=meta.get("created", ""),
        updated=meta.get("updated", ""),
        split=split,
        split_stale=bool(split) and split.get("raw_sha256") != _sha256(folder / RAW_FILE),
        settings=dict(meta.get("settings") or {}),
    )


def dataset_info(name: str, workspace: Workspace | None = None) -> DatasetInfo:
    """Raises NotFoundError when the dataset does not exist."""
    folder = dataset_dir(name, workspace)
    return _info(folder, _read_meta(folder))


def list_datasets(workspace: Workspace | None = None) -> list[DatasetInfo]:
    """Every dataset of the workspace (folders with a meta.json), sorted by name."""
    root = (workspace or Workspace.default()).datasets
    if not root.is_dir():
        return []
    out = []
    for meta_path in sorted(root.glob(f"*/{META_FILE}")):
        if meta_path.parent.name.startswith("."):  # a dataset being written (see `save_dataset`)
            continue
        try:
            out.append(_info(meta_path.parent, json.loads(meta_path.read_text(encoding="utf-8"))))
        except (OSError, ValueError):
            continue  # a half-written or foreign folder is not a dataset; `dataset show` names the problem
    return out


def delete_dataset(name: str, workspace: Workspace | None = None) -> None:
    folder = dataset_dir(name, workspace)
    with _lock(folder):
        if not (folder / META_FILE).is_file():
            raise NotFoundError(f"Dataset {name!r} does not exist; nothing to delete.",
                                ko=f"데이터셋 {name!r}이(가) 없습니다. 지울 것이 없습니다.")
        with read_lock(folder, shared=False):  # no reader is halfway through its files
            shutil.rmtree(folder)


def _lock(folder: Path, progress: Progress | None = None) -> Any:
    """The dataset's write lock (`datasets/.<name>.lock`): every write of a dataset holds it, so two writers (two
    splits, a split and an edit) run one after the other instead of mixing their files. Readers do not take it (see
    `splitfiles.read_lock`). A writer that has to wait says so through `progress`."""
    busy = Text(f"Waiting: dataset {folder.name!r} is being changed by another process (a split takes a while for many "
                f"rows)", f"기다리는 중: 다른 프로세스가 데이터셋 {folder.name!r}을(를) 바꾸고 있습니다 (행이 많으면 분할이 "
                f"오래 걸립니다)")
    return locked(folder, what=f"Dataset {folder.name!r}", waiting=(lambda: progress(busy, 0.0)) if progress else None)


def update_meta(name: str, workspace: Workspace | None = None, **append: Mapping[str, Any]) -> None:
    """Append records to lists in meta.json (`pushes=...`), under the dataset's lock."""
    folder = dataset_dir(name, workspace)
    with _lock(folder):
        meta = _read_meta(folder)
        for key, record in append.items():
            meta.setdefault(key, []).append(dict(record))
        _write_meta(folder, meta)


# --- saving, editing --------------------------------------------------------------------------


def save_dataset(
    name: str,
    rows: Sequence[Mapping[str, Any]],
    *,
    source: Mapping[str, Any],
    column_map: Mapping[str, str] | None = None,
    settings: Mapping[str, Any] | None = None,
    workspace: Workspace | None = None,
    overwrite: bool = False,
) -> DatasetInfo:
    """Write rows as a new dataset (raw.jsonl + meta.json). Nothing is dropped or converted.

    Raises:
        ConfigError: the name exists and `overwrite` is False.
    """
    folder = dataset_dir(name, workspace)
    with _lock(folder):
        return _save_new(folder, [dict(r) for r in rows], overwrite=overwrite, meta={
            "name": name, "rows": len(rows), "columns": row_columns(rows), "source": dict(source),
            "column_map": dict(column_map or {}), "settings": dict(settings or {}), "split": None})


def _save_new(folder: Path, rows: list[dict[str, Any]], *, meta: dict[str, Any], overwrite: bool) -> DatasetInfo:
    """Write a whole dataset into a hidden folder beside `folder`, then rename it into place: a reader (or a crash)
    never meets half a dataset, and a failed write leaves the old one as it was. The caller holds the lock."""
    if (folder / META_FILE).exists() and not overwrite:
        raise ConfigError(f"Dataset {folder.name!r} already exists. Choose another name, or replace it (--force / 'replace').",
                          ko=f"데이터셋 {folder.name!r}이(가) 이미 있습니다. 다른 이름을 고르거나 바꿔 쓰세요 "
                             f"(--force / 'replace').")
    folder.parent.mkdir(parents=True, exist_ok=True)
    existed = (folder / META_FILE).exists()
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.new-", dir=folder.parent))
    try:
        now = _now()
        meta = {**meta, "created": now, "updated": now}
        _write_jsonl(tmp / RAW_FILE, rows)
        _write_meta(tmp, meta)
        if not folder.exists():
            tmp.rename(folder)
        else:
            with read_lock(folder, shared=False):  # no reader is halfway through the old dataset's files
                replace_dir(tmp, folder)  # a failed rename puts the old dataset back
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise_if_disk_full(exc, Text(f"Saving dataset {folder.name!r}", f"데이터셋 {folder.name!r} 저장"),
                           Text(f"Nothing changed: dataset {folder.name!r} is kept as it was.",
                                f"바뀐 것은 없습니다: 데이터셋 {folder.name!r}은(는) 그대로입니다.") if existed else
                           Text(f"Nothing was saved: no dataset {folder.name!r} was created.",
                                f"아무것도 저장하지 않았습니다: 데이터셋 {folder.name!r}은(는) 만들어지지 않았습니다."), folder.parent)
        raise
    return _info(folder, meta)


def row_columns(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """The Alpaca columns (instruction, input, output), then every other column of `rows` in first-seen order."""
    cols = list(ALPACA_COLUMNS)
    for r in rows:
        for k in r:
            if k not in cols:
                cols.append(k)
    return cols


def import_dataset(
    source: str | Path,
    config: DatasetConfig,
    *,
    workspace: Workspace | None = None,
    overwrite: bool = False,
    progress: Progress | None = None,
    label: str | None = None,
) -> ImportReport:
    """Read `source`, map its columns, save every row as dataset `config.name` and report the issues.

    Bad rows are kept and listed (row numbers and reasons); `drop_rows` / editing decides their fate.
    `label` replaces the path recorded in meta.json (an uploaded file's own name instead of its temp path).

    Raises:
        NotFoundError, DocumentError, OfflineError: the source cannot be read.
        ConfigError: a bad column map, or the name exists and `overwrite` is False.
    """
    report = progress or (lambda m, f: None)
    ws = workspace or Workspace.default()
    report(Text(f"Reading {label or source}",
                f"{label or source} 읽는 중"), 0.05)
    raw, src = read_source(source, config)
    if label:
        src["path"] = label
    if not raw:
        raise DocumentError(f"{source} holds no rows. Check the file.",
                            ko=f"{source}에 행이 없습니다. 파일을 확인하세요.")
    columns = list(dict.fromkeys(k for r in raw for k in r))
    cmap = resolve_column_map(columns, config)
    rows = apply_column_map(raw, cmap)
    # All or nothing: the tokenizer and the checks run before anything is written.
    report(Text("Checking rows",
                "행 검사 중"), 0.3)
    tok, limit = _length_check(config.tokenizer, config.max_tokens, ws)
    issues = validate_rows(rows, max_tokens=limit, tokenizer=tok)
    report(Text(f"Saving {len(rows)} rows",
                f"{len(rows)}개 행 저장 중"), 0.8)
    info = save_dataset(config.name, rows, source=src, column_map=cmap, workspace=ws, overwrite=overwrite,
                        settings={"tokenizer": config.tokenizer, "max_tokens": config.max_tokens})
    report(Text(f"Imported {len(rows)} rows, {sum(i.is_error for i in issues)} with errors",
                f"{len(rows)}개 행을 가져옴, 오류 {sum(i.is_error for i in issues)}개"), 1.0)
    return ImportReport(info, issues, src.get("encoding"), src.get("encoding_warning", ""))


def load_rows(name: str, workspace: Workspace | None = None) -> list[dict[str, Any]]:
    """The working rows (raw.jsonl) of a dataset.

    Raises:
        NotFoundError: the dataset does not exist.
    """
    folder = dataset_dir(name, workspace)
    _read_meta(folder)
    return _read_jsonl(folder / RAW_FILE)


def save_rows(name: str, rows: Sequence[Mapping[str, Any]], workspace: Workspace | None = None, *, note: str = "edited") -> DatasetInfo:
    """Replace the working rows of an existing dataset (after an edit, a drop or a fix)."""
    folder = dataset_dir(name, workspace)
    with _lock(folder):
        return _save_rows(folder, rows, note)


def _save_rows(folder: Path, rows: Sequence[Mapping[str, Any]], note: str) -> DatasetInfo:
    meta = _read_meta(folder)
    before = meta.get("rows")
    rows = [dict(r) for r in rows]
    meta.update(rows=len(rows), columns=row_columns(rows), updated=_now())
    meta.setdefault("history", []).append({"at": meta["updated"], "action": note, "rows": len(rows)})
    try:  # raw.jsonl and meta.json together: a full disk changes neither
        write_texts({folder / RAW_FILE: _jsonl(rows), folder / META_FILE: json_text(meta)})
    except OSError as exc:
        raise_if_disk_full(exc, Text(f"Saving the rows of dataset {folder.name!r}",
                                     f"데이터셋 {folder.name!r}의 행 저장"),
                           Text(f"Nothing changed: the dataset keeps its {before} rows as they were.",
                                f"바뀐 것은 없습니다: 데이터셋의 {before}개 행은 그대로입니다."), folder)
        raise
    return _info(folder, meta)


def check_dataset(name: str, *, workspace: Workspace | None = None, max_tokens: int | None = None,
                  tokenizer: str | None = None) -> list[Issue]:
    """`validate_rows` on a saved dataset, with the tokenizer and max_tokens it was imported with (or those given)."""
    ws = workspace or Workspace.default()
    meta = _read_meta(dataset_dir(name, ws))
    settings = meta.get("settings", {})
    tok, limit = _length_check(tokenizer if tokenizer is not None else settings.get("tokenizer", ""),
                               max_tokens if max_tokens is not None else settings.get("max_tokens"), ws)
    return validate_rows(load_rows(name, ws), max_tokens=limit, tokenizer=tok)


def _length_check(tok_name: str, limit: int | None, ws: Workspace) -> tuple[Any, int | None]:
    """(tokenizer, max_tokens) of the length check: none without a tokenizer; a limit of 0 is the model's own
    context length. Raises what `load_tokenizer` raises for a model that cannot be found."""
    if not tok_name:
        return None, limit
    if limit == 0:
        limit = model_max_tokens(tok_name, ws)
    return (load_tokenizer(tok_name, ws) if limit else None), limit


def drop_rows(name: str, rows: Iterable[int], workspace: Workspace | None = None) -> DatasetInfo:
    """Delete rows by their 1-based numbers (as `Issue.row` gives them).

    Raises:
        ConfigError: a row number outside 1..len.
    """
    folder = dataset_dir(name, workspace)
    with _lock(folder):
        data = load_rows(name, workspace)
        drop = set(rows)
        out_of_range = sorted(n for n in drop if not 1 <= n <= len(data))
        if out_of_range:
            raise ConfigError(f"Rows {out_of_range[:10]} do not exist: dataset {name!r} has rows 1..{len(data)}.",
                              ko=f"{out_of_range[:10]}행은 없습니다: 데이터셋 {name!r}의 행은 1..{len(data)}입니다.")
        return _save_rows(folder, [r for i, r in enumerate(data, 1) if i not in drop], f"dropped {len(drop)} rows")


# --- splitting --------------------------------------------------------------------------------


def split_dataset(
    name: str, config: SplitConfig | None = None, *, workspace: Workspace | None = None, progress: Progress | None = None
) -> SplitReport:
    """Split a dataset into train / validation / test files and check them for leakage.

    Writes train.csv, validation.csv, test.csv (and .jsonl each) and leakage.json into a split folder, and the split
    record in meta.json (seed, sizes, creation time, the hash of the rows it was made from): all of them or, after a
    crash or a full disk, none (`workbench.dataset.splitfiles`).

    Raises:
        ConfigError: rows with errors (drop or fix them first) or too few rows.
        StorageError: the disk is full (the previous split is kept whole).
    """
    config = config or SplitConfig()
    ws = workspace or Workspace.default()
    folder = dataset_dir(name, ws)
    report = progress or no_progress
    with _lock(folder, report):  # two splits at once run one after the other
        return _split(folder, config, ws, report)


def _split(folder: Path, config: SplitConfig, ws: Workspace, report: Progress) -> SplitReport:
    name = folder.name
    meta = _read_meta(folder)
    rows = load_rows(name, ws)
    report(Text("Checking rows",
                "행 검사 중"), 0.1)
    errors = [i for i in check_dataset(name, workspace=ws) if i.is_error]
    if errors:
        listed = ", ".join(str(n) for n in issue_rows(errors)[:10])
        raise ConfigError(
            f"Dataset {name!r} has {len(errors)} problems in rows {listed}{' ...' if len(issue_rows(errors)) > 10 else ''} "
            f"(e.g. {errors[0].message}). Drop or fix those rows first (`dataset validate {name} --drop-errors`).",
            ko=f"데이터셋 {name!r}의 {listed}{' ...' if len(issue_rows(errors)) > 10 else ''}행에 문제가 {len(errors)}개 "
               f"있습니다 (예: {pick(errors[0].message, 'ko')}). 먼저 그 행을 빼거나 고치세요 (`dataset validate {name} --drop-errors`)."
        )
    report(Text("Splitting",
                "분할하는 중"), 0.3)
    tr, va, te = split_indices(len(rows), config)
    parts = {"train": [rows[i] for i in tr], "validation": [rows[i] for i in va], "test": [rows[i] for i in te]}
    report(Text("Checking test questions against training questions",
                "테스트 질문을 학습 질문과 비교하는 중"), 0.5)
    leaks = find_leakage(parts["train"], parts["test"], threshold=config.leakage_threshold, validation=parts["validation"])
    sizes = {k: len(v) for k, v in parts.items()}
    record = {**config.to_dict(), "method": "sklearn.model_selection.train_test_split (test), then again on train (validation)",
              "sizes": sizes, "created": _now(), "raw_rows": len(rows), "raw_sha256": _sha256(folder / RAW_FILE),
              "leakage": len(leaks)}
    report(Text("Writing the split files",
                "분할 파일 쓰는 중"), 0.8)
    try:
        meta["split"] = write_split(folder, parts, row_columns(rows), [lk.to_dict() for lk in leaks], record,
                                    publish=lambda rec: _write_meta(folder, {**meta, "split": rec}))
    except OSError as exc:
        old = meta.get("split")
        kept = (Text(f"Nothing changed: the previous split (seed {old['seed']}, {old['created']}) is kept whole.",
                     f"바뀐 것은 없습니다: 이전 분할(시드 {old['seed']}, {old['created']})이 그대로 있습니다.") if old else
                Text("Nothing changed: the dataset is still unsplit.", "바뀐 것은 없습니다: 데이터셋은 아직 분할되지 않은 그대로입니다."))
        raise_if_disk_full(exc, Text(f"Splitting dataset {name!r}", f"데이터셋 {name!r} 분할"), kept, folder)
        raise
    report(Text(f"train {sizes['train']}, validation {sizes['validation']}, test {sizes['test']}; {len(leaks)} leaking test rows",
                f"학습 {sizes['train']}, 검증 {sizes['validation']}, 테스트 {sizes['test']}; 누출된 테스트 행 {len(leaks)}개"), 1.0)
    return SplitReport(_info(folder, meta), sizes, leaks)


def load_split(name: str, split: SplitName, workspace: Workspace | None = None) -> list[dict[str, Any]]:
    """The rows of one split (instruction, input, output and any extra columns such as chunk_id, source).

    Training reads "train" (and "validation" for evaluation during training); comparison reads "test".

    Raises:
        ConfigError: an unknown split name.
        NotFoundError: the dataset does not exist or has not been split yet.
    """
    return load_splits(name, (split,), workspace)[split]


def load_splits(name: str, splits: Sequence[str] = SPLITS, workspace: Workspace | None = None,
                ) -> dict[str, list[dict[str, Any]]]:
    """Several splits read together under the dataset's read lock: never one split's files and another's (a split
    made meanwhile switches only between two reads, and never makes a reader wait for its work). `"meta"` holds the
    split record they belong to.

    Raises:
        ConfigError: an unknown split name.
        NotFoundError: the dataset does not exist or has not been split yet.
    """
    unknown = [s for s in splits if s not in SPLITS]
    if unknown:
        raise ConfigError(f"split = {unknown[0]!r} is not one of {', '.join(SPLITS)}.",
                          ko=f"split = {unknown[0]!r}은(는) {', '.join(SPLITS)} 중 하나가 아닙니다.")
    folder = dataset_dir(name, workspace)
    with read_lock(folder):
        record = _split_record(folder)
        return {**{s: _read_jsonl(split_path(folder, record, s)) for s in splits}, "meta": record}  # type: ignore[dict-item]


def split_file(name: str, split: str, fmt: str = "csv", workspace: Workspace | None = None) -> bytes:
    """The bytes of one split file (`fmt` "csv" or "jsonl"), what the page's download buttons serve.

    Raises:
        NotFoundError: the dataset does not exist or has not been split yet.
    """
    folder = dataset_dir(name, workspace)
    with read_lock(folder):
        return split_path(folder, _split_record(folder), split, fmt).read_bytes()


def _split_record(folder: Path) -> dict[str, Any]:
    """meta.json's split record (the caller holds the read lock). Raises NotFoundError when there is none."""
    record = _read_meta(folder).get("split")
    if not record or not split_path(folder, record, "train").is_file():
        raise NotFoundError(f"Dataset {folder.name!r} has not been split yet. Split it first: `workbench dataset split "
                            f"{folder.name}`.",
                            ko=f"데이터셋 {folder.name!r}은(는) 아직 분할되지 않았습니다. 먼저 분할하세요: `workbench "
                               f"dataset split {folder.name}`.")
    return record


def load_leakage(name: str, workspace: Workspace | None = None) -> list[Leak]:
    folder = dataset_dir(name, workspace)
    with read_lock(folder):
        record = _read_meta(folder).get("split") or {}
        path = split_folder(folder, record) / LEAKAGE_FILE
        return [Leak(**d) for d in json.loads(path.read_text(encoding="utf-8"))] if path.is_file() else []


def train_full_rows(name: str, workspace: Workspace | None = None) -> list[dict[str, Any]]:
    """The train part of the 9:1 split in scikit-learn's order (train and validation together), as the tutorial
    uploads it (`splitfiles.unsplit_train`)."""
    parts = load_splits(name, ("train", "validation"), workspace)
    return unsplit_train(parts["train"], parts["validation"], parts["meta"])
