from __future__ import annotations

from pathlib import Path

import pytest
from apphelpers import open_app_page
from langchain_core.documents import Document
from streamlit.testing.v1 import AppTest

from workbench.kb import ingest, vectordb
from workbench.kb.chunking import ChunkingConfig

APP = str(Path(__file__).resolve().parent.parent / "streamlit_app.py")


def open_page(lang: str = "en") -> AppTest:
    return open_app_page("app_pages/concepts.py", lang)


@pytest.mark.parametrize("lang,title", [("en", "Concepts"), ("ko", "개념")])
def test_concepts_page_in_both_languages(workspace, lang, title):
    at = open_page(lang)
    assert at.title[0].value == title
    # Characters vs bytes side by side: the byte chunks of the Korean sample never exceed the byte budget.
    chars, byts = at.dataframe[0].value, at.dataframe[1].value
    size = at.slider(key="concepts.chunk_size").value
    assert (chars.iloc[:, 1] <= size).all() and (byts.iloc[:, 2] <= size).all()
    assert len(byts) > len(chars)  # Korean needs more byte chunks
    assert any("No collection yet" in i.value or "아직 컬렉션이 없습니다" in i.value for i in at.info)


def test_the_default_sentences_show_what_the_page_says(workspace):
    """Each translation pair scores above every pair with the unrelated sentence, with the page's own model."""
    from workbench.kb.embeddings import DEFAULT_EMBEDDING, load_embeddings, similarity_and_projection

    at = open_page("en")
    sentences = at.text_area(key="concepts.sentences").value.splitlines()
    assert at.selectbox(key="concepts.model").value == DEFAULT_EMBEDDING and len(sentences) == 6
    _, sims, _ = similarity_and_projection(sentences, load_embeddings(DEFAULT_EMBEDDING))
    unrelated = max(sims[5, :5])
    assert sims[0, 1] > unrelated and sims[3, 4] > unrelated, (sims[0, 1], sims[3, 4], unrelated)


def test_typed_sentences_and_a_real_collection(workspace):
    ingest.ingest_documents([Document("현금 결제 가능", metadata={"source": "pay.txt"})], "shop",
                              ChunkingConfig(), workspace=workspace)
    at = open_page("en")
    at.text_area(key="concepts.sentences").input("현금 되나요?\nCan I pay cash?\n비가 옵니다.").run()
    assert not at.exception and "3 vectors of 384 numbers each." in [c.value for c in at.caption]
    at.slider(key="concepts.chunk_size").set_value(12).run()
    assert (at.dataframe[1].value.iloc[:, 2] <= 12).all()
    stored = at.dataframe[2].value
    assert stored.iloc[0]["document"] == "현금 결제 가능" and stored.iloc[0]["id"] == vectordb.get_chunks("shop", workspace)[0].id
    assert stored.columns[1] == "vector (first 6 of 384)"
    assert "source=pay.txt" in stored.iloc[0]["metadata"]
