"""The retrieval lab: how well each way of retrieving finds the right chunk for the user's own questions.

A dataset row already is a retrieval test: its question, and the document (`source`) or chunk (`chunk_id`) it was
written from (generated rows carry both, `workbench.dataset.synth`). A CSV with the columns `question` and `source` works too.
For every setting (dense, MMR, each BM25 index alone, the default hybrid, the hybrid at a grid of lexical weights) the
lab retrieves the top 10 for each question and reports hit@1/3/5/10 and MRR@10, each with a 95% bootstrap interval
(`metrics.mean_ci`). Optionally it re-chunks the collection's documents several ways, each into a scratch collection
that is deleted afterwards, and measures the default and the best setting there, with the time each ingest took.

The best setting (by MRR@10, then hit@1) can be saved as the collection's own (`retrieval.save_retrieval`); search,
ask, Compare and evaluate then use it unless told otherwise (`retrieval.collection_config`).

`run_lab` is the entry point; `workbench.compare.retrieval_lab_jobs` runs it as a background job.
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

from workbench.common.config import BaseConfig, Workspace, setting
from workbench.common.errors import ConfigError, NotFoundError
from workbench.common.progress import Progress
from workbench.common.texts import Text, prefixed
from workbench.kb.modes import MODES
from workbench.kb.retrieval import DEFAULT_LEXICAL_WEIGHT, SAVED_FIELDS, RetrievalConfig, retrieve, save_retrieval
from workbench.kb.vectordb import SCRATCH_PREFIX

KS = (1, 3, 5, 10)
DEPTH = 10  # the ranks a question is scored on (MRR@10)
DEFAULT_WEIGHTS = (0.0, 0.2, 0.4, 0.5, 0.6, 0.7, 0.8, 1.0)
DEFAULT_ROW = "hybrid (default)"
METRIC_KEYS = tuple(f"hit@{k}" for k in KS) + ("mrr@10",)


@dataclasses.dataclass
class LabConfig(BaseConfig):
    """What the retrieval lab measures, on which questions."""

    collection: str = setting("", "The collection to measure.", help_ko="검색 성능을 볼 컬렉션.", label="Collection",
                              label_ko="컬렉션")
    dataset: str = setting("", "Alpaca dataset whose rows are the questions (its source / chunk_id columns are the gold).",
                           help_ko="행이 질문이 되는 Alpaca 데이터셋 (source / chunk_id 열이 정답).",
                           label="Dataset", label_ko="데이터셋")
    split: Literal["test", "train", "validation", "all"] = setting(
        "test", "Which rows of the dataset: one split, or all rows (a dataset that was never split).",
        help_ko="데이터셋의 어느 행: 한 분할, 또는 전체 행 (분할하지 않은 데이터셋).", label="Rows", label_ko="행")
    csv: str = setting("", "Or a CSV file with the columns question and source (and optionally chunk_id).",
                       help_ko="또는 question, source 열이 있는 CSV 파일 (chunk_id 열은 선택).",
                       label="CSV file", label_ko="CSV 파일")
    limit: int = setting(200, "At most this many questions (a fixed random sample; 0 = all).",
                         help_ko="최대 질문 수 (고정된 무작위 표본; 0 = 전부).", min=0, max=100_000,
                         label="Questions (0 = all)", label_ko="질문 수 (0 = 전부)", step=50)
    match: Literal["source", "chunk"] = setting(
        "source", "A hit: a chunk from the row's document (source), or the row's exact chunk (chunk; rows without a "
        "chunk_id fall back to the document).",
        help_ko="적중: 행의 문서에서 나온 청크 (source), 또는 행의 바로 그 청크 (chunk; chunk_id가 없는 행은 문서 기준).",
        label="A hit is", label_ko="적중 기준", widget="radio",
        choice_labels={"source": ("the right document", "맞는 문서"), "chunk": ("the exact chunk", "바로 그 청크")})
    weights: tuple[float, ...] = setting(
        DEFAULT_WEIGHTS, "Hybrid lexical weights to try (0 = vectors only, 1 = BM25 only).",
        help_ko="시험할 하이브리드 BM25 가중치 (0 = 벡터만, 1 = BM25만).", label="BM25 weights", label_ko="BM25 가중치")
    chunkings: tuple[str, ...] = setting(
        (), "Chunkings to try, each splitter:size:overlap (e.g. recursive:300:30); each is built in a scratch "
        "collection that is deleted afterwards. Empty: only the collection as it is.",
        help_ko="시험할 청크 나누기, 각각 splitter:size:overlap (예: recursive:300:30); 임시 컬렉션에 만들고 끝나면 지웁니다. "
        "비우면 지금의 컬렉션만.", label="Chunkings", label_ko="청크 나누기")
    seed: int = setting(0, "Seed of the question sample and the bootstrap.", help_ko="질문 표본과 부트스트랩의 시드.",
                        min=0, label="Seed", label_ko="시드")

    def validate(self) -> None:
        super().validate()
        if any(not 0.0 <= w <= 1.0 for w in self.weights):
            raise ConfigError(f"LabConfig.weights = {list(self.weights)}: every weight must lie between 0 and 1.",
                              ko=f"LabConfig.weights = {list(self.weights)}: 모든 가중치는 0과 1 사이여야 합니다.")
        for spec in self.chunkings:
            parse_chunking(spec)


@dataclasses.dataclass
class LabQuestion:
    """One test question and where its answer lives."""

    question: str
    source: str
    chunk_id: str = ""


# --- questions --------------------------------------------------------------------------------------------------


def parse_chunking(spec: str) -> Any:
    """"recursive:300:30" -> ChunkingConfig(splitter="recursive", chunk_size=300, chunk_overlap=30).

    Raises:
        ConfigError: not three parts, or values ChunkingConfig rejects.
    """
    from workbench.kb.chunking import ChunkingConfig

    parts = str(spec).strip().split(":")
    if len(parts) != 3 or not parts[1].strip().isdigit() or not parts[2].strip().isdigit():
        raise ConfigError(f"Chunking {spec!r} is not splitter:size:overlap. Write e.g. recursive:300:30.",
                          ko=f"청킹 {spec!r}이(가) splitter:크기:겹침 형식이 아닙니다. 예: recursive:300:30.")
    return ChunkingConfig(splitter=parts[0].strip(), chunk_size=int(parts[1]), chunk_overlap=int(parts[2]))  # type: ignore[arg-type]


def questions_from_rows(rows: Sequence[dict[str, Any]], what: str) -> list[LabQuestion]:
    """Rows with a question (`question`, or `instruction` + `input`) and a `source` (or `chunk_id`).

    Raises:
        ConfigError: no row carries a source or chunk_id.
    """
    out = []
    for row in rows:
        text = str(row.get("question") or "").strip() or "\n".join(
            str(row.get(k) or "").strip() for k in ("instruction", "input") if str(row.get(k) or "").strip())
        source, cid = str(row.get("source") or "").strip(), str(row.get("chunk_id") or "").strip()
        if text and (source or cid):
            out.append(LabQuestion(text, source, cid))
    if not out:
        raise ConfigError(f"{what} has no row with a question and a source (or chunk_id) column: the lab needs to "
                          f"know where each answer lives. Generate rows from the collection, or add a source column.",
                          ko=f"{what}에 질문과 source(또는 chunk_id) 열이 있는 행이 없습니다: 실험실은 각 답이 어디에 있는지 "
                             f"알아야 합니다. 컬렉션에서 행을 생성하거나 source 열을 추가하세요.")
    return out


def load_questions(config: LabConfig, workspace: Workspace | None = None) -> list[LabQuestion]:
    """The lab's questions: from `config.csv`, else from `config.dataset` (`split`), sampled down to `limit`.

    Raises:
        ConfigError: neither given, or no usable row. NotFoundError: no such dataset, split or file.
    """
    import numpy as np

    if config.csv:
        from workbench.dataset.alpaca_io import read_csv_bytes

        path = Path(config.csv)
        if not path.is_file():
            raise NotFoundError(f"The CSV file {path} does not exist.", ko=f"CSV 파일 {path}이(가) 없습니다.")
        rows, _ = read_csv_bytes(path.read_bytes(), what=path.name)
        questions = questions_from_rows(rows, path.name)
    elif config.dataset:
        from workbench.dataset import alpaca

        rows = (alpaca.load_rows(config.dataset, workspace) if config.split == "all"
                else alpaca.load_split(config.dataset, config.split, workspace))  # type: ignore[arg-type]
        questions = questions_from_rows(rows, f"Dataset {config.dataset!r} ({config.split})")
    else:
        raise ConfigError("The retrieval lab needs questions: give a dataset or a CSV file (question, source).",
                          ko="검색 실험실에는 질문이 필요합니다: 데이터셋이나 CSV 파일(question, source)을 지정하세요.")
    if config.limit and len(questions) > config.limit:
        keep = np.sort(np.random.default_rng(config.seed).choice(len(questions), config.limit, replace=False))
        questions = [questions[i] for i in keep]
    return questions


# --- ranking and scoring ------------------------------------------------------------------------------------------


def lab_settings(weights: Sequence[float]) -> list[tuple[str, str, RetrievalConfig | None]]:
    """(name, kind, config) of every setting measured. The two BM25 rows have no config: they rank by one lexical
    index alone, which no mode does, so they are for reference and cannot be saved (`hybrid w=1.0` is BM25 alone)."""
    rows: list[tuple[str, str, RetrievalConfig | None]] = [
        (name, name, RetrievalConfig(mode=name, k=DEPTH)) for name in MODES if name != "hybrid"]  # every registered mode
    rows += [
        ("bm25 bigrams", "bigram", None),
        ("bm25 subwords", "subword", None),
        (DEFAULT_ROW, "hybrid", RetrievalConfig(mode="hybrid", k=DEPTH)),
        ("hybrid, collection z", "hybrid", RetrievalConfig(mode="hybrid", k=DEPTH, scale="collection")),
    ]
    for w in sorted(set(round(float(w), 3) for w in weights)):
        if abs(w - DEFAULT_LEXICAL_WEIGHT) > 1e-9:
            rows.append((f"hybrid w={w:g}", "hybrid", RetrievalConfig(mode="hybrid", k=DEPTH, lexical_weight=w)))
    return rows


def is_gold(meta: dict[str, Any], q: LabQuestion, match: str) -> bool:
    """Whether a retrieved chunk (its metadata) answers `q`: its exact chunk (`match="chunk"` and the row has a
    chunk_id), else a chunk of its document (file names compared, as `metrics.retrieval_hit` does)."""
    if match == "chunk" and q.chunk_id:
        return str(meta.get("chunk_id", "")) == q.chunk_id
    if q.source:
        return Path(str(meta.get("source", ""))).name == Path(q.source).name
    return str(meta.get("chunk_id", "")) == q.chunk_id


def first_rank(metas: Sequence[dict[str, Any]], q: LabQuestion, match: str) -> int | None:
    """0-based rank of the first gold chunk in the top `DEPTH`, None when there is none."""
    return next((r for r, m in enumerate(metas[:DEPTH]) if is_gold(m, q, match)), None)


def summarize(ranks: Sequence[int | None], seed: int = 0) -> dict[str, Any]:
    """hit@1/3/5/10 and MRR@10 of the first-gold ranks, each as `mean_ci` (mean, lo, hi, n)."""
    from workbench.compare.metrics import mean_ci

    out = {f"hit@{k}": mean_ci([float(r is not None and r < k) for r in ranks], seed=seed) for k in KS}
    out["mrr@10"] = mean_ci([1.0 / (r + 1) if r is not None and r < DEPTH else 0.0 for r in ranks], seed=seed)
    return out


def _lexical_ranker(collection: str, kind: str, ws: Workspace) -> Callable[[str], list[dict[str, Any]]]:
    """Top `DEPTH` chunks' metadata by one BM25 index alone."""
    import numpy as np

    from workbench.kb.lexical import lexical_index
    from workbench.kb.vectordb import get_chunks

    lex = lexical_index(collection, ws)
    metas = {c.id: c.metadata for c in get_chunks(collection, ws)}

    def rank(query: str) -> list[dict[str, Any]]:
        scores = lex.scores(query)[0 if kind == "bigram" else 1]
        top = [int(i) for i in np.argsort(-scores, kind="stable")[:DEPTH] if scores[i] > 0]
        return [metas.get(lex.ids[i], {}) for i in top]

    return rank


