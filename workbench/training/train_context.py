"""RAG-aware fine-tuning: the retrieved context of every training row, built once per run (TrainConfig.context).

A model fine-tuned on bare questions never learned to read a context: given one (the fine-tuned + RAG source) it
copies chunks or recites the RAG instruction. Training on the prompt that source answers with fixes that (RAFT,
Zhang et al. 2024). Two stages, nanoGPT style (data preparation writes an artifact, training only reads it):

1. `prepare_context(run_dir, config, ...)`: before the model loads, retrieve the chunks of every train and validation
   row from `config.context_collection` with that collection's retrieval settings (`collection_retrieval`), and write
   them to `<run>/context.jsonl` (one line per row, inspectable) and a summary to `<run>/context.json`. A resumed run
   reads the file back instead of retrieving again.
   - `retrieved`: the top `context_k` chunks for the question, best first: what the answer path retrieves.
   - `raft`: `context_oracle_share` of the rows (exactly round(P x n), seeded) get their oracle chunk plus
     `context_k - 1` distractors in a seeded random order; the rest get `context_k` distractors only. The oracle is
     the row's `chunk_id` when the row has one; else, when it has a `source` file, the chunk of that file (among the
     three it ranks best for the question) whose text holds most of the answer; else the retrieved chunk that holds
     most of the answer, if it holds at least half of it (`MIN_OVERLAP`). A row with no oracle found keeps the
     retrieved chunks (as `retrieved`) and is counted. Distractors are the other retrieved chunks, never the oracle.
2. `fit_context_rows(rows, tokenizer, ...)`: in the trainer, with the model's tokenizer: each row's prompt is
   `prompts.context_prompt` (the same function the run's fine-tuned + RAG answers use), and a row longer than
   max_seq_length has its chunks shortened (never the answer) until it fits. Counts the truncated rows and the
   extra tokens the context costs against the bare prompts.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.common.config import Workspace
from workbench.common.errors import ConfigError, NotFoundError
from workbench.common.runfiles import read_jsonl, write_json, write_text
from workbench.common.texts import Text
from workbench.models.prompts import context_chunks, context_prompt, format_example

if TYPE_CHECKING:  # pragma: no cover
    from transformers import PreTrainedTokenizerBase

    from workbench.kb.retrieval import RetrievalConfig, RetrievedChunk
    from workbench.training.finetune import TrainConfig

CONTEXT_FILE = "context.jsonl"
SUMMARY_FILE = "context.json"
MIN_OVERLAP = 0.5  # share of the answer's character bigrams a chunk must hold to count as its oracle (no source known)
SOURCE_CANDIDATES = 3  # chunks of the row's own source file ranked for the question, among which the oracle is picked
SHRINK = 0.8  # a row too long for max_seq_length: each pass keeps 80 % of the longest chunk's characters

Retriever = Callable[[str, "RetrievalConfig"], list["RetrievedChunk"]]


def collection_retrieval(collection: str, workspace: Workspace | None = None, *, k: int) -> "RetrievalConfig":
    """How the training context is retrieved from `collection`: that collection's own retrieval settings (the defaults,
    then what the retrieval lab saved for it: `retrieval.collection_config`) with `k` chunks, as its answers retrieve."""
    from workbench.kb.retrieval import collection_config

    return collection_config(collection, workspace, k=k)


def answer_overlap(answer: str, text: str) -> float:
    """The share of the answer's character bigrams (spaces removed) that occur in `text`: 1.0 when the chunk holds
    the whole answer. Bigrams, not words: Korean particles glue onto words ("현금으로" vs "현금")."""
    a, t = "".join(answer.split()), "".join(text.split())
    grams = {a[i:i + 2] for i in range(len(a) - 1)}
    if not grams:
        return 0.0
    have = {t[i:i + 2] for i in range(len(t) - 1)}
    return len(grams & have) / len(grams)


def _query(row: Mapping[str, Any]) -> str:
    """The retrieval query of a row: what `answer.retrieve_context` asks for the same row."""
    return f"{row.get('instruction') or ''}\n{row.get('input') or ''}".strip()


def _chunk_id(chunk: Any) -> str:
    return str((getattr(chunk, "metadata", None) or {}).get("chunk_id", ""))


def find_oracle(row: Mapping[str, Any], pool: Sequence[Any], retrieve: Retriever, base: "RetrievalConfig"
                ) -> tuple[Any | None, str]:
    """The row's oracle chunk and how it was found ("chunk_id", "source", "overlap"), or (None, "") when unknown."""
    from workbench.kb.retrieval import only_sources

    answer, query = str(row.get("output") or ""), _query(row)
    if str(row.get("chunk_id") or "").strip():
        cid = str(row["chunk_id"]).strip()
        hit = next((c for c in pool if _chunk_id(c) == cid), None)
        if hit is None:
            found = retrieve(query, base.replace(k=1, filter={"chunk_id": cid}))
            hit = found[0] if found else None
        if hit is not None:
            return hit, "chunk_id"
    source = Path(str(row.get("source") or "").strip()).name
    if source:
        candidates = retrieve(query, base.replace(k=SOURCE_CANDIDATES, filter=only_sources(base.filter, [source])))
        if candidates:  # the best-ranked wins ties (max keeps the first)
            return max(candidates, key=lambda c: answer_overlap(answer, c.text)), "source"
    best = max(pool, key=lambda c: answer_overlap(answer, c.text), default=None)
    if best is not None and answer_overlap(answer, best.text) >= MIN_OVERLAP:
        return best, "overlap"
    return None, ""


