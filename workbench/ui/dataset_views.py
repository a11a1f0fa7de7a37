"""Parts of the Dataset page: generating rows from a collection as a background job, and the row checks.

The page wires the tabs; these draw one panel each, with the settings drawn from `SynthConfig` by forms.py.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from workbench.common.config import Workspace
from workbench.common.texts import from_record, pick
from workbench.dataset import alpaca, alpaca_checks
from workbench.ui.common import job_progress, metric_row, user_errors
from workbench.ui.forms import build_config, config_field, config_form
from workbench.ui.i18n import lang, t, tr


def _generation_result(folder: str) -> Any:
    """A finished generation job: what it made, or why it made nothing; returns the result (None: nothing)."""
    from workbench.dataset.synth_jobs import generation_result, generation_status

    status, r = generation_status(folder), generation_result(folder)
    if r is None:
        st.error(from_record(status, "error", lang()) or t("Cancelled before any row was made.", "행이 만들어지기 전에 취소되었습니다."),
                 icon="⚠️")
        return None
    st.success(t(f"{r['rows']} rows from {r['chunks_used']} chunks in {r['seconds']:.0f} s ({r['requests']} requests)"
                 + (", cancelled" if r["cancelled"] else ""),
                 f"청크 {r['chunks_used']}개에서 {r['rows']}행 생성, {r['seconds']:.0f}초 (요청 {r['requests']}회)"
                 + (", 취소됨" if r["cancelled"] else "")))
    if r["note"]:
        st.info(r["note"])
    if r["failures"]:
        st.dataframe(pd.DataFrame(r["failures"]), hide_index=True)
    return r


def generation_watch(folder: str) -> None:
    """A running generation job polled every second (progress, cancel), then its result."""
    from workbench.dataset.synth_jobs import cancel_generation, generation_status

    @st.fragment(run_every=1.0)
    def _watch() -> None:
        if job_progress(generation_status(folder), cancel=lambda: cancel_generation(folder), key="dataset.gen_cancel",
                        starting=t("Starting", "시작 중")):
            return
        r = _generation_result(folder)
        if st.button(t("Done", "확인"), key="dataset.gen_clear"):
            st.session_state.pop("dataset.gen_job", None)
            if r is not None:
                st.session_state["dataset.pending"] = r["dataset"]
            st.rerun(scope="app")

    _watch()


def generation_form(ws: Workspace, collections: list[str]) -> None:
    """Endpoint, model and counts drawn from `SynthConfig`; the button starts the job (the key goes to its environment)."""
    from workbench.dataset.synth import DEFAULT_PROMPTS, SynthConfig
    from workbench.dataset.synth_jobs import start_generation

    g1, g2 = st.columns(2)
    coll = g1.selectbox(t("Collection", "컬렉션"), collections, key="dataset.gen_collection")
    gen_name = g2.text_input(t("New dataset name", "새 데이터셋 이름"), value=f"{coll}-generated", key="dataset.gen_name")
    provider = config_field(SynthConfig, "provider", key="dataset.gen_provider", widget="radio")
    e1, e2, e3 = st.columns(3)
    base_url = config_field(SynthConfig, "base_url", key=f"dataset.gen_url_{provider}", container=e1,
                            value="" if provider == "anthropic" else "http://127.0.0.1:8000/v1")
    model = config_field(SynthConfig, "model", key="dataset.gen_model", container=e2)
    api_key = e3.text_input(t("API key (empty: from the environment)", "API 키 (비우면 환경 변수)"), type="password",
                            key="dataset.gen_key")
    values = config_form(SynthConfig, ["n_target", "pairs_per_chunk", "language", "max_tokens"], key_prefix="dataset.gen_",
                         columns=4, keys={"n_target": "dataset.gen_n", "pairs_per_chunk": "dataset.gen_pairs",
                                          "language": "dataset.gen_lang", "max_tokens": "dataset.gen_max_tokens"})
    lang = values["language"]
    prompt = config_field(SynthConfig, "prompt", key=f"dataset.gen_prompt_{lang}", value=DEFAULT_PROMPTS[lang],
                          label=t("Prompt ({chunk}, {n}, {source} are filled in)", "프롬프트 ({chunk}, {n}, {source}가 채워집니다)"))
    with st.expander(t("More settings", "추가 설정")):
        values |= config_form(SynthConfig, ["temperature", "retries", "extra_body"], key_prefix="dataset.gen_",
                              keys={"extra_body": "dataset.gen_extra"})
        replace = st.checkbox(t("Replace a dataset of the same name", "같은 이름의 데이터셋 덮어쓰기"), key="dataset.gen_replace")
    if not model.strip():
        st.caption(t("Give the model name the endpoint serves to generate.", "생성하려면 엔드포인트가 제공하는 모델 이름을 주세요."))
    if st.button(t("Generate", "생성"), key="dataset.generate", type="primary", disabled=not model.strip()):
        cfg = build_config(SynthConfig, {**values, "provider": provider, "base_url": base_url.strip(), "model": model.strip(),
                                         "prompt": "" if prompt == DEFAULT_PROMPTS[lang] else prompt,
                                         "extra_body": values["extra_body"].strip()})
        if cfg is not None:
            with user_errors():
                folder = start_generation(gen_name.strip(), coll, cfg, api_key=api_key or None, workspace=ws, overwrite=replace)
                st.session_state["dataset.gen_job"] = str(folder)  # the session keeps the folder, never the key
                st.rerun()


def issues_panel(info: Any, rows: list[dict[str, Any]], issues: list[Any], ws: Workspace) -> None:
    """The checks' findings, one row per problem, with the fixes a user can apply at once."""
    summary = alpaca_checks.summarize_issues(issues)
    metric_row((t("Rows with errors", "오류 행"), len(alpaca_checks.issue_rows(issues))),
               (t("Duplicate warnings", "중복 경고"), summary["warnings"]))
    if not issues:
        st.success(t("No problems found.", "문제가 없습니다."))
        return
    labels = {k: t(*v) for k, v in alpaca_checks.ISSUE_LABELS.items()}
    st.dataframe(pd.DataFrame([{t("row", "행"): i.row, t("problem", "문제"): labels.get(i.kind, i.kind), t("detail", "내용"): tr(i.message),
                                t("repeats row", "같은 행"): i.other_row} for i in issues]), hide_index=True, width="stretch",
                 column_config={t("detail", "내용"): st.column_config.TextColumn(width="large")})
    b1, b2, b3 = st.columns(3)
    err_rows = alpaca_checks.issue_rows(issues)
    dup_rows = alpaca_checks.issue_rows(issues, ["duplicate", "near_duplicate"])
    if b1.button(t("Convert non-text to text", "텍스트 아닌 값을 텍스트로"), key="dataset.fix",
                 disabled=not summary["counts"].get("non_text")):
        alpaca.save_rows(info.name, alpaca_checks.fix_rows(rows), ws, note="fixed non-text values")
        st.rerun()
    if b2.button(t(f"Drop {len(err_rows)} rows with errors", f"오류 행 {len(err_rows)}개 삭제"), key="dataset.drop_errors",
                 disabled=not err_rows):
        alpaca.drop_rows(info.name, err_rows, ws)
        st.rerun()
    if b3.button(t(f"Drop {len(dup_rows)} duplicates", f"중복 {len(dup_rows)}개 삭제"), key="dataset.drop_dups",
                 disabled=not dup_rows):
        alpaca.drop_rows(info.name, dup_rows, ws)
        st.rerun()


