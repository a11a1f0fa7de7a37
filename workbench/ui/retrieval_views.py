"""Retrieval on the Knowledge base page: the search results, the search widgets that start from the collection's saved
settings (`follow_saved`), and the retrieval lab: questions in, a background job, a table and a chart out, and the
best setting saved as the collection's own (`workbench.compare.retrieval_lab`, `workbench.compare.retrieval_lab_jobs`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from workbench.common.config import Workspace
from workbench.compare.retrieval_lab import DEFAULT_ROW, METRIC_KEYS, LabConfig, save_best
from workbench.compare.retrieval_lab_jobs import cancel_lab, lab_report, lab_status, save_questions_csv, start_lab
from workbench.dataset import alpaca
from workbench.kb.modes import MODES
from workbench.kb.retrieval import RetrievalConfig, collection_config, save_retrieval, saved_retrieval
from workbench.ui.common import job_progress, user_errors
from workbench.ui.forms import build_config, config_field
from workbench.ui.i18n import t

CHUNKING_CHOICES = ["recursive:300:30", "recursive:500:50", "recursive:800:80", "characters:300:30", "bytes:600:60"]
SEARCH_KEYS = {"mode": "kb.mode", "fetch_k": "kb.fetch_k", "lambda_mult": "kb.lambda",
               "lexical_weight": "kb.lexical_weight", "scale": "kb.scale"}


def follow_saved(collection: str, workspace: Workspace, keys: Mapping[str, str], marker: str) -> None:
    """When the selected collection changes, set the widgets `keys` (RetrievalConfig field -> widget key) to its
    saved settings (or the defaults): what search uses is then what the lab saved, unless the user changes it."""
    if st.session_state.get(marker) == collection:
        return
    st.session_state[marker] = collection
    config = collection_config(collection, workspace) if collection else RetrievalConfig()
    for field, key in keys.items():
        st.session_state[key] = getattr(config, field)


def show_hits(collection: str) -> None:
    """The last search's results (`kb.results`: collection, [(text, score, metadata)]) when they are of `collection`."""
    searched, results = st.session_state.get("kb.results") or (None, None)
    if searched != collection or results is None:
        return
    if not results:
        st.info(t("No chunk matched.", "맞는 청크가 없습니다."))
    for rank, (text, score, meta) in enumerate(results, 1):
        with st.container(border=True):
            st.caption(f"#{rank} · {t('score', '점수')} {score:.4f} · {meta.get('source')} · "
                       f"{t('chunk', '청크')} {meta.get('chunk_index')} · {t('offset', '위치')} {meta.get('start_index')}")
            st.text(text)


def _questions_form(workspace: Workspace) -> dict[str, Any]:
    """Where the questions come from: a dataset (its split) or an uploaded CSV (saved into the workspace)."""
    names = [d.name for d in alpaca.list_datasets(workspace)]
    c1, c2, c3 = st.columns([2, 1, 1])
    labels = {"dataset": t("a dataset", "데이터셋"), "csv": t("a CSV file", "CSV 파일")}  # computed here: AppTest formats later
    kind = c1.radio(t("Questions from", "질문 출처"), list(labels), key="kb.lab_from", horizontal=True,
                    format_func=labels.__getitem__)
    values: dict[str, Any] = {"dataset": "", "csv": ""}
    if kind == "dataset":
        values["dataset"] = c1.selectbox(t("Dataset", "데이터셋"), names, key="kb.lab_dataset",
                                         help=t("Its rows' source / chunk_id columns say where each answer lives (generated "
                                                "rows carry them).", "행의 source / chunk_id 열이 답이 있는 곳입니다 (생성한 행에는 "
                                                "들어 있습니다).")) or ""
        values["split"] = config_field(LabConfig, "split", key="kb.lab_split", container=c2)
    else:
        upload = c1.file_uploader(t("CSV with the columns question, source", "question, source 열이 있는 CSV"), type=["csv"],
                                  key="kb.lab_csv")
        if upload is not None:
            with user_errors():
                values["csv"] = str(save_questions_csv(upload.name, upload.getvalue(), workspace))
    values["limit"] = config_field(LabConfig, "limit", key="kb.lab_limit", container=c3)
    values["match"] = config_field(LabConfig, "match", key="kb.lab_match", container=c2)
    return values


