"""The pages' Altair charts (workbench.ui.charts): the spec has the expected encodings and the titles given."""

from __future__ import annotations

import numpy as np
import pytest

from workbench.ui import charts

METRICS = [{"step": 1, "loss": 2.0, "learning_rate": 1e-4, "tokens_per_s": 900.0},
           {"step": 2, "loss": 1.5, "eval_loss": 1.7, "learning_rate": 2e-4},
           {"step": 3, "loss": 1.2, "eval_loss": 1.4, "learning_rate": 1e-4, "tokens_per_s": 950.0}]


def enc(spec: dict) -> dict:
    return spec["encoding"]


def test_loss_chart_has_step_and_loss_with_the_given_titles_and_curve_names():
    spec = charts.loss_chart(METRICS, step_title="스텝", loss_title="손실", curve_labels=("학습", "검증")).to_dict()
    assert spec["mark"]["type"] == "line"
    e = enc(spec)
    assert (e["x"]["field"], e["x"]["title"]) == ("step", "스텝")
    assert (e["y"]["field"], e["y"]["title"], e["y"]["scale"]) == ("loss", "손실", {"zero": False})
    assert e["color"]["field"] == "curve"
    rows = next(iter(spec["datasets"].values()))
    assert [(r["step"], r["curve"]) for r in rows] == [(1, "학습"), (2, "학습"), (2, "검증"), (3, "학습"), (3, "검증")]


def test_loss_chart_by_run_colours_runs_and_dashes_curves():
    spec = charts.loss_chart([{**m, "run": "r1"} for m in METRICS], color_by="run", step_title="step", loss_title="loss",
                             curve_labels=("train", "validation")).to_dict()
    assert enc(spec)["color"]["field"] == "run" and enc(spec)["strokeDash"]["field"] == "curve"


def test_charts_of_nothing_are_none():
    assert charts.loss_chart([{"step": 1}], step_title="s", loss_title="l", curve_labels=("a", "b")) is None
    assert charts.metric_chart([{"step": 1}], "tokens_per_s", "tokens/s", step_title="step") is None
    assert charts.length_histogram([], "chars", "length", count_title="rows") is None
    assert charts.eval_scores_chart([], score_title="score") is None


def test_metric_chart():
    spec = charts.metric_chart(METRICS, "tokens_per_s", "토큰/초", step_title="스텝").to_dict()
    assert (enc(spec)["x"]["title"], enc(spec)["y"]["field"], enc(spec)["y"]["title"]) == ("스텝", "tokens_per_s", "토큰/초")
    assert len(next(iter(spec["datasets"].values()))) == 2


def test_length_histogram_bins_the_field_and_counts():
    rows = [{"chars": n} for n in (10, 20, 30, 300)]
    spec = charts.length_histogram(rows, "chars", "청크 길이 (글자)", count_title="청크 수", maxbins=10).to_dict()
    assert spec["mark"]["type"] == "bar"
    assert enc(spec)["x"] == {"bin": {"maxbins": 10}, "field": "chars", "title": "청크 길이 (글자)", "type": "quantitative"}
    assert (enc(spec)["y"]["aggregate"], enc(spec)["y"]["title"]) == ("count", "청크 수")


def test_similarity_heatmap_and_projection():
    labels = ["1. a", "2. b"]
    heat = charts.similarity_heatmap(labels, np.array([[1.0, 0.5], [0.5, 1.0]]), value_title="코사인").to_dict()
    rect, text = heat["layer"]
    assert rect["mark"]["type"] == "rect" and text["mark"]["type"] == "text"
    assert enc(rect)["x"]["sort"] == labels and enc(rect)["color"]["title"] == "코사인"
    assert enc(text)["text"]["field"] == "cosine"
    scatter = charts.projection_scatter(np.array([[0.0, 1.0], [1.0, 0.0]]), labels, x_title="PC 1", y_title="PC 2").to_dict()
    dots, names = scatter["layer"]
    assert (enc(dots)["x"]["title"], enc(dots)["y"]["title"]) == ("PC 1", "PC 2") and enc(names)["text"]["field"] == "sentence"


def test_eval_scores_chart_has_bars_whiskers_and_one_panel_per_metric():
    records = [{"source": s, "metric": m, "mean": 0.5, "lo": 0.4, "hi": 0.6}
               for s in ("base", "rag") for m in ("exact match", "ROUGE-L")]
    spec = charts.eval_scores_chart(records, score_title="점수").to_dict()
    assert spec["facet"]["column"]["field"] == "metric"
    bars, whiskers = spec["spec"]["layer"]
    assert bars["mark"]["type"] == "bar" and enc(bars)["y"]["field"] == "mean" and enc(bars)["y"]["title"] == "점수"
    assert enc(bars)["y"]["scale"] == {"domain": [0, 1]}
    assert whiskers["mark"]["type"] == "rule" and (enc(whiskers)["y"]["field"], enc(whiskers)["y2"]["field"]) == ("lo", "hi")
    assert enc(bars)["x"]["field"] == enc(whiskers)["x"]["field"] == "source"


@pytest.mark.parametrize("lang,title", [("en", "step"), ("ko", "스텝")])
def test_default_titles_follow_the_language(lang, title):
    from streamlit.testing.v1 import AppTest

    def script():
        import streamlit as st

        from workbench.ui import charts

        st.session_state["title"] = charts.loss_chart([{"step": 1, "loss": 1.0}]).to_dict()["encoding"]["x"]["title"]

    at = AppTest.from_function(script)
    at.session_state["ui.lang"] = lang
    at.run()
    assert not at.exception and at.session_state["title"] == title
