"""What the Fine-tune page shows besides its form: the group titles, the context option's collection list, the
history table of runs, and a run's training context (RAG-aware fine-tuning)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import streamlit as st

from workbench.common.errors import WorkbenchError
from workbench.common.texts import from_record, state_text
from workbench.training.finetune import TrainConfig, fit_report, machine_equivalent
from workbench.training.train_progress import eta_text, phase_text
from workbench.ui.common import metric_row, user_errors
from workbench.ui.forms import set_form_values
from workbench.ui.i18n import lang, t, tr


def state_label(state: str) -> str:
    """A run's state (running, completed, ...) in the page's language."""
    return tr(state_text(state))


def eta_label(status: dict[str, Any]) -> str:
    """The ETA of a running run, or what it does when the ETA says nothing (the final evaluation, the saving)."""
    phase = phase_text(status)
    return tr(phase) if phase is not None else eta_text(status.get("eta_s"))


def run_error(status: dict[str, Any]) -> str:
    """A failed run's error in the page's language (Korean where the run recorded it)."""
    return from_record(status, "error", lang())


def run_message(status: dict[str, Any]) -> str:
    """What a starting run is doing (building its training context, ...) in the page's language; "" when nothing."""
    return from_record(status, "message", lang())


GROUP_TITLES = {"data": ("Data", "데이터"), "model": ("Model and precision", "모델과 정밀도"), "lora": ("LoRA", "LoRA"),
                "schedule": ("Schedule", "학습 일정"), "scale": ("Several GPUs", "여러 GPU"),
                "evaluation": ("Evaluation, checkpoints, early stopping", "평가, 체크포인트, 조기 종료"),
                "context": ("Retrieved context (RAG-aware fine-tuning)", "검색 문맥 (RAG 인식 파인튜닝)")}


def collection_field(workspace: Any) -> dict[str, Any]:
    """The context collection as a select of the workspace's collections ("" = none picked)."""
    from workbench.kb.vectordb import list_collections

    try:
        names = [c.name for c in list_collections(workspace)]
    except WorkbenchError:  # an unreachable Chroma server: the field still draws, empty
        names = []
    none = t("(none)", "(없음)")  # now: AppTest calls format_func outside the script run, where the language is unset
    return {"options": ["", *names], "format_func": lambda v: v or none}


def history_table(runs: Sequence[Any]) -> list[dict[str, Any]]:
    """One row per run, newest first; a value a run did not record shows as "–" (a run that failed before its first
    step has no tokens/s), never "None"."""
    table = []
    for r in runs:
        evals = [m["eval_loss"] for m in r.metrics() if "eval_loss" in m]
        tps = r.status.get("tokens_per_s")
        table.append({t("run", "실행"): r.id, t("state", "상태"): state_label(r.state), t("dataset", "데이터셋"): r.config.dataset,
                      t("model", "모델"): r.config.base_model, t("backend", "백엔드"): r.config.backend,
                      t("context", "문맥"): getattr(r.config, "context", "none"),
                      t("steps", "스텝"): r.status.get("step"),
                      t("best val. loss", "최저 검증 손실"): min(evals) if evals else None,
                      t("tokens/s", "토큰/초"): f"{tps:,.0f}" if tps else "–",
                      t("train s", "학습 초"): r.status.get("train_seconds")})
    return table


def context_table(run: Any, limit: int = 5) -> list[dict[str, Any]]:
    """The first `limit` training rows of a run trained with context: question, whether the oracle is in its context,
    the chunks' sources, the start of the context."""
    from workbench.training.train_context import read_context

    rows = []
    for line in read_context(run.path, limit):
        oracle = line.get("oracle_in_context")
        rows.append({t("question", "질문"): line["instruction"], t("answer", "답"): line["output"],
                     t("oracle in context", "정답 청크 포함"): "–" if oracle is None else (t("yes", "예") if oracle else t("no", "아니오")),
                     t("chunks", "청크"): ", ".join(str(c.get("metadata", {}).get("source", "?")) for c in line["chunks"]),
                     t("context", "문맥"): " | ".join(c["text"][:80] for c in line["chunks"])})
    return rows


def show_context(run: Any) -> None:
    """An expander with a run's training context: what was built (context.json, the extra tokens) and a few rows. Drawn
    inside the run's live fragment, so it follows the run (the context appears once built)."""
    if getattr(run.config, "context", "none") == "none":
        return
    summary, tokens = run.status.get("context") or {}, run.status.get("context_tokens") or {}
    with st.expander(t(f"Training context ({run.config.context}, {run.config.context_collection})",
                       f"학습 문맥 ({run.config.context}, {run.config.context_collection})")):
        if summary:
            st.caption(t(f"{summary['rows']} rows, {summary['k']} chunks each; oracle in context: {summary['with_oracle']}, "
                         f"distractors only: {summary['distractors_only']}, no oracle found: {summary['no_oracle_found']}; "
                         f"built in {summary['seconds']} s.",
                         f"{summary['rows']}행, 행마다 청크 {summary['k']}개; 정답 청크 포함: {summary['with_oracle']}, "
                         f"방해 청크만: {summary['distractors_only']}, 정답 청크 못 찾음: {summary['no_oracle_found']}; "
                         f"{summary['seconds']}초에 만듦."))
        if tokens:
            st.caption(t(f"Training tokens x{tokens['token_ratio']} of bare prompts (+{tokens['extra_tokens']:,}); "
                         f"{tokens['truncated_rows']} rows had their context cut to fit max_seq_length.",
                         f"학습 토큰이 맨 프롬프트의 {tokens['token_ratio']}배 (+{tokens['extra_tokens']:,}); "
                         f"{tokens['truncated_rows']}행은 max_seq_length에 맞게 문맥을 잘랐습니다."))
        table = context_table(run)
        if table:
            st.dataframe(table, hide_index=True, width="stretch", key="finetune.context_rows")
        elif run.state in ("pending", "running"):
            st.info(t("The context is built as training starts: it shows here once it is.",
                      "문맥은 학습이 시작되면서 만들어집니다: 만들어지면 여기에 나옵니다."))
        else:
            st.info(t("This run ended before its context was built.", "이 실행은 문맥이 만들어지기 전에 끝났습니다."))


