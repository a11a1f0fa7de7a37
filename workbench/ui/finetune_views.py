"""What the Fine-tune page shows besides its form: the history table of runs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from workbench.texts import from_record, state_text
from workbench.train_progress import eta_text, phase_text
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


def history_table(runs: Sequence[Any]) -> list[dict[str, Any]]:
    """One row per run, newest first; a value a run did not record shows as "–" (a run that failed before its first
    step has no tokens/s), never "None"."""
    table = []
    for r in runs:
        evals = [m["eval_loss"] for m in r.metrics() if "eval_loss" in m]
        tps = r.status.get("tokens_per_s")
        table.append({t("run", "실행"): r.id, t("state", "상태"): state_label(r.state), t("dataset", "데이터셋"): r.config.dataset,
                      t("model", "모델"): r.config.base_model, t("backend", "백엔드"): r.config.backend,
                      t("steps", "스텝"): r.status.get("step"),
                      t("best val. loss", "최저 검증 손실"): min(evals) if evals else None,
                      t("tokens/s", "토큰/초"): f"{tps:,.0f}" if tps else "–",
                      t("train s", "학습 초"): r.status.get("train_seconds")})
    return table
