"""Checking Alpaca rows before they are split: missing or non-text values, rows too long for the model, duplicates.

Nothing here changes a row: every problem is an `Issue` (1-based row number, kind, message). Errors
(`ERROR_KINDS`) must be fixed or dropped before a split; warnings (rows longer than the model takes, which
training truncates; duplicates) are for the user to decide.
"""

from __future__ import annotations

import dataclasses
import json
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from workbench.common.config import Workspace
from workbench.common.errors import ConfigError, OfflineError
from workbench.common.texts import Text
from workbench.dataset.alpaca_io import ALPACA_COLUMNS
from workbench.models.prompts import format_prompt

_BAD_CHARS_RE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffd]")

IssueKind = Literal[
    "missing_instruction", "missing_output", "non_text",  # errors: must be dropped or fixed
    "too_long", "duplicate", "near_duplicate", "same_question",  # warnings: shown, the user decides
]
# A row longer than the model's context is not broken: training cuts it at max_seq_length (and the warnings
# count such rows). As an error it cost a real store FAQ a quarter of its rows before it could be split.
ERROR_KINDS: tuple[str, ...] = ("missing_instruction", "missing_output", "non_text")
ISSUE_LABELS: dict[str, tuple[str, str]] = {  # (English, Korean), as the Dataset page shows them
    "missing_instruction": ("instruction is empty", "질문(instruction) 없음"),
    "missing_output": ("output is empty", "답변(output) 없음"),
    "non_text": ("not text", "텍스트 아님"),
    "too_long": ("too long", "너무 김"),
    "duplicate": ("exact duplicate", "완전 중복"),
    "near_duplicate": ("near duplicate", "거의 중복"),
    "same_question": ("same question, other answer", "같은 질문, 다른 답변"),
}


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
                issues.append(Issue(n, kind, Text(f"row {n}: {field} is empty", f"{n}행: {field}이(가) 비어 있음"), field))
                bad = True
        for field in ALPACA_COLUMNS:
            v = r.get(field)
            if _is_missing(v) or (field == "input" and v == ""):
                continue
            reason = _non_text_reason(v)
            if reason:
                issues.append(Issue(n, "non_text", Text(f"row {n}: {field} {reason}", f"{n}행: {field}이(가) 텍스트가 아님 ({reason})"), field))
                bad = True
        if not bad:
            ok_rows.append(i)
    if tokenizer is not None and max_tokens and ok_rows:
        texts = [format_prompt(str(rows[i]["instruction"]), str(rows[i].get("input") or ""), template="alpaca") + str(rows[i]["output"])
                 for i in ok_rows]
        lengths = token_lengths(texts, tokenizer)
        for i, length in zip(ok_rows, lengths):
            if length > max_tokens:
                issues.append(Issue(i + 1, "too_long", Text(
                    f"row {i + 1}: {length} tokens, more than max_tokens = {max_tokens}; training cuts it to {max_tokens} tokens",
                    f"{i + 1}행: {length}토큰으로 max_tokens = {max_tokens}보다 깁니다. 학습은 {max_tokens}토큰으로 자릅니다"), "output"))
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
            issues.append(Issue(n, "duplicate", Text(f"row {n} repeats row {exact[key]} exactly", f"{n}행이 {exact[key]}행과 똑같음"),
                                other_row=exact[key]))
        elif nkey in near:
            issues.append(Issue(n, "near_duplicate", Text(f"row {n} repeats row {near[nkey]} up to case, spaces and punctuation",
                                                           f"{n}행이 대소문자, 공백, 문장 부호를 빼면 {near[nkey]}행과 같음"),
                                other_row=near[nkey]))
        elif qkey in question:
            issues.append(Issue(n, "same_question", Text(f"row {n} asks the question of row {question[qkey]} with a different answer",
                                                          f"{n}행이 {question[qkey]}행과 같은 질문에 다른 답을 함"), "output",
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

# When a model says nothing about its context length: the tutorial's max_seq_length.
DEFAULT_MAX_TOKENS = 4096


def model_max_tokens(name: str, workspace: Workspace | None = None) -> int:
    """The longest sequence model `name` takes (its config's `max_position_embeddings`, else its tokenizer's
    `model_max_length`): the length above which a row is flagged `too_long`, since training cuts it there.
    `DEFAULT_MAX_TOKENS` when the model's files say nothing (or are not local)."""
    from workbench.models.registry import resolve_model

    folder = Path(resolve_model(name, workspace or Workspace.default()))
    for file, key in (("config.json", "max_position_embeddings"), ("tokenizer_config.json", "model_max_length")):
        try:
            value = json.loads((folder / file).read_text(encoding="utf-8")).get(key)
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(value, int) and 0 < value < 10**7:  # transformers writes 1e30 for "no limit"
            return value
    return DEFAULT_MAX_TOKENS


def load_tokenizer(name: str, workspace: Workspace | None = None) -> Any:
    """A tokenizer for counting tokens of a registry model, folder or Hub id (cached per process).

    A folder with `tokenizer.json` gets the Rust `tokenizers.Tokenizer` (0.3 s, no torch import);
    anything else gets `AutoTokenizer`. Both work with `token_lengths`.

    Raises:
        OfflineError: a Hub id that cannot be fetched. ModelError: as `workbench.models.registry.resolve_model`.
    """
    from workbench.models.registry import resolve_model

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
                                       f"Use a packaged model such as 'smollm2-135m' or a local folder.",
                                       ko=f"{name!r}의 토크나이저를 불러오지 못했습니다 (Hub에 연결되지 않을 "
                                          f"수 있습니다). 'smollm2-135m' 같은 내장 모델이나 로컬 폴더를 쓰세요.") from exc
                raise ConfigError(f"Could not load the tokenizer in {path}: {exc}",
                                  ko=f"{path}의 토크나이저를 불러오지 못했습니다: {exc}") from exc
    return _TOKENIZERS[key]


def issue_rows(issues: Iterable[Issue], kinds: Iterable[str] | None = None) -> list[int]:
    """Row numbers of the issues of the given kinds (default: the errors)."""
    wanted = set(kinds) if kinds is not None else set(ERROR_KINDS)
    return sorted({i.row for i in issues if i.kind in wanted})


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


# --- leakage: test questions that nearly repeat a training question ----------------------------


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
