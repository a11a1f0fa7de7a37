"""Reading Alpaca rows from where users keep them, and mapping their columns to instruction / input / output.

Sources: CSV / TSV (UTF-8, UTF-16, CP949 or Latin-1, detected by `workbench.common.textcodec`), JSON, JSONL, a `datasets`
folder written by `save_to_disk`, or a Hub dataset repository. Rows come back as they are (no filtering); `resolve_column_map` and
`apply_column_map` turn them into Alpaca rows, keeping every other column (`source`, `chunk_id`, ...).

The import settings (`DatasetConfig`) and the rule for a dataset's name (`check_name`) are here too: reading a source
needs them, and the store (`workbench.dataset.alpaca`, which imports this module) re-uses them.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from workbench.common.config import BaseConfig, setting
from workbench.common.errors import ConfigError, DocumentError, NotFoundError, OfflineError
from workbench.common.textcodec import ENCODING_LABELS, Encoding, decode, decode_text

ALPACA_COLUMNS: tuple[str, ...] = ("instruction", "input", "output")
# Column names recognised without a map (lower-cased), in order of preference.
_ALIASES = {
    "instruction": ("instruction", "question", "q", "prompt", "질문"),
    "input": ("input", "context"),
    "output": ("output", "answer", "a", "response", "답변"),
}

# --- the import settings and the dataset's name ---------------------------------------------

_NAME_RE = re.compile(r"^[\w][\w.-]{0,63}$")


def check_name(name: str) -> str:
    """A dataset name must be a plain folder name (it becomes `datasets/<name>/`)."""
    if not isinstance(name, str) or not _NAME_RE.match(name) or name in (".", ".."):
        raise ConfigError(
            f"Dataset name {name!r} is not allowed. Use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit "
            f"(for example 'shop-qa').",
            ko=f"데이터셋 이름 {name!r}은(는) 쓸 수 없습니다. 영문자나 숫자로 시작하는 1-64자의 영문자, 숫자, "
               f"'.', '_', '-'를 쓰세요 (예: 'shop-qa')."
        )
    return name


@dataclasses.dataclass
class DatasetConfig(BaseConfig):
    """How rows are imported and checked."""

    name: str = setting("shop-qa", "Dataset name: the folder under datasets/ (letters, digits, . _ -).",
                        help_ko="데이터셋 이름: datasets/ 아래 폴더 이름 (문자, 숫자, . _ -).", label="Name", label_ko="이름")
    instruction_column: str = setting("", "Source column that becomes `instruction` (empty: detect instruction / question / Q).",
                                      help_ko="`instruction`이 될 원본 열 (비우면 instruction / question / Q 자동 인식).",
                                      label="Instruction column", label_ko="instruction 열")
    input_column: str = setting("", "Optional source column that becomes `input` (empty: an `input` column if present).",
                                help_ko="`input`이 될 원본 열 (선택; 비우면 `input` 열이 있을 때 사용).",
                                label="Input column", label_ko="input 열")
    output_column: str = setting("", "Source column that becomes `output` (empty: detect output / answer / A).",
                                 help_ko="`output`이 될 원본 열 (비우면 output / answer / A 자동 인식).",
                                 label="Output column", label_ko="output 열")
    encoding: Encoding = setting("auto", "Text encoding of CSV / JSON files. auto detects it (UTF-8, UTF-16, Korean, Japanese, "
                                 "Western) and warns when the guess is not clear: then choose it here.",
                                 help_ko="CSV / JSON 파일 인코딩. 자동은 감지하고 (UTF-8, UTF-16, 한국어, 일본어, 서유럽) 짐작이 "
                                 "분명하지 않으면 경고합니다: 그때 여기서 고르세요.",
                                 label="Encoding", label_ko="인코딩", choice_labels=ENCODING_LABELS)
    tokenizer: str = setting("smollm2-135m", "Model whose tokenizer counts tokens for the length check (registry key, folder or Hub id; empty: no token check).",
                             help_ko="길이 검사에 쓸 토크나이저의 모델 (레지스트리 키, 폴더, Hub id; 비우면 검사 안 함).",
                             label="Tokenizer for the length check", label_ko="길이 검사용 토크나이저")
    max_tokens: int = setting(0, "Rows whose prompt plus answer is longer than this many tokens get a warning (training cuts "
                              "them). 0 = the tokenizer model's own limit (its max_position_embeddings).",
                              help_ko="프롬프트와 답변을 합친 토큰 수가 이보다 긴 행에 경고를 붙입니다 (학습 시 잘림). 0 = 토크나이저 "
                              "모델 자체의 한도 (max_position_embeddings).", min=0, max=131072,
                              label="Max tokens per row (0 = the model's)", label_ko="행당 최대 토큰 (0 = 모델 한도)", step=64)
    hub_split: str = setting("", "For a `datasets` folder or Hub repository: which split to import (empty: all, concatenated).",
                             help_ko="`datasets` 폴더나 Hub 저장소에서 가져올 split (비우면 전부 이어 붙임).",
                             label="Split to import", label_ko="가져올 split")
    data_files: str = setting("", "For a Hub repository: the file(s) to load, as in load_dataset(repo, data_files=...); comma-separated.",
                              help_ko="Hub 저장소에서 불러올 파일 (load_dataset(repo, data_files=...)처럼; 쉼표로 구분).",
                              label="Data files", label_ko="데이터 파일 (data_files)")

    def validate(self) -> None:
        super().validate()
        check_name(self.name)

    def column_map(self) -> dict[str, str]:
        return {"instruction": self.instruction_column, "input": self.input_column, "output": self.output_column}

    def with_map(self, spec: str) -> "DatasetConfig":
        """Apply a CLI map such as `instruction=Q,output=A` (target=source pairs)."""
        return self.replace(**{f"{k}_column": v for k, v in parse_column_map(spec).items()})

    @staticmethod
    def name_for(source: str, hub: bool = False) -> str:
        """A valid dataset name suggested by a source: a file's stem, a Hub repository's name ("dataset" if none).

        >>> DatasetConfig.name_for("/data/상점 FAQ.csv"), DatasetConfig.name_for("me/shop.qa", hub=True)
        ('상점-FAQ', 'shop.qa')
        """
        import re
        from pathlib import PurePath

        stem = PurePath(source).name if hub else PurePath(source).stem
        return re.sub(r"[^\w.-]+", "-", stem).strip("-.")[:64] or "dataset"


# --- reading sources --------------------------------------------------------------------------

def parse_column_map(spec: str) -> dict[str, str]:
    """`instruction=Q,output=A` -> {"instruction": "Q", "output": "A"}.

    Raises:
        ConfigError: a pair without `=`, or a target other than instruction / input / output.
    """
    out: dict[str, str] = {}
    for part in (p.strip() for p in (spec or "").split(",")):
        if not part:
            continue
        if "=" not in part:
            raise ConfigError(f"Column map entry {part!r} has no '='. Write target=source pairs, e.g. instruction=Q,output=A.",
                              ko=f"열 연결 항목 {part!r}에 '='가 없습니다. 대상=원본 쌍으로 쓰세요. 예: instruction=Q,output=A.")
        target, source = (s.strip() for s in part.split("=", 1))
        if target not in ALPACA_COLUMNS:
            raise ConfigError(f"Column map target {target!r} is not one of {', '.join(ALPACA_COLUMNS)}. Example: instruction=Q,output=A.",
                              ko=f"열 연결 대상 {target!r}은(는) {', '.join(ALPACA_COLUMNS)} 중 하나가 아닙니다. "
                                 f"예: instruction=Q,output=A.")
        out[target] = source
    return out


def read_source(
    source: str | Path, config: DatasetConfig | None = None
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Read rows from a CSV / JSON / JSONL file, a `datasets` folder (save_to_disk) or a Hub dataset repository.

    Returns the rows as they are (no mapping, no filtering) and a description of the source.

    Raises:
        NotFoundError: the path does not exist and is not a Hub id.
        DocumentError: the file cannot be read.
        OfflineError: a Hub repository while the Hub is unreachable.
    """
    if config is None:
        config = DatasetConfig()
    p = Path(str(source)).expanduser()
    if p.is_dir():
        return _read_saved_dataset(p, config.hub_split)
    if p.is_file():
        suffix = p.suffix.lower()
        if suffix in (".csv", ".tsv", ".txt", ".json", ".jsonl", ".ndjson"):
            decoded = decode(p.read_bytes(), str(p), encoding=config.encoding)
            # The encoding, and the decoder's warning when it guessed, go with the rows to the import report.
            meta = {"path": str(p), "encoding": decoded.encoding, **({"encoding_warning": decoded.warning} if decoded.warning else {})}
            if suffix in (".csv", ".tsv", ".txt"):
                return _parse_csv(decoded.text, "\t" if suffix == ".tsv" else ",", str(p)), {"kind": "csv", **meta}
            rows = _parse_json_rows(decoded.text, jsonl=suffix != ".json", what=str(p))
            return rows, {"kind": "jsonl" if suffix != ".json" else "json", **meta}
        raise DocumentError(f"{p.name}: unsupported file type {suffix or '(none)'}. Use .csv, .json, .jsonl or a `datasets` folder.",
                            ko=f"{p.name}: 지원하지 않는 파일 형식 {suffix or '(없음)'}. .csv, .json, .jsonl "
                               f"또는 `datasets` 폴더를 쓰세요.")
    text = str(source)
    if re.fullmatch(r"[\w.-]+/[\w.-]+", text) and not text.startswith("."):
        return _read_hub_dataset(text, config)
    raise NotFoundError(f"{text!r} is neither an existing file or folder nor a Hub dataset id (owner/name). Check the path.",
                        ko=f"{text!r}은(는) 있는 파일이나 폴더도, Hub 데이터셋 id(owner/name)도 아닙니다. 경로를 "
                           f"확인하세요.")


