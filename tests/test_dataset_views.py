"""Panels of the Dataset page (workbench.ui.dataset_views), with AppTest on a real dataset store."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest


def _script() -> None:
    import streamlit as st

    from workbench.common.config import Workspace
    from workbench.dataset import alpaca, alpaca_checks
    from workbench.ui import dataset_views

    ws = Workspace.default()
    info = alpaca.dataset_info("qa", ws)
    rows = alpaca.load_rows("qa", ws)
    dataset_views.issues_panel(info, rows, alpaca_checks.validate_rows(rows), ws)
    dataset_views.leakage_panel("qa", ws)
    st.session_state["rows"] = len(alpaca.load_rows("qa", ws))


def test_issues_are_listed_and_fixed_from_the_panel(workspace, monkeypatch):
    from workbench.dataset.alpaca import save_dataset

    monkeypatch.setenv("WORKBENCH_LANG", "en")
    rows = [{"instruction": "현금?", "input": "", "output": "네"}, {"instruction": "", "input": "", "output": "x"},
            {"instruction": "현금?", "input": "", "output": "네"}, {"instruction": "q", "input": "", "output": 5}]
    save_dataset("qa", rows, source={"kind": "test"}, workspace=workspace, settings={"tokenizer": ""})
    at = AppTest.from_function(_script).run()
    assert not at.exception, at.exception
    assert {m.label: m.value for m in at.metric} == {"Rows with errors": "2", "Duplicate warnings": "1"}
    table = at.dataframe[0].value
    assert list(table["row"]) == [2, 3, 4]
    assert "No test question nearly repeats" in at.success[0].value  # not split: no leakage file
    at.button(key="dataset.drop_dups").click().run()
    assert at.session_state["rows"] == 3
    at.button(key="dataset.fix").click().run()
    at.button(key="dataset.drop_errors").click().run()
    assert at.session_state["rows"] == 2
