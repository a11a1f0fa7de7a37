"""Retrieval from a collection: dense similarity, MMR, and hybrid (BM25 + dense) with metadata filters.

- `dense`: cosine similarity between the query vector and the chunk vectors (Chroma's HNSW index).
- `mmr`: maximal marginal relevance over the `fetch_k` most similar chunks: each pick trades
  similarity to the query (`lambda_mult`) against similarity to the chunks already picked.
- `hybrid`: three rankers propose `fetch_k` candidates each: BM25 over character bigrams, BM25 over
  subwords (XLM-R SentencePiece pieces, `lexical.subword_tokens`), and the dense index. Every candidate
  gets all three scores, each score is turned into a z-score (how many standard deviations above the
  average of this query's candidates it lies; `scale="collection"`, the default until 2026-12-03, measured
  it against the whole collection, the dense side on a fixed sample of chunk vectors), and the fused score
  is `lexical_weight / 2 * (z_bigram + z_subword) + (1 - lexical_weight) * z_dense`.
  Plain reciprocal-rank fusion throws the scores away and made the top hit worse than BM25 alone on
  KorQuAD; z-scores keep how far ahead the best match is, on a scale the two kinds of score share.
  Against the whole collection, short texts (FAQ answers) broke them: most BM25 scores are 0 there, so a
  chance match of two characters lay 20 standard deviations up and outvoted the vectors. Against the
  candidates, KorQuAD keeps R@1 0.934 (0.935) and ChatbotData's question -> answer hit@1 goes from 0.046
  to 0.052 (dense alone 0.046). The weights were tuned on held-out KorQuAD questions (docs/benchmarks.md).
- A collection can carry its own settings, measured and saved by the retrieval lab (`workbench.compare.retrieval_lab`):
  `collection_config` builds the RetrievalConfig every stage uses from them.

`retrieve` is the one entry point the other stages call.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from typing import TYPE_CHECKING, Any, Literal

from workbench.common.config import BaseConfig, Workspace, setting
from workbench.common.errors import ConfigError, NotFoundError
from workbench.common.runfiles import read_json, write_json
from workbench.kb.lexical import lexical_index
from workbench.kb.modes import MODES, ModeQuery
from workbench.kb.vectordb import VectorStoreConfig, get_embeddings, lexical_dir, open_collection

if TYPE_CHECKING:  # pragma: no cover
    from pathlib import Path

    import chromadb
    import numpy as np

    from workbench.kb.lexical import LexicalData

Mode = Literal[tuple(MODES)]  # type: ignore[valid-type]  # the registered names, in order
Scale = Literal["candidates", "collection"]

DEFAULT_MODE: Mode = "hybrid"
DEFAULT_SCALE: Scale = "candidates"  # KorQuAD R@1 0.934 (collection: 0.935), ChatbotData hit@1 +13% (docs/benchmarks.md)
DEFAULT_FETCH_K = 20
DEFAULT_LEXICAL_WEIGHT = 0.6  # 0.3 bigram + 0.3 subword + 0.4 dense: tuned on held-out KorQuAD questions


@dataclasses.dataclass
class RetrievalConfig(BaseConfig):
    """How chunks are found for a query."""

    mode: Mode = setting(
        DEFAULT_MODE, "; ".join(f"{m.name}: {m.help[0]}" for m in MODES.values()) + ".",
        help_ko="; ".join(f"{m.name}: {m.help[1]}" for m in MODES.values()) + ".", label="Mode", label_ko="방식",
        widget="radio", choice_labels={m.name: m.label for m in MODES.values()},
    )
    k: int = setting(5, "How many chunks to return.", help_ko="돌려줄 청크 수.", min=1, max=200,
                     label="Chunks (k)", label_ko="청크 수 (k)")
    fetch_k: int = setting(
        0, f"Candidates each retriever proposes before MMR or fusion picks k of them (0: automatic, the larger of "
        f"{DEFAULT_FETCH_K} and k).",
        help_ko=f"MMR 또는 결합이 k개를 고르기 전에 각 검색기가 내놓는 후보 수 (0: 자동, {DEFAULT_FETCH_K}와 k 중 큰 값).",
        min=0, max=2000, label="Candidates (fetch_k, 0 = auto)", label_ko="후보 수 (fetch_k, 0 = 자동)", step=10,
    )
    lambda_mult: float = setting(
        0.5, "MMR: 1 = only similarity to the query, 0 = only diversity.",
        help_ko="MMR: 1 = 질문과의 유사도만, 0 = 다양성만.", min=0.0, max=1.0,
        label="MMR relevance (lambda)", label_ko="MMR 관련도 (lambda)", step=0.05, widget="slider",
    )
    lexical_weight: float = setting(
        DEFAULT_LEXICAL_WEIGHT, "Hybrid: weight of the two BM25 scores together (bigrams and subwords share it; "
        "the dense score gets the rest).",
        help_ko="hybrid: 두 BM25 점수(글자 바이그램, 서브워드)를 합친 가중치 (나머지는 벡터 점수).", min=0.0, max=1.0,
        label="BM25 weight (hybrid)", label_ko="BM25 가중치 (하이브리드)", step=0.05, widget="slider",
    )
    scale: Scale = setting(
        DEFAULT_SCALE, "Hybrid: what each score's z-score is taken against: the candidates of this query (copes with "
        "short texts, where most BM25 scores are 0), or the whole collection (the earlier rule; it can suit collections "
        "of near-duplicate chunks).",
        help_ko="하이브리드: 각 점수의 z-점수를 무엇에 대해 구할지: 이 질문의 후보들 (BM25 점수가 대부분 0인 짧은 글에도 맞음), "
        "또는 컬렉션 전체 (이전 규칙; 거의 같은 청크가 많은 컬렉션에 맞을 수 있음).", label="Score scale (hybrid)", label_ko="점수 기준 (하이브리드)", widget="radio",
        choice_labels={"candidates": ("the candidates", "후보들"), "collection": ("the whole collection", "컬렉션 전체")},
    )
    filter: dict[str, Any] | None = setting(
        None, 'Metadata filter in Chroma\'s where syntax, e.g. {"source": "faq.md"}.',
        help_ko='Chroma where 문법의 메타데이터 필터, 예: {"source": "faq.md"}.',
        label="Metadata filter (JSON)", label_ko="메타데이터 필터 (JSON)",
    )

    @property
    def candidates(self) -> int:
        """How many candidates each retriever proposes: `fetch_k`, or automatically the larger of 20 and k."""
        return self.fetch_k or max(DEFAULT_FETCH_K, self.k)

    def validate(self) -> None:
        super().validate()
        if self.fetch_k and self.fetch_k < self.k:
            raise ConfigError(
                f"RetrievalConfig: fetch_k ({self.fetch_k}) is smaller than k ({self.k}). "
                f"Fetch at least as many candidates as you return.",
                ko=f"RetrievalConfig: fetch_k({self.fetch_k})가 k({self.k})보다 작습니다. 돌려줄 개수 이상의 "
                   f"후보를 가져오세요."
            )
        if self.filter is not None and not isinstance(self.filter, dict):
            raise ConfigError(f"RetrievalConfig.filter = {self.filter!r} is not a mapping. Use e.g. {{\"source\": \"faq.md\"}}.",
                              ko=f"RetrievalConfig.filter = {self.filter!r}은(는) 매핑이 아닙니다. 예: {{\"source\": "
                                 f"\"faq.md\"}}.")
        if self.filter:
            check_filter(self.filter)


# --- a collection's own settings ------------------------------------------------------------------------------------

# What the retrieval lab saves for a collection (k and filters belong to the question, not to the collection).
SAVED_FIELDS = ("mode", "fetch_k", "lambda_mult", "lexical_weight", "scale")


def _saved_path(collection: str, ws: Workspace, store: VectorStoreConfig) -> "Path":
    """`vectorstore/<chroma name>.retrieval.json`, beside the lexical index folder (which is swapped whole on a
    rebuild, so the file cannot live inside it)."""
    chroma = open_collection(collection, ws, store).name
    lex = lexical_dir(chroma, ws, store)
    return lex.with_name(f"{chroma}.retrieval.json")


def saved_retrieval(collection: str, workspace: Workspace | None = None,
                    store: VectorStoreConfig | None = None) -> dict[str, Any]:
    """The retrieval settings saved for `collection` (by the retrieval lab), {} when none.

    Raises:
        NotFoundError: no such collection.
        ConfigError: the settings file is not what the lab writes (edited by hand into the wrong shape).
    """
    ws, store = workspace or Workspace.default(), store or VectorStoreConfig.default()
    path = _saved_path(collection, ws, store)
    if not path.is_file():
        return {}
    data = read_json(path, None)
    settings = data.get("settings") if isinstance(data, dict) else None
    if data is None:
        problem = ("it is not readable JSON.", "읽을 수 있는 JSON이 아닙니다.")
    elif not isinstance(settings, dict):
        problem = ('it is not a JSON object with "settings": {...}.', '"settings": {...}가 있는 JSON 객체가 아닙니다.')
    else:
        saved = {k: v for k, v in settings.items() if k in SAVED_FIELDS}
        try:
            RetrievalConfig.from_dict(saved)
            return saved
        except ConfigError as exc:
            problem = (f"it holds an invalid setting: {exc}", f"잘못된 설정이 있습니다: {exc.message('ko')}")
    # A hand-edited file of the wrong shape crashed every search of the collection (AttributeError): name it instead.
    raise ConfigError(f"The saved retrieval settings of collection {collection!r} ({path}) are not usable: {problem[0]} "
                      f"Fix the file, or remove it with `workbench retrieval-config {collection} --clear` (the defaults "
                      f"then apply).",
                      ko=f"컬렉션 {collection!r}에 저장된 검색 설정({path})을 쓸 수 없습니다: {problem[1]} 파일을 "
                         f"고치거나 `workbench retrieval-config {collection} --clear`로 지우세요 (그러면 기본값을 씁니다).")


def save_retrieval(collection: str, settings: dict[str, Any] | None, workspace: Workspace | None = None,
                   store: VectorStoreConfig | None = None, note: dict[str, Any] | None = None) -> dict[str, Any]:
    """Save `settings` (the `SAVED_FIELDS` of a RetrievalConfig) as `collection`'s own; None or {} removes them.
    `note` (what they scored, when) is kept beside them for the user. Returns what was saved.

    Raises:
        NotFoundError: no such collection. ConfigError: a setting a collection does not save, or settings that do
        not make a valid RetrievalConfig.
    """
    ws, store = workspace or Workspace.default(), store or VectorStoreConfig.default()
    path = _saved_path(collection, ws, store)
    others = sorted(set(settings or {}) - set(SAVED_FIELDS))
    if others:  # `retrieval-config --set foo=1` was accepted and silently dropped
        raise ConfigError(f"A collection saves only the settings {', '.join(SAVED_FIELDS)}; not {', '.join(others)}"
                          f"{' (k and filter belong to each search)' if set(others) & {'k', 'filter'} else ''}. Use "
                          f"e.g. --set lexical_weight=0.4.",
                          ko=f"컬렉션에는 {', '.join(SAVED_FIELDS)} 설정만 저장합니다. {', '.join(others)}은(는) 아닙니다"
                             f"{' (k와 filter는 검색마다 정함)' if set(others) & {'k', 'filter'} else ''}. 예: --set "
                             f"lexical_weight=0.4.")
    kept = dict(settings or {})
    if not kept:
        path.unlink(missing_ok=True)
        return {}
    kept = {k: v for k, v in RetrievalConfig.from_dict(kept).to_dict().items() if k in kept}  # validated, coerced
    write_json(path, {"settings": kept, "note": note or {}})
    return kept


def collection_config(collection: str, workspace: Workspace | None = None, store: VectorStoreConfig | None = None,
                      **explicit: Any) -> RetrievalConfig:
    """The RetrievalConfig for `collection`: the defaults, then the collection's saved settings, then `explicit`
    (what the caller or user set; None values count as not set). Search, ask, Compare and evaluate build theirs
    here, so a setting saved by the retrieval lab is what they use unless told otherwise.

    Raises:
        ConfigError: an invalid explicit value, or a saved settings file that is not usable.
    """
    saved: dict[str, Any] = {}
    if collection:
        try:
            saved = saved_retrieval(collection, workspace, store)
        except NotFoundError:  # no such collection yet: retrieving will say so
            saved = {}
    return RetrievalConfig.from_dict({**saved, **{k: v for k, v in explicit.items() if v is not None}})


# Chroma's `where` grammar (metadata, not document text): one field or one logical operator per mapping.
COMPARISONS = ("$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin")
LOGICAL = ("$and", "$or")
_SCALARS = (str, int, float, bool)


def check_filter(where: Any, path: str = "filter") -> None:
    """Check a metadata filter against Chroma's `where` grammar before it reaches Chroma (whose errors are tracebacks
    or, for an unknown top-level operator such as `{"$foo": 1}`, come only at query time).

    Grammar: `{"field": value}`, `{"field": {"$op": value}}` with one of `COMPARISONS`, or
    `{"$and" | "$or": [filter, filter, ...]}` with at least two filters; one key per mapping.
    Values are text, numbers or booleans; `$gt $gte $lt $lte` take numbers; `$in $nin` a non-empty list of one type.

    Raises:
        ConfigError: one line naming the part of the filter that is wrong and how to write it.
    """
    example = 'e.g. {"source": "faq.md"} or {"$and": [{"file_type": "text"}, {"row": {"$gt": 3}}]}'
    if not isinstance(where, dict) or not where:
        raise ConfigError(f"RetrievalConfig.{path} = {json.dumps(where, ensure_ascii=False)} is not a non-empty mapping. "
                          f"Write a condition, {example}.",
                          ko=f"RetrievalConfig.{path} = {json.dumps(where, ensure_ascii=False)}은(는) 비어 있지 "
                             f"않은 매핑이 아닙니다. 조건을 쓰세요, {example}.")
    if len(where) > 1:
        parts = ", ".join(json.dumps({k: v}, ensure_ascii=False) for k, v in where.items())
        raise ConfigError(f"RetrievalConfig.{path} has {len(where)} keys ({', '.join(map(repr, where))}); Chroma takes one "
                          f"per condition. Combine them: {{\"$and\": [{parts}]}}.",
                          ko=f"RetrievalConfig.{path}에 키가 {len(where)}개 있습니다 ({', '.join(map(repr, where))}). "
                             f"Chroma는 조건 하나에 키 하나를 받습니다. 합치세요: {{\"$and\": [{parts}]}}.")
    (key, value), = where.items()
    if key in LOGICAL:
        if not isinstance(value, list) or len(value) < 2:
            raise ConfigError(f"RetrievalConfig.{path}: {key} needs a list of at least two conditions, got "
                              f"{json.dumps(value, ensure_ascii=False)}. Use the one condition alone, or add another.",
                              ko=f"RetrievalConfig.{path}: {key}에는 조건이 둘 이상인 목록이 필요한데 {json.dumps(value, ensure_ascii=False)}입니다. "
                                 f"조건 하나만 쓰거나 하나를 더하세요.")
        for i, item in enumerate(value):
            check_filter(item, f"{path}.{key}[{i}]")
        return
    if not isinstance(key, str) or not key or key.startswith("$"):
        raise ConfigError(f"RetrievalConfig.{path}: {key!r} is not an operator Chroma knows here. Start with a metadata "
                          f"field name (source, file_type, title, ...) or $and / $or, {example}.",
                          ko=f"RetrievalConfig.{path}: {key!r}은(는) 여기서 Chroma가 아는 연산자가 아닙니다. "
                             f"메타데이터 필드 이름(source, file_type, title, ...)이나 $and / $or로 시작하세요, "
                             f"{example}.")
    where_in = f"{path}.{key}"
    if isinstance(value, dict):
        if len(value) != 1:
            raise ConfigError(f"RetrievalConfig.{where_in} must hold exactly one operator, got "
                              f"{json.dumps(value, ensure_ascii=False)}. Split them with $and.",
                              ko=f"RetrievalConfig.{where_in}에는 연산자가 정확히 하나 있어야 하는데 {json.dumps(value, ensure_ascii=False)}입니다. "
                                 f"$and로 나누세요.")
        (op, operand), = value.items()
        if op not in COMPARISONS:
            raise ConfigError(f"RetrievalConfig.{where_in}: {op!r} is not a Chroma filter operator. Use one of "
                              f"{' '.join(COMPARISONS)} (there is no {op}: filters compare whole values).",
                              ko=f"RetrievalConfig.{where_in}: {op!r}은(는) Chroma 필터 연산자가 아닙니다. {' '.join(COMPARISONS)} "
                                 f"중 하나를 쓰세요 ({op}은(는) 없습니다: 필터는 값 전체를 비교합니다).")
        _check_operand(op, operand, where_in)
        return
    if not isinstance(value, _SCALARS):
        raise ConfigError(f"RetrievalConfig.{where_in} = {json.dumps(value, ensure_ascii=False)} is not text, a number or "
                          f"true/false. Compare with one value, or use {{\"$in\": [...]}} for several.",
                          ko=f"RetrievalConfig.{where_in} = {json.dumps(value, ensure_ascii=False)}은(는) 텍스트, "
                             f"숫자, true/false가 아닙니다. 값 하나와 비교하거나 여러 값에는 {{\"$in\": [...]}}을 "
                             f"쓰세요.")


def _check_operand(op: str, operand: Any, where: str) -> None:
    shown = json.dumps(operand, ensure_ascii=False)
    if op in ("$in", "$nin"):
        if not isinstance(operand, list) or not operand:
            raise ConfigError(f"RetrievalConfig.{where}: {op} needs a non-empty list of values, got {shown}. "
                              f"List at least one value, e.g. {{\"{op}\": [\"faq.md\"]}}.",
                              ko=f"RetrievalConfig.{where}: {op}에는 비어 있지 않은 값 목록이 필요한데 {shown}입니다. "
                                 f"값을 하나 이상 적으세요. 예: {{\"{op}\": [\"faq.md\"]}}.")
        if not all(isinstance(v, _SCALARS) for v in operand) or len({type(v) for v in operand}) > 1:
            raise ConfigError(f"RetrievalConfig.{where}: the values of {op} must all be text or all numbers, got {shown}.",
                              ko=f"RetrievalConfig.{where}: {op}의 값은 모두 텍스트이거나 모두 숫자여야 하는데 "
                                 f"{shown}입니다.")
    elif op in ("$gt", "$gte", "$lt", "$lte"):
        if isinstance(operand, bool) or not isinstance(operand, (int, float)):
            raise ConfigError(f"RetrievalConfig.{where}: {op} compares numbers, got {shown}. Use a number, e.g. "
                              f"{{\"{op}\": 3}}.",
                              ko=f"RetrievalConfig.{where}: {op}은(는) 숫자를 비교하는데 {shown}입니다. 숫자를 "
                                 f"쓰세요. 예: {{\"{op}\": 3}}.")
    elif not isinstance(operand, _SCALARS):
        raise ConfigError(f"RetrievalConfig.{where}: {op} takes text, a number or true/false, got {shown}.",
                          ko=f"RetrievalConfig.{where}: {op}은(는) 텍스트, 숫자, true/false를 받는데 {shown}입니다.")


@dataclasses.dataclass
class RetrievedChunk:
    """One result: the chunk's text, its score and its metadata (source, chunk_id, chunk_index,
    start_index, splitter settings, ...). Higher scores are better: a cosine similarity for `dense` and
    `mmr`, the fused z-score for `hybrid` (standard deviations above the average of the query's candidates, or of
    the collection with `scale="collection"`)."""

    text: str
    score: float
    metadata: dict[str, Any]

    @property
    def id(self) -> str:
        return str(self.metadata.get("chunk_id", ""))


def only_sources(where: dict[str, Any] | None, sources: list[str] | tuple[str, ...]) -> dict[str, Any] | None:
    """A Chroma `where` filter narrowed to chunks of `sources` (file names); `where` itself when none are given.

    >>> only_sources({"file_type": "text"}, ["faq.md"])
    {'$and': [{'file_type': 'text'}, {'source': {'$in': ['faq.md']}}]}
    """
    if not sources:
        return where
    by_source = {"source": {"$in": list(sources)}}
    return {"$and": [where, by_source]} if where else by_source


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
        raise ConfigError("The query is empty. Type a question.",
                          ko="검색어가 비어 있습니다. 질문을 입력하세요.")
    coll = open_collection(collection, ws, store)
    embedding = (coll.metadata or {}).get("embedding")
    q = ModeQuery(coll, query, config, lambda: embed_query(embedding, query),
                  lambda: lexical_index(collection, ws, store, coll))
    with _single_thread_blas():
        return MODES[config.mode].run(q)


def dense_mode(q: ModeQuery) -> list[RetrievedChunk]:
    """The "dense" mode: the k chunks nearest the query's vector."""
    return _dense(q.collection, q.vector(), q.config.k, q.config.filter)