def apply_machine_equivalent(key_prefix: str) -> None:
    """Load the settings chosen by `machine_fit`'s button into the form, before its widgets are drawn."""
    fixed = st.session_state.pop(f"{key_prefix}machine_equivalent_values", None)
    if fixed is not None:
        set_form_values(fixed, key_prefix)


def machine_fit(config: TrainConfig, key_prefix: str) -> bool:
    """What `config` becomes on this machine (device, 4-bit, memory, the "auto" choices); False when this machine cannot
    run it, with the reason and a button that replaces the settings it cannot run by this machine's equivalent."""
    fit = None
    with user_errors():  # a setting this machine cannot run: its message, and the way out below
        fit = fit_report(config)
    if fit is None:
        fixed, notes = machine_equivalent(config)
        if notes and st.button(t("Use this machine's equivalent", "이 컴퓨터에 맞는 설정으로 바꾸기"),
                               key=f"{key_prefix}machine_equivalent", help="; ".join(map(tr, notes))):
            # the form's widgets exist already in this run: their values change before they are drawn next time
            st.session_state[f"{key_prefix}machine_equivalent_values"] = fixed
            st.session_state[f"{key_prefix}machine_notes"] = [tr(n) for n in notes]
            st.rerun()
        return False
    changed = st.session_state.pop(f"{key_prefix}machine_notes", None)
    if changed:
        st.info(t("Changed for this machine: ", "이 컴퓨터에 맞게 바꿨습니다: ") + "; ".join(changed))
    metric_row((t("Device", "장치"), fit["device"].upper(), fit["device_name"]),
               (t("4-bit", "4비트"), t("yes", "예") if fit["four_bit"] else t("no", "아니오")),
               (t("Estimated memory", "예상 메모리"), f"{fit['estimated_gb']} GiB" if fit["estimated_gb"] is not None
                else "?", t("LoRA training peak: weights + LoRA states + activations.",
                            "LoRA 학습 최대치: 가중치 + LoRA 상태 + 활성값.")),
               (t("Available", "사용 가능"), f"{fit['memory_gb']} GiB"))
    if fit["fits"] is False:
        st.warning(t("The estimate is above this machine's memory: use 4-bit, a smaller model or a shorter "
                     "max_seq_length.", "예상치가 이 컴퓨터의 메모리보다 큽니다: 4비트, 더 작은 모델, 더 짧은 "
                     "max_seq_length를 쓰세요."))
    st.caption(t("auto here: ", "여기서 자동: ") + "; ".join(map(tr, fit["resolved"]["notes"])))
    return True


def export_watch(running: Callable[[], bool], every: float = 1.0) -> None:
    """"Export running…" while `running()` says so, checked every `every` seconds; the whole page is drawn again the
    moment the export ends, so its result (the merged folder, the push) shows without a manual refresh."""

    @st.fragment(run_every=every)
    def _watch() -> None:
        if running():
            st.info(t("Export running…", "내보내는 중…"))
        else:
            st.rerun(scope="app")

    _watch()


def context_fit(config: TrainConfig, workspace: Any, rows: int = 40) -> None:
    """For a run with retrieved context: a button that counts, before the start, how many of the first `rows` training
    rows the chosen max_seq_length would cut, and the length that keeps them all (`train_context.context_preview`)."""
    from workbench.training.train_context import context_preview

    if config.context == "none" or not config.context_collection:
        return
    key = f"finetune.context_fit:{json.dumps(config.to_dict(), sort_keys=True)}"
    if st.button(t(f"Check the context length on {rows} rows", f"{rows}행으로 문맥 길이 확인"), key="finetune.context_fit",
                 help=t("Retrieves the context of the first training rows as the run would, and counts the rows the "
                        "max_seq_length would cut.", "실행과 같은 방식으로 앞쪽 학습 행의 문맥을 검색하고, "
                        "max_seq_length에서 잘릴 행을 셉니다.")):
        with st.spinner(t("Retrieving and counting tokens…", "검색하고 토큰을 세는 중…")):
            with user_errors():
                st.session_state[key] = context_preview(config, workspace, rows=rows)
    got = st.session_state.get(key)
    if got is None:
        st.caption(t("Rows longer than max_seq_length lose part of their context: check how many before you start.",
                     "max_seq_length보다 긴 행은 문맥 일부를 잃습니다: 시작하기 전에 몇 행인지 확인하세요."))
    elif got["cut"]:
        st.warning(t(f"At max_seq_length {got['max_len']}, {got['cut']} of {got['rows']} rows ({got['share']:.0%}) would "
                     f"have their context cut; {got['keeps_all']} tokens would keep them all (median row: "
                     f"{got['median_tokens']} tokens).",
                     f"max_seq_length {got['max_len']}에서는 {got['rows']}행 중 {got['cut']}행({got['share']:.0%})의 "
                     f"문맥이 잘립니다; {got['keeps_all']} 토큰이면 모두 들어갑니다 (중앙값 행: {got['median_tokens']} "
                     f"토큰)."))
    else:
        st.success(t(f"All {got['rows']} rows fit in max_seq_length {got['max_len']} with their context.",
                     f"{got['rows']}행 모두 문맥과 함께 max_seq_length {got['max_len']}에 들어갑니다."))
