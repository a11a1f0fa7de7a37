"""Alpaca rows (instruction / input / output): prompt formatting used by training and inference.

Three templates:

- `alpaca-tutorial`: the tutorial's template (instruction and response only) plus the tokenizer's EOS;
- `alpaca`: the standard Alpaca template, with the `### Input:` section when a row has an input;
- `chat`: the model's own chat template (for instruct models), user = instruction (+ input).

Training uses prompt / completion pairs (`format_example`) so that TRL computes the loss on the
completion only; inference uses the same `format_prompt`, so the two cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from workbench.errors import ConfigError
from workbench.progress import Progress

if TYPE_CHECKING:  # pragma: no cover
    from transformers import PreTrainedTokenizerBase

PromptTemplate = Literal["alpaca-tutorial", "alpaca", "chat"]
TEMPLATES: tuple[str, ...] = ("alpaca-tutorial", "alpaca", "chat")

TUTORIAL_TEMPLATE = (
    "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Response:\n"
)
ALPACA_TEMPLATE_INPUT = (
    "Below is an instruction that describes a task, paired with an input that provides further context. "
    "Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n"
)
ALPACA_TEMPLATE_NO_INPUT = TUTORIAL_TEMPLATE


def _user_message(instruction: str, input: str) -> str:
    return f"{instruction}\n\n{input}" if input.strip() else instruction


def format_prompt(
    instruction: str,
    input: str = "",
    *,
    template: PromptTemplate = "alpaca",
    tokenizer: "PreTrainedTokenizerBase | None" = None,
    system: str | None = None,
) -> str:
    """The text a model sees before its answer.

    Args:
        instruction: the question or task.
        input: optional context (for RAG, the retrieved chunks go here).
        template: one of `TEMPLATES`.
        tokenizer: needed for `chat` (its chat template).
        system: an optional system message (`chat` only).

    Raises:
        ConfigError: unknown template, or `chat` without a tokenizer that has a chat template.
    """
    input = input or ""
    if template == "alpaca-tutorial":
        return bos_prefix(tokenizer) + TUTORIAL_TEMPLATE.format(instruction=_user_message(instruction, input))
    if template == "alpaca":
        if input.strip():
            return bos_prefix(tokenizer) + ALPACA_TEMPLATE_INPUT.format(instruction=instruction, input=input)
        return bos_prefix(tokenizer) + ALPACA_TEMPLATE_NO_INPUT.format(instruction=instruction)
    if template == "chat":
        if tokenizer is None or not getattr(tokenizer, "chat_template", None):
            raise ConfigError(
                "prompt_template = 'chat' needs a tokenizer with a chat template. "
                "Use 'alpaca' for base (non-instruct) models."
            )
        messages = ([{"role": "system", "content": system}] if system else []) + [
            {"role": "user", "content": _user_message(instruction, input)}
        ]
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    raise ConfigError(f"prompt_template = {template!r} is not one of {', '.join(TEMPLATES)}.")


def bos_prefix(tokenizer: "PreTrainedTokenizerBase | None") -> str:
    """The BOS token's text when the tokenizer itself puts one in front of plain text (Llama-3's <|begin_of_text|>,
    Gemma's <bos>), else "". The workbench tokenizes prompts with `add_special_tokens=False` (a chat template writes
    its own BOS), so the Alpaca templates write it here: the model reads what its own tokenizer, and the tutorial's
    SFTTrainer, would give it. Gemma 3 270M without <bos>: 4.29 nats per reference-answer token against 2.62."""
    bos = getattr(tokenizer, "bos_token", None)
    if tokenizer is None or not bos:
        return ""
    with_special = tokenizer("a")["input_ids"]
    plain = tokenizer("a", add_special_tokens=False)["input_ids"]
    adds = len(with_special) > len(plain) and with_special[0] == tokenizer.bos_token_id
    return bos if adds else ""


def completion_suffix(tokenizer: "PreTrainedTokenizerBase", template: PromptTemplate) -> str:
    """What ends a training completion: EOS for Alpaca templates, the chat template's end of turn for chat.

    This is the text the model must learn to emit; `inference.stop_token_ids` stops on it. When the
    two disagree, generation never ends (the classic "endless generation" bug).
    """
    if template != "chat":
        if not tokenizer.eos_token:
            raise ConfigError("The tokenizer has no EOS token: set one before training with an Alpaca template.")
        return tokenizer.eos_token
    marker = "\x00WB\x00"
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "q"}], tokenize=False, add_generation_prompt=True)
    full = tokenizer.apply_chat_template(
        [{"role": "user", "content": "q"}, {"role": "assistant", "content": marker}], tokenize=False
    )
    if not full.startswith(prompt) or marker not in full:
        # Some templates render the assistant turn differently from the generation prompt; fall back to EOS.
        return tokenizer.eos_token or ""
    return full.split(marker, 1)[1]


def format_example(
    row: Mapping[str, Any],
    *,
    template: PromptTemplate = "alpaca",
    tokenizer: "PreTrainedTokenizerBase",
) -> dict[str, str]:
    """One training example as TRL's prompt / completion pair (loss on the completion only)."""
    prompt = format_prompt(str(row["instruction"]), str(row.get("input") or ""), template=template, tokenizer=tokenizer)
    return {"prompt": prompt, "completion": str(row["output"]) + completion_suffix(tokenizer, template)}