def mmr_mode(q: ModeQuery) -> list[RetrievedChunk]:
    """The "mmr" mode: near the query's vector and unlike each other (`lambda_mult`)."""
    return _mmr(q.collection, q.vector(), q.config)


def hybrid_mode(q: ModeQuery) -> list[RetrievedChunk]:
    """The "hybrid" mode: BM25 (character bigrams and subwords) and the vector score, fused (`lexical_weight`)."""
    lex = q.lexical()
    # The question first, then the two BM25 scorings, in this thread. With the C engine they ran side by side
    # (its code released the GIL); with the torch engine a Python thread beside the embedding slowed it by
    # 3-4 ms, more than the ~2 ms of BM25 it hid (docs/benchmarks.md, the 100k-chunk figures).
    qvec = q.vector()
    return _hybrid(q.collection, qvec, q.config, lex, *lex.scores(q.query))


@functools.lru_cache(maxsize=256)
def embed_query(embedding: str | None, query: str) -> "np.ndarray":
    """The unit query vector, remembered for repeated questions (the comparison asks each question for
    two RAG columns; the embedding is most of a query's time). Read-only: callers must not modify it."""
    import numpy as np

    from workbench.kb.embeddings import DEFAULT_EMBEDDING

    vec = np.asarray(get_embeddings(embedding or DEFAULT_EMBEDDING).embed_query(query), dtype=np.float32)
    vec = vec / max(float(np.linalg.norm(vec)), 1e-12)
    vec.setflags(write=False)
    return vec