def leakage_panel(name: str, ws: Workspace) -> None:
    """Test questions that nearly repeat a training question (written by the split)."""
    leaks = alpaca.load_leakage(name, ws)
    st.subheader(t("Leakage check", "누수 검사"))
    if not leaks:
        st.success(t("No test question nearly repeats a training question.", "학습 질문과 거의 같은 테스트 질문이 없습니다."))
        return
    st.warning(t(f"{len(leaks)} test questions nearly repeat a question the model trains on: scores on them measure memory, "
                 "not generalisation. Drop or rewrite them, then split again.",
                 f"테스트 질문 {len(leaks)}개가 학습 질문과 거의 같습니다: 이 질문의 점수는 일반화가 아니라 암기를 잽니다. "
                 "삭제하거나 고친 뒤 다시 분할하세요."))
    st.dataframe(leakage_table(leaks), hide_index=True, width="stretch", column_config={
        t("test question", "테스트 질문"): st.column_config.TextColumn(width="large"),
        t("training question", "학습 질문"): st.column_config.TextColumn(width="large"),
        t("similarity", "유사도"): st.column_config.ProgressColumn(format="%.3f", min_value=0.0, max_value=1.0,
                                                                  width="small")})


def leakage_table(leaks: list[Any]) -> pd.DataFrame:
    """One row per leaking test question; similarity first, so a narrow screen still shows it."""
    split = {"train": t("train", "학습"), "validation": t("validation", "검증")}
    return pd.DataFrame([{t("similarity", "유사도"): lk.similarity, t("test row", "테스트 행"): lk.test_row,
                          t("test question", "테스트 질문"): lk.test_question, t("split", "분할"): split.get(lk.split, lk.split),
                          t("row", "행"): lk.train_row, t("training question", "학습 질문"): lk.train_question}
                         for lk in leaks])