# =============================================================================================
# The dataset studio: import, validate, dedupe, split, load. Everything below works on plain rows
# (dicts with `instruction`, `input`, `output` and any extra columns such as `chunk_id`, `source`).
#
# On disk, one dataset is one folder `<workspace>/datasets/<name>/`:
#   raw.jsonl        the imported / edited rows (JSON Lines keep a number a number, so "non-text"
#                    stays detectable after a save; nothing is coerced behind the user's back)
#   meta.json        source, column map, creation time, settings and, once split, the split record
#   train.csv/.jsonl, validation.csv/.jsonl, test.csv/.jsonl   written by `split_dataset`
#   leakage.json     test rows whose question nearly repeats a training row
# Training and evaluation read only the split files (`load_split`), never raw.jsonl.
# =============================================================================================

import dataclasses  # noqa: E402  (kept beside the code that needs them; the formatting above stays light)
import hashlib  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import unicodedata  # noqa: E402
from collections.abc import Iterable, Sequence  # noqa: E402
from pathlib import Path  # noqa: E402

from workbench.config import BaseConfig, Workspace, setting  # noqa: E402
from workbench.errors import DocumentError, NotFoundError, OfflineError  # noqa: E402
from workbench.runfiles import now_iso, write_json, write_text  # noqa: E402

SplitName = Literal["train", "validation", "test"]
SPLITS: tuple[str, ...] = ("train", "validation", "test")
ALPACA_COLUMNS: tuple[str, ...] = ("instruction", "input", "output")
RAW_FILE = "raw.jsonl"
META_FILE = "meta.json"
LEAKAGE_FILE = "leakage.json"

# Column names recognised without a map (lower-cased), in order of preference.
_ALIASES = {
    "instruction": ("instruction", "question", "q", "prompt", "질문"),
    "input": ("input", "context"),
    "output": ("output", "answer", "a", "response", "답변"),
}
_NAME_RE = re.compile(r"^[\w][\w.-]{0,63}$")
_BAD_CHARS_RE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffd]")

IssueKind = Literal[
    "missing_instruction", "missing_output", "non_text", "too_long",  # errors: must be dropped or fixed
    "duplicate", "near_duplicate", "same_question",  # warnings: shown, the user decides
]
ERROR_KINDS: tuple[str, ...] = ("missing_instruction", "missing_output", "non_text", "too_long")


@dataclasses.dataclass
class DatasetConfig(BaseConfig):
    """How rows are imported and checked."""

    name: str = setting("shop-qa", "Dataset name: the folder under datasets/ (letters, digits, . _ -).",
                        help_ko="데이터셋 이름: datasets/ 아래 폴더 이름 (문자, 숫자, . _ -).")
    instruction_column: str = setting("", "Source column that becomes `instruction` (empty: detect instruction / question / Q).",
                                      help_ko="`instruction`이 될 원본 열 (비우면 instruction / question / Q 자동 인식).")
    input_column: str = setting("", "Optional source column that becomes `input` (empty: an `input` column if present).",
                                help_ko="`input`이 될 원본 열 (선택; 비우면 `input` 열이 있을 때 사용).")
    output_column: str = setting("", "Source column that becomes `output` (empty: detect output / answer / A).",
                                 help_ko="`output`이 될 원본 열 (비우면 output / answer / A 자동 인식).")
    encoding: Literal["auto", "utf-8", "cp949"] = setting("auto", "Text encoding of CSV files (auto tries UTF-8, then CP949).",
                                                          help_ko="CSV 파일 인코딩 (auto는 UTF-8, 그다음 CP949 시도).")
    tokenizer: str = setting("smollm2-135m", "Model whose tokenizer counts tokens for the length check (registry key, folder or Hub id; empty: no token check).",
                             help_ko="길이 검사에 쓸 토크나이저의 모델 (레지스트리 키, 폴더, Hub id; 비우면 검사 안 함).")
    max_tokens: int = setting(1024, "Rows whose prompt plus answer is longer than this many tokens are flagged (training would cut them).",
                              help_ko="프롬프트와 답변을 합친 토큰 수가 이보다 긴 행은 표시됩니다 (학습 시 잘림).", min=16, max=131072)
    hub_split: str = setting("", "For a `datasets` folder or Hub repository: which split to import (empty: all, concatenated).",
                             help_ko="`datasets` 폴더나 Hub 저장소에서 가져올 split (비우면 전부 이어 붙임).")
    data_files: str = setting("", "For a Hub repository: the file(s) to load, as in load_dataset(repo, data_files=...); comma-separated.",
                              help_ko="Hub 저장소에서 불러올 파일 (load_dataset(repo, data_files=...)처럼; 쉼표로 구분).")

    def validate(self) -> None:
        super().validate()
        check_name(self.name)

    def column_map(self) -> dict[str, str]:
        return {"instruction": self.instruction_column, "input": self.input_column, "output": self.output_column}

    def with_map(self, spec: str) -> "DatasetConfig":
        """Apply a CLI map such as `instruction=Q,output=A` (target=source pairs)."""
        return self.replace(**{f"{k}_column": v for k, v in parse_column_map(spec).items()})


