"""The freshness panel's views (workbench.ui.freshness_views): answers before and after with the fact each states,
and the measurement with its warning for a source that keeps the old fact although retrieval gives the new one."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest


def _script() -> None:
    import streamlit as st

    from workbench.ui import freshness_views

    label = {"rag": "base + RAG", "ft": "fine-tuned", "ft_rag": "fine-tuned + RAG"}.__getitem__
    q = "아이스크림은?"
    fresh = {"before": [{"question": q, "source": "rag", "answer": "3번 통로", "fact": "old", "context": "old"}],
             "after": [{"question": q, "source": "rag", "answer": "5번 통로", "fact": "new", "context": "new"},
                       {"question": q, "source": "ft", "answer": "3번 통로", "fact": "old", "context": ""}]}
    st.dataframe(freshness_views.freshness_table(fresh, ["rag", "ft"], label))
    record = {"reingest_seconds": 3.5, "summary": {
        "rag": {"questions": 1, "old_before": 1, "new_after": 1, "old_after": 0, "stale": []},
        "ft_rag": {"questions": 1, "old_before": 1, "new_after": 0, "old_after": 1, "stale": [q]}}}
    freshness_views.show_freshness_measure(record, label)


def test_answers_facts_and_the_measurement_are_drawn_as_given(monkeypatch):
    monkeypatch.setenv("WORKBENCH_LANG", "en")
    at = AppTest.from_function(_script).run()
    assert not at.exception, at.exception
    assert at.dataframe[0].value.to_dict("records") == [
        {"question": "아이스크림은?", "source": "base + RAG", "before the change": "3번 통로", "fact before": "old fact",
         "after the change": "5번 통로", "fact after": "new fact"},
        {"question": "아이스크림은?", "source": "fine-tuned", "before the change": "", "fact before": "",
         "after the change": "3번 통로", "fact after": "old fact"}]
    assert at.dataframe[1].value.to_dict("records")[1] == {"source": "fine-tuned + RAG", "old fact before": "1/1",
                                                           "new fact after": "0/1", "old fact after": "1/1"}
    assert "re-ingest of 3.5 s" in at.caption[0].value
    assert [w.value for w in at.warning] == ["fine-tuned + RAG stated the old fact in 1 answers although retrieval "
                                             "gave it the new one: what it learned overrides what it reads."]
