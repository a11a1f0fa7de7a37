"""workbench.ui.forms under AppTest: every field of the main configs is drawn from its metadata (label in the
chosen language, tooltip, bounds, step, default, choices), and a form builds the config or shows why not."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from workbench.answers.inference import GenerationConfig
from workbench.dataset.alpaca import DatasetConfig, SplitConfig
from workbench.dataset.synth import SynthConfig
from workbench.kb.chunking import ChunkingConfig
from workbench.kb.retrieval import RetrievalConfig
from workbench.kb.vectordb import VectorStoreConfig
from workbench.training.finetune import TrainConfig
from workbench.ui.forms import base_type

CONFIGS = [GenerationConfig, RetrievalConfig, ChunkingConfig, TrainConfig,
           DatasetConfig, SplitConfig, SynthConfig, VectorStoreConfig]


def form_script(module: str, name: str) -> None:
    import importlib

    import streamlit as st

    from workbench.ui.forms import build_config, config_form

    cls = getattr(importlib.import_module(module), name)
    values = config_form(cls, cls.field_names(), key_prefix="f.", columns=3)
    st.session_state["built"] = build_config(cls, values)


def run_form(cls: type, lang: str) -> AppTest:
    at = AppTest.from_function(form_script, args=(cls.__module__, cls.__name__), default_timeout=60)
    at.session_state["ui.lang"] = lang
    at.run()
    assert not at.exception, at.exception
    return at


def widget(at: AppTest, cls: type, name: str):
    """The element drawn for field `name`, found by the widget type its metadata calls for."""
    base, kind = base_type(cls.field_type(name)), cls.field_info(name).metadata.get("widget")
    key = f"f.{name}"
    if base in (tuple, list):
        return at.multiselect(key=key)
    if cls.choices(name) is not None:
        return at.radio(key=key) if kind == "radio" else at.selectbox(key=key)
    if base is bool:
        return at.toggle(key=key) if kind == "toggle" else at.checkbox(key=key)
    if base in (int, float):
        return at.slider(key=key) if kind == "slider" else at.number_input(key=key)
    return at.text_area(key=key) if kind == "text_area" else at.text_input(key=key)


@pytest.mark.parametrize("lang", ["en", "ko"])
@pytest.mark.parametrize("cls", CONFIGS, ids=lambda c: c.__name__)
def test_every_field_follows_its_metadata(cls, lang):
    at = run_form(cls, lang)
    defaults = cls()
    for name in cls.field_names():
        w = widget(at, cls, name)
        assert w.label == cls.label(name, lang), name
        assert w.help == cls.help(name, lang), name
        default, (lo, hi) = getattr(defaults, name), cls.bounds(name)
        base = base_type(cls.field_type(name))
        if base in (int, float):
            assert w.value == default, name
            assert w.min == (lo if lo is not None else w.min) and (hi is None or w.max == hi), name
            step = cls.field_info(name).metadata.get("step")
            assert step is None or w.step == step, name
        elif cls.choices(name) is not None and base not in (tuple, list):
            choices = cls.choices(name)
            assert w.options == [cls.choice_label(name, c, lang) for c in choices], name
            assert w.value == default, name
        elif base in (tuple, list):
            assert tuple(w.value) == tuple(default), name
        elif base is bool:
            assert w.value is default, name
        elif base is dict:
            assert w.value == "", name
        else:
            assert w.value == default, name
    assert at.session_state["built"] == defaults  # the untouched form builds the defaults


def test_bounds_are_the_configs_not_the_pages():
    """Compare's max_new_tokens once stopped at 4096 (default 96) while GenerationConfig allows 1-8192 (default 128)."""
    at = run_form(GenerationConfig, "en")
    w = at.number_input(key="f.max_new_tokens")
    assert (w.min, w.max, w.value) == (1, 8192, 128)


