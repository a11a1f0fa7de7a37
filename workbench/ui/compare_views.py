"""What the Compare page shows: answers side by side, and an evaluation's report (scores, chart, cost, answers).

The page wires widgets to `workbench.answers.answer` and the evaluation jobs; these functions only draw what those return.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from workbench.answers.answer import API_SOURCES, RAG_SOURCES, context_note
from workbench.common.texts import from_record
from workbench.compare import eval_jobs
from workbench.compare import evaluation as ev
from workbench.compare.report import (
    REPORT_HTML,
    REPORT_MD,
    RESULTS_FILE,
    absorb_line,
    before_after_table,
    chart_data,
    pair_winners,
    readability_table,
    summary_table,
    verdict_lines,
    wide_results,
)
from workbench.ui import charts
from workbench.ui.common import job_progress, metric_row, wide_column
from workbench.ui.i18n import lang, t, tr

# Streamlit drops the state of widgets a page does not draw, so the picks are copied into this plain key (as
# i18n keeps the language): {widget key: (value, the options it was picked from)}.
KEPT = "compare.kept"


def restore_choice(key: str, options: Sequence[Any], default: Any) -> None:
    """Before drawing widget `key`: the value picked on an earlier visit, else `default`. A kept "" (none) gives way
    to the default once the options changed: a run finished or a collection appeared since."""
    if key in st.session_state and st.session_state[key] in options:
        return
    value, was = st.session_state.get(KEPT, {}).get(key, (None, None))
    keep = value in options and (value != "" or list(was or ()) == list(options))
    st.session_state[key] = value if keep else default


def restore_sources(available: list[str]) -> None:
    """The sources multiselect: what can still answer of the last picks, plus local sources that became available
    since (a run or collection was picked); every local source on the first visit."""
    if "compare.sources" in st.session_state:
        st.session_state["compare.sources"] = [s for s in st.session_state["compare.sources"] if s in available]
        return
    picked, was = st.session_state.get(KEPT, {}).get("compare.sources", (None, []))
    if picked is None:
        picked = [s for s in available if s not in API_SOURCES]
    new = [s for s in available if s not in was and s not in API_SOURCES and s not in picked]
    st.session_state["compare.sources"] = [s for s in picked if s in available] + new


def keep_choices(options: Mapping[str, Sequence[Any]]) -> None:
    """After drawing: copy each widget's value, with its options, where `restore_*` finds it on the next visit."""
    kept = dict(st.session_state.get(KEPT, {}))
    kept.update({k: (st.session_state[k], list(o)) for k, o in options.items() if k in st.session_state})
    st.session_state[KEPT] = kept


ENDINGS = {"stop_string": ("ended at its format's end", "형식의 끝에서 멈춤"),
           "loop": ("cut where it began to repeat itself", "되풀이가 시작된 곳에서 자름"),
           "max_new_tokens": ("hit max tokens", "최대 토큰 도달")}


def stats_caption(a: Mapping[str, Any]) -> str:
    """Latency, tokens and speed of one answer, and how it ended unless by its own stop token, in the current
    language."""
    end = ENDINGS.get(a["stopped"])
    return t(f"{a['latency_s']:.2f} s · {a['completion_tokens']} tokens · {a['tokens_per_s']:.1f} tokens/s · "
             f"prompt {a['prompt_tokens']} tokens" + (f" · {end[0]}" if end else ""),
             f"{a['latency_s']:.2f}초 · {a['completion_tokens']} 토큰 · 초당 {a['tokens_per_s']:.1f} 토큰 · "
             f"프롬프트 {a['prompt_tokens']} 토큰" + (f" · {end[1]}" if end else ""))


def sources_caption(chunks: Sequence[Mapping[str, Any]]) -> str:
    """The documents a RAG answer read, named beside the answer (never inside it)."""
    names = list(dict.fromkeys(c["source"] for c in chunks if c.get("source")))
    return t("Sources: ", "출처: ") + (" · ".join(names) if names else "–")