@functools.lru_cache(maxsize=1)
def _threadpools() -> Any:
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def _single_thread_blas() -> Any:
    """One BLAS thread for the small matrix products of a query: on a busy machine, threads waiting for
    each other cost more than they save (docs/benchmarks.md: 24 ms -> 10 ms median)."""
    return _threadpools().limit(limits=1, user_api="blas")


def _query(coll: "chromadb.Collection", qvec: "np.ndarray", n: int, where: dict[str, Any] | None,
           embeddings: bool = False, contents: bool = True) -> dict[str, Any]:
    include = (["documents", "metadatas"] if contents else []) + ["distances"] + (["embeddings"] if embeddings else [])
    try:
        return coll.query(query_embeddings=[qvec.tolist()], n_results=n, where=where or None, include=include)
    except ValueError as exc:  # chromadb rejects a malformed where clause with ValueError
        raise ConfigError(f"The metadata filter {where!r} is not valid for Chroma: {exc}",
                          ko=f"메타데이터 필터 {where!r}은(는) Chroma에서 쓸 수 없습니다: {exc}") from exc


def _dense(coll: "chromadb.Collection", qvec: "np.ndarray", k: int, where: dict[str, Any] | None) -> list[RetrievedChunk]:
    res = _query(coll, qvec, k, where)
    return [RetrievedChunk(text or "", 1.0 - float(dist), dict(meta or {}))
            for text, meta, dist in zip(res["documents"][0], res["metadatas"][0], res["distances"][0])]


