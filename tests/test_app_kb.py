from __future__ import annotations

from pathlib import Path

import pytest
from apphelpers import open_app_page
from langchain_core.documents import Document
from streamlit.testing.v1 import AppTest

from workbench.kb import ingest, vectordb
from workbench.kb.chunking import ChunkingConfig

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "streamlit_app.py")
SHOP = ROOT / "examples" / "shop"


def open_page(lang: str = "en") -> AppTest:
    return open_app_page("app_pages/knowledge_base.py", lang)


@pytest.mark.parametrize("lang,title", [("en", "Knowledge base"), ("ko", "지식 베이스")])
def test_empty_workspace_offers_a_new_collection_and_a_preview(workspace, lang, title):
    at = open_page(lang)
    assert at.title[0].value == title
    assert at.selectbox(key="kb.collection").value == "\u2795"
    assert at.text_input(key="kb.new_name").value == "shop"
    assert at.button(key="kb.ingest").disabled  # nothing uploaded yet
    if SHOP.is_dir():  # the preview shows the sample's CP949 file cut into chunks with char and byte counts
        table = at.dataframe[0].value
        assert list(table.columns)[:4] == (["#", "start", "chars", "bytes"] if lang == "en" else ["#", "시작", "글자", "바이트"])
        assert (table.iloc[:, 3] >= table.iloc[:, 2]).all()


def test_invalid_chunk_settings_show_the_values(workspace):
    at = open_page()
    at.number_input(key="kb.chunk_size").set_value(100).run()
    at.number_input(key="kb.overlap").set_value(150).run()
    assert "got a larger chunk overlap (150) than chunk size (100)" in at.error[0].value
    assert at.button(key="kb.sample").disabled


@pytest.mark.skipif(not SHOP.is_dir(), reason="the sample shop documents are not there")
def test_sample_one_click_then_search_and_browse(workspace):
    at = open_page()
    at.text_input(key="kb.new_name").set_value("상점").run()
    at.number_input(key="kb.chunk_size").set_value(800).run()
    at.number_input(key="kb.overlap").set_value(80).run()
    at.button(key="kb.sample").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.selectbox(key="kb.collection").value == "상점"
    assert "chunks added, 0 removed" in at.success[0].value
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Documents"] == str(len([p for p in SHOP.iterdir() if p.is_file()]))

    at.text_input(key="kb.query").input("현금으로 결제가 가능한가요?").run()
    at.button(key="kb.search").click().run()
    captions = [c.value for c in at.caption if c.value.startswith("#")]
    assert len(captions) == 5 and "score" in captions[0]
    assert any("현금" in x.value for x in at.text[:3])

    # Filter to one document: every result comes from it.
    at.multiselect(key="kb.sources").set_value(["price_list.csv"]).run()
    at.radio(key="kb.mode").set_value("dense").run()
    at.button(key="kb.search").click().run()
    captions = [c.value for c in at.caption if c.value.startswith("#")]
    assert captions and all("price_list.csv" in c for c in captions)


def test_browse_and_delete_a_document(workspace):
    docs = [Document("현금으로 결제가 가능합니다.", metadata={"source": "pay.txt"}),
            Document("주차는 두 시간 무료입니다.", metadata={"source": "park.txt"})]
    ingest.ingest_documents(docs, "faq", ChunkingConfig(), workspace=workspace)
    at = open_page()
    assert at.selectbox(key="kb.collection").value == "faq"
    at.selectbox(key="kb.browse_source").set_value("park.txt").run()
    assert "주차는 두 시간 무료입니다." in at.dataframe[-1].value.iloc[:, -1].tolist()
    assert at.button(key="kb.delete_doc").disabled
    at.checkbox(key="kb.confirm_delete_doc").check().run()
    at.button(key="kb.delete_doc").click().run()
    assert not at.exception
    assert [d.source for d in vectordb.list_documents("faq", workspace)] == ["pay.txt"]
    assert {m.label: m.value for m in at.metric}["Documents"] == "1"


