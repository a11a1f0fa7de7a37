"""RAG-vs-Fine-Tune Workbench: `streamlit run streamlit_app.py`.

The entry point only sets up navigation and the sidebar; each step is a thin page under app_pages/.
Not pages/: a folder of that name switches Streamlit to its legacy file-based navigation, which shows
another sidebar (without the language switch) when a page is opened by its URL.
"""

from __future__ import annotations

import streamlit as st

from workbench.ui.common import workspace
from workbench.ui.i18n import language_switch, t

st.set_page_config(page_title="RAG vs Fine-Tune Workbench", page_icon="🧪", layout="wide")
language_switch()

pages = [
    st.Page("app_pages/home.py", title=t("Home", "홈"), icon="🏠", default=True, url_path="home"),
    st.Page("app_pages/concepts.py", title=t("Concepts", "개념"), icon="💡", url_path="concepts"),
    st.Page("app_pages/knowledge_base.py", title=t("Knowledge base", "지식 베이스"), icon="📚", url_path="knowledge-base"),
    st.Page("app_pages/dataset.py", title=t("Dataset", "데이터셋"), icon="📋", url_path="dataset"),
    st.Page("app_pages/finetune.py", title=t("Fine-tune", "파인튜닝"), icon="🛠️", url_path="finetune"),
    st.Page("app_pages/compare.py", title=t("Compare", "비교"), icon="⚖️", url_path="compare"),
]
nav = st.navigation(pages)

with st.sidebar:
    ws = workspace()
    st.caption(t("Workspace", "작업 공간"))
    st.code(str(ws.root), language=None)

nav.run()
