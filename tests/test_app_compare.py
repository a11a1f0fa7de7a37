"""The Compare page, driven with AppTest: columns answer from one loaded base model, RAG columns show their chunks,
a finished evaluation renders its report with filters and downloads, and the knowledge-freshness panel moves a fact."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from apphelpers import open_app_page, split_csv_dataset
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "streamlit_app.py")
SHOP = ROOT / "examples" / "shop"


def open_page(lang: str = "en") -> AppTest:
    return open_app_page("app_pages/compare.py", lang)


@pytest.fixture(scope="module")
def adapter(smollm2_dir, tmp_path_factory):
    """A real LoRA adapter on SmolLM2 (randomly perturbed so that it changes the answers), saved with its tokenizer."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(str(smollm2_dir), dtype=torch.float32),
                           LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.02)
    out = tmp_path_factory.mktemp("compare-adapter")
    model.save_pretrained(str(out))
    AutoTokenizer.from_pretrained(str(smollm2_dir)).save_pretrained(str(out))
    return out


def make_run(workspace, smollm2_dir: Path, adapter: Path, run_id: str = "20261129-120000-smollm2-135m") -> str:
    """A finished run directory in the contract's format (config.json, status.json, adapter/)."""
    import shutil

    from workbench.training.finetune import TrainConfig

    path = workspace.runs / run_id
    (path / "logs").mkdir(parents=True)
    TrainConfig(dataset="shop", base_model="smollm2-135m", prompt_template="chat").save(path / "config.json")
    (path / "status.json").write_text(json.dumps({
        "state": "completed", "pid": None, "started_at": None, "ended_at": None, "error": None, "step": 10,
        "max_steps": 10, "resolved_base_model": str(smollm2_dir), "best_checkpoint": None, "train_seconds": 42.0}))
    shutil.copytree(adapter, path / "adapter")
    return run_id


@pytest.mark.parametrize("lang,title", [("en", "Compare"), ("ko", "비교")])
def test_empty_workspace_offers_the_base_model(workspace, lang, title):
    at = open_page(lang)
    assert at.title[0].value == title
    assert at.multiselect(key="compare.sources").value == ["base"]
    assert at.multiselect(key="compare.sources").options == ["base" if lang == "en" else "기본 모델"]
    assert at.text_area(key="compare.question").value == ("Where is the ice cream?" if lang == "en" else "아이스크림이 있는 곳은?")
    assert "No split dataset yet" in at.info[0].value if lang == "en" else "분할된 데이터셋" in at.info[0].value
    assert at.text_area(key="compare.rag_template").value.endswith("{question}")


