"""The Knowledge base page's Add documents tab: the encoding of text files, and the live preview of the chunk
boundaries on the first uploaded file (or a sample file)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from workbench.common.errors import DocumentError
from workbench.common.textcodec import ENCODING_LABELS, ENCODINGS
from workbench.kb import vectordb
from workbench.kb.chunking import ChunkingConfig, split_text
from workbench.kb.documents import load_bytes, load_file
from workbench.kb.embeddings import token_counter
from workbench.ui import charts
from workbench.ui.common import message_of, user_errors, wide_column
from workbench.ui.i18n import lang, t


def encoding_select(key: str, container: Any = None) -> str:
    """The text encoding of the uploaded txt / md / csv / html files: auto (detected, with a warning when the guess is
    not clear), or the one the user knows."""
    shown = {e: ENCODING_LABELS[e][0 if lang() == "en" else 1] for e in ENCODINGS}  # AppTest formats after the run
    return (container or st).selectbox(
        t("Text encoding", "텍스트 인코딩"), list(ENCODINGS), key=key, format_func=shown.__getitem__,
        help=t("auto detects it per file and warns when the guess is not clear (Korean or Japanese, say): then choose it.",
               "자동은 파일마다 감지하고, 짐작이 분명하지 않으면 (한국어인지 일본어인지 등) 경고합니다: 그때 고르세요."))


def chunk_preview(uploads: Sequence[Any], sample: Path, chunking: ChunkingConfig, embedding: str, encoding: str) -> None:
    """The chunks of the first uploaded file (or `sample`) with `chunking`: a table and a histogram of their sizes."""
    preview_name, preview_text = None, ""
    try:
        notes: list[str] = []
        if uploads:
            doc = load_bytes(uploads[0].name, uploads[0].getvalue(), warnings=notes, encoding=encoding)[0]
        elif sample.is_file():
            doc = load_file(sample, warnings=notes)[0]
        else:
            return
        preview_name, preview_text = doc.metadata["source"], doc.page_content[:4000]
        for note in notes:  # a guessed encoding: the preview shows what the ingest would store
            st.warning(message_of(note))
    except DocumentError as exc:
        st.warning(message_of(exc))
    if not preview_text:
        return
    with user_errors():
        counter = token_counter(vectordb.get_embeddings(embedding)) if chunking.splitter == "tokens" else None
        chunks = split_text(preview_text, chunking, counter)
        st.markdown(t(f"**Preview** of `{preview_name}` (first {len(preview_text):,} characters): {len(chunks)} chunks",
                      f"`{preview_name}` **미리보기** (앞 {len(preview_text):,}자): 청크 {len(chunks)}개"))
        rows = [{"#": i, t("start", "시작"): ch.start, t("chars", "글자"): ch.chars, t("bytes", "바이트"): ch.bytes,
                 **({t("tokens", "토큰"): counter(ch.text)} if counter else {}),
                 t("chunk", "청크"): ch.text.replace("\n", "⏎")} for i, ch in enumerate(chunks)]
        table, histogram = st.columns([3, 1])
        table.dataframe(pd.DataFrame(rows), hide_index=True, height=260, column_config=wide_column(t("chunk", "청크")))
        unit = {"bytes": t("bytes", "바이트"), "tokens": t("tokens", "토큰")}.get(chunking.splitter, t("chars", "글자"))
        lengths = [{"size": ch.bytes if chunking.splitter == "bytes" else counter(ch.text) if counter else ch.chars}
                   for ch in chunks]
        chart = charts.length_histogram(lengths, "size", t(f"chunk size ({unit})", f"청크 크기 ({unit})"),
                                        count_title=t("chunks", "청크 수"), maxbins=15, height=230)
        if chart is not None:
            histogram.altair_chart(chart, width="stretch")
