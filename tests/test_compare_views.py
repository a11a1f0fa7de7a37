"""What the Compare page draws (workbench.ui.compare_views), on literal answers, with AppTest."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest


def _script() -> None:
    import streamlit as st

    from workbench.ui import compare_views as views

    answer = {"text": "5번 통로", "latency_s": 1.234, "completion_tokens": 7, "tokens_per_s": 5.67, "prompt_tokens": 90,
              "stopped": "max_new_tokens", "rag": True, "prompt": "### Instruction:\n아이스크림?"}
    result = {"warnings": ["a warning"], "answers": {"rag": answer},
              "chunks": [{"text": "아이스크림은 5번 통로", "score": 0.91234, "source": "map.md"}]}
    views.show_answers(result, {"rag": "base + RAG"}.__getitem__)
    st.markdown(views.evaluation_name("/ws/runs/20261203-run/eval/20261203-120000-shop"))


def test_answers_and_chunks_are_drawn_as_given(monkeypatch):
    monkeypatch.setenv("WORKBENCH_LANG", "en")
    at = AppTest.from_function(_script).run()
    assert not at.exception, at.exception
    assert [w.value for w in at.warning] == ["a warning"]
    assert at.text[0].value == "5번 통로"  # model output as text, never markup
    assert at.caption[0].value == "Sources: map.md"  # beside the answer, never inside it
    assert at.caption[1].value == "1.23 s · 7 tokens · 5.7 tokens/s · prompt 90 tokens · hit max tokens"
    chunks = at.dataframe[0].value
    assert list(chunks.columns) == ["#", "score", "source", "text"] and chunks["score"][0] == 0.912
    assert at.markdown[-1].value == "20261203-120000-shop (20261203-run)"


def _context_script() -> None:
    from workbench.ui import compare_views as views

    answer = {"text": "5번 통로", "latency_s": 1.0, "completion_tokens": 3, "tokens_per_s": 3.0, "prompt_tokens": 90,
              "stopped": "stop_token", "rag": True, "prompt": "..."}
    result = {"warnings": [], "answers": {"ft_rag": answer}, "chunks": [],
              "context": {"k": 3, "max_chars": 0, "lang": "ko", "collection": "shop"}}
    views.show_answers(result, {"ft_rag": "fine-tuned + RAG"}.__getitem__)


def test_a_context_runs_column_says_it_is_asked_with_the_runs_own_prompt(monkeypatch):
    """In the English UI a run trained with Korean context answers from a Korean instruction: the page says why."""
    monkeypatch.setenv("WORKBENCH_LANG", "en")
    at = AppTest.from_function(_context_script).run()
    assert not at.exception, at.exception
    assert at.caption[0].value.startswith("Fine-tuned + RAG is asked with this run's own training prompt (Korean "
                                          "instruction, 3 numbered chunks)")
    monkeypatch.setenv("WORKBENCH_LANG", "ko")
    at = AppTest.from_function(_context_script).run()
    assert "한국어 지시문, 번호 붙은 청크 3개" in at.caption[0].value