def export_folder(export: Any) -> None:
    """What `hub.export_dataset` wrote (and a push uploads as is): the files and the dataset card."""
    if not export.is_dir():
        return
    st.caption(t("Export folder (uploaded as is):", "내보내기 폴더 (그대로 업로드됨):"))
    st.code(str(export), language=None)
    st.dataframe(pd.DataFrame([{t("file", "파일"): p.name, t("bytes", "바이트"): p.stat().st_size}
                               for p in sorted(export.iterdir())]), hide_index=True)
    card = export / "README.md"
    if card.is_file():
        with st.expander(t("Dataset card (README.md)", "데이터셋 카드 (README.md)")):
            st.code(card.read_text(encoding="utf-8"), language="markdown")


def where_you_start(name: str, ws: Workspace) -> None:
    """Right after a split: evaluate the base model, with and without retrieval, on the test split ("where you
    start"), as a background evaluation; the report after training then shows before and after side by side."""
    from workbench.compare import eval_jobs
    from workbench.compare.evaluation import EvalConfig
    from workbench.kb.vectordb import list_collections
    from workbench.models.registry import DEFAULT_MODEL, REGISTRY

    st.markdown(t("**Where you start**: how well does the base model answer this test split before any training, "
                  "alone and with retrieval? The evaluation after training shows before and after side by side.",
                  "**시작점**: 학습하기 전에 기본 모델이 이 테스트 분할에 얼마나 답하는지, 혼자서와 검색과 함께 봅니다. "
                  "학습 후 평가가 전과 후를 나란히 보여 줍니다."))
    c = st.columns([3, 3, 2])
    base = c[0].selectbox(t("Base model (the one you will fine-tune)", "기본 모델 (파인튜닝할 모델)"), list(REGISTRY),
                          index=list(REGISTRY).index(DEFAULT_MODEL), key="dataset.start_model",
                          format_func=lambda k, _l=lang(): pick(REGISTRY[k].label, _l))
    collections = [x.name for x in list_collections(ws)]
    none = t("(none: base model only)", "(없음: 기본 모델만)")
    collection = c[1].selectbox(t("Collection for base + RAG", "RAG용 컬렉션"), ["", *collections], key="dataset.start_collection",
                                index=1 if collections else 0, format_func=lambda x: x or none)
    if c[2].button(t("Evaluate where you start", "시작점 평가"), key="dataset.start_eval"):
        with user_errors():
            cfg = EvalConfig(dataset=name, base_model=base, collection=collection,
                             sources=("base", "rag") if collection else ("base",))
            folder = eval_jobs.start_evaluation(cfg, ws)
            st.session_state["compare.eval_pick"] = str(folder)
            st.success(t(f"Started: {folder.name}. Follow it on the Compare page, Batch evaluation tab.",
                         f"시작했습니다: {folder.name}. 비교 페이지의 일괄 평가 탭에서 볼 수 있습니다."))
            st.page_link("app_pages/compare.py", label=t("Open Compare", "비교 열기"), icon="➡️")