def _start(collection: str, workspace: Workspace) -> None:
    values = _questions_form(workspace)
    w1, w2 = st.columns(2)
    values["weights"] = config_field(LabConfig, "weights", key="kb.lab_weights", container=w1)
    values["chunkings"] = config_field(LabConfig, "chunkings", key="kb.lab_chunkings", container=w2,
                                       options=CHUNKING_CHOICES, accept_new_options=True)
    config = build_config(LabConfig, {**values, "collection": collection})
    running = "kb.lab_job" in st.session_state
    ready = config is not None and bool(config.dataset or config.csv)
    if st.button(t("Run the retrieval lab", "검색 실험 실행"), key="kb.lab_run", type="primary", disabled=running or not ready):
        with user_errors():
            st.session_state["kb.lab_job"] = str(start_lab(config, workspace))  # type: ignore[arg-type]
            st.rerun()


@st.fragment(run_every=1.0)
def _watch(folder: str) -> None:
    status = lab_status(folder)
    if job_progress(status, cancel=lambda: cancel_lab(folder), key="kb.lab_cancel",
                    starting=t("Starting the lab…", "실험을 시작하는 중…"), cancel_label=t("Cancel the lab", "실험 취소")):
        return
    st.session_state.pop("kb.lab_job", None)
    if status["state"] == "completed":
        st.session_state["kb.lab_done"] = folder
    else:
        st.session_state["kb.lab_message"] = status["state"], status.get("error") or ""
    st.rerun(scope="app")


def report_table(report: Mapping[str, Any]) -> pd.DataFrame:
    """One line per setting: each metric as 'mean (lo–hi)', the median milliseconds, and a mark on the best."""
    names = {m.name: t(*(m.lab_label or m.label)) for m in MODES.values()}  # the registered modes
    names |= {"bm25 bigrams": t("BM25, bigrams", "BM25, 바이그램"),
             "bm25 subwords": t("BM25, subwords", "BM25, 서브워드"), DEFAULT_ROW: t("hybrid (default)", "하이브리드 (기본값)"),
             "hybrid, collection z": t("hybrid, z over the collection", "하이브리드, 컬렉션 전체 z")}
    rows = []
    for r in report["rows"]:
        name = names.get(r["setting"], r["setting"].replace("hybrid w=", t("hybrid, BM25 weight ", "하이브리드, BM25 가중치 ")))
        line = {t("setting", "설정"): name + (" ★" if r["setting"] == report["best"] else "")}
        for m in METRIC_KEYS:
            line[m] = f"{r[m]['mean']:.3f} ({r[m]['lo']:.3f}–{r[m]['hi']:.3f})"
        line[t("ms / question", "ms / 질문")] = r["ms_p50"]
        rows.append(line)
    return pd.DataFrame(rows)


def report_chart(report: Mapping[str, Any], metric: str = "mrr@10") -> alt.Chart:
    """Each setting's `metric` as a bar with its 95% interval."""
    data = pd.DataFrame([{"setting": r["setting"], "mean": r[metric]["mean"], "lo": r[metric]["lo"], "hi": r[metric]["hi"],
                          "best": r["setting"] == report["best"]} for r in report["rows"]])
    y = alt.Y("setting:N", sort=None, title=t("setting", "설정"))
    bars = alt.Chart(data).mark_bar().encode(
        x=alt.X("mean:Q", title=t(f"{metric} (95% interval)", f"{metric} (95% 구간)"), scale=alt.Scale(domain=[0, 1])), y=y,
        color=alt.Color("best:N", legend=None), tooltip=["setting", "mean", "lo", "hi"])
    return bars + alt.Chart(data).mark_rule(color="black").encode(x="lo:Q", x2="hi:Q", y=y)