def read_csv_bytes(data: bytes, encoding: str = "auto", *, sep: str = ",", what: str = "the CSV") -> tuple[list[dict[str, Any]], str]:
    """Parse CSV bytes into rows of strings (empty cells stay "", so a missing value is visible)."""
    text, enc = decode_text(data, what, encoding=encoding)
    return _parse_csv(text, sep, what), enc


def _parse_csv(text: str, sep: str, what: str) -> list[dict[str, Any]]:
    """Rows of a CSV as {header: cell} (every cell a string; a short row's missing cells ""), read with the csv module
    rather than pandas: pandas takes a first column without a header as the row index, so a row with one unquoted comma
    more than its header (`Can I pay cash?,Yes, cash is fine.`) lost its question and was stored shifted, without a word.

    Raises:
        DocumentError: no header, a quote that is never closed, or a row with more (non-empty) cells than the header.
    """
    records = _csv_records(text, sep, what)
    if not records:
        raise DocumentError(f"{what} is not a readable CSV (no header line). Put the column names on the first line.",
                            ko=f"{what}은(는) 읽을 수 있는 CSV가 아닙니다 (머리글 줄이 없음). 첫 줄에 열 이름을 쓰세요.")
    header = _unique_columns(records[0][1])
    rows, long_lines = [], []
    for line, cells in records[1:]:
        extra = cells[len(header):]
        if any(c.strip() for c in extra):
            long_lines.append((line, len(cells)))
            continue
        cells = cells[: len(header)] + [""] * (len(header) - len(cells))  # trailing empty cells carry nothing
        rows.append(dict(zip(header, cells)))
    if long_lines:
        shown = ", ".join(str(n) for n, _ in long_lines[:10]) + (" ..." if len(long_lines) > 10 else "")
        sep_name = "tab" if sep == "\t" else repr(sep)
        raise DocumentError(
            f"{what}: line {shown} has more cells ({long_lines[0][1]}) than the header ({len(header)}: "
            f"{', '.join(header)}), so its values would land in the wrong columns. A {sep_name} inside a value needs "
            f"double quotes (\"Yes, cash is fine.\"); fix {'that line' if len(long_lines) == 1 else 'those lines'} and "
            f"import again. Nothing was imported.",
            ko=f"{what}: {shown}번째 줄의 칸 수({long_lines[0][1]})가 머리글({len(header)}: {', '.join(header)})보다 "
               f"많아 값이 다른 열에 들어가게 됩니다. 값 안의 {sep_name}는 큰따옴표로 감싸야 합니다 "
               f"(\"네, 현금도 됩니다.\"). 그 줄을 고친 뒤 다시 가져오세요. 아무것도 가져오지 않았습니다.")
    return rows


