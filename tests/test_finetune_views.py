"""The Fine-tune page's history table (workbench.ui.finetune_views), on real run folders."""

from __future__ import annotations

import json

from streamlit.testing.v1 import AppTest


def _script() -> None:
    import streamlit as st

    from workbench.training.runs import list_runs
    from workbench.ui import finetune_views

    st.session_state["table"] = finetune_views.history_table(list_runs())


def test_values_a_run_did_not_record_show_as_a_dash(workspace, monkeypatch):
    from workbench.training.finetune import TrainConfig

    monkeypatch.setenv("WORKBENCH_LANG", "en")
    for run_id, status in (("20261129-120000-smollm2-135m", {"state": "failed"}),
                           ("20261130-120000-smollm2-135m", {"state": "completed", "step": 10, "tokens_per_s": 1234.5,
                                                             "train_seconds": 8.1})):
        (workspace.runs / run_id / "logs").mkdir(parents=True)
        TrainConfig(dataset="boxes", base_model="smollm2-135m").save(workspace.runs / run_id / "config.json")
        (workspace.runs / run_id / "status.json").write_text(json.dumps({"pid": None, **status}))
    at = AppTest.from_function(_script).run()
    assert not at.exception, at.exception
    newest, failed = at.session_state["table"]
    assert (newest["run"], newest["tokens/s"], newest["steps"], newest["train s"]) == (
        "20261130-120000-smollm2-135m", "1,234", 10, 8.1)
    assert (failed["tokens/s"], failed["best val. loss"]) == ("–", None)


def _labels() -> None:
    import streamlit as st

    from workbench.ui import finetune_views

    status = {"state": "running", "step": 30, "max_steps": 30, "eta_s": 0.0, "phase": "evaluating",
              "error": "Out of memory", "error_ko": "메모리 부족",
              "message": "Retrieved training context for 25/449 rows", "message_ko": "학습 문맥 검색: 25/449행"}
    st.session_state["labels"] = (finetune_views.state_label("running"), finetune_views.eta_label(status),
                                  finetune_views.eta_label({**status, "phase": "training", "eta_s": 75}),
                                  finetune_views.run_error(status), finetune_views.run_message(status))


def test_the_state_the_final_evaluation_and_the_error_read_in_the_page_language(monkeypatch):
    monkeypatch.setenv("WORKBENCH_LANG", "ko")
    at = AppTest.from_function(_labels).run()
    assert at.session_state["labels"] == ("실행 중", "최종 평가 중…", "1m15s", "메모리 부족", "학습 문맥 검색: 25/449행")  # not "ETA 0m00s"
    monkeypatch.setenv("WORKBENCH_LANG", "en")
    at = AppTest.from_function(_labels).run()
    assert at.session_state["labels"] == ("running", "final evaluation…", "1m15s", "Out of memory",
                                            "Retrieved training context for 25/449 rows")
