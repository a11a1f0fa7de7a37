"""What the Fine-tune page shows besides its form: the group titles, the context option's collection list, the
history table of runs, and a run's training context (RAG-aware fine-tuning)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import streamlit as st

from workbench.common.texts import from_record, state_text
from workbench.training.train_progress import eta_text, phase_text
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
    from workbench.common.errors import WorkbenchError
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
    """An expander with a run's training context: what was built (context.json, the extra tokens) and a few rows."""
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
        else:
            st.info(t("The context is built when training starts.", "문맥은 학습이 시작될 때 만들어집니다."))