def _csv_records(text: str, sep: str, what: str) -> list[tuple[int, list[str]]]:
    """(line number, cells) of every non-blank record. Strict quoting first, so that a quote never closed is an
    error instead of a cell that swallows the rest of the file; then lenient (`"a"b` reads as `ab`, as pandas did)."""
    for strict in (True, False):
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep, strict=strict)
        out: list[tuple[int, list[str]]] = []
        start = 1
        try:
            for cells in reader:
                if cells:
                    out.append((start, cells))
                start = reader.line_num + 1
            return out
        except csv.Error as exc:
            if "unexpected end of data" in str(exc):
                raise DocumentError(f"{what}: a double quote opened on line {start} is never closed, so the rest of "
                                    f"the file would be one value. Close the quote (or remove it) and import again.",
                                    ko=f"{what}: {start}번째 줄에서 연 큰따옴표가 닫히지 않아 파일의 나머지가 값 하나가 "
                                       f"됩니다. 따옴표를 닫거나 지운 뒤 다시 가져오세요.") from exc
            if not strict:
                raise DocumentError(f"{what} is not a readable CSV (line {start}: {exc}). Check the delimiter and the "
                                    f"quoting.",
                                    ko=f"{what}은(는) 읽을 수 있는 CSV가 아닙니다 ({start}번째 줄: {exc}). 구분자와 "
                                       f"따옴표를 확인하세요.") from exc
    raise AssertionError("unreachable")