def chunks_table(chunks: list[Mapping[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame([{"#": i, t("score", "점수"): round(c["score"], 3), t("source", "출처"): c["source"],
                          t("text", "내용"): c["text"]} for i, c in enumerate(chunks, 1)])


def score_table(scores: Mapping[str, Mapping[str, Any]], label: Callable[[str], str]) -> pd.DataFrame:
    """The scores of one asked question against its reference answer, one row per source."""
    names = {"exact_match": t("exact match", "완전 일치"), "char_f1": t("char F1", "문자 F1"), "rouge_l": "ROUGE-L"}
    return pd.DataFrame([{t("source", "소스"): label(s), **{names.get(k, k): x for k, x in v.items()}}
                         for s, v in scores.items()])


def stream_answers(asked: Any, setup: Any, label: Callable[[str], str]) -> dict[str, Any]:
    """Run `answer.ask`'s streams into one column each: all growing together where they are one batched generation
    (a GPU), else column by column (`Asked.pieces`); the answers as the page keeps them."""
    boxes, texts = {}, {}
    for col, src in zip(st.columns(len(asked.streams)), asked.streams):
        col.markdown(f"**{label(src)}**")
        boxes[src], texts[src] = col.empty(), ""
        boxes[src].caption(t("Generating…", "생성하는 중…"))
    for src, piece in asked.pieces():
        texts[src] += piece
        boxes[src].text(texts[src])
    answers: dict[str, Any] = {}
    for src, stream in asked.streams.items():
        boxes[src].text(stream.result.text)  # the answer as cut (a stop string or a loop cut ends it)
        answers[src] = {**stream.result.to_dict(), "rag": src in RAG_SOURCES}
    return {"question": asked.question, "answers": answers, "template": setup.template,
            "templates": {src: setup.template_for(src) for src in asked.streams}, "warnings": setup.warnings,
            "context": setup.context if "ft_rag" in asked.streams else None,
            "chunks": [{"text": c.text, "score": c.score, "source": Path(str(c.metadata.get("source", ""))).name}
                       for c in asked.chunks]}


def show_answers(result: Mapping[str, Any], label: Callable[[str], str]) -> None:
    """One column per source: the answer (as text, never markup), its cost, its chunks and its prompt."""
    for w in result["warnings"]:
        st.warning(tr(w))
    if result.get("context"):
        st.caption(tr(context_note(result["context"])))
    for col, (src, a) in zip(st.columns(len(result["answers"])), result["answers"].items()):
        with col:
            st.markdown(f"**{label(src)}**")
            st.text(a["text"] or t("(empty answer)", "(빈 답변)"))
            if a["rag"]:
                st.caption(sources_caption(result["chunks"]))
            st.caption(stats_caption(a))
            if a["rag"]:
                with st.expander(t(f"Retrieved chunks ({len(result['chunks'])})", f"검색된 청크 ({len(result['chunks'])}개)")):
                    st.dataframe(chunks_table(result["chunks"]), hide_index=True, width="stretch",
                                 column_config=wide_column(t("text", "내용")))
            with st.expander(t("Prompt", "프롬프트")):
                st.code(a["prompt"], language=None, wrap_lines=True)


def evaluation_progress(folder: str) -> None:
    """A running evaluation's progress bar and cancel button, polled every second."""
    @st.fragment(run_every=1.0)
    def _watch() -> None:
        if not job_progress(eval_jobs.evaluation_status(folder), cancel=lambda: eval_jobs.cancel_evaluation(folder),
                            key="compare.eval_cancel", starting=t("Starting…", "시작하는 중…"),
                            cancel_label=t("Cancel the evaluation", "평가 취소")):
            st.rerun(scope="app")

    _watch()


def _cost_metrics(summary: Mapping[str, Any]) -> None:
    cost = summary["cost"]
    if absorb_line(summary):
        st.caption(absorb_line(summary, lang()))
    added = cost.get("prompt_tokens_added_by_retrieval", {})
    lat = {s: v["latency_s"] for s, v in summary["per_source"].items() if v["latency_s"] is not None}
    metric_row((t("Training time", "학습 시간"), f"{cost['train_seconds']:.0f} {t('s', '초')}" if cost.get("train_seconds") else "–"),
               (t("Adapter size", "어댑터 크기"), f"{cost['adapter_mb']} MiB" if cost.get("adapter_mb") else "–"),
               (t("Prompt tokens added by retrieval", "검색이 더한 프롬프트 토큰"), f"{added['rag']:+.0f}" if "rag" in added else "–"),
               (t("Latency (fastest / slowest)", "지연 시간 (가장 빠름 / 느림)"),
                f"{min(lat.values()):.2f} / {max(lat.values()):.2f} {t('s', '초')}" if lat else "–"))


def show_report(folder: str, summary: Mapping[str, Any]) -> None:
    """A finished (or cancelled) evaluation: scores with intervals, the chart, cost, who wins where, downloads."""
    if summary["cancelled"]:
        st.warning(t(f"Cancelled: {summary['rows']} of {summary['rows_total']} rows answered.",
                     f"취소됨: {summary['rows_total']}행 중 {summary['rows']}행에 답했습니다."))
    st.dataframe(pd.DataFrame(summary_table(summary, lang())), hide_index=True, width="stretch")
    cfg = summary["config"]
    st.caption(t(summary["notes"]["ci"], f"{int(cfg['confidence'] * 100)}% 퍼센타일 부트스트랩, 재표본 {cfg['bootstrap']}회, "
                                         f"시드 {cfg['seed']}"))
    chart = charts.eval_scores_chart(chart_data(summary, lang()))
    if chart is not None:
        st.altair_chart(chart)
    readable = readability_table(summary, lang())
    if readable:
        st.caption(t("Readable answers: how each source's answers ended, and what in them is not an answer",
                     "읽을 수 있는 답변: 각 소스의 답이 어떻게 끝났고, 답이 아닌 것이 얼마나 섞였는지"))
        st.dataframe(pd.DataFrame(readable), hide_index=True, width="stretch")
    _cost_metrics(summary)
    for w in summary.get("warnings_ko" if lang() == "ko" and "warnings_ko" in summary else "warnings", []):
        st.warning(w)
    results = ev.load_results(folder)
    filters = ["all"] + (["ft", "rag"] if {"ft", "rag"} <= set(summary["sources"]) else [])
    names = {"all": t("every question", "모든 질문"), "ft": t("where fine-tuning wins", "파인튜닝이 이기는 곳"),
             "rag": t("where RAG wins", "RAG가 이기는 곳")}
    flt = st.radio(t("Show", "보기"), filters, key="compare.eval_filter", horizontal=True, format_func=names.__getitem__)
    if flt != "all":
        winners = pair_winners(results, "ft", "rag")
        results = [r for r in results if winners.get(int(r["row"])) == flt]
    wide = wide_results(results, lang=lang())
    answers = {c: st.column_config.TextColumn(c, width="medium") for c in (wide[0] if wide else {})
               if c.endswith(t(": answer", ": 답변")) or c in (t("question", "질문"), t("reference", "참고 답변"))}
    st.dataframe(pd.DataFrame(wide), hide_index=True, width="stretch", column_config=answers)
    for col, (name, mime) in zip(st.columns(3), ((REPORT_MD, "text/markdown"), (REPORT_HTML, "text/html"),
                                                 (RESULTS_FILE, "text/csv"))):
        col.download_button(name, (Path(folder) / name).read_bytes(), name, mime, key=f"compare.dl_{name.split('.')[-1]}")
    before_after = before_after_table(summary, lang())
    if before_after:
        st.markdown(t("**Before and after training**", "**학습 전과 후**"))
        st.dataframe(pd.DataFrame(before_after), hide_index=True)
    verdict = verdict_lines(summary, lang())
    if verdict:
        st.markdown(t("**Verdict**", "**판정**"))
        st.info("\n\n".join(verdict))


def evaluation_name(folder: str) -> str:
    """An evaluation folder as the select shows it: its id and the run it belongs to."""
    path = Path(folder)
    return f"{path.name} ({path.parent.parent.name if path.parent.name == 'eval' else '-'})"


def evaluation_failed(status: Mapping[str, Any]) -> None:
    st.error(t("The evaluation failed: ", "평가 실패: ") + from_record(status, "error", lang()), icon="⚠️")
