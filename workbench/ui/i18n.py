"""Korean / English for every page: `t("English", "한국어")` picks the text of the current language.

Strings stay beside the widget that shows them (no key catalogue to keep in sync); the language
lives in `st.session_state["ui.lang"]`, set by the sidebar switch, and is mirrored in the URL (`?lang=ko|en`) so a
reload or a shared link opens in the same language. A new session takes the URL's language, else
`WORKBENCH_LANG` (ko or en; Korean when unset, as the tutorial is Korean). What the core says (`Text`, errors) is
picked with `workbench.common.texts.pick`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import streamlit as st

from workbench.common.texts import pick

LANG_KEY = "ui.lang"
QUERY_KEY = "lang"
WIDGET_KEY = "ui.lang_choice"
LANGS = {"ko": "한국어", "en": "English"}


def default_lang() -> str:
    lang = os.environ.get("WORKBENCH_LANG", "ko").lower()
    return lang if lang in LANGS else "ko"


def lang() -> str:
    if LANG_KEY not in st.session_state:
        asked = str(st.query_params.get(QUERY_KEY, "")).lower()
        st.session_state[LANG_KEY] = asked if asked in LANGS else default_lang()
    return st.session_state[LANG_KEY]


def t(en: str, ko: str) -> str:
    """The text for the current language."""
    return ko if lang() == "ko" else en


def language_switch() -> None:
    """The sidebar's language selector; every page reads `lang()` after it.

    The choice is kept under a plain session key, not the widget's own key: Streamlit may reset a
    widget's state when the page changes, which switched the UI back to the first option (Korean).
    The URL keeps the language too (`?lang=`): page links drop query parameters, so it is written on every run.
    """
    current = lang()
    if st.query_params.get(QUERY_KEY) != current:
        st.query_params[QUERY_KEY] = current

    def _keep() -> None:
        st.session_state[LANG_KEY] = st.query_params[QUERY_KEY] = st.session_state[WIDGET_KEY]

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


def tabs(key: str, labels: Sequence[tuple[str, str]]) -> Sequence[Any]:
    """`st.tabs` of `(English, Korean)` labels whose selected tab survives a language switch.

    The selection lives in `st.session_state[key]` as the label shown (tabs with a key report their selection, and
    can be selected through the state, only with `on_change`); after a switch it still holds the other language's
    label, so it is mapped to this language's before the tabs are drawn.
    """
    names = [ko if lang() == "ko" else en for en, ko in labels]
    picked = st.session_state.get(key)
    for (en, ko), name in zip(labels, names):
        if picked in (en, ko) and picked != name:
            st.session_state[key] = name
    return st.tabs(names, key=key, on_change="rerun")


def tr(value: Any) -> str:
    """A core `Text` (a progress message, a run state, an error) in the current language; any other value as str."""
    return pick(value, lang())