def test_switching_the_language_changes_labels_and_choice_labels():
    at = run_form(RetrievalConfig, "en")
    assert at.radio(key="f.mode").label == "Mode" and "similarity" in at.radio(key="f.mode").options
    at.session_state["ui.lang"] = "ko"
    at.run()
    assert at.radio(key="f.mode").label == "방식" and "유사도" in at.radio(key="f.mode").options
    assert at.number_input(key="f.k").label == "청크 수 (k)"
    tr = run_form(TrainConfig, "ko")
    assert tr.number_input(key="f.per_device_train_batch_size").label == "장치당 배치 크기"
    assert "자동" in tr.selectbox(key="f.backend").options


def test_a_rule_broken_across_fields_is_shown_and_nothing_is_built():
    at = run_form(ChunkingConfig, "en")
    at.number_input(key="f.chunk_size").set_value(100).run()
    at.number_input(key="f.chunk_overlap").set_value(150).run()
    assert at.session_state["built"] is None
    assert "got a larger chunk overlap (150) than chunk size (100)" in at.error[0].value


def test_json_field_reads_a_mapping_and_reports_bad_text():
    at = run_form(RetrievalConfig, "en")
    at.text_input(key="f.filter").input('{"source": "faq.md"}').run()
    assert at.session_state["built"].filter == {"source": "faq.md"}
    at.text_input(key="f.filter").input("{nope").run()
    assert at.session_state["built"] is None and "not a JSON object" in at.error[0].value


def test_values_chosen_in_the_form_reach_the_config():
    at = run_form(TrainConfig, "en")
    at.selectbox(key="f.backend").set_value("transformers")
    at.number_input(key="f.lora_r").set_value(8)
    at.checkbox(key="f.use_rslora").check()
    at.multiselect(key="f.target_modules").set_value(["q_proj", "v_proj"]).run()
    built = at.session_state["built"]
    assert (built.backend, built.lora_r, built.use_rslora, built.target_modules) == ("transformers", 8, True, ("q_proj", "v_proj"))


def narrowed_script() -> None:
    import streamlit as st

    from workbench.kb.chunking import ChunkingConfig
    from workbench.ui.forms import config_field

    config_field(ChunkingConfig, "chunk_size", key="size", widget="slider", min_value=4, max_value=200, value=30)
    try:
        config_field(ChunkingConfig, "chunk_overlap", key="wide", max_value=10**9)
    except ValueError as exc:
        st.session_state["refused"] = str(exc)


def test_a_page_may_narrow_bounds_but_not_widen_them():
    at = AppTest.from_function(narrowed_script)
    at.session_state["ui.lang"] = "en"
    at.run()
    s = at.slider(key="size")
    assert (s.min, s.max, s.value, s.label) == (4, 200, 30, "Chunk size")
    assert "above the config's maximum 100000" in at.session_state["refused"]


def sections_script() -> None:
    import streamlit as st

    from workbench.kb.chunking import ChunkingConfig
    from workbench.ui.forms import build_config, clear_form_values, config_sections, set_form_values

    if st.session_state.get("preset"):
        set_form_values(ChunkingConfig(splitter="bytes", chunk_size=40, chunk_overlap=4), "c.")
        st.session_state["preset"] = False
    if st.session_state.get("reset"):
        clear_form_values(ChunkingConfig, "c.")
        st.session_state["reset"] = False
    values = config_sections(ChunkingConfig, {"how": ["splitter"], "size": ["chunk_size", "chunk_overlap"]},
                             {"how": ("How", "방법"), "size": ("Size", "크기")}, key_prefix="c.", expanded=["how"])
    st.session_state["built"] = build_config(ChunkingConfig, values)


def test_sections_presets_and_reset():
    from workbench.kb.chunking import ChunkingConfig

    at = AppTest.from_function(sections_script)
    at.session_state["ui.lang"] = "ko"
    at.run()
    assert [e.label for e in at.expander] == ["방법", "크기"]
    assert at.session_state["built"] == ChunkingConfig()
    at.session_state["preset"] = True
    at.run()
    assert at.session_state["built"] == ChunkingConfig(splitter="bytes", chunk_size=40, chunk_overlap=4)
    assert at.number_input(key="c.chunk_size").value == 40
    at.session_state["reset"] = True
    at.run()
    assert at.session_state["built"] == ChunkingConfig()
