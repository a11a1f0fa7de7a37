"""Korean / English for every page: `t("English", "한국어")` picks the text of the current language.

Strings stay beside the widget that shows them (no key catalogue to keep in sync); the language
lives in `st.session_state["ui.lang"]`, set by the sidebar switch, and defaults to
`WORKBENCH_LANG` (ko or en; Korean when unset, as the tutorial is Korean).
"""

from __future__ import annotations

import os

import streamlit as st

LANG_KEY = "ui.lang"
WIDGET_KEY = "ui.lang_choice"
LANGS = {"ko": "한국어", "en": "English"}


def default_lang() -> str:
    lang = os.environ.get("WORKBENCH_LANG", "ko").lower()
    return lang if lang in LANGS else "ko"


def lang() -> str:
    if LANG_KEY not in st.session_state:
        st.session_state[LANG_KEY] = default_lang()
    return st.session_state[LANG_KEY]


def t(en: str, ko: str) -> str:
    """The text for the current language."""
    return ko if lang() == "ko" else en


def language_switch() -> None:
    """The sidebar's language selector; every page reads `lang()` after it.

    The choice is kept under a plain session key, not the widget's own key: Streamlit may reset a
    widget's state when the page changes, which switched the UI back to the first option (Korean).
    """
    current = lang()

    def _keep() -> None:
        st.session_state[LANG_KEY] = st.session_state[WIDGET_KEY]

    options = list(LANGS)
    st.session_state[WIDGET_KEY] = current
    st.sidebar.radio(
        "Language / 언어",
        options=options,
        format_func=LANGS.__getitem__,
        key=WIDGET_KEY,
        on_change=_keep,
        horizontal=True,
    )
