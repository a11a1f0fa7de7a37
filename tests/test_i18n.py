"""Korean / English (workbench.ui.i18n), driven with AppTest: the default language, `t`, and the sidebar switch."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest


def _script() -> None:
    import streamlit as st

    from workbench.ui.i18n import language_switch, t

    language_switch()
    st.markdown(t("Hello", "안녕하세요"))


def test_default_language_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("WORKBENCH_LANG", "en")
    at = AppTest.from_function(_script).run()
    assert at.markdown[0].value == "Hello"
    monkeypatch.setenv("WORKBENCH_LANG", "xx")  # unknown: Korean, as the tutorial is
    at = AppTest.from_function(_script).run()
    assert at.markdown[0].value == "안녕하세요"


def test_the_switch_changes_every_string_and_is_kept_across_reruns(monkeypatch):
    monkeypatch.setenv("WORKBENCH_LANG", "ko")
    at = AppTest.from_function(_script).run()
    at.sidebar.radio[0].set_value("en").run()
    assert at.markdown[0].value == "Hello" and at.session_state["ui.lang"] == "en"
    at.run()
    assert at.markdown[0].value == "Hello"


def test_the_url_carries_the_language_across_a_reload_and_a_deep_link(monkeypatch):
    monkeypatch.setenv("WORKBENCH_LANG", "ko")
    at = AppTest.from_function(_script)
    at.query_params["lang"] = "en"  # a deep link, or a reload of a page whose URL has ?lang=en
    at.run()
    assert at.markdown[0].value == "Hello" and at.query_params["lang"] == "en"
    at.sidebar.radio[0].set_value("ko").run()
    assert at.markdown[0].value == "안녕하세요" and at.query_params["lang"] == "ko"  # the URL follows the switch


def test_a_new_session_writes_its_language_into_the_url_and_ignores_a_bad_one(monkeypatch):
    monkeypatch.setenv("WORKBENCH_LANG", "en")
    at = AppTest.from_function(_script)
    at.query_params["lang"] = "xx"
    at.run()
    assert at.markdown[0].value == "Hello" and at.query_params["lang"] == "en"


def _tabbed() -> None:
    import streamlit as st

    from workbench.ui.i18n import language_switch, tabs

    language_switch()
    one, two = tabs("demo.tab", [("One", "하나"), ("Two", "둘")])
    with two:
        st.markdown("inside two")


def test_a_switch_of_language_keeps_the_selected_tab(monkeypatch):
    monkeypatch.setenv("WORKBENCH_LANG", "en")
    at = AppTest.from_function(_tabbed).run()
    assert [tab.label for tab in at.tabs] == ["One", "Two"]
    at.session_state["demo.tab"] = "Two"  # what a click on the second tab leaves (tabs rerun with their selection)
    at.run()
    at.sidebar.radio[0].set_value("ko").run()
    assert [tab.label for tab in at.tabs] == ["하나", "둘"]
    assert at.session_state["demo.tab"] == "둘" and not at.exception
    at.sidebar.radio[0].set_value("en").run()
    assert at.session_state["demo.tab"] == "Two"
