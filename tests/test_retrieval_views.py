"""What the Knowledge base page draws for retrieval (workbench.ui.retrieval_views), on a literal lab report, with AppTest."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest


def _script() -> None:
    import streamlit as st

    from workbench.ui import retrieval_views as views

    def ci(mean: float) -> dict:
        return {"mean": mean, "lo": round(mean - 0.05, 3), "hi": round(mean + 0.05, 3), "n": 20, "missing": 0}

    def row(name: str, mrr: float, config: dict | None) -> dict:
        return {"setting": name, "kind": "hybrid", "config": config, "ms_p50": 4.2,
                **{m: ci(mrr) for m in ("hit@1", "hit@3", "hit@5", "hit@10", "mrr@10")}}

    report = {"best": "hybrid w=0.4", "rows": [row("dense", 0.5, {"mode": "dense"}), row("bm25 bigrams", 0.4, None),
                                               row("hybrid (default)", 0.6, {"mode": "hybrid"}),
                                               row("hybrid w=0.4", 0.7, {"mode": "hybrid", "lexical_weight": 0.4})]}
    st.dataframe(views.report_table(report))
    chart = views.report_chart(report)
    st.altair_chart(chart)
    st.session_state["chart"] = chart.to_dict()
    st.session_state["kb.results"] = ("faq", [("현금 결제", 1.23456, {"source": "pay.txt", "chunk_index": 0, "start_index": 0})])
    views.show_hits("faq")
    views.show_hits("other")  # another collection's results are not shown


def test_the_lab_table_chart_and_hits(monkeypatch):
    monkeypatch.setenv("WORKBENCH_LANG", "ko")
    at = AppTest.from_function(_script).run()
    assert not at.exception, at.exception
    table = at.dataframe[0].value
    assert list(table.columns) == ["설정", "hit@1", "hit@3", "hit@5", "hit@10", "mrr@10", "ms / 질문"]
    assert table["설정"].tolist() == ["dense (벡터)", "BM25, 바이그램", "하이브리드 (기본값)", "하이브리드, BM25 가중치 0.4 ★"]
    assert table["mrr@10"][3] == "0.700 (0.650–0.750)"
    chart = at.session_state["chart"]  # bars with their 95% interval as rules, the setting's name on the axis
    assert [layer["mark"]["type"] for layer in chart["layer"]] == ["bar", "rule"]
    assert chart["layer"][0]["encoding"]["x"]["title"] == "mrr@10 (95% 구간)"
    assert [c.value for c in at.caption] == ["#1 · 점수 1.2346 · pay.txt · 청크 0 · 위치 0"] and at.text[0].value == "현금 결제"