def measure(collection: str, questions: Sequence[LabQuestion], settings: Sequence[tuple[str, str, RetrievalConfig | None]],
            match: str = "source", workspace: Workspace | None = None, progress: Progress | None = None,
            seed: int = 0) -> list[dict[str, Any]]:
    """One row per setting: its name, kind, config (None for the BM25 reference rows), the metrics and the median
    milliseconds per question (the question's vector is computed once and shared by every setting).

    Raises:
        NotFoundError: no such collection.
    """
    ws = workspace or Workspace.default()
    lexical = {kind: _lexical_ranker(collection, kind, ws) for _, kind, cfg in settings if cfg is None}
    ranks: dict[str, list[int | None]] = {name: [] for name, _, _ in settings}
    times: dict[str, list[float]] = {name: [] for name, _, _ in settings}
    for i, q in enumerate(questions):
        retrieve(collection, q.question, RetrievalConfig(mode="dense", k=1), ws)  # the vector, once, outside the timings
        for name, kind, cfg in settings:
            t0 = time.perf_counter()
            metas = lexical[kind](q.question) if cfg is None else [h.metadata for h in retrieve(collection, q.question, cfg, ws)]
            times[name].append(time.perf_counter() - t0)
            ranks[name].append(first_rank(metas, q, match))
        if progress and (i % 5 == 4 or i + 1 == len(questions)):
            progress(Text(f"{collection}: {i + 1}/{len(questions)} questions", f"{collection}: 질문 {i + 1}/{len(questions)}"),
                     (i + 1) / len(questions))
    return [{"setting": name, "kind": kind, "config": cfg.to_dict() if cfg is not None else None,
             **summarize(ranks[name], seed), "ms_p50": round(statistics.median(times[name]) * 1000, 2) if times[name] else None}
            for name, kind, cfg in settings]


