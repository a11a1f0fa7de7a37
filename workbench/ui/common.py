"""Widgets and guards that every page shares."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import streamlit as st

from workbench.common.config import BaseConfig, Workspace
from workbench.common.errors import WorkbenchError
from workbench.common.texts import from_record, pick
from workbench.ui.i18n import lang, t


def workspace() -> Workspace:
    return Workspace.default().ensure()


@contextmanager
def user_errors() -> Iterator[None]:
    """Show a `WorkbenchError` as `st.error` in the page's language (its message says what to do); let bugs raise."""
    try:
        yield
    except WorkbenchError as exc:
        st.error(exc.message(lang()), icon="⚠️")


def config_help(cls: type[BaseConfig], name: str) -> str:
    """A config field's help text in the current language, for widget tooltips."""
    return cls.help(name, lang())


def metric_row(*items: tuple[Any, ...]) -> None:
    """One row of `st.metric`s in equal columns; each item is (label, value) or (label, value, help)."""
    for col, (label, value, *help_text) in zip(st.columns(len(items)), items):
        col.metric(label, value, help=help_text[0] if help_text else None)


def progress_reporter(label: str) -> tuple[Callable[[str, float], None], Any]:
    """A `(message, fraction)` callback drawing a progress bar; returns (callback, bar). A `Text` message shows in the
    page's language."""
    bar = st.progress(0.0, text=label)
    current = lang()  # read once: the callback may run where the session's state is not at hand

    def report(message: str, fraction: float) -> None:
        bar.progress(min(max(float(fraction), 0.0), 1.0), text=pick(message, current))

    return report, bar


def need(condition: bool, message_en: str, message_ko: str) -> None:
    """Stop the page with an info box when a prerequisite is missing."""
    if not condition:
        st.info(t(message_en, message_ko))
        st.stop()


def job_progress(status: Mapping[str, Any], *, cancel: Callable[[], Any], key: str, starting: str, cancel_label: str = "") -> bool:
    """A background job's progress bar (its fraction, or done / total) and, while it runs, a cancel button.

    Returns whether the job is still pending or running (the caller polls it in an `st.fragment(run_every=...)`).
    """
    fraction = status.get("fraction")
    if fraction is None:
        total = status.get("total") or 0
        fraction = (status.get("done") or 0) / total if total else 0.0
    st.progress(min(max(float(fraction), 0.0), 1.0), text=from_record(status, "message", lang()) or starting)
    running = status.get("state") in ("pending", "running")
    if running and st.button(cancel_label or t("Cancel", "취소"), key=key):
        with user_errors():
            cancel()
    return running


def message_of(item: Any, key: str = "message") -> str:
    """A core message in the page's language: a `WorkbenchError`, a `Text`, or a record (a dict, or an object such as
    `FileError`) that holds `message` and `message_ko`."""
    if isinstance(item, WorkbenchError):
        return item.message(lang())
    if isinstance(item, Mapping):
        return from_record(item, key, lang())
    if hasattr(item, key) and not isinstance(item, str):
        return from_record({key: getattr(item, key), f"{key}_ko": getattr(item, f"{key}_ko", "")}, key, lang())
    return pick(item, lang())


def wide_column(name: str, width: str | int = "large") -> dict[str, Any]:
    """`column_config` giving column `name` (the one worth reading: a chunk's text, an answer) the room to be read."""
    return {name: st.column_config.TextColumn(name, width=width)}