def _unique_columns(names: list[str]) -> list[str]:
    """Header names made unique as pandas did (`a`, `a.1`), so a repeated column is not silently overwritten."""
    seen: dict[str, int] = {}
    out = []
    for name in names:
        new = name
        while new in seen:
            seen[name] += 1
            new = f"{name}.{seen[name]}"
        seen.setdefault(name, 0)
        seen.setdefault(new, 0)
        out.append(new)
    return out


def _parse_json_rows(text: str, *, jsonl: bool, what: str) -> list[dict[str, Any]]:
    if jsonl:
        rows = []
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DocumentError(f"{what}, line {n}: not valid JSON ({exc.msg}). Fix or delete that line and import again.",
                                    ko=f"{what}, {n}번째 줄: 올바른 JSON이 아닙니다 ({exc.msg}). 그 줄을 고치거나 "
                                       f"지운 뒤 다시 가져오세요.") from exc
            except RecursionError as exc:
                raise _too_deep(f"{what}, line {n}") from exc
            if not isinstance(obj, dict):
                raise DocumentError(f"{what}, line {n}: expected a JSON object per line, got {type(obj).__name__}.",
                                    ko=f"{what}, {n}번째 줄: 한 줄에 JSON 객체 하나가 있어야 하는데 {type(obj).__name__}입니다.")
            rows.append(obj)
        return rows
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DocumentError(f"{what}: not valid JSON (line {exc.lineno}: {exc.msg}). For one object per line use .jsonl.",
                            ko=f"{what}: 올바른 JSON이 아닙니다 ({exc.lineno}번째 줄: {exc.msg}). 한 줄에 객체 "
                               f"하나씩이라면 .jsonl을 쓰세요.") from exc
    except RecursionError as exc:
        raise _too_deep(what) from exc
    if isinstance(data, dict):
        lists = [v for v in data.values() if isinstance(v, list)]
        if len(lists) == 1:
            data = lists[0]  # {"data": [...]} / {"train": [...]}
    if not isinstance(data, list):
        raise DocumentError(f"{what}: expected a JSON list of objects (Alpaca format), got {type(data).__name__}.",
                            ko=f"{what}: 객체의 JSON 목록(Alpaca 형식)이어야 하는데 {type(data).__name__}입니다.")
    for n, obj in enumerate(data, 1):
        if not isinstance(obj, dict):
            raise DocumentError(f"{what}: item {n} is {type(obj).__name__}, not an object with instruction / output.",
                                ko=f"{what}: {n}번째 항목이 {type(obj).__name__}입니다. instruction / output이 "
                                   f"있는 객체여야 합니다.")
    return data


def _too_deep(what: str) -> DocumentError:
    """JSON nested deeper than Python's parser goes (100,000 levels ended in a RecursionError traceback)."""
    return DocumentError(f"{what}: the JSON is nested too deeply to read (lists or objects inside each other about "
                         f"{sys.getrecursionlimit():,} levels or more). Alpaca rows are flat objects with instruction / "
                         f"output; fix the file and import again.",
                         ko=f"{what}: JSON이 너무 깊게 중첩되어 읽을 수 없습니다 (목록이나 객체가 약 "
                            f"{sys.getrecursionlimit():,}단계 이상 겹침). Alpaca 행은 instruction / output이 있는 평평한 "
                            f"객체입니다. 파일을 고친 뒤 다시 가져오세요.")


def _dataset_rows(ds: Any, split: str, what: str) -> tuple[list[dict[str, Any]], list[str]]:
    """Rows of a `datasets` Dataset or DatasetDict; all splits concatenated unless one is named."""
    from datasets import DatasetDict

    if isinstance(ds, DatasetDict):
        names = list(ds.keys())
        if split:
            if split not in ds:
                raise NotFoundError(f"{what} has no split {split!r}. Splits: {', '.join(names)}.",
                                    ko=f"{what}에 {split!r} split이 없습니다. 있는 split: {', '.join(names)}.")
            return ds[split].to_list(), [split]
        rows: list[dict[str, Any]] = []
        for s in names:
            rows.extend(ds[s].to_list())
        return rows, names
    return ds.to_list(), []


