"""Retrieval from a collection: dense similarity, MMR, and hybrid (BM25 + dense) with metadata filters.

- `dense`: cosine similarity between the query vector and the chunk vectors (Chroma's HNSW index).
- `mmr`: maximal marginal relevance over the `fetch_k` most similar chunks: each pick trades
  similarity to the query (`lambda_mult`) against similarity to the chunks already picked.
- `hybrid`: the lexical index (BM25 over character bigrams) and the dense index each propose
  `fetch_k` candidates; every candidate gets both scores, each score is divided by the best score of
  its kind for this query, and the fused score is `lexical_weight * lexical + (1 - lexical_weight) * dense`.
  Plain reciprocal-rank fusion throws the scores away and made the top hit worse than BM25 alone on
  KorQuAD; weighted score fusion keeps how *much* better the best lexical match is (docs/benchmarks.md).

`retrieve` is the one entry point the other stages call.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from typing import TYPE_CHECKING, Any, Literal

from workbench.config import BaseConfig, Workspace, setting
from workbench.errors import ConfigError
from workbench.vectordb import (
    VectorStoreConfig,
    _lexical_dir,
    _require,
    LexicalIndex,
    get_embeddings,
    lexical_tokens,
)

if TYPE_CHECKING:  # pragma: no cover
    import chromadb
    import numpy as np

Mode = Literal["dense", "mmr", "hybrid"]

DEFAULT_MODE: Mode = "hybrid"
DEFAULT_LEXICAL_WEIGHT = 0.6


@dataclasses.dataclass
class RetrievalConfig(BaseConfig):
    """How chunks are found for a query."""

    mode: Mode = setting(
        DEFAULT_MODE, "dense: vector similarity; mmr: similar but diverse; hybrid: BM25 + vectors, fused by score.",
        help_ko="dense: 벡터 유사도; mmr: 유사하면서 서로 다른 청크; hybrid: BM25 + 벡터 점수 결합.",
    )
    k: int = setting(5, "How many chunks to return.", help_ko="돌려줄 청크 수.", min=1, max=200)
    fetch_k: int = setting(
        20, "Candidates each retriever proposes before MMR or fusion picks k of them.",
        help_ko="MMR 또는 결합이 k개를 고르기 전에 각 검색기가 내놓는 후보 수.", min=1, max=2000,
    )
    lambda_mult: float = setting(
        0.5, "MMR: 1 = only similarity to the query, 0 = only diversity.",
        help_ko="MMR: 1 = 질문과의 유사도만, 0 = 다양성만.", min=0.0, max=1.0,
    )
    lexical_weight: float = setting(
        DEFAULT_LEXICAL_WEIGHT, "Hybrid: weight of the BM25 score (the dense score gets the rest).",
        help_ko="hybrid: BM25 점수의 가중치 (나머지는 벡터 점수).", min=0.0, max=1.0,
    )
    filter: dict[str, Any] | None = setting(
        None, 'Metadata filter in Chroma\'s where syntax, e.g. {"source": "faq.md"}.',
        help_ko='Chroma where 문법의 메타데이터 필터, 예: {"source": "faq.md"}.',
    )

    def validate(self) -> None:
        super().validate()
        if self.fetch_k < self.k:
            raise ConfigError(
                f"RetrievalConfig: fetch_k ({self.fetch_k}) is smaller than k ({self.k}). "
                f"Fetch at least as many candidates as you return."
            )
        if self.filter is not None and not isinstance(self.filter, dict):
            raise ConfigError(f"RetrievalConfig.filter = {self.filter!r} is not a mapping. Use e.g. {{\"source\": \"faq.md\"}}.")


@dataclasses.dataclass
class RetrievedChunk:
    """One result: the chunk's text, its score (higher is better) and its metadata
    (source, chunk_id, chunk_index, start_index, splitter settings, ...)."""

    text: str
    score: float
    metadata: dict[str, Any]

    @property
    def id(self) -> str:
        return str(self.metadata.get("chunk_id", ""))


def retrieve(
    collection: str,
    query: str,
    config: RetrievalConfig | None = None,
    workspace: Workspace | None = None,
    store: VectorStoreConfig | None = None,
) -> list[RetrievedChunk]:
    """The `config.k` chunks of `collection` that best answer `query`, best first.

    Raises:
        NotFoundError: no such collection.
        ConfigError: an empty query or an invalid filter.
    """
    config = config or RetrievalConfig()
    ws, store = workspace or Workspace.default(), store or VectorStoreConfig.default()
    if not query.strip():
        raise ConfigError("The query is empty. Type a question.")
    coll = _require(collection, ws, store)
    embedding = (coll.metadata or {}).get("embedding")
    qvec = _embed_query(embedding, query)
    with _single_thread_blas():
        if config.mode == "dense":
            return _dense(coll, qvec, config.k, config.filter)
        if config.mode == "mmr":
            return _mmr(coll, qvec, config)
        return _hybrid(coll, query, qvec, config, LexicalIndex(_lexical_dir(coll.name, ws, store)))


def _embed_query(embedding: str | None, query: str) -> "np.ndarray":
    import numpy as np

    from workbench.embeddings import DEFAULT_EMBEDDING

    vec = np.asarray(get_embeddings(embedding or DEFAULT_EMBEDDING).embed_query(query), dtype=np.float32)
    return vec / max(float(np.linalg.norm(vec)), 1e-12)


@functools.lru_cache(maxsize=1)
def _threadpools() -> Any:
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def _single_thread_blas() -> Any:
    """One BLAS thread for the small matrix products of a query: on a busy machine, threads waiting for
    each other cost more than they save (docs/benchmarks.md: 24 ms -> 10 ms median)."""
    return _threadpools().limit(limits=1, user_api="blas")


def _query(coll: "chromadb.Collection", qvec: "np.ndarray", n: int, where: dict[str, Any] | None,
           embeddings: bool = False) -> dict[str, Any]:
    n = min(n, coll.count())
    if n <= 0:
        return {"ids": [[]], "documents": [[]], "metadatas": [[]], "distances": [[]], "embeddings": [[]]}
    include = ["documents", "metadatas", "distances"] + (["embeddings"] if embeddings else [])
    try:
        return coll.query(query_embeddings=[qvec.tolist()], n_results=n, where=where or None, include=include)
    except ValueError as exc:  # chromadb rejects a malformed where clause with ValueError
        raise ConfigError(f"The metadata filter {where!r} is not valid for Chroma: {exc}") from exc


def _dense(coll: "chromadb.Collection", qvec: "np.ndarray", k: int, where: dict[str, Any] | None) -> list[RetrievedChunk]:
    res = _query(coll, qvec, k, where)
    return [RetrievedChunk(text or "", 1.0 - float(dist), dict(meta or {}))
            for text, meta, dist in zip(res["documents"][0], res["metadatas"][0], res["distances"][0])]


def _mmr(coll: "chromadb.Collection", qvec: "np.ndarray", config: RetrievalConfig) -> list[RetrievedChunk]:
    import numpy as np
    from langchain_chroma.vectorstores import maximal_marginal_relevance

    res = _query(coll, qvec, config.fetch_k, config.filter, embeddings=True)
    if not res["ids"][0]:
        return []
    vectors = np.asarray(res["embeddings"][0], dtype=np.float32)
    picked = maximal_marginal_relevance(qvec, vectors, lambda_mult=config.lambda_mult, k=config.k)
    sims = vectors @ qvec
    return [RetrievedChunk(res["documents"][0][i] or "", float(sims[i]), dict(res["metadatas"][0][i] or {}))
            for i in picked]


def _hybrid(coll: "chromadb.Collection", query: str, qvec: "np.ndarray", config: RetrievalConfig,
            lex: LexicalIndex) -> list[RetrievedChunk]:
    import numpy as np

    if lex.stale or not lex.exists():
        lex.rebuild(coll)
    bm25, ids = lex.load()
    if len(ids) != coll.count():  # changed behind our back (another process, a shared server)
        lex.rebuild(coll)
        bm25, ids = lex.load()
    if not ids:
        return []

    # Lexical scores for every chunk (a sparse-matrix sum), restricted to the filter's chunks.
    lexical = bm25.get_scores(lexical_tokens(query)) if bm25 is not None else np.zeros(len(ids), np.float32)
    if config.filter:
        allowed = set(coll.get(where=config.filter, include=[])["ids"])
        lexical = np.where(np.fromiter((i in allowed for i in ids), bool, len(ids)), lexical, -1.0)
    n = min(config.fetch_k, len(ids))
    top_lex = np.argpartition(-lexical, n - 1)[:n]
    top_lex = top_lex[lexical[top_lex] > 0]

    dense = _query(coll, qvec, config.fetch_k, config.filter)
    cand: dict[str, dict[str, Any]] = {}
    for id_, text, meta, dist in zip(dense["ids"][0], dense["documents"][0], dense["metadatas"][0], dense["distances"][0]):
        cand[id_] = {"text": text or "", "meta": dict(meta or {}), "dense": 1.0 - float(dist)}
    position = {id_: i for i, id_ in enumerate(ids)} if len(cand) else {}
    missing = [ids[i] for i in top_lex if ids[i] not in cand]
    if missing:
        got = coll.get(ids=missing, include=["documents", "metadatas", "embeddings"])
        for id_, text, meta, vec in zip(got["ids"], got["documents"], got["metadatas"], got["embeddings"]):
            cand[id_] = {"text": text or "", "meta": dict(meta or {}),
                         "dense": float(np.asarray(vec, dtype=np.float32) @ qvec)}
    if not position:
        position = {id_: i for i, id_ in enumerate(ids)}
    lex_best = float(lexical.max()) if lexical.size else 0.0
    dense_best = max((c["dense"] for c in cand.values()), default=0.0)
    w = config.lexical_weight
    scored = []
    for id_, c in cand.items():
        i = position.get(id_)
        lex_score = float(lexical[i]) if i is not None else 0.0
        lex_norm = max(lex_score, 0.0) / lex_best if lex_best > 0 else 0.0
        dense_norm = c["dense"] / dense_best if dense_best > 0 else 0.0
        scored.append((w * lex_norm + (1 - w) * dense_norm, c))
    scored.sort(key=lambda sc: -sc[0])
    return [RetrievedChunk(c["text"], float(s), c["meta"]) for s, c in scored[: config.k]]


def timed_retrieve(*args: Any, **kwargs: Any) -> tuple[list[RetrievedChunk], float]:
    """`retrieve` and the seconds it took (for the pages and the benchmark)."""
    t0 = time.perf_counter()
    out = retrieve(*args, **kwargs)
    return out, time.perf_counter() - t0