def _mmr(coll: "chromadb.Collection", qvec: "np.ndarray", config: RetrievalConfig) -> list[RetrievedChunk]:
    import numpy as np
    from langchain_chroma.vectorstores import maximal_marginal_relevance

    res = _query(coll, qvec, config.candidates, config.filter, embeddings=True)
    if not res["ids"][0]:
        return []
    vectors = np.asarray(res["embeddings"][0], dtype=np.float32)
    picked = maximal_marginal_relevance(qvec, vectors, lambda_mult=config.lambda_mult, k=config.k)
    sims = vectors @ qvec
    return [RetrievedChunk(res["documents"][0][i] or "", float(sims[i]), dict(res["metadatas"][0][i] or {}))
            for i in picked]


def standardize(scores: "np.ndarray", reference: "np.ndarray") -> "np.ndarray":
    """z-scores of `scores` against the mean and spread of `reference` (the same query's scores over
    the whole collection, or a sample of it). A constant reference gives zeros, not infinities."""
    import numpy as np

    if reference.size == 0:
        return np.zeros_like(scores, dtype=np.float32)
    spread = float(reference.std())
    if spread < 1e-9:
        return np.zeros_like(scores, dtype=np.float32)
    return ((scores - float(reference.mean())) / spread).astype(np.float32)


