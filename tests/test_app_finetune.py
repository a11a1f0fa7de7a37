"""The Fine-tune page through AppTest: prerequisites, the form and its checks, a real short run (chart, cancel)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest
from test_finetune import color_rows, make_dataset  # noqa: E402  (tests/ is on sys.path under pytest)

APP = str(Path(__file__).resolve().parent.parent / "streamlit_app.py")


def page(lang: str = "en") -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.session_state["ui.lang"] = lang
    at.run()
    at.switch_page("app_pages/finetune.py").run()
    assert not at.exception, at.exception
    return at


def test_without_a_dataset_the_page_says_what_to_do(workspace):
    at = page("ko")
    assert at.title[0].value == "파인튜닝"
    assert "데이터셋 페이지" in at.info[0].value


def test_the_form_shows_the_fit_and_refuses_the_traps(workspace):
    make_dataset(workspace, "boxes", color_rows(8), color_rows(2, start=50))
    at = page()
    assert at.selectbox(key="finetune.dataset").value == "boxes"
    assert at.selectbox(key="finetune.base_model").value == "smollm2-135m"
    assert at.number_input(key="finetune.lora_r").value == 16
    assert "LoRA rank" in at.number_input(key="finetune.lora_r").help  # the config's help text as tooltip
    labels = [m.label for m in at.metric]
    assert {"Device", "4-bit", "Estimated memory", "Available"} <= set(labels)
    assert any("max_seq_length: 512 (CPU default)" in c.value for c in at.caption)
    at.number_input(key="finetune.max_steps").set_value(50).run()
    at.number_input(key="finetune.num_train_epochs").set_value(3.0).run()
    assert "would silently override num_train_epochs" in at.error[0].value
    assert not [b for b in at.button if b.key == "finetune.start"]
    at.button(key="finetune.tutorial").click().run()
    assert at.number_input(key="finetune.per_device_train_batch_size").value == 2
    assert at.number_input(key="finetune.gradient_accumulation_steps").value == 4
    assert at.selectbox(key="finetune.base_model").value == "llama3-open-ko-8b"
    from workbench.models.registry import detect_device

    if detect_device().kind != "cuda":  # the tutorial's 8-bit optimizer cannot run here, and nothing can start it
        assert "adamw_8bit" in at.error[0].value and at.button(key="finetune.start").disabled
        at.button(key="finetune.machine_equivalent").click().run()
        assert at.selectbox(key="finetune.optim").value == "auto" and not at.error
        assert "optim: adamw_8bit → adamw_torch" in at.info[0].value
        assert not at.button(key="finetune.start").disabled
        assert at.number_input(key="finetune.gradient_accumulation_steps").value == 4  # the rest of the tutorial stays


def test_history_shows_a_dash_for_what_a_run_did_not_record(workspace):
    import json

    from workbench.training.finetune import TrainConfig

    make_dataset(workspace, "boxes", color_rows(8), color_rows(2, start=50))
    for run_id, tps in (("20261129-120000-smollm2-135m", None), ("20261130-120000-smollm2-135m", 1234.5)):
        path = workspace.runs / run_id
        (path / "logs").mkdir(parents=True)
        TrainConfig(dataset="boxes", base_model="smollm2-135m").save(path / "config.json")
        (path / "status.json").write_text(json.dumps({"state": "failed" if tps is None else "completed", "pid": None,
                                                      "step": 0, "max_steps": 10, "tokens_per_s": tps}))
    at = page()
    history = at.dataframe[-1].value
    assert list(history["tokens/s"]) == ["1,234", "–"]  # newest first; never "None"


def test_the_context_option_needs_a_collection_and_a_context_run_shows_its_rows(workspace, monkeypatch):
    import json
    from types import SimpleNamespace

    from workbench.kb import vectordb
    from workbench.training.finetune import TrainConfig

    monkeypatch.setattr(vectordb, "list_collections", lambda ws=None, store=None: [SimpleNamespace(name="shop")])
    make_dataset(workspace, "boxes", color_rows(8), color_rows(2, start=50))
    at = page()
    assert at.selectbox(key="finetune.context").value == "none"
    at.selectbox(key="finetune.context").set_value("raft").run()
    assert "needs context_collection" in at.error[0].value
    assert not [b for b in at.button if b.key == "finetune.start"]
    assert at.selectbox(key="finetune.context_collection").options == ["(none)", "shop"]
    at.selectbox(key="finetune.context_collection").set_value("shop")
    at.number_input(key="finetune.context_max_chars").set_value(300).run()
    assert not at.error and [b for b in at.button if b.key == "finetune.start"]
    assert at.number_input(key="finetune.context_oracle_share").value == 0.8
    assert any("check how many before you start" in c.value for c in at.caption)
    at.button(key="finetune.context_fit").click().run()  # the listed 'shop' is not a real collection here
    assert not at.exception and "shop" in at.error[0].value
    # a run trained with context: the current-run tab shows what it was trained on
    path = workspace.runs / "20261201-120000-smollm2-135m"
    (path / "logs").mkdir(parents=True)
    TrainConfig(dataset="boxes", context="raft", context_collection="shop").save(path / "config.json")
    line = {"split": "train", "row": 0, "instruction": "Box 1?", "input": "", "output": "red", "oracle": "c1",
            "oracle_by": "source", "oracle_in_context": True,
            "chunks": [{"text": "Box 1 is red.", "metadata": {"source": "boxes.md", "chunk_id": "c1"}}]}
    (path / "context.jsonl").write_text(json.dumps(line) + "\n")
    (path / "status.json").write_text(json.dumps({"state": "completed", "pid": None, "context": {
        "rows": 1, "k": 3, "with_oracle": 1, "distractors_only": 0, "no_oracle_found": 0, "seconds": 0.1},
        "context_tokens": {"token_ratio": 2.5, "extra_tokens": 120, "truncated_rows": 0}}))
    at = page()
    table = next(d.value for d in at.dataframe if "oracle in context" in d.value.columns)
    assert table.iloc[0]["question"] == "Box 1?" and table.iloc[0]["chunks"] == "boxes.md"
    assert any("x2.5 of bare prompts" in c.value for c in at.caption)
    # a run that failed before building its context does not promise one
    (path / "context.jsonl").unlink()
    (path / "status.json").write_text(json.dumps({"state": "failed", "pid": None, "error": "x"}))
    at = page()
    assert any("ended before its context was built" in i.value for i in at.info)


@pytest.mark.slow
def test_start_a_short_run_see_the_chart_cancel_and_resume_offer(workspace):
    from workbench.training.runs import get_run, wait_run

    make_dataset(workspace, "boxes", color_rows(40), color_rows(4, start=100))
    at = page()
    at.selectbox(key="finetune.backend").set_value("transformers")
    at.number_input(key="finetune.max_steps").set_value(60)
    at.number_input(key="finetune.eval_steps").set_value(2)
    at.number_input(key="finetune.save_steps").set_value(2)
    at.number_input(key="finetune.per_device_train_batch_size").set_value(2).run()
    at.button(key="finetune.start").click().run()
    run_id = at.session_state["train.run_id"]
    assert at.session_state["finetune.tab"] == "Current run"  # the page switched to the run it started
    assert at.success[0].value == f"Run {run_id} started."
    wait_run(run_id, workspace, timeout=300, until=lambda r: len([m for m in r.metrics() if "loss" in m]) >= 2)
    at.run()
    assert not at.exception, at.exception
    charts = at.get("vega_lite_chart")
    assert charts, "no loss chart"
    assert {m.label: m.value for m in at.metric}["State"] == "running"
    at.button(key="finetune.cancel").click().run()
    t0 = time.time()
    run = wait_run(run_id, workspace, timeout=120)
    assert run.state == "cancelled" and time.time() - t0 < 120
    assert run.last_checkpoint is not None  # it saved before stopping: resume continues from there
    at.run()
    assert {m.label: m.value for m in at.metric}["State"] == "cancelled"
    assert [b for b in at.button if b.key == "finetune.resume"]
    at.switch_page("app_pages/finetune.py").run()
    history = [d for d in at.dataframe]
    assert history and run_id in history[0].value.iloc[:, 0].tolist()
    assert get_run(run_id, workspace).status["step"] < 60


def test_a_second_run_started_in_the_session_is_the_one_shown(workspace):
    """The run picker keeps its pick across reruns: starting a second run showed the first one (found by the browser
    loop test's second pass)."""
    import json

    from workbench.training.finetune import TrainConfig

    make_dataset(workspace, "boxes", color_rows(8), color_rows(2, start=50))

    def run_dir(run_id: str, state: str) -> None:
        path = workspace.runs / run_id
        (path / "logs").mkdir(parents=True)
        TrainConfig(dataset="boxes", base_model="smollm2-135m").save(path / "config.json")
        (path / "status.json").write_text(json.dumps({"state": state, "pid": None, "step": 3, "max_steps": 3}))

    run_dir("20261129-120000-smollm2-135m", "completed")
    at = page()
    assert at.selectbox(key="finetune.pick").value == "20261129-120000-smollm2-135m"
    run_dir("20261130-120000-smollm2-135m", "failed")  # what "Start training" leaves behind it, then reruns
    at.session_state["train.run_id"] = at.session_state["finetune.started"] = "20261130-120000-smollm2-135m"
    at.run()
    assert not at.exception, at.exception
    assert at.selectbox(key="finetune.pick").value == "20261130-120000-smollm2-135m"
    assert not at.warning or all("Session State" not in w.value for w in at.warning)