def _show(report: dict[str, Any], workspace: Workspace) -> None:
    st.markdown(t(f"**{report['questions']} questions** ({report['skipped']} left out: their document is not in the "
                  f"collection); best: **{report['best']}** ({report['seconds']} s).",
                  f"**질문 {report['questions']}개** (문서가 컬렉션에 없어 뺀 것 {report['skipped']}개); 최고: "
                  f"**{report['best']}** ({report['seconds']}초)."))
    st.dataframe(report_table(report), hide_index=True, width="stretch")
    metric = st.radio(t("Chart", "차트"), list(METRIC_KEYS), index=len(METRIC_KEYS) - 1, key="kb.lab_metric", horizontal=True)
    st.altair_chart(report_chart(report, metric), width="stretch")
    if report["chunkings"]:
        st.dataframe(pd.DataFrame([{t("chunking", "청크 나누기"): c["label"], t("chunks", "청크"): c["chunks"],
                                    t("ingest s", "넣기 초"): c["ingest_s"],
                                    **{r["setting"]: r["mrr@10"]["mean"] for r in c["rows"]}} for c in report["chunkings"]]),
                     hide_index=True, width="stretch")
        st.caption(t("MRR@10 per chunking (a hit: the right document); each was built in a scratch collection, now deleted.",
                     "청크 나누기별 MRR@10 (적중: 맞는 문서); 각각 임시 컬렉션에 만들었고 지금은 지웠습니다."))
    savable = [r["setting"] for r in report["rows"] if r["config"] is not None]
    s1, s2 = st.columns([2, 1])
    pick = s1.selectbox(t("Setting to save", "저장할 설정"), savable, index=savable.index(report["best"]), key="kb.lab_pick")
    if s2.button(t("Save as this collection's retrieval setting", "이 컬렉션의 검색 설정으로 저장"), key="kb.lab_save"):
        with user_errors():
            saved = save_best(report, workspace, pick)
            st.session_state.pop("kb.saved_for", None)  # the search widgets (drawn above) follow the new settings
            st.session_state["kb.lab_flash"] = t(f"Saved: {saved}. Search, ask, Compare and evaluate use it from now on.",
                                                 f"저장했습니다: {saved}. 이제 검색, 질문, 비교, 평가가 이 설정을 씁니다.")
            st.rerun()
    if "kb.lab_flash" in st.session_state:
        st.success(st.session_state.pop("kb.lab_flash"))


def lab_section(collection: str, workspace: Workspace) -> None:
    """The lab for `collection` ("" when it does not exist yet): its saved settings, the form, the job, the last report."""
    if not collection:
        st.info(t("Ingest documents first: there is nothing to measure yet.", "먼저 문서를 넣으세요: 아직 측정할 것이 없습니다."))
        return
    st.caption(t("Measure every way of retrieving on your own questions (rows that say which document holds the answer): "
                 "hit@k and MRR@10 with 95% intervals; then save the best as this collection's setting.",
                 "내 질문 (답이 있는 문서를 알려 주는 행)으로 모든 검색 방식을 측정합니다: hit@k와 MRR@10, 95% 구간. 가장 좋은 "
                 "설정을 이 컬렉션의 설정으로 저장하세요."))
    saved = saved_retrieval(collection, workspace)
    st.markdown(t("This collection's settings: ", "이 컬렉션의 설정: ") + (
        ", ".join(f"`{k}={v}`" for k, v in saved.items()) if saved else t("the defaults", "기본값")))
    if saved and st.button(t("Back to the defaults", "기본값으로 되돌리기"), key="kb.lab_clear"):
        save_retrieval(collection, None, workspace)
        st.session_state.pop("kb.saved_for", None)
        st.rerun()
    if "kb.lab_job" in st.session_state:
        _watch(st.session_state["kb.lab_job"])
    if "kb.lab_message" in st.session_state:
        state, error = st.session_state.pop("kb.lab_message")
        if state == "cancelled":
            st.warning(t("The lab was cancelled; its scratch collections were deleted.", "실험을 취소했습니다. 임시 컬렉션은 지웠습니다."))
        else:
            st.error(error or t("The lab failed.", "실험에 실패했습니다."), icon="⚠️")
    _start(collection, workspace)
    done = st.session_state.get("kb.lab_done")
    report = lab_report(done) if done else None
    if report is not None and report["collection"] == collection:
        _show(report, workspace)
