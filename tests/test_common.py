"""Widgets and guards every page shares (workbench.ui.common), driven with AppTest."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest


def _errors_script() -> None:
    import streamlit as st

    from workbench.common.errors import NotFoundError
    from workbench.ui.common import user_errors

    with user_errors():
        raise NotFoundError("Collection 'x' does not exist. Ingest documents first.")
    st.markdown("after")
    if st.session_state.get("bug"):
        with user_errors():
            raise RuntimeError("a bug keeps its traceback")


def _guard_script() -> None:
    import streamlit as st

    from workbench.ui.common import need, progress_reporter

    report, bar = progress_reporter("Starting")
    report("Half way", 0.5)
    need(bool(st.session_state.get("ready")), "Nothing to show yet.", "아직 보여 줄 것이 없습니다.")
    st.markdown("shown")


def test_user_errors_show_one_line_and_the_page_goes_on():
    at = AppTest.from_function(_errors_script).run()
    assert [e.value for e in at.error] == ["Collection 'x' does not exist. Ingest documents first."]
    assert at.markdown[0].value == "after" and not at.exception


def test_anything_else_is_a_bug_and_is_not_swallowed():
    at = AppTest.from_function(_errors_script)
    at.session_state["bug"] = True
    at.run()
    # The page shows that something broke, not a WorkbenchError's one line; the details go to the log only
    # (.streamlit/config.toml: client.showErrorDetails = "none").
    assert at.exception and [e.value for e in at.error] == ["Collection 'x' does not exist. Ingest documents first."]


@pytest.mark.parametrize("ready", [False, True])
def test_need_stops_the_page_with_a_note(ready, monkeypatch):
    monkeypatch.setenv("WORKBENCH_LANG", "en")
    at = AppTest.from_function(_guard_script)
    at.session_state["ready"] = ready
    at.run()
    assert [m.value for m in at.markdown] == (["shown"] if ready else [])
    assert [i.value for i in at.info] == ([] if ready else ["Nothing to show yet."])


def _metrics_script() -> None:
    from workbench.ui.common import metric_row

    metric_row(("Rows", 60), ("Train", "43", "rows the model trains on"))


def test_metric_row_draws_one_metric_per_item_with_optional_help():
    at = AppTest.from_function(_metrics_script).run()
    assert [(m.label, m.value, m.help) for m in at.metric] == [("Rows", "60", ""), ("Train", "43", "rows the model trains on")]


def _job_script() -> None:
    import streamlit as st

    from workbench.ui.common import job_progress

    st.session_state["running"] = job_progress(st.session_state["status"], key="job.cancel", starting="Starting",
                                               cancel=lambda: st.session_state.__setitem__("cancelled", True))


@pytest.mark.parametrize("status,text,value,running", [
    ({"state": "running", "fraction": 0.25, "message": "chunk 3 of 12"}, "chunk 3 of 12", 25, True),
    ({"state": "running", "done": 3, "total": 4}, "Starting", 75, True),
    ({"state": "completed", "done": 4, "total": 4, "message": "done"}, "done", 100, False),
])
def test_job_progress_draws_the_fraction_and_offers_cancel_while_running(status, text, value, running, monkeypatch):
    monkeypatch.setenv("WORKBENCH_LANG", "en")
    at = AppTest.from_function(_job_script)
    at.session_state["status"] = status
    at.run()
    bar = at.get("progress")[0]
    assert (bar.proto.text, bar.proto.value) == (text, value) and at.session_state["running"] is running
    assert len(at.button) == (1 if running else 0)
    if running:
        at.button(key="job.cancel").click().run()
        assert at.session_state["cancelled"] is True
