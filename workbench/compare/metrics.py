"""Scoring one answer against its reference, and the statistics over many.

- `exact_match`: normalised strings equal, whitespace ignored (Korean word spacing varies: "5번 통로" = "5번통로").
- `char_f1`: KorQuAD's F1: after normalisation (NFKC, lower case, punctuation and symbols removed), precision
  and recall over the multiset of characters, whitespace excluded. Word-level F1 would punish Korean
  particles ("통로에" vs "통로"); characters give partial credit.
- `rouge_l`: ROUGE-L F1 from the longest common subsequence, over characters by default (`unit="char"`), or
  whitespace tokens (`unit="token"`). Implemented here: the `rouge-score` package's tokenizer keeps only
  `[a-z0-9]`, so every Korean answer scores 0 with it (checked with rouge-score 0.1.2).
- `embedding_similarity`: cosine similarity of the two texts under the workbench's embedding model.
- `retrieval_hit`: for RAG sources, whether a retrieved chunk is the chunk the row was generated from
  (`chunk_id`) or comes from the row's `source` file.
- `mean_ci`: the mean and a bootstrap confidence interval (fixed seed: the same numbers every time).
- `answer_flags`: what makes an answer hard to read, whatever its score: a repeated span (a loop), a sentence of the
  prompt's own instructions, a context header ("[1] (file.txt)").

The LLM judge (1-5 rubric through an endpoint) is `workbench.compare.judge`.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:  # pragma: no cover
    from langchain_core.embeddings import Embeddings

METRICS: tuple[str, ...] = ("exact_match", "char_f1", "rouge_l", "embedding_similarity", "judge", "retrieval_hit")


def normalize_answer(text: str) -> str:
    """KorQuAD-style normalisation: NFKC, lower case, punctuation and symbols removed, whitespace collapsed."""
    text = unicodedata.normalize("NFKC", str(text or "")).lower()
    kept = "".join(" " if unicodedata.category(ch)[0] in "PS" else ch for ch in text)
    return " ".join(kept.split())


def exact_match(prediction: str, reference: str) -> float:
    """1.0 when the normalised strings are equal ignoring whitespace, else 0.0."""
    return float(normalize_answer(prediction).replace(" ", "") == normalize_answer(reference).replace(" ", ""))


def char_f1(prediction: str, reference: str) -> float:
    """F1 over the characters of the normalised strings (whitespace excluded), as KorQuAD scores answers.

    Two empty strings score 1.0; one empty string scores 0.0.
    """
    pred = list(normalize_answer(prediction).replace(" ", ""))
    ref = list(normalize_answer(reference).replace(" ", ""))
    if not pred or not ref:
        return float(pred == ref)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def lcs_length(a: Sequence[Any], b: Sequence[Any]) -> int:
    """Length of the longest common subsequence (dynamic programming, O(len(a) * len(b)) time, O(len(b)) memory)."""
    if len(a) < len(b):
        a, b = b, a
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def rouge_l(prediction: str, reference: str, unit: Literal["char", "token"] = "char") -> float:
    """ROUGE-L F1 (beta = 1) over characters (whitespace excluded) or whitespace tokens of the normalised texts."""
    p, r = normalize_answer(prediction), normalize_answer(reference)
    a, b = (list(p.replace(" ", "")), list(r.replace(" ", ""))) if unit == "char" else (p.split(), r.split())
    if not a or not b:
        return float(a == b)
    lcs = lcs_length(a, b)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(a), lcs / len(b)
    return 2 * precision * recall / (precision + recall)


def _cosine(u: Sequence[float], v: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(u, v))
    nu, nv = math.sqrt(sum(x * x for x in u)), math.sqrt(sum(y * y for y in v))
    return dot / (nu * nv) if nu > 0 and nv > 0 else 0.0


def embedding_similarity(predictions: Sequence[str], references: Sequence[str], embeddings: "Embeddings") -> list[float]:
    """Cosine similarity of each prediction with its reference under `embeddings` (one batch call).

    Both sides go through `embed_documents`, so a model with asymmetric prefixes (e5's "query: " /
    "passage: ") treats them alike. An empty prediction scores 0.0.
    """
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
    idx = [i for i, p in enumerate(predictions) if str(p).strip()]
    out = [0.0] * len(predictions)
    if not idx:
        return out
    vecs = embeddings.embed_documents([str(predictions[i]) for i in idx] + [str(references[i]) for i in idx])
    for n, i in enumerate(idx):
        out[i] = round(_cosine(vecs[n], vecs[len(idx) + n]), 6)
    return out


def retrieval_hit(row: Mapping[str, Any], chunks: Sequence[Any]) -> bool | None:
    """Whether the retrieved `chunks` include the row's `chunk_id`, or else a chunk from the row's `source` file.

    Returns None when the row carries neither (hit@k cannot be measured for it).
    """
    def meta(c: Any) -> Mapping[str, Any]:
        return (c.get("metadata") if isinstance(c, Mapping) else getattr(c, "metadata", None)) or {}

    cid = str(row.get("chunk_id") or "").strip()
    if cid:
        return any(str(meta(c).get("chunk_id", "")) == cid for c in chunks)
    src = str(row.get("source") or "").strip()
    if src:
        name = Path(src).name
        return any(Path(str(meta(c).get("source", ""))).name == name for c in chunks)
    return None


def mean_ci(values: Sequence[float | None], confidence: float = 0.95, n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Mean and a percentile-bootstrap confidence interval; None values are missing and left out.

    Returns {"mean", "lo", "hi", "n", "missing"}; mean/lo/hi are None when nothing was measured.
    """
    import numpy as np

    present = [float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    missing = len(values) - len(present)
    if not present:
        return {"mean": None, "lo": None, "hi": None, "n": 0, "missing": missing}
    arr = np.asarray(present, dtype=np.float64)
    mean = float(arr.mean())
    if len(arr) == 1 or float(arr.min()) == float(arr.max()):
        lo = hi = mean
    else:
        rng = np.random.default_rng(seed)
        boots = rng.choice(arr, size=(n_boot, len(arr)), replace=True).mean(axis=1)
        alpha = (1 - confidence) / 2
        lo, hi = float(np.quantile(boots, alpha)), float(np.quantile(boots, 1 - alpha))
    return {"mean": round(mean, 4), "lo": round(lo, 4), "hi": round(hi, 4), "n": len(present), "missing": missing}


def score_answer(prediction: str, reference: str) -> dict[str, float]:
    """The cheap text metrics of one answer."""
    return {
        "exact_match": exact_match(prediction, reference),
        "char_f1": round(char_f1(prediction, reference), 4),
        "rouge_l": round(rouge_l(prediction, reference), 4),
    }


# --- readable answers ----------------------------------------------------------------------------------------------

_HEADER = re.compile(r"(^|\n)\s*\[\d{1,2}\]|\((?:source: ?)?[^()\s]+\.(?:md|txt|csv|html?|pdf|docx|json|jsonl)\)",
                     re.IGNORECASE)


def repeated_span(text: str, min_chars: int = 20, times: int = 3) -> bool:
    """Whether `text` holds the same run of `min_chars` characters `times` times or more (whitespace collapsed, the
    occurrences not overlapping): the mark of an answer that loops. Measured on the sample shop: none of its 499
    reference answers, and every one of 30 base answers of the pretrained Gemma asked as issue 21 found them (each
    repeated the question or a phrase until max_new_tokens); prose that reuses a phrase once or twice is not a loop."""
    t = " ".join(str(text or "").split())
    for start in range(0, max(0, len(t) - times * min_chars + 1)):
        gram, found, at = t[start:start + min_chars], 0, start
        while found < times:
            at = t.find(gram, at)
            if at < 0:
                break
            found, at = found + 1, at + min_chars
        if found >= times:
            return True
    return False


def copied_sentences(answer: str, sentences: Sequence[str], min_chars: int = 16) -> bool:
    """Whether `answer` recites one of `sentences` (its first `min_chars` characters, or the whole of a shorter
    one): a prompt's instruction that the model repeated instead of following."""
    a = " ".join(str(answer or "").split())
    return any(" ".join(s.split())[:min_chars] in a for s in sentences if s and s.strip())


def has_context_header(answer: str) -> bool:
    """Whether `answer` copies a retrieved chunk's header: a "[1]" at a line start, or a file name in parentheses."""
    return bool(_HEADER.search(str(answer or "")))


def answer_flags(answer: str, prompt_sentences: Sequence[str] = ()) -> dict[str, bool]:
    """What makes `answer` hard to read: "loop" (a span repeated three times), "instruction" (a sentence of `prompt_sentences`,
    the prompt's own instructions, recited), "header" (a context header copied)."""
    return {"loop": repeated_span(answer), "instruction": copied_sentences(answer, prompt_sentences),
            "header": has_context_header(answer)}