def _read_saved_dataset(folder: Path, split: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    from datasets import load_from_disk

    try:
        ds = load_from_disk(str(folder))
    except FileNotFoundError as exc:
        raise DocumentError(f"{folder} is not a folder written by `datasets` save_to_disk ({exc}).",
                            ko=f"{folder}은(는) `datasets`의 save_to_disk로 쓴 폴더가 아닙니다 ({exc}).") from exc
    rows, splits = _dataset_rows(ds, split, str(folder))
    return rows, {"kind": "datasets-folder", "path": str(folder), "splits": splits}


def _read_hub_dataset(repo: str, config: DatasetConfig) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    from workbench.models.registry import require_hub

    require_hub(f"load the dataset {repo}")
    from datasets import load_dataset

    files = [f.strip() for f in config.data_files.split(",") if f.strip()]
    try:
        ds = load_dataset(repo, data_files=(files[0] if len(files) == 1 else files) or None)
    except Exception as exc:  # datasets raises many types (HTTP, not found, offline); all mean "could not load"
        raise OfflineError(
            f"Could not load the Hub dataset {repo}" + (f" (data_files={config.data_files})" if files else "")
            + f": {exc.__class__.__name__}: {exc}. Check the repository id, the file names and your access.",
            ko=f"Hub 데이터셋 {repo}" + (f" (data_files={config.data_files})" if files else "") + f"을(를) 불러오지 못했습니다: {exc.__class__.__name__}: {exc}. 저장소 id, 파일 이름, 접근 권한을 확인하세요."
        ) from exc
    rows, splits = _dataset_rows(ds, config.hub_split, repo)
    return rows, {"kind": "hub", "repo": repo, "data_files": files, "splits": splits}


# --- mapping ----------------------------------------------------------------------------------


def resolve_column_map(columns: Sequence[str], config: DatasetConfig) -> dict[str, str]:
    """Which source column becomes instruction / input / output ("" for an absent optional input).

    Raises:
        ConfigError: a mapped column that does not exist, or no column for instruction / output.
    """
    cols = list(columns)
    lower = {c.lower().strip(): c for c in cols}
    out: dict[str, str] = {}
    for target, given in config.column_map().items():
        if given:
            if given not in cols:
                raise ConfigError(
                    f"Column {given!r} (mapped to {target}) is not in the data. Columns: {', '.join(map(repr, cols))}. "
                    f"Fix the map, e.g. --map instruction=Q,output=A.",
                    ko=f"열 {given!r}({target}에 연결됨)이(가) 데이터에 없습니다. 열: {', '.join(map(repr, cols))}. "
                       f"연결을 고치세요. 예: --map instruction=Q,output=A."
                )
            out[target] = given
            continue
        found = next((lower[a] for a in _ALIASES[target] if a in lower), "")
        if not found and target != "input":
            raise ConfigError(
                f"No column for {target!r}: the data has {', '.join(map(repr, cols)) or 'no columns'}. "
                f"Map one, e.g. --map instruction=Q,output=A.",
                ko=f"{target!r}에 해당하는 열이 없습니다: 데이터의 열은 {', '.join(map(repr, cols)) or '없음'}입니다. "
                   f"하나를 연결하세요. 예: --map instruction=Q,output=A."
            )
        out[target] = found
    used = [v for v in out.values() if v]
    if len(used) != len(set(used)):
        raise ConfigError(f"One source column is mapped to two targets ({out}). Map each target to its own column.",
                          ko=f"원본 열 하나가 두 대상에 연결되어 있습니다 ({out}). 대상마다 자기 열을 연결하세요.")
    return out


def apply_column_map(rows: Iterable[Mapping[str, Any]], column_map: Mapping[str, str]) -> list[dict[str, Any]]:
    """Rename the mapped columns to instruction / input / output; keep every other column after them.

    A missing optional input becomes "". Values are not converted: a number stays a number, so that
    `validate_rows` can report it.
    """
    mapped_sources = {v for v in column_map.values() if v}
    out = []
    for r in rows:
        new: dict[str, Any] = {}
        for target in ALPACA_COLUMNS:
            src = column_map.get(target, "")
            new[target] = r.get(src) if src else ""
        for k, v in r.items():
            if k in mapped_sources:
                continue
            key = k if k not in ALPACA_COLUMNS else f"orig_{k}"  # an unmapped 'output' column must not shadow the mapped one
            new[key] = v
        out.append(new)
    return out
