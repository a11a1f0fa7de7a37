"""The Dataset page under AppTest: import, check / drop / fix, save, split, downloads, push offline, generate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.test_synth import CannedLLMServer, pairs_json
from workbench.dataset import alpaca

APP = str(Path(__file__).resolve().parent.parent / "streamlit_app.py")


def page(lang: str = "en") -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.session_state["ui.lang"] = lang
    at.switch_page("app_pages/dataset.py")
    return at.run()


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


@pytest.mark.parametrize("lang,title,hint,no_kb", [
    ("en", "Dataset", "Import or generate a dataset first.", "No knowledge-base collection yet"),
    ("ko", "데이터셋", "먼저 데이터셋을 가져오거나 생성하세요.", "아직 지식 베이스 컬렉션이 없습니다")])
def test_empty_workspace_in_both_languages(workspace, lang, title, hint, no_kb):
    at = page(lang)
    assert not at.exception
    infos = [i.value for i in at.info]
    assert at.title[0].value == title and hint in infos and any(i.startswith(no_kb) for i in infos)
    assert at.radio(key="dataset.source_kind").value == "sample" and not at.button(key="dataset.import").disabled
    at.radio(key="dataset.source_kind").set_value("upload").run()
    assert at.button(key="dataset.import").disabled  # nothing uploaded yet


def test_import_sample_split_download_and_push_offline(workspace, smollm2_dir):
    at = page()
    at.radio(key="dataset.source_kind").set_value("sample").run()
    at.selectbox(key="dataset.sample").set_value("shop_qa_small.csv").run()
    assert at.text_input(key="dataset.new_name").value == "shop_qa_small"
    at.button(key="dataset.import").click().run()
    assert not at.exception and not at.error
    assert "Imported 60 rows into 'shop_qa_small': 0 rows with errors, 0 warnings." in [s.value for s in at.success]
    assert metrics(at)["Rows"] == "60" and metrics(at)["Train"] == "–"
    assert at.selectbox(key="dataset.name").value == "shop_qa_small"

    at.button(key="dataset.split").click().run()
    assert not at.exception and not at.error
    m = metrics(at)
    assert (m["Train"], m["Validation"], m["Test"]) == ("43", "11", "6")
    downloads = at.get("download_button")
    assert [d.proto.label for d in downloads] == ["Download train.csv (43 rows)", "Download validation.csv (11 rows)",
                                                  "Download test.csv (6 rows)"]
    assert "No test question nearly repeats a training question." in [s.value for s in at.success]

    # Where you start: the base model's own evaluation of the new test split, as a background job.
    from workbench.compare.eval_jobs import cancel_evaluation, list_evaluations
    from workbench.compare.evaluation import EvalConfig

    assert at.selectbox(key="dataset.start_collection").value == ""  # no collection yet: base alone
    at.button(key="dataset.start_eval").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    (folder,) = list_evaluations(workspace)
    cfg = EvalConfig.load(folder / "config.json")
    assert (cfg.dataset, cfg.run_id, cfg.sources, cfg.base_model) == ("shop_qa_small", "", ("base",), "smollm2-135m")
    assert any(folder.name in s.value for s in at.success)
    cancel_evaluation(folder, force=True)

    at.text_input(key="dataset.repo").input("me/shop").run()
    at.button(key="dataset.push").click().run()
    [err] = [e.value for e in at.error]
    assert err.startswith("Cannot upload to me/shop: the Hugging Face Hub is offline") and "are kept" in err
    export = workspace.datasets / "shop_qa_small" / "export"
    assert sorted(p.name for p in export.iterdir()) == ["README.md", "test.csv", "train.csv"]
    assert str(export) in [c.value for c in at.code]

    at.button(key="dataset.export").click().run()  # the button says what it wrote, and where
    assert f"Wrote train.csv, test.csv and the dataset card to {export}" in [s.value for s in at.success]


def test_bad_rows_are_listed_then_fixed_and_dropped(workspace):
    rows = [{"instruction": "현금 돼요?", "input": "", "output": "네"}, {"instruction": "", "input": "", "output": "빈 질문"},
            {"instruction": 7, "input": "", "output": "숫자 질문"}, {"instruction": "현금 돼요?", "input": "", "output": "네"}]
    path = workspace.root / "bad.json"  # "path on this machine" reads only inside the workspace and the examples
    path.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    at = page("ko")
    at.radio(key="dataset.source_kind").set_value("path").run()
    at.text_input(key="dataset.path").input(str(path)).run()
    at.text_input(key="dataset.tokenizer").input("").run()
    at.button(key="dataset.import").click().run()
    assert not at.exception and metrics(at)["오류 행"] == "2" and metrics(at)["중복 경고"] == "1"
    [issues] = [d.value for d in at.dataframe if "문제" in d.value.columns]
    assert issues["행"].tolist() == [2, 3, 4] and issues["문제"].tolist() == ["질문(instruction) 없음", "텍스트 아님", "완전 중복"]

    at.button(key="dataset.fix").click().run()
    assert metrics(at)["오류 행"] == "1" and alpaca.load_rows("bad", workspace)[2]["instruction"] == "7"
    at.button(key="dataset.drop_errors").click().run()
    assert metrics(at)["행"] == "3" and metrics(at)["오류 행"] == "0"
    at.button(key="dataset.drop_dups").click().run()
    assert metrics(at)["행"] == "2" and "문제가 없습니다." in [s.value for s in at.success]
    assert [r["instruction"] for r in alpaca.load_rows("bad", workspace)] == ["현금 돼요?", "7"]

    before = alpaca.load_rows("bad", workspace)
    at.button(key="dataset.save").click().run()  # the unchanged editor saves the same rows
    assert alpaca.load_rows("bad", workspace) == before and "2행을 저장했습니다." in [s.value for s in at.success]
    at.button(key="dataset.reload").click().run()
    assert not at.exception


def test_generate_from_a_collection_in_the_background(workspace):
    from langchain_core.documents import Document

    from workbench.kb import ingest
    from workbench.kb.chunking import ChunkingConfig

    docs = [Document(page_content="현금으로 결제가 가능합니다.", metadata={"source": "pay.txt", "file_type": "text"})]
    ingest.ingest_documents(docs, "shop", ChunkingConfig(splitter="recursive", chunk_size=200, chunk_overlap=0), workspace=workspace)
    with CannedLLMServer([pairs_json(("현금 돼요?", "네."), ("카드는요?", "됩니다."))]) as srv:
        at = page()
        assert at.selectbox(key="dataset.gen_collection").value == "shop"
        assert at.button(key="dataset.generate").disabled  # no model named yet: nothing to start
        at.text_input(key="dataset.gen_url_openai").input(srv.url)
        at.text_input(key="dataset.gen_model").input("canned")
        at.text_input(key="dataset.gen_key").input("sk-page-secret")
        at.number_input(key="dataset.gen_n").set_value(2).run()
        at.button(key="dataset.generate").click().run()
        assert not at.exception and not at.error
        from workbench.jobs.runner import wait_job

        folder = at.session_state["dataset.gen_job"]  # a folder, not a thread: the work runs in a child process
        assert wait_job(folder, timeout=120)["state"] == "completed"
        at.run()
    assert srv.requests[0]["headers"]["authorization"] == "Bearer sk-page-secret"
    assert "2 rows from 1 chunks" in " ".join(s.value for s in at.success)
    at.button(key="dataset.gen_clear").click().run()
    assert at.selectbox(key="dataset.name").value == "shop-generated" and metrics(at)["Rows"] == "2"
    rows = alpaca.load_rows("shop-generated", workspace)
    assert [(r["instruction"], r["source"]) for r in rows] == [("현금 돼요?", "pay.txt"), ("카드는요?", "pay.txt")]
    assert all("sk-page-secret" not in p.read_text(encoding="utf-8") for p in (workspace.datasets / "shop-generated").iterdir())
    assert all("sk-page-secret" not in p.read_text(encoding="utf-8") for p in Path(folder).iterdir() if p.is_file())


def test_a_path_outside_the_workspace_is_refused_in_one_line(workspace, tmp_path, monkeypatch):
    monkeypatch.delenv("WORKBENCH_ALLOW_PATHS", raising=False)
    (tmp_path / "qa.csv").write_text("instruction,output\nq,a\n", encoding="utf-8")
    at = page("en")
    at.radio(key="dataset.source_kind").set_value("path").run()
    for outside in ("/etc/passwd", str(tmp_path / "qa.csv")):
        at.text_input(key="dataset.path").input(outside).run()
        assert not at.exception and len(at.error) == 1
        assert at.error[0].value.startswith(f"{outside} is outside the workspace") and "WORKBENCH_ALLOW_PATHS" in at.error[0].value
    monkeypatch.setenv("WORKBENCH_ALLOW_PATHS", str(tmp_path))
    at.text_input(key="dataset.path").input(str(tmp_path / "qa.csv") + " ").run()
    assert not at.exception and not at.error