def fuse(z_bigram: "np.ndarray", z_subword: "np.ndarray", z_dense: "np.ndarray", lexical_weight: float) -> "np.ndarray":
    """The hybrid score: the two lexical z-scores share `lexical_weight`, the dense z-score gets the rest."""
    return lexical_weight / 2 * (z_bigram + z_subword) + (1 - lexical_weight) * z_dense


def _hybrid(coll: "chromadb.Collection", qvec: "np.ndarray", config: RetrievalConfig, lex: LexicalData,
            bigram: "np.ndarray", subword: "np.ndarray") -> list[RetrievedChunk]:
    """`bigram`, `subword`: every chunk's two BM25 scores, in `lex.ids` order."""
    import numpy as np

    ids = lex.ids
    if not ids:
        return []

    allowed = np.ones(len(ids), dtype=bool)
    if config.filter:
        allowed[:] = False
        allowed[[lex.position[i] for i in coll.get(where=config.filter, include=[])["ids"] if i in lex.position]] = True
    n = min(config.candidates, len(ids))
    candidates: set[int] = set()
    for scores in (bigram, subword):
        masked = np.where(allowed & (scores > 0), scores, -np.inf)
        top = np.argpartition(-masked, n - 1)[:n]
        candidates.update(int(i) for i in top if np.isfinite(masked[i]))

    # Dense candidates come with their similarity; lexical-only ones need their vectors for it. Texts and
    # metadata are fetched for the k winners only (two light Chroma calls instead of two heavy ones).
    position = lex.position
    dense_sim: dict[int, float] = {}
    res = _query(coll, qvec, config.candidates, config.filter, contents=False)
    for id_, dist in zip(res["ids"][0], res["distances"][0]):
        if id_ in position:
            dense_sim[position[id_]] = 1.0 - float(dist)
    missing = [ids[i] for i in candidates if i not in dense_sim]
    if missing:
        got = coll.get(ids=missing, include=["embeddings"])
        for id_, vec in zip(got["ids"], got["embeddings"]):
            dense_sim[position[id_]] = float(np.asarray(vec, dtype=np.float32) @ qvec)
    order = np.fromiter(dense_sim, dtype=np.int64, count=len(dense_sim))
    dense = np.fromiter(dense_sim.values(), dtype=np.float32, count=len(dense_sim))
    b, s = bigram[order], subword[order]
    if config.scale == "candidates":  # each score against the candidates' own: a rare BM25 match is not 20 sigma
        fused = fuse(standardize(b, b), standardize(s, s), standardize(dense, dense), config.lexical_weight)
    else:
        dense_ref = lex.dense_sample @ qvec if lex.dense_sample.size else np.zeros(0, np.float32)
        fused = fuse(standardize(b, bigram), standardize(s, subword), standardize(dense, dense_ref), config.lexical_weight)
    best = np.argsort(-fused, kind="stable")[: config.k]
    winners = [ids[order[j]] for j in best]
    got = coll.get(ids=winners, include=["documents", "metadatas"])
    content = {id_: (text or "", dict(meta or {})) for id_, text, meta in zip(got["ids"], got["documents"], got["metadatas"])}
    return [RetrievedChunk(content[id_][0], float(fused[j]), content[id_][1]) for id_, j in zip(winners, best)
            if id_ in content]