def test_finished_evaluation_renders_its_report(workspace):
    from workbench.common.runfiles import update_json
    from workbench.compare.eval_jobs import new_eval_dir
    from workbench.compare.evaluation import EvalConfig
    from workbench.compare.metrics import score_answer
    from workbench.compare.report import summarize, write_report

    def rec(row, source, answer, reference):
        return {"row": row, "source": source, "question": f"question {row}", "reference": reference, "answer": answer,
                **score_answer(answer, reference), "embedding_similarity": None, "judge": None,
                "retrieval_hit": True if source == "rag" else None, "prompt_tokens": 90 if source == "rag" else 30,
                "completion_tokens": 5, "latency_s": 0.5, "tokens_per_s": 10.0, "retrieval_s": None, "stopped": "stop_token"}

    results = [rec(1, "ft", "aisle 5", "aisle 5"), rec(1, "rag", "aisle 3", "aisle 5"),
               rec(2, "ft", "no idea", "cash is fine"), rec(2, "rag", "cash is fine", "cash is fine")]
    cfg = EvalConfig(dataset="shop", adapter_dir="/x", collection="c", sources=("ft", "rag"), embedding_model="")
    folder = new_eval_dir(cfg, workspace)
    import csv

    from workbench.compare.evaluation import RESULT_COLUMNS
    with (folder / "results.csv").open("w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=RESULT_COLUMNS, extrasaction="ignore")
        w.writeheader()
        w.writerows(results)
    write_report(folder, summarize(results, cfg, rows_total=2, template="chat"), results)
    update_json(folder / "status.json", state="completed")

    at = open_page()
    assert at.selectbox(key="compare.eval_pick").value == str(folder)
    table = at.dataframe[0].value
    assert list(table["source"]) == ["fine-tuned", "base + RAG"] and "char F1" in table.columns
    readable = at.dataframe[1].value
    assert readable.to_dict("records")[0] == {"source": "fine-tuned", "ended on its own": "2/2", "cut as a loop": "0/2",
                                              "ran to max tokens": "0/2", "repeats itself": "0/2",
                                              "recites the instruction": "0/2", "copies a context header": "0/2"}
    wide = at.dataframe[2].value
    assert list(wide["row"]) == [1, 2]
    at.radio(key="compare.eval_filter").set_value("ft").run()
    assert list(at.dataframe[2].value["row"]) == [1]  # where fine-tuning wins
    at.radio(key="compare.eval_filter").set_value("rag").run()
    assert list(at.dataframe[2].value["row"]) == [2]  # where RAG wins
    assert {m.label: m.value for m in at.metric}["Prompt tokens added by retrieval"] == "–"  # no base source here
    # The page ends with the verdict: two rows cannot tell the two sources apart, and it says so.
    (verdict,) = [i.value for i in at.info if "test questions" in i.value]
    assert verdict.startswith("On these 2 test questions the best source is") and "Too few rows to tell" in verdict


@pytest.mark.slow
def test_starts_on_the_latest_run_its_collection_and_every_source_and_keeps_them(workspace, smollm2_dir, adapter):
    from langchain_core.documents import Document

    from workbench.dataset.alpaca import save_dataset
    from workbench.kb import ingest

    make_run(workspace, smollm2_dir, adapter, "20261129-120000-smollm2-135m")
    newest = make_run(workspace, smollm2_dir, adapter, "20261130-090000-smollm2-135m")
    for name in ("aaa-notes", "shop"):  # the dataset came from the second one
        ingest.ingest_documents([Document(f"{name}: the ice cream is in aisle 5.", metadata={"source": "map.md"})], name,
                                workspace=workspace)
    save_dataset("shop", [{"instruction": "Where?", "input": "", "output": "Aisle 5."}], workspace=workspace,
                 source={"kind": "generated", "collection": "shop"})
    at = open_page()
    assert at.selectbox(key="compare.run").value == newest
    assert at.selectbox(key="compare.collection").value == "shop"
    assert at.multiselect(key="compare.sources").value == ["base", "ft", "rag", "ft_rag"]

    at.selectbox(key="compare.collection").set_value("aaa-notes").run()
    at.multiselect(key="compare.sources").set_value(["ft", "ft_rag"]).run()
    at.switch_page("app_pages/dataset.py").run()  # Streamlit drops the state of the widgets it does not draw
    at.switch_page("app_pages/compare.py").run()
    assert not at.exception, at.exception
    assert at.selectbox(key="compare.run").value == newest
    assert at.selectbox(key="compare.collection").value == "aaa-notes"
    assert at.multiselect(key="compare.sources").value == ["ft", "ft_rag"]


def test_answers_to_another_question_are_cleared(workspace):
    at = open_page()
    answer = {"text": "In aisle 3.", "stopped": "eos", "latency_s": 1.0, "completion_tokens": 4, "tokens_per_s": 4.0,
              "prompt_tokens": 20, "rag": False, "prompt": "Where is the ice cream?"}
    at.session_state["compare.result"] = {"question": "Where is the ice cream?", "answers": {"base": answer},
                                          "warnings": [], "chunks": [], "reference": None,
                                          "asked": ("Where is the ice cream?", "")}
    at.run()
    assert not at.exception, at.exception
    assert "compare.result" in at.session_state and "In aisle 3." in [x.value for x in at.text]
    at.text_area(key="compare.question").set_value("Where is the milk?").run()
    assert "compare.result" not in at.session_state


@pytest.mark.slow
def test_four_columns_from_one_base_model(workspace, smollm2_dir, adapter):
    from langchain_core.documents import Document

    from workbench.kb import ingest

    run_id = make_run(workspace, smollm2_dir, adapter)
    ingest.ingest_documents([Document("The ice cream is in the freezer in aisle 5.", metadata={"source": "map.md"}),
                               Document("Cash and cards are accepted.", metadata={"source": "pay.md"})], "shop",
                              workspace=workspace)
    at = open_page()
    at.selectbox(key="compare.run").set_value(run_id).run()
    at.selectbox(key="compare.collection").set_value("shop").run()
    assert at.selectbox(key="compare.template").value == "auto"  # the run's own training template
    at.multiselect(key="compare.sources").set_value(["base", "ft", "rag", "ft_rag"]).run()
    at.number_input(key="compare.max_new_tokens").set_value(12).run()
    at.number_input(key="compare.k").set_value(1).run()
    at.button(key="compare.ask").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    result = at.session_state["compare.result"]
    assert result["template"] == "chat"  # what the run was trained with
    answers = result["answers"]
    assert list(answers) == ["base", "ft", "rag", "ft_rag"]
    assert answers["base"]["text"] != answers["ft"]["text"]  # the adapter is switched on for ft only
    assert answers["rag"]["prompt_tokens"] > answers["base"]["prompt_tokens"]
    assert "The ice cream is in the freezer in aisle 5." in answers["rag"]["prompt"]
    assert "[1]" not in answers["rag"]["prompt"] and "(map.md)" not in answers["rag"]["prompt"]  # no header to copy
    assert result["chunks"][0]["source"] == "map.md"
    captions = [c.value for c in at.caption if "tokens/s" in c.value]
    assert len(captions) == 4
    texts = [x.value for x in at.text]
    assert answers["ft"]["text"] in texts  # rendered as text, not markdown


@pytest.mark.slow
@pytest.mark.skipif(not (SHOP / "store_map_ko.md").is_file(), reason="the sample shop is not there")
def _until_reingested(at: AppTest, timeout: float = 120) -> None:
    """Rerun the page (as its polling fragment does) until the freshness re-ingest job is over."""
    import time

    deadline = time.time() + timeout
    while "job" in at.session_state["compare.fresh"] and time.time() < deadline:
        time.sleep(0.5)
        at.run()
    assert "job" not in at.session_state["compare.fresh"] and not at.exception


def test_freshness_panel_moves_the_ice_cream(workspace):
    from workbench.kb.ingest import ingest_paths
    from workbench.kb.retrieval import RetrievalConfig, retrieve

    ingest_paths([SHOP / "store_map_ko.md"], "shop", workspace=workspace)
    at = open_page("ko")
    at.selectbox(key="compare.collection").set_value("shop").run()
    at.button(key="compare.fresh_change").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.session_state["compare.fresh"]["job"]["step"] == "change"  # the re-ingest is a background job
    _until_reingested(at)
    assert "2곳을 바꾸고 다시 넣었습니다" in at.success[0].value and "(청크 " in at.success[0].value
    top = retrieve("shop", "아이스크림이 있는 곳은?", RetrievalConfig(mode="dense", k=2, fetch_k=5), workspace)
    assert any("5번 통로 냉동고" in c.text for c in top)
    at.button(key="compare.fresh_restore").click().run()
    _until_reingested(at)
    assert not at.error and "원래 문서를 컬렉션에 다시 넣었습니다" in at.success[0].value, [e.value for e in at.error]
    top = retrieve("shop", "아이스크림이 있는 곳은?", RetrievalConfig(mode="dense", k=2, fetch_k=5), workspace)
    assert not any("5번 통로 냉동고" in c.text for c in top)


def test_start_and_cancel_a_batch_evaluation(workspace, tmp_path):
    import time

    from workbench.compare.eval_jobs import evaluation_status, list_evaluations
    from workbench.compare.evaluation import EvalConfig

    split_csv_dataset(workspace, "tiny", [[f"Question {i}?", "", f"Answer {i}."] for i in range(6)], tmp_path, test_size=0.34)
    at = open_page()
    at.number_input(key="compare.eval_limit").set_value(1).run()
    at.number_input(key="compare.eval_batch_size").set_value(4).run()
    at.button(key="compare.eval_start").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    (folder,) = list_evaluations(workspace)
    assert EvalConfig.load(folder / "config.json").batch_size == 4  # the page's setting reaches the job
    assert at.selectbox(key="compare.eval_pick").value == str(folder)
    assert evaluation_status(folder)["state"] in ("pending", "running")
    at.button(key="compare.eval_cancel").click().run()
    deadline = time.time() + 60
    while evaluation_status(folder)["state"] in ("pending", "running") and time.time() < deadline:
        time.sleep(0.2)
    assert evaluation_status(folder)["state"] == "cancelled"


def test_the_retrieval_mode_follows_the_collections_saved_setting(workspace):
    from langchain_core.documents import Document

    from workbench.kb import ingest
    from workbench.kb.retrieval import save_retrieval

    for name in ("faq", "notes"):
        ingest.ingest_documents([Document("현금으로 결제가 가능합니다.", metadata={"source": "pay.txt"})], name, workspace=workspace)
    save_retrieval("faq", {"mode": "dense"}, workspace)
    at = open_page()
    at.selectbox(key="compare.collection").set_value("faq").run()
    assert not at.exception and at.radio(key="compare.mode").value == "dense"
    at.selectbox(key="compare.collection").set_value("notes").run()  # no saved settings: the default
    assert at.radio(key="compare.mode").value == "hybrid"


def test_a_finished_evaluation_reads_in_korean(workspace):
    """Sources, column names, the interval note and the run's warning in Korean (#17); the files stay English."""
    from workbench.common.runfiles import update_json
    from workbench.common.texts import Text
    from workbench.compare.eval_jobs import new_eval_dir
    from workbench.compare.evaluation import EvalConfig
    from workbench.compare.metrics import score_answer
    from workbench.compare.report import summarize, write_report

    results = [{"row": 1, "source": s, "question": "q", "reference": "5번 통로", "answer": a, **score_answer(a, "5번 통로"),
                "latency_s": 0.5, "prompt_tokens": 30, "completion_tokens": 5, "tokens_per_s": 10.0}
               for s, a in (("ft", "5번 통로"), ("ft_rag", "3번 통로"))]
    cfg = EvalConfig(dataset="shop", adapter_dir="/x", collection="c", sources=("ft", "ft_rag"), embedding_model="")
    folder = new_eval_dir(cfg, workspace)
    (folder / "results.csv").write_text("row,source\n", encoding="utf-8")
    summary = summarize(results, cfg, rows_total=1, template="chat", warnings=[Text("adapter warning", "어댑터 경고")])
    write_report(folder, summary, results)
    update_json(folder / "status.json", state="completed")

    at = open_page("ko")
    table = at.dataframe[0].value
    assert list(table["소스"]) == ["파인튜닝", "파인튜닝 + RAG"] and {"행 수", "문자 F1", "지연 시간(초)"} <= set(table.columns)
    assert "퍼센타일 부트스트랩" in at.caption[-1].value or any("퍼센타일 부트스트랩" in c.value for c in at.caption)
    assert [w.value for w in at.warning] == ["어댑터 경고"]
    assert "| fine-tuned |" in (folder / "report.md").read_text(encoding="utf-8")  # the report file keeps English
