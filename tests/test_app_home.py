from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parent.parent / "streamlit_app.py")


@pytest.mark.parametrize("lang,title", [("ko", "RAG vs 파인튜닝 워크벤치"), ("en", "RAG vs Fine-Tune Workbench")])
def test_home_renders_in_both_languages(workspace, lang, title):
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["ui.lang"] = lang
    at.run()
    assert not at.exception
    assert at.title[0].value == title
    assert [m.value for m in at.metric] == ["0", "0", "0"]


def test_language_switch_changes_the_page(workspace):
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["ui.lang"] = "ko"
    at.run()
    at.sidebar.radio(key="ui.lang_choice").set_value("en").run()
    assert at.session_state["ui.lang"] == "en"
    assert at.title[0].value == "RAG vs Fine-Tune Workbench"


def test_model_tables_show_every_model_with_its_whole_note(workspace):
    from workbench.kb.embeddings import EMBEDDING_REGISTRY as EMBEDDINGS
    from workbench.models.registry import REGISTRY

    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["ui.lang"] = "en"
    at.run()
    assert not at.exception
    models, embeddings = (t.value for t in at.table)  # static tables: long notes wrap instead of being cut
    assert len(models) == len(REGISTRY) and len(embeddings) == len(EMBEDDINGS)
    longest = max(REGISTRY.values(), key=lambda m: len(m.note)).note
    assert longest in set(models["note"])


def test_model_languages_are_named_in_the_chosen_language(workspace):
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["ui.lang"] = "ko"
    at.run()
    models, _ = (t.value for t in at.table)
    assert "영어" in set(models["언어"]) and not any("en" == x for x in models["언어"])


def test_start_here_marks_each_step_from_the_workspace(workspace):
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["ui.lang"] = "en"
    at.run()
    assert not at.exception
    steps = [m.value for m in at.markdown if m.value.startswith(("✅ **", "👉 **", "⏳ **")) and ". " in m.value[:8]]
    assert len(steps) == 5 and steps[0].startswith("👉 **1. Ingest the sample shop** · next")
    assert all(s.startswith("⏳") for s in steps[1:])
    (workspace.vectorstore / "shop.bm25").mkdir(parents=True)
    (workspace.datasets / "shop").mkdir(parents=True, exist_ok=True)
    (workspace.datasets / "shop" / "meta.json").write_text('{"name": "shop", "split": {"seed": 42}}')  # split
    at.session_state["ui.lang"] = "ko"
    at.run()
    steps = [m.value for m in at.markdown if m.value.startswith(("✅ **", "👉 **", "⏳ **")) and ". " in m.value[:8]]
    assert [s[0] for s in steps] == ["✅", "✅", "👉", "⏳", "⏳"]
    assert "**3. LoRA 어댑터 파인튜닝** · 다음 단계" in steps[2]