def select_chunks(row: Mapping[str, Any], pool: Sequence[Any], *, mode: str, k: int, with_oracle: bool,
                  rng: random.Random, retrieve: Retriever, base: "RetrievalConfig") -> tuple[list[Any], dict[str, Any]]:
    """The `k` chunks of one row and what they are: {"oracle": chunk id or None, "oracle_by", "oracle_in_context"}.

    `pool` holds the chunks retrieved for the row's question, best first (k + 1 of them for raft: one may be the
    oracle and is left out of the distractors)."""
    if mode == "retrieved":
        return list(pool[:k]), {"oracle": None, "oracle_by": "", "oracle_in_context": None}
    oracle, how = find_oracle(row, pool, retrieve, base)
    if oracle is None:  # no oracle known: the retrieved chunks, as answer time sees them
        return list(pool[:k]), {"oracle": None, "oracle_by": "", "oracle_in_context": None}
    distractors = [c for c in pool if _chunk_id(c) != _chunk_id(oracle)]
    chunks = [oracle, *distractors[: k - 1]] if with_oracle else distractors[:k]
    rng.shuffle(chunks)  # the oracle anywhere, as a real retriever may rank it (RAFT)
    return chunks, {"oracle": _chunk_id(oracle), "oracle_by": how, "oracle_in_context": with_oracle}


def oracle_rows(n: int, share: float, seed: int) -> set[int]:
    """Exactly round(share x n) of the row indices 0..n-1, drawn with `seed`."""
    order = list(range(n))
    random.Random(seed).shuffle(order)
    return set(order[: round(share * n)])