@dataclasses.dataclass
class SplitConfig(BaseConfig):
    """How a dataset is split: train / test with scikit-learn, then validation out of train (the tutorial's 9:1, 8:2)."""

    test_size: float = setting(0.1, "Share of rows held out as the test split (the tutorial: 0.1).",
                               help_ko="테스트로 떼어 둘 비율 (튜토리얼: 0.1).", min=0.01, max=0.9)
    seed: int = setting(42, "random_state of train_test_split: the same seed gives the same split.",
                        help_ko="train_test_split의 random_state: 같은 시드는 같은 분할을 만듭니다.", min=0, max=2**32 - 1)
    val_size: float = setting(0.2, "Share of the training rows held out for validation during training (0: none).",
                              help_ko="학습 중 검증에 쓸, 학습 행에서 떼어 낼 비율 (0: 없음).", min=0.0, max=0.9)
    leakage_threshold: float = setting(0.9, "A test question at least this similar (character n-grams, 0..1) to a training question is reported as leakage.",
                                       help_ko="학습 질문과 이만큼 (문자 n-gram 유사도, 0..1) 비슷한 테스트 질문은 누수로 보고합니다.", min=0.5, max=1.0)


@dataclasses.dataclass(frozen=True)
class Issue:
    """A problem with one row. `row` is 1-based (row 1 is the first data row)."""

    row: int
    kind: str
    message: str
    field: str = ""
    other_row: int | None = None  # for duplicates: the earlier row it repeats

    @property
    def is_error(self) -> bool:
        return self.kind in ERROR_KINDS

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


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

    def to_dict(self) -> dict[str, Any]:
        return {"dataset": self.info.to_dict(), "encoding": self.encoding, **summarize_issues(self.issues),
                "issues": [i.to_dict() for i in self.issues]}


@dataclasses.dataclass(frozen=True)
class Leak:
    """A test row whose question nearly repeats a training (or validation) row."""

    test_row: int  # 1-based row in test.csv
    test_question: str
    split: str  # "train" or "validation"
    train_row: int  # 1-based row in that split's file
    train_question: str
    similarity: float

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class SplitReport:
    info: DatasetInfo
    sizes: dict[str, int]
    leaks: list[Leak]

    def to_dict(self) -> dict[str, Any]:
        return {"dataset": self.info.name, "sizes": self.sizes, "split": self.info.split,
                "leakage": [lk.to_dict() for lk in self.leaks]}


# --- names, folders, metadata -----------------------------------------------------------------


def check_name(name: str) -> str:
    """A dataset name must be a plain folder name (it becomes `datasets/<name>/`)."""
    if not isinstance(name, str) or not _NAME_RE.match(name) or name in (".", ".."):
        raise ConfigError(
            f"Dataset name {name!r} is not allowed. Use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit "
            f"(for example 'shop-qa')."
        )
    return name


def dataset_dir(name: str, workspace: Workspace | None = None) -> Path:
    ws = workspace or Workspace.default()
    return ws.datasets / check_name(name)


_now = now_iso