@pytest.mark.skipif(not SHOP.is_dir(), reason="the sample shop documents are not there")
def test_a_large_ingest_runs_as_a_job_with_progress(workspace, monkeypatch):
    from workbench.jobs.runner import wait_job
    from workbench.kb import ingest_jobs

    monkeypatch.setattr(ingest_jobs, "LARGE_INGEST_FILES", 0)  # every ingest counts as large
    at = open_page()
    at.text_input(key="kb.new_name").set_value("bulk").run()
    at.button(key="kb.sample").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    folder = at.session_state["kb.ingest_job"]  # a folder: the ingest runs in a child process
    assert at.button(key="kb.sample").disabled and at.button(key="kb.ingest_cancel")
    assert wait_job(folder, timeout=300)["state"] == "completed"
    at.run()  # the poll sees the end, then the page shows the report
    at.run()
    assert "kb.ingest_job" not in at.session_state
    assert at.selectbox(key="kb.collection").value == "bulk"
    assert "chunks added, 0 removed" in at.success[0].value


def _faq_with_questions(workspace) -> None:
    from workbench.dataset import alpaca

    docs = [Document("현금으로 결제가 가능합니다. 카드와 현금 모두 받습니다.", metadata={"source": "pay.txt"}),
            Document("주차장은 건물 지하 2층에 있습니다. 두 시간 무료입니다.", metadata={"source": "park.txt"})]
    ingest.ingest_documents(docs, "faq", ChunkingConfig(), workspace=workspace)
    rows = [{"instruction": q, "input": "", "output": "a", "source": s}
            for q, s in (("현금 결제 되나요?", "pay.txt"), ("주차장이 어디예요?", "park.txt"), ("카드 받나요?", "pay.txt"))]
    alpaca.save_dataset("faq-qs", rows, source={"kind": "test"}, workspace=workspace)


@pytest.mark.parametrize("lang,tab,run_label", [("en", "Retrieval lab", "Run the retrieval lab"),
                                                ("ko", "검색 실험", "검색 실험 실행")])
def test_the_retrieval_lab_runs_as_a_job_and_saves_the_best_setting(workspace, lang, tab, run_label):
    from workbench.jobs.runner import wait_job
    from workbench.kb.retrieval import saved_retrieval

    _faq_with_questions(workspace)
    at = open_page(lang)
    assert tab in [x.label for x in at.tabs]
    assert at.selectbox(key="kb.lab_dataset").value == "faq-qs"
    assert at.button(key="kb.lab_run").label == run_label
    at.selectbox(key="kb.lab_split").set_value("all").run()
    at.button(key="kb.lab_run").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    folder = at.session_state["kb.lab_job"]  # a child process; the page polls it
    assert at.button(key="kb.lab_run").disabled and at.button(key="kb.lab_cancel")
    assert wait_job(folder, timeout=300)["state"] == "completed"
    at.run()
    at.run()
    assert "kb.lab_job" not in at.session_state and not at.exception
    table = next(d.value for d in at.dataframe if "hit@1" in d.value.columns)
    assert len(table) >= 8 and table.iloc[:, 0].str.endswith("★").sum() == 1
    best = at.selectbox(key="kb.lab_pick").value
    at.selectbox(key="kb.lab_pick").set_value("dense").run()
    at.button(key="kb.lab_save").click().run()
    assert saved_retrieval("faq", workspace)["mode"] == "dense" and best
    assert at.radio(key="kb.mode").value == "dense"  # the search follows the saved setting
    assert any("Search, ask, Compare and evaluate use it" in x.value or "이 설정을 씁니다" in x.value for x in at.success)


def test_search_starts_from_the_collections_saved_setting(workspace):
    from workbench.kb.retrieval import save_retrieval

    _faq_with_questions(workspace)
    save_retrieval("faq", {"mode": "mmr", "lexical_weight": 0.35}, workspace)
    at = open_page()
    assert at.radio(key="kb.mode").value == "mmr" and at.slider(key="kb.lexical_weight").value == 0.35
    assert "mode=mmr" in " ".join(m.value for m in at.markdown)  # the lab tab names the saved settings