def build_context(config: "TrainConfig", splits: Mapping[str, Sequence[Mapping[str, Any]]],
                  workspace: Workspace | None = None, *, retrieve: Retriever | None = None,
                  report: Callable[[str, float], None] | None = None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The context lines of every row of `splits` ({"train": rows, "validation": rows}) and their summary.

    Raises:
        NotFoundError: the collection does not exist. ConfigError: context is 'none'.
    """
    if config.context == "none":
        raise ConfigError("TrainConfig.context is 'none': there is no context to build.",
                          ko="TrainConfig.context가 'none'입니다: 만들 문맥이 없습니다.")
    ws = workspace or Workspace.default()
    base = collection_retrieval(config.context_collection, ws, k=config.context_k)
    if retrieve is None:
        from workbench.kb.retrieval import retrieve as _retrieve

        def retrieve(query: str, cfg: "RetrievalConfig") -> list["RetrievedChunk"]:
            return _retrieve(config.context_collection, query, cfg, ws)

    pool_k = config.context_k + (1 if config.context == "raft" else 0)
    total, done, t0 = sum(len(r) for r in splits.values()), 0, time.perf_counter()
    lines: list[dict[str, Any]] = []
    for s, (split, rows) in enumerate(splits.items()):
        chosen = oracle_rows(len(rows), config.context_oracle_share, config.seed + s)
        for i, row in enumerate(rows):
            rng = random.Random(f"{config.seed}:{split}:{i}")
            pool = retrieve(_query(row), base.replace(k=pool_k))
            chunks, what = select_chunks(row, pool, mode=config.context, k=config.context_k, with_oracle=i in chosen,
                                         rng=rng, retrieve=retrieve, base=base)
            lines.append({"split": split, "row": i, "instruction": str(row.get("instruction") or ""),
                          "input": str(row.get("input") or ""), "output": str(row.get("output") or ""),
                          "chunks": context_chunks(chunks, config.context_k, config.context_max_chars), **what})
            done += 1
            if report is not None and (done % 25 == 0 or done == total):
                report(Text(f"Retrieved training context for {done}/{total} rows", f"학습 문맥 검색: {done}/{total}행"),
                       done / max(total, 1))
    return lines, _summary(config, lines, base, time.perf_counter() - t0)


def _summary(config: "TrainConfig", lines: Sequence[Mapping[str, Any]], base: "RetrievalConfig", seconds: float
             ) -> dict[str, Any]:
    by = [str(x.get("oracle_by") or "") for x in lines]
    return {"context": config.context, "collection": config.context_collection, "k": config.context_k,
            "max_chars": config.context_max_chars, "lang": config.context_lang,
            "oracle_share": config.context_oracle_share if config.context == "raft" else None,
            "retrieval": base.to_dict(), "rows": len(lines),
            "rows_by_split": {s: sum(1 for x in lines if x["split"] == s) for s in dict.fromkeys(x["split"] for x in lines)},
            "with_oracle": sum(1 for x in lines if x.get("oracle_in_context")),
            "distractors_only": sum(1 for x in lines if x.get("oracle_in_context") is False),
            "no_oracle_found": sum(1 for x in lines if config.context == "raft" and not x.get("oracle")),
            "oracle_by": {k: by.count(k) for k in ("chunk_id", "source", "overlap") if by.count(k)},
            "mean_context_chars": round(sum(sum(len(c["text"]) for c in x["chunks"]) for x in lines) / max(len(lines), 1), 1),
            "seconds": round(seconds, 1)}


def prepare_context(run_dir: str | Path, config: "TrainConfig", splits: Mapping[str, Sequence[Mapping[str, Any]]],
                    workspace: Workspace | None = None, *, report: Callable[[str, float], None] | None = None,
                    write: bool = True, retrieve: Retriever | None = None
                    ) -> tuple[dict[str, list[dict[str, Any]]], dict[str, Any]]:
    """The rows of `splits` with their context, from `<run_dir>/context.jsonl` (built and written first when it is
    not there yet; `write=False`: built, not written, for the other processes of a torchrun); returns
    ({split: lines}, the summary).

    Raises:
        NotFoundError: the collection does not exist (the message names it and the fix).
    """
    run_dir = Path(run_dir)
    path, summary_path = run_dir / CONTEXT_FILE, run_dir / SUMMARY_FILE
    if path.is_file() and summary_path.is_file():  # a resumed run: the same context as before the interruption
        lines = read_jsonl(path)
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
    else:
        try:
            lines, summary = build_context(config, splits, workspace, retrieve=retrieve, report=report)
        except NotFoundError as exc:
            raise NotFoundError(f"{exc} TrainConfig.context_collection = {config.context_collection!r}: ingest it on the "
                                f"Knowledge base page, or pick another collection.",
                                ko=f"{getattr(exc, 'ko', exc)} TrainConfig.context_collection = "
                                   f"{config.context_collection!r}: 지식 베이스 페이지에서 수집하거나 다른 컬렉션을 고르세요.") from exc
        if write:
            write_text(path, "".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines))
            write_json(summary_path, summary)  # last: its presence says context.jsonl is complete
    return {s: [x for x in lines if x["split"] == s] for s in splits}, summary


def read_context(run_dir: str | Path, limit: int | None = None) -> list[dict[str, Any]]:
    """The first `limit` lines of a run's context.jsonl (all with None; [] when the run has none)."""
    path = Path(run_dir) / CONTEXT_FILE
    if not path.is_file():
        return []
    lines = read_jsonl(path)
    return lines if limit is None else lines[:limit]


def _n_tokens(tokenizer: "PreTrainedTokenizerBase", row: Mapping[str, Any], template: str) -> int:
    ex = format_example(row, template=template, tokenizer=tokenizer)  # type: ignore[arg-type]
    return len(tokenizer(ex["prompt"] + ex["completion"], add_special_tokens=False)["input_ids"])


def fit_context_rows(lines: Sequence[Mapping[str, Any]], tokenizer: "PreTrainedTokenizerBase", template: str,
                     max_len: int, *, k: int, max_chars: int, lang: str) -> tuple[list[dict[str, str]], dict[str, int]]:
    """Training rows ({"instruction", "input", "output"}) from context lines, each within `max_len` tokens.

    The prompt is `prompts.context_prompt` of the line's chunks. A row over `max_len` loses context, never answer:
    every chunk is cut to 80 % of the longest one's length, again, until the row fits; when even no context is too
    long, the row goes without context (and the trainer cuts it at the end, as any row). Returns the rows and
    {"rows", "truncated_rows", "context_dropped_rows", "plain_tokens", "context_tokens", "extra_tokens"}.
    """
    out: list[dict[str, str]] = []
    stats = {"rows": 0, "truncated_rows": 0, "context_dropped_rows": 0, "plain_tokens": 0, "context_tokens": 0}
    for line in lines:
        q, ri, answer = line["instruction"], line.get("input") or "", line["output"]
        chunks = [dict(c) for c in line["chunks"]]
        limit = max_chars
        instruction, inp = context_prompt(q, ri, chunks, k=k, max_chars=limit, lang=lang)
        n = _n_tokens(tokenizer, {"instruction": instruction, "input": inp, "output": answer}, template)
        cut = False
        while n > max_len and chunks:
            cut = True
            longest = max(len(c["text"]) for c in context_chunks(chunks, k, limit))
            limit = int(longest * SHRINK)
            if limit < 20:  # nothing worth reading is left: no context at all
                chunks, limit = [], max_chars
                stats["context_dropped_rows"] += 1
            instruction, inp = context_prompt(q, ri, chunks, k=k, max_chars=limit, lang=lang)
            n = _n_tokens(tokenizer, {"instruction": instruction, "input": inp, "output": answer}, template)
        stats["rows"] += 1
        stats["truncated_rows"] += cut
        stats["context_tokens"] += n
        stats["plain_tokens"] += _n_tokens(tokenizer, {"instruction": q, "input": ri, "output": answer}, template)
        out.append({"instruction": instruction, "input": inp, "output": answer})
    stats["extra_tokens"] = stats["context_tokens"] - stats["plain_tokens"]
    return out, stats


def context_preview(config: "TrainConfig", workspace: Workspace | None = None, *, rows: int = 40,
                    retrieve: Retriever | None = None) -> dict[str, Any]:
    """Before a run starts: how many training rows would have their context cut at the config's max_seq_length, on
    the first `rows` rows of the train split (retrieved as training retrieves them), and the length that keeps them
    all. Returns {"rows", "max_len", "cut", "share", "keeps_all", "median_tokens", "seconds"}; lengths are whole
    rows (prompt with its uncut context, and the answer) in the base model's tokens.

    Raises:
        NotFoundError: the dataset, its split or the collection does not exist. ConfigError: context is 'none'.
    """
    from transformers import AutoTokenizer

    from workbench.dataset.alpaca import load_splits
    from workbench.models.registry import resolve_model
    from workbench.training.finetune import resolve_settings

    ws = workspace or Workspace.default()
    t0 = time.perf_counter()
    sample = load_splits(config.dataset, ("train",), ws)["train"][: max(1, rows)]
    lines, _ = build_context(config, {"train": sample}, ws, retrieve=retrieve)
    tokenizer = AutoTokenizer.from_pretrained(resolve_model(config.base_model, ws))
    max_len = resolve_settings(config).max_seq_length
    lengths = sorted(_n_tokens(tokenizer, dict(zip(("instruction", "input"), context_prompt(
        x["instruction"], x["input"], x["chunks"], k=config.context_k, max_chars=config.context_max_chars,
        lang=config.context_lang)), output=x["output"]), config.prompt_template) for x in lines)
    cut = sum(n > max_len for n in lengths)
    return {"rows": len(lengths), "max_len": max_len, "cut": cut, "share": round(cut / max(len(lengths), 1), 3),
            "keeps_all": -(-lengths[-1] // 64) * 64 if lengths else max_len,
            "median_tokens": lengths[len(lengths) // 2] if lengths else 0, "seconds": round(time.perf_counter() - t0, 1)}
