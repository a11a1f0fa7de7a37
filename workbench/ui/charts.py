"""Every Altair chart the pages draw, built from plain records so that a test can read its spec.

Titles a user sees are arguments: the caller passes them in the current language (a title left as None gets
this module's own `t(...)` default). Each function returns a chart, or None when there is nothing to draw.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import altair as alt
import pandas as pd

from workbench.ui.i18n import t


def loss_chart(
    metrics: Sequence[Mapping[str, Any]],
    *,
    color_by: str | None = None,
    step_title: str | None = None,
    loss_title: str | None = None,
    curve_labels: tuple[str, str] | None = None,
    height: int = 280,
) -> alt.Chart | None:
    """Training and validation loss against the optimizer step (metrics.jsonl records).

    Args:
        color_by: a record key (e.g. "run") that colours the lines; the curve then shows as the dash.
        curve_labels: how the train and validation curves are named in the legend.
    """
    train, val = curve_labels or (t("train", "학습"), t("validation", "검증"))
    rows = [{"step": m["step"], "loss": m[key], "curve": label, "run": m.get("run", "")}
            for m in metrics for key, label in (("loss", train), ("eval_loss", val)) if key in m]
    if not rows:
        return None
    color = alt.Color(f"{color_by}:N", title=t("run", "실행") if color_by == "run" else color_by) if color_by \
        else alt.Color("curve:N", title=None)
    return alt.Chart(pd.DataFrame(rows)).mark_line(point=alt.OverlayMarkDef(size=18)).encode(
        x=alt.X("step:Q", title=step_title or t("step", "스텝")),
        y=alt.Y("loss:Q", title=loss_title or t("loss", "손실"), scale=alt.Scale(zero=False)),
        color=color,
        strokeDash=alt.StrokeDash("curve:N", title=None) if color_by else alt.value([1, 0]),
        tooltip=["run:N", "curve:N", "step:Q", alt.Tooltip("loss:Q", format=".4f")],
    ).properties(height=height)


def metric_chart(metrics: Sequence[Mapping[str, Any]], key: str, title: str, *, step_title: str | None = None,
                 height: int = 160) -> alt.Chart | None:
    """One logged value (learning rate, tokens/s) against the step."""
    df = pd.DataFrame([{"step": m["step"], key: m[key]} for m in metrics if key in m])
    if df.empty:
        return None
    return alt.Chart(df).mark_line().encode(
        x=alt.X("step:Q", title=step_title or t("step", "스텝")), y=alt.Y(f"{key}:Q", title=title),
    ).properties(height=height)


def length_histogram(rows: Sequence[Mapping[str, Any]] | pd.DataFrame, field: str, title: str, *,
                     count_title: str | None = None, maxbins: int = 25, height: int = 220) -> alt.Chart | None:
    """How many rows (or chunks) fall in each length bin of `field`."""
    df = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    if df.empty or field not in df:
        return None
    return alt.Chart(df).mark_bar().encode(
        x=alt.X(f"{field}:Q", bin=alt.Bin(maxbins=maxbins), title=title),
        y=alt.Y("count():Q", title=count_title or t("rows", "행 수")),
    ).properties(height=height)


def similarity_heatmap(labels: Sequence[str], sims: Any, *, value_title: str | None = None,
                       height: int = 380) -> alt.LayerChart:
    """A labelled cosine-similarity matrix (`sims[i][j]` between `labels[i]` and `labels[j]`)."""
    labels = list(labels)
    cells = pd.DataFrame([{"a": labels[i], "b": labels[j], "cosine": round(float(sims[i][j]), 3)}
                          for i in range(len(labels)) for j in range(len(labels))])
    heat = alt.Chart(cells).mark_rect().encode(
        x=alt.X("b:N", sort=labels, title=None), y=alt.Y("a:N", sort=labels, title=None),
        color=alt.Color("cosine:Q", scale=alt.Scale(scheme="blues"), title=value_title or t("cosine", "코사인")),
        tooltip=["a", "b", "cosine"])
    numbers = heat.mark_text(fontSize=11).encode(text="cosine:Q", color=alt.value("black"))
    return (heat + numbers).properties(height=height)


def projection_scatter(xy: Any, labels: Sequence[str], *, x_title: str = "PC 1", y_title: str = "PC 2",
                       height: int = 380) -> alt.LayerChart:
    """Points in two dimensions (`xy[i]` for `labels[i]`), each with its label beside it."""
    points = pd.DataFrame({"x": [float(p[0]) for p in xy], "y": [float(p[1]) for p in xy], "sentence": list(labels)})
    scatter = alt.Chart(points).mark_circle(size=120).encode(
        x=alt.X("x:Q", title=x_title), y=alt.Y("y:Q", title=y_title), tooltip=["sentence"])
    names = scatter.mark_text(align="left", dx=8).encode(text="sentence:N")
    return (scatter + names).properties(height=height)


def eval_scores_chart(records: Sequence[Mapping[str, Any]], *, score_title: str | None = None,
                      width: int = 140, height: int = 220) -> alt.FacetChart | None:
    """Mean score per answer source with its confidence interval as a whisker, one panel per metric.

    Args:
        records: `evaluation.chart_data(summary)`: dicts with source, metric, mean, lo, hi (0..1 metrics).
        score_title: the y-axis title (None: no title; the panel header names the metric).
    """
    data = pd.DataFrame(list(records))
    if data.empty:
        return None
    base = alt.Chart(data).encode(x=alt.X("source:N", title=None, sort=None), color=alt.Color("source:N", sort=None))
    bars = base.mark_bar().encode(y=alt.Y("mean:Q", title=score_title, scale=alt.Scale(domain=[0, 1])),
                                  tooltip=["source:N", "metric:N", alt.Tooltip("mean:Q", format=".3f"),
                                           alt.Tooltip("lo:Q", format=".3f"), alt.Tooltip("hi:Q", format=".3f")])
    whiskers = base.mark_rule(color="black").encode(y="lo:Q", y2="hi:Q")
    return alt.layer(bars, whiskers).properties(width=width, height=height).facet(
        column=alt.Column("metric:N", title=None, sort=None))