def _read_meta(folder: Path) -> dict[str, Any]:
    try:
        return json.loads((folder / META_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise NotFoundError(f"Dataset {folder.name!r} does not exist in {folder.parent}. "
                            f"Import or generate it first (`python -m workbench dataset list` shows what exists).") from None


def _write_meta(folder: Path, meta: dict[str, Any]) -> None:
    write_json(folder / META_FILE, meta)


def _write_jsonl(path: Path, rows: Iterable[Mapping[str, Any]]) -> None:
    write_text(path, "".join(json.dumps(dict(r), ensure_ascii=False, default=str) + "\n" for r in rows))


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


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
        try:
            out.append(_info(meta_path.parent, json.loads(meta_path.read_text(encoding="utf-8"))))
        except (OSError, ValueError):
            continue  # a half-written or foreign folder is not a dataset; `dataset show` names the problem
    return out


def delete_dataset(name: str, workspace: Workspace | None = None) -> None:
    folder = dataset_dir(name, workspace)
    if not (folder / META_FILE).is_file():
        raise NotFoundError(f"Dataset {name!r} does not exist; nothing to delete.")
    shutil.rmtree(folder)


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
            raise ConfigError(f"Column map entry {part!r} has no '='. Write target=source pairs, e.g. instruction=Q,output=A.")
        target, source = (s.strip() for s in part.split("=", 1))
        if target not in ALPACA_COLUMNS:
            raise ConfigError(f"Column map target {target!r} is not one of {', '.join(ALPACA_COLUMNS)}. Example: instruction=Q,output=A.")
        out[target] = source
    return out


def decode_text(data: bytes, encoding: str = "auto", *, what: str = "the file") -> tuple[str, str]:
    """Bytes -> (text, encoding used). `auto` tries UTF-8 (with or without BOM), then CP949.

    Raises:
        DocumentError: the bytes are not valid in the requested (or any tried) encoding.
    """
    tries = ["utf-8", "cp949"] if encoding == "auto" else [encoding]
    for enc in tries:
        try:
            text = data.decode("utf-8-sig" if enc == "utf-8" else enc)
            return text, enc
        except UnicodeDecodeError:
            continue
    raise DocumentError(
        f"{what} is not valid {' or '.join(t.upper() for t in tries)} text. Save it as UTF-8 "
        f"(or choose the right encoding: utf-8 or cp949)."
    )


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
    config = config or DatasetConfig()
    p = Path(str(source)).expanduser()
    if p.is_dir():
        return _read_saved_dataset(p, config.hub_split)
    if p.is_file():
        suffix = p.suffix.lower()
        data = p.read_bytes()
        if suffix in (".csv", ".tsv", ".txt"):
            rows, enc = read_csv_bytes(data, config.encoding, sep="\t" if suffix == ".tsv" else ",", what=str(p))
            return rows, {"kind": "csv", "path": str(p), "encoding": enc}
        if suffix in (".json", ".jsonl", ".ndjson"):
            text, enc = decode_text(data, config.encoding, what=str(p))
            rows = _parse_json_rows(text, jsonl=suffix != ".json", what=str(p))
            return rows, {"kind": "jsonl" if suffix != ".json" else "json", "path": str(p), "encoding": enc}
        raise DocumentError(f"{p.name}: unsupported file type {suffix or '(none)'}. Use .csv, .json, .jsonl or a `datasets` folder.")
    text = str(source)
    if re.fullmatch(r"[\w.-]+/[\w.-]+", text) and not text.startswith("."):
        return _read_hub_dataset(text, config)
    raise NotFoundError(f"{text!r} is neither an existing file or folder nor a Hub dataset id (owner/name). Check the path.")


def read_csv_bytes(data: bytes, encoding: str = "auto", *, sep: str = ",", what: str = "the CSV") -> tuple[list[dict[str, Any]], str]:
    """Parse CSV bytes into rows of strings (empty cells stay "", so a missing value is visible)."""
    import pandas as pd

    text, enc = decode_text(data, encoding, what=what)
    try:
        df = pd.read_csv(io.StringIO(text), sep=sep, dtype=str, keep_default_na=False, na_filter=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DocumentError(f"{what} is not a readable CSV ({exc}). Check the delimiter and the quoting.") from exc
    return df.to_dict("records"), enc


def _parse_json_rows(text: str, *, jsonl: bool, what: str) -> list[dict[str, Any]]:
    if jsonl:
        rows = []
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DocumentError(f"{what}, line {n}: not valid JSON ({exc.msg}). Fix or delete that line and import again.") from exc
            if not isinstance(obj, dict):
                raise DocumentError(f"{what}, line {n}: expected a JSON object per line, got {type(obj).__name__}.")
            rows.append(obj)
        return rows
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DocumentError(f"{what}: not valid JSON (line {exc.lineno}: {exc.msg}). For one object per line use .jsonl.") from exc
    if isinstance(data, dict):
        lists = [v for v in data.values() if isinstance(v, list)]
        if len(lists) == 1:
            data = lists[0]  # {"data": [...]} / {"train": [...]}
    if not isinstance(data, list):
        raise DocumentError(f"{what}: expected a JSON list of objects (Alpaca format), got {type(data).__name__}.")
    for n, obj in enumerate(data, 1):
        if not isinstance(obj, dict):
            raise DocumentError(f"{what}: item {n} is {type(obj).__name__}, not an object with instruction / output.")
    return data


def _dataset_rows(ds: Any, split: str, what: str) -> tuple[list[dict[str, Any]], list[str]]:
    """Rows of a `datasets` Dataset or DatasetDict; all splits concatenated unless one is named."""
    from datasets import DatasetDict

    if isinstance(ds, DatasetDict):
        names = list(ds.keys())
        if split:
            if split not in ds:
                raise NotFoundError(f"{what} has no split {split!r}. Splits: {', '.join(names)}.")
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
        raise DocumentError(f"{folder} is not a folder written by `datasets` save_to_disk ({exc}).") from exc
    rows, splits = _dataset_rows(ds, split, str(folder))
    return rows, {"kind": "datasets-folder", "path": str(folder), "splits": splits}


def _read_hub_dataset(repo: str, config: DatasetConfig) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    from workbench.models import require_hub

    require_hub(f"load the dataset {repo}")
    from datasets import load_dataset

    files = [f.strip() for f in config.data_files.split(",") if f.strip()]
    try:
        ds = load_dataset(repo, data_files=(files[0] if len(files) == 1 else files) or None)
    except Exception as exc:  # datasets raises many types (HTTP, not found, offline); all mean "could not load"
        raise OfflineError(
            f"Could not load the Hub dataset {repo}" + (f" (data_files={config.data_files})" if files else "")
            + f": {exc.__class__.__name__}: {exc}. Check the repository id, the file names and your access."
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
                    f"Fix the map, e.g. --map instruction=Q,output=A."
                )
            out[target] = given
            continue
        found = next((lower[a] for a in _ALIASES[target] if a in lower), "")
        if not found and target != "input":
            raise ConfigError(
                f"No column for {target!r}: the data has {', '.join(map(repr, cols)) or 'no columns'}. "
                f"Map one, e.g. --map instruction=Q,output=A."
            )
        out[target] = found
    used = [v for v in out.values() if v]
    if len(used) != len(set(used)):
        raise ConfigError(f"One source column is mapped to two targets ({out}). Map each target to its own column.")
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


# --- validation -------------------------------------------------------------------------------


def normalize_text(text: str) -> str:
    """For near-duplicate detection: NFKC, case-folded, punctuation and spaces removed."""
    return re.sub(r"[\W_]+", "", unicodedata.normalize("NFKC", text).casefold())


def _is_missing(v: Any) -> bool:
    if v is None:
        return True
    if isinstance(v, float) and v != v:  # NaN from pandas
        return True
    return isinstance(v, str) and not v.strip()


def _non_text_reason(v: Any) -> str | None:
    if isinstance(v, str):
        m = _BAD_CHARS_RE.search(v)
        if m:
            ch = m.group(0)
            what = "the replacement character U+FFFD (text decoded with the wrong encoding)" if ch == "\ufffd" else f"control character U+{ord(ch):04X}"
            return f"contains {what}"
        return None
    return f"is a {type(v).__name__} ({json.dumps(v, ensure_ascii=False, default=str)[:40]}), not text"


def validate_rows(
    rows: Sequence[Mapping[str, Any]],
    *,
    max_tokens: int | None = None,
    tokenizer: Any = None,
) -> list[Issue]:
    """Every problem of every row, sorted by row: errors (missing, non-text, too long) and duplicates.

    The length check counts the tokens of the Alpaca prompt plus the answer with `tokenizer`; it is
    skipped when no tokenizer is given.
    """
    issues: list[Issue] = []
    ok_rows: list[int] = []
    for i, r in enumerate(rows):
        n = i + 1
        bad = False
        for field, kind in (("instruction", "missing_instruction"), ("output", "missing_output")):
            v = r.get(field)
            if _is_missing(v):
                issues.append(Issue(n, kind, f"row {n}: {field} is empty", field))
                bad = True
        for field in ALPACA_COLUMNS:
            v = r.get(field)
            if _is_missing(v) or (field == "input" and v == ""):
                continue
            reason = _non_text_reason(v)
            if reason:
                issues.append(Issue(n, "non_text", f"row {n}: {field} {reason}", field))
                bad = True
        if not bad:
            ok_rows.append(i)
    if tokenizer is not None and max_tokens and ok_rows:
        texts = [format_prompt(str(rows[i]["instruction"]), str(rows[i].get("input") or ""), template="alpaca") + str(rows[i]["output"])
                 for i in ok_rows]
        lengths = token_lengths(texts, tokenizer)
        for i, length in zip(ok_rows, lengths):
            if length > max_tokens:
                issues.append(Issue(i + 1, "too_long", f"row {i + 1}: {length} tokens, more than max_tokens = {max_tokens}", "output"))
    issues.extend(find_duplicates(rows))
    return sorted(issues, key=lambda x: (x.row, ERROR_KINDS.index(x.kind) if x.is_error else 9))


def token_lengths(texts: Sequence[str], tokenizer: Any, batch: int = 2048) -> list[int]:
    """Token counts without special tokens; `tokenizer` is a `tokenizers.Tokenizer` or a transformers tokenizer."""
    out: list[int] = []
    for start in range(0, len(texts), batch):
        part = list(texts[start:start + batch])
        if hasattr(tokenizer, "encode_batch"):
            out.extend(len(e.ids) for e in tokenizer.encode_batch(part, add_special_tokens=False))
        else:
            out.extend(len(x) for x in tokenizer(part, add_special_tokens=False)["input_ids"])
    return out


def find_duplicates(rows: Sequence[Mapping[str, Any]]) -> list[Issue]:
    """Exact duplicates, near duplicates (equal after `normalize_text`) and the same question with a different answer.

    Each flagged row points to the first row it repeats; the first occurrence itself is not flagged.
    """
    exact: dict[tuple[str, str, str], int] = {}
    near: dict[tuple[str, str, str], int] = {}
    question: dict[tuple[str, str], int] = {}
    issues = []
    for i, r in enumerate(rows):
        vals = tuple(r.get(c) for c in ALPACA_COLUMNS)
        if not all(isinstance(v, str) or v is None for v in vals):
            continue
        ins, inp, out = (v or "" for v in vals)
        if not ins.strip() or not out.strip():
            continue
        n = i + 1
        key = (ins, inp, out)
        nkey = (normalize_text(ins), normalize_text(inp), normalize_text(out))
        qkey = nkey[:2]
        if key in exact:
            issues.append(Issue(n, "duplicate", f"row {n} repeats row {exact[key]} exactly", other_row=exact[key]))
        elif nkey in near:
            issues.append(Issue(n, "near_duplicate", f"row {n} repeats row {near[nkey]} up to case, spaces and punctuation", other_row=near[nkey]))
        elif qkey in question:
            issues.append(Issue(n, "same_question", f"row {n} asks the question of row {question[qkey]} with a different answer", "output",
                                other_row=question[qkey]))
        exact.setdefault(key, n)
        near.setdefault(nkey, n)
        question.setdefault(qkey, n)
    return issues


def row_lengths(rows: Sequence[Mapping[str, Any]], tokenizer: Any = None) -> list[dict[str, Any]]:
    """Per row: characters of instruction, input and output, and (with a tokenizer) tokens of prompt + answer,
    the number the length check compares with max_tokens. Non-text values count as their text form."""
    out = [{"row": i + 1, **{f"{c}_chars": len(str(r.get(c) or "")) for c in ALPACA_COLUMNS}} for i, r in enumerate(rows)]
    if tokenizer is not None and rows:
        texts = [format_prompt(str(r.get("instruction") or ""), str(r.get("input") or ""), template="alpaca") + str(r.get("output") or "")
                 for r in rows]
        for d, n in zip(out, token_lengths(texts, tokenizer)):
            d["tokens"] = n
    return out


def summarize_issues(issues: Sequence[Issue]) -> dict[str, Any]:
    counts: dict[str, int] = {}
    for i in issues:
        counts[i.kind] = counts.get(i.kind, 0) + 1
    return {"errors": sum(1 for i in issues if i.is_error), "warnings": sum(1 for i in issues if not i.is_error), "counts": counts}


_TOKENIZERS: dict[tuple[str, str], Any] = {}


def load_tokenizer(name: str, workspace: Workspace | None = None) -> Any:
    """A tokenizer for counting tokens of a registry model, folder or Hub id (cached per process).

    A folder with `tokenizer.json` gets the Rust `tokenizers.Tokenizer` (0.3 s, no torch import);
    anything else gets `AutoTokenizer`. Both work with `token_lengths`.

    Raises:
        OfflineError: a Hub id that cannot be fetched. ModelError: as `workbench.models.resolve_model`.
    """
    from workbench.models import resolve_model

    ws = workspace or Workspace.default()
    key = (name, str(ws.root))
    if key not in _TOKENIZERS:
        path = resolve_model(name, ws)
        if (Path(path) / "tokenizer.json").is_file():
            from tokenizers import Tokenizer

            _TOKENIZERS[key] = Tokenizer.from_file(str(Path(path) / "tokenizer.json"))
        else:
            from transformers import AutoTokenizer

            try:
                _TOKENIZERS[key] = AutoTokenizer.from_pretrained(path)
            except OSError as exc:
                if not Path(path).exists():
                    raise OfflineError(f"Could not load the tokenizer of {name!r} (the Hub may be unreachable). "
                                       f"Use a packaged model such as 'smollm2-135m' or a local folder.") from exc
                raise ConfigError(f"Could not load the tokenizer in {path}: {exc}") from exc
    return _TOKENIZERS[key]


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
    if (folder / META_FILE).exists() and not overwrite:
        raise ConfigError(f"Dataset {name!r} already exists. Choose another name, or replace it (--force / 'replace').")
    if folder.exists() and overwrite:
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rows = [dict(r) for r in rows]
    _write_jsonl(folder / RAW_FILE, rows)
    now = _now()
    meta = {
        "name": name,
        "created": now,
        "updated": now,
        "rows": len(rows),
        "columns": _columns(rows),
        "source": dict(source),
        "column_map": dict(column_map or {}),
        "settings": dict(settings or {}),
        "split": None,
    }
    _write_meta(folder, meta)
    return _info(folder, meta)


def _columns(rows: Sequence[Mapping[str, Any]]) -> list[str]:
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
    report(f"Reading {label or source}", 0.05)
    raw, src = read_source(source, config)
    if label:
        src["path"] = label
    if not raw:
        raise DocumentError(f"{source} holds no rows. Check the file.")
    columns = list(dict.fromkeys(k for r in raw for k in r))
    cmap = resolve_column_map(columns, config)
    rows = apply_column_map(raw, cmap)
    report(f"Saving {len(rows)} rows", 0.4)
    info = save_dataset(config.name, rows, source=src, column_map=cmap, workspace=ws, overwrite=overwrite,
                        settings={"tokenizer": config.tokenizer, "max_tokens": config.max_tokens})
    report("Checking rows", 0.6)
    issues = check_dataset(config.name, workspace=ws)
    report(f"Imported {len(rows)} rows, {sum(i.is_error for i in issues)} with errors", 1.0)
    return ImportReport(info, issues, src.get("encoding"))


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
    meta = _read_meta(folder)
    rows = [dict(r) for r in rows]
    _write_jsonl(folder / RAW_FILE, rows)
    meta.update(rows=len(rows), columns=_columns(rows), updated=_now())
    meta.setdefault("history", []).append({"at": meta["updated"], "action": note, "rows": len(rows)})
    _write_meta(folder, meta)
    return _info(folder, meta)


def check_dataset(name: str, *, workspace: Workspace | None = None, max_tokens: int | None = None,
                  tokenizer: str | None = None) -> list[Issue]:
    """`validate_rows` on a saved dataset, with the tokenizer and max_tokens it was imported with (or those given)."""
    ws = workspace or Workspace.default()
    meta = _read_meta(dataset_dir(name, ws))
    settings = meta.get("settings", {})
    tok_name = tokenizer if tokenizer is not None else settings.get("tokenizer", "")
    limit = max_tokens if max_tokens is not None else settings.get("max_tokens")
    tok = load_tokenizer(tok_name, ws) if tok_name and limit else None
    return validate_rows(load_rows(name, ws), max_tokens=limit, tokenizer=tok)


def drop_rows(name: str, rows: Iterable[int], workspace: Workspace | None = None) -> DatasetInfo:
    """Delete rows by their 1-based numbers (as `Issue.row` gives them).

    Raises:
        ConfigError: a row number outside 1..len.
    """
    data = load_rows(name, workspace)
    drop = set(rows)
    out_of_range = sorted(n for n in drop if not 1 <= n <= len(data))
    if out_of_range:
        raise ConfigError(f"Rows {out_of_range[:10]} do not exist: dataset {name!r} has rows 1..{len(data)}.")
    kept = [r for i, r in enumerate(data, 1) if i not in drop]
    return save_rows(name, kept, workspace, note=f"dropped {len(drop)} rows")


def fix_rows(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The automatic fixes a user can ask for: non-text values become text, control characters are removed,
    surrounding spaces are stripped. Missing fields and too-long rows need a person (edit or drop)."""
    out = []
    for r in rows:
        new = dict(r)
        for c in ALPACA_COLUMNS:
            v = new.get(c)
            if v is None or (isinstance(v, float) and v != v):
                new[c] = "" if c == "input" else v
                continue
            if not isinstance(v, str):
                v = json.dumps(v, ensure_ascii=False) if isinstance(v, (list, dict)) else str(v)
            new[c] = _BAD_CHARS_RE.sub("", v).strip()
        out.append(new)
    return out


def issue_rows(issues: Iterable[Issue], kinds: Iterable[str] | None = None) -> list[int]:
    """Row numbers of the issues of the given kinds (default: the errors)."""
    wanted = set(kinds) if kinds is not None else set(ERROR_KINDS)
    return sorted({i.row for i in issues if i.kind in wanted})


# --- splitting --------------------------------------------------------------------------------


def split_indices(n: int, config: SplitConfig) -> tuple[list[int], list[int], list[int]]:
    """Row positions of (train, validation, test), exactly as scikit-learn's `train_test_split` gives them:
    first `train_test_split(rows, test_size, random_state=seed)`, then the same on the train part with
    `val_size` (the tutorial's 9:1, then 8:2). The positions depend only on n and the config.

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
            f"Add rows or lower the sizes."
        ) from exc
    return list(train), list(val), list(test)


def question_of(row: Mapping[str, Any]) -> str:
    inp = str(row.get("input") or "")
    return str(row.get("instruction") or "") + (("\n" + inp) if inp.strip() else "")


def find_leakage(
    train: Sequence[Mapping[str, Any]],
    test: Sequence[Mapping[str, Any]],
    *,
    threshold: float = 0.9,
    validation: Sequence[Mapping[str, Any]] = (),
) -> list[Leak]:
    """Test rows whose question (instruction + input) nearly repeats one the model trains on.

    Similarity is the cosine of character 1-3-gram TF-IDF vectors of the normalised questions (1.0 for
    questions equal after `normalize_text`); for each test row the most similar train / validation row
    is reported when it reaches `threshold`.
    """
    if not train and not validation or not test:
        return []
    from sklearn.feature_extraction.text import TfidfVectorizer

    seen = [("train", i, r) for i, r in enumerate(train)] + [("validation", i, r) for i, r in enumerate(validation)]
    seen_q = [normalize_text(question_of(r)) for _, _, r in seen]
    test_q = [normalize_text(question_of(r)) for r in test]
    vec = TfidfVectorizer(analyzer="char", ngram_range=(1, 3), lowercase=False)
    try:
        a = vec.fit_transform(seen_q + test_q)
    except ValueError:  # every question is empty after normalisation
        return []
    s, t = a[: len(seen_q)], a[len(seen_q):]
    leaks = []
    for start in range(0, len(test_q), 256):  # (256, n_train) dense blocks keep memory flat
        sims = (t[start:start + 256] @ s.T).toarray()
        best = sims.argmax(axis=1)
        for k, j in enumerate(best):
            ti = start + k
            sim = 1.0 if test_q[ti] and test_q[ti] == seen_q[j] else float(sims[k, j])
            if test_q[ti] and sim >= threshold - 1e-9:
                split, row_i, r = seen[int(j)]
                leaks.append(Leak(ti + 1, question_of(test[ti]), split, row_i + 1, question_of(r), round(min(sim, 1.0), 4)))
    return leaks


def split_dataset(
    name: str, config: SplitConfig | None = None, *, workspace: Workspace | None = None, progress: Progress | None = None
) -> SplitReport:
    """Split a dataset into train / validation / test files and check them for leakage.

    Writes train.csv, validation.csv, test.csv (and .jsonl each), leakage.json and the split record in
    meta.json (seed, sizes, creation time, the hash of the rows it was made from).

    Raises:
        ConfigError: rows with errors (drop or fix them first) or too few rows.
    """
    import pandas as pd

    config = config or SplitConfig()
    report = progress or (lambda m, f: None)
    ws = workspace or Workspace.default()
    folder = dataset_dir(name, ws)
    meta = _read_meta(folder)
    rows = load_rows(name, ws)
    report("Checking rows", 0.1)
    errors = [i for i in check_dataset(name, workspace=ws) if i.is_error]
    if errors:
        listed = ", ".join(str(n) for n in issue_rows(errors)[:10])
        raise ConfigError(
            f"Dataset {name!r} has {len(errors)} problems in rows {listed}{' ...' if len(issue_rows(errors)) > 10 else ''} "
            f"(e.g. {errors[0].message}). Drop or fix those rows first (`dataset validate {name} --drop-errors`)."
        )
    report("Splitting", 0.3)
    tr, va, te = split_indices(len(rows), config)
    parts = {"train": [rows[i] for i in tr], "validation": [rows[i] for i in va], "test": [rows[i] for i in te]}
    cols = _columns(rows)
    for split, part in parts.items():
        pd.DataFrame(part, columns=cols).to_csv(folder / f"{split}.csv", index=False, encoding="utf-8")
        _write_jsonl(folder / f"{split}.jsonl", part)
    report("Checking test questions against training questions", 0.6)
    leaks = find_leakage(parts["train"], parts["test"], threshold=config.leakage_threshold, validation=parts["validation"])
    (folder / LEAKAGE_FILE).write_text(json.dumps([lk.to_dict() for lk in leaks], ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    sizes = {k: len(v) for k, v in parts.items()}
    meta["split"] = {
        **config.to_dict(),
        "method": "sklearn.model_selection.train_test_split (test), then again on train (validation)",
        "sizes": sizes,
        "created": _now(),
        "raw_rows": len(rows),
        "raw_sha256": _sha256(folder / RAW_FILE),
        "leakage": len(leaks),
    }
    _write_meta(folder, meta)
    report(f"train {sizes['train']}, validation {sizes['validation']}, test {sizes['test']}; {len(leaks)} leaking test rows", 1.0)
    return SplitReport(_info(folder, meta), sizes, leaks)


def load_split(name: str, split: SplitName, workspace: Workspace | None = None) -> list[dict[str, Any]]:
    """The rows of one split (instruction, input, output and any extra columns such as chunk_id, source).

    Training reads "train" (and "validation" for evaluation during training); comparison reads "test".

    Raises:
        ConfigError: an unknown split name.
        NotFoundError: the dataset does not exist or has not been split yet.
    """
    if split not in SPLITS:
        raise ConfigError(f"split = {split!r} is not one of {', '.join(SPLITS)}.")
    folder = dataset_dir(name, workspace)
    meta = _read_meta(folder)
    path = folder / f"{split}.jsonl"
    if not meta.get("split") or not path.is_file():
        raise NotFoundError(f"Dataset {name!r} has not been split yet. Split it first: `python -m workbench dataset split {name}`.")
    return _read_jsonl(path)


def load_leakage(name: str, workspace: Workspace | None = None) -> list[Leak]:
    path = dataset_dir(name, workspace) / LEAKAGE_FILE
    if not path.is_file():
        return []
    return [Leak(**d) for d in json.loads(path.read_text(encoding="utf-8"))]


def train_full_rows(name: str, workspace: Workspace | None = None) -> list[dict[str, Any]]:
    """The train part of the 9:1 split in scikit-learn's order (train and validation together), as the tutorial
    uploads it. Rebuilt from train.jsonl and validation.jsonl by inverting the second split, which depends only
    on the number of rows and the seed."""
    info = dataset_info(name, workspace)
    if not info.split:
        raise NotFoundError(f"Dataset {name!r} has not been split yet. Split it first: `python -m workbench dataset split {name}`.")
    train, val = load_split(name, "train", workspace), load_split(name, "validation", workspace)
    if not val:
        return train
    from sklearn.model_selection import train_test_split

    m = len(train) + len(val)
    a, b = train_test_split(list(range(m)), test_size=info.split["val_size"], random_state=info.split["seed"])
    full: list[dict[str, Any] | None] = [None] * m
    for pos, row in zip(a, train):
        full[pos] = row
    for pos, row in zip(b, val):
        full[pos] = row
    return [r for r in full if r is not None]