def best_row(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The savable row with the highest MRR@10 (then hit@1; then the earlier row, so the default wins ties)."""
    savable = [r for r in rows if r["config"] is not None]
    return max(savable, key=lambda r: (r["mrr@10"]["mean"] or 0.0, r["hit@1"]["mean"] or 0.0, -rows.index(r)))


# --- chunkings in scratch collections --------------------------------------------------------------------------------

_CHUNK_KEYS = {"chunk_id", "chunk_index", "start_index", "splitter", "chunk_size", "chunk_overlap"}


def collection_documents(collection: str, workspace: Workspace | None = None) -> list[Any]:
    """The collection's documents put back together from their chunks (each chunk sits at its `start_index`;
    overlaps agree, and the whitespace a splitter trimmed between chunks comes back as spaces)."""
    from langchain_core.documents import Document

    from workbench.kb.vectordb import get_chunks

    groups: dict[tuple, list[Any]] = {}
    for c in get_chunks(collection, workspace):
        meta = {k: v for k, v in c.metadata.items() if k not in _CHUNK_KEYS}
        groups.setdefault(tuple(sorted(meta.items(), key=lambda kv: kv[0])), []).append(c)
    docs = []
    for key, chunks in groups.items():
        text = ""
        for c in sorted(chunks, key=lambda c: (int(c.metadata.get("start_index", -1)), int(c.metadata.get("chunk_index", 0)))):
            start = int(c.metadata.get("start_index", -1))
            if start < 0:  # no offset: append after the text so far
                text = f"{text}\n{c.text}" if text else c.text
            else:
                text = text.ljust(start)[:start] + c.text if start + len(c.text) >= len(text) else text
        docs.append(Document(page_content=text, metadata=dict(key)))
    return docs


def scratch_name(collection: str, index: int) -> str:
    from workbench.kb.vectordb import chroma_name

    return f"{SCRATCH_PREFIX}{os.getpid()}-{index}-{chroma_name(collection)}"[:200]


def remove_scratch(workspace: Workspace | None = None) -> list[str]:
    """Delete scratch collections left by a lab whose process is gone (killed); returns their names."""
    from workbench.common.runfiles import process_alive
    from workbench.kb.ingest import delete_collection
    from workbench.kb.vectordb import list_collections

    removed = []
    for info in list_collections(workspace, scratch=True):
        if info.name.startswith(SCRATCH_PREFIX):
            pid = info.name[len(SCRATCH_PREFIX):].split("-", 1)[0]
            if not (pid.isdigit() and int(pid) != os.getpid() and process_alive(int(pid))):
                delete_collection(info.name, workspace)
                removed.append(info.name)
    return removed


def measure_chunking(collection: str, index: int, chunking: Any, documents: Sequence[Any], questions: Sequence[LabQuestion],
                     settings: Sequence[tuple[str, str, RetrievalConfig | None]], config: LabConfig, ws: Workspace,
                     progress: Progress | None = None) -> dict[str, Any]:
    """Ingest `documents` with `chunking` into a scratch collection, measure `settings` there, delete it."""
    from workbench.kb.ingest import delete_collection, ingest_documents
    from workbench.kb.vectordb import collection_info

    name = scratch_name(collection, index)
    embedding = collection_info(collection, ws).embedding
    label = f"{chunking.splitter} {chunking.chunk_size}/{chunking.chunk_overlap}"
    try:
        t0 = time.perf_counter()
        report = ingest_documents(documents, name, chunking, embedding, ws,
                                  progress=lambda m, f: progress(prefixed(label, m), 0.5 * f) if progress else None)
        ingest_s = time.perf_counter() - t0
        rows = measure(name, questions, settings, "source", ws,
                       (lambda m, f: progress(prefixed(label, m), 0.5 + 0.5 * f)) if progress else None, config.seed)
    finally:
        try:
            delete_collection(name, ws)
        except NotFoundError:
            pass
    return {"label": label, "chunking": chunking.to_dict(), "chunks": report.chunks, "ingest_s": round(ingest_s, 2),
            "rows": rows}


# --- the whole lab ---------------------------------------------------------------------------------------------------


def run_lab(config: LabConfig, workspace: Workspace | None = None, progress: Progress | None = None) -> dict[str, Any]:
    """Measure every setting on the collection (and every chunking in `config.chunkings`); returns the report
    (JSON-ready): rows, the default's and the best row's names, the chunkings, the seconds it took.

    Progress reports are where a job stops when cancelled (they raise); scratch collections are deleted either way.

    Raises:
        NotFoundError: no such collection, dataset or file. ConfigError: no usable question.
    """
    from workbench.kb.vectordb import collection_info, get_chunks

    ws = workspace or Workspace.default()
    if not config.collection:
        raise ConfigError("The retrieval lab needs a collection: give collection.",
                          ko="검색 실험실에는 컬렉션이 필요합니다: 컬렉션을 지정하세요.")
    collection_info(config.collection, ws)  # NotFoundError first
    remove_scratch(ws)  # what a killed lab left (listings leave it out already)
    t0 = time.perf_counter()
    questions = load_questions(config, ws)
    known = {Path(str(c.metadata.get("source", ""))).name for c in get_chunks(config.collection, ws)}
    usable = [q for q in questions if Path(q.source).name in known or (q.chunk_id and not q.source)]
    if not usable:
        raise ConfigError(f"None of the {len(questions)} questions comes from a document of {config.collection!r} "
                          f"(sources such as {questions[0].source!r}): pick the collection the rows were made from.",
                          ko=f"질문 {len(questions)}개 중 어느 것도 {config.collection!r}의 문서에서 나오지 않았습니다 "
                             f"(출처 예: {questions[0].source!r}): 행을 만든 컬렉션을 고르세요.")
    settings = lab_settings(config.weights)
    parts = 1 + len(config.chunkings)

    def part(i: int) -> Progress | None:
        return (lambda m, f: progress(m, (i + f) / parts)) if progress else None

    rows = measure(config.collection, usable, settings, config.match, ws, part(0), config.seed)
    best = best_row(rows)
    chunkings = []
    if config.chunkings:
        documents = collection_documents(config.collection, ws)
        keep = [s for s in settings if s[0] in (DEFAULT_ROW, best["setting"], "dense")]
        for i, spec in enumerate(config.chunkings):
            chunkings.append(measure_chunking(config.collection, i, parse_chunking(spec), documents, usable, keep,
                                              config, ws, part(i + 1)))
    if progress:
        progress(Text("done", "완료"), 1.0)
    return {"collection": config.collection, "questions": len(usable), "skipped": len(questions) - len(usable),
            "match": config.match, "from": {"dataset": config.dataset, "split": config.split, "csv": config.csv},
            "rows": rows, "default": DEFAULT_ROW, "best": best["setting"], "chunkings": chunkings,
            "seconds": round(time.perf_counter() - t0, 1), "config": config.to_dict()}


def save_best(report: dict[str, Any], workspace: Workspace | None = None, setting_name: str | None = None) -> dict[str, Any]:
    """Save the report's best row (or the row `setting_name`) as its collection's own retrieval settings; returns them.

    Raises:
        ConfigError: the row is a reference row (one BM25 index alone) or not in the report.
    """
    name = setting_name or report["best"]
    row = next((r for r in report["rows"] if r["setting"] == name), None)
    if row is None or row["config"] is None:
        raise ConfigError(f"{name!r} cannot be saved: pick one of "
                          f"{', '.join(r['setting'] for r in report['rows'] if r['config'] is not None)}.",
                          ko=f"{name!r}은(는) 저장할 수 없습니다: 다음 중 하나를 고르세요: "
                             f"{', '.join(r['setting'] for r in report['rows'] if r['config'] is not None)}.")
    note = {"setting": name, "questions": report["questions"], "mrr@10": row["mrr@10"]["mean"],
            "hit@1": row["hit@1"]["mean"], "saved_at": time.strftime("%Y-%m-%d %H:%M")}
    return save_retrieval(report["collection"], {k: v for k, v in row["config"].items() if k in SAVED_FIELDS}, workspace,
                          note=note)
