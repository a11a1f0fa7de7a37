"""Knowledge base: upload -> chunk (live preview) -> embed into Chroma -> browse -> search (workbench.kb.vectordb, retrieval)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from workbench.common.config import PROJECT_DIR
from workbench.kb import ingest, ingest_jobs, vectordb
from workbench.kb.chunking import ChunkingConfig
from workbench.kb.documents import SUPPORTED_SUFFIXES, save_uploads
from workbench.kb.embeddings import DEFAULT_EMBEDDING, EMBEDDING_REGISTRY
from workbench.kb.retrieval import RetrievalConfig, only_sources, retrieve
from workbench.ui import kb_views, retrieval_views
from workbench.ui.common import job_progress, message_of, progress_reporter, user_errors, wide_column, workspace
from workbench.ui.forms import INVALID, build_config, config_field, config_form
from workbench.ui.i18n import t, tabs

ws = workspace()
SAMPLE = PROJECT_DIR / "examples" / "shop"
NEW = "\u2795"  # the selector's "new collection" entry

st.title(t("Knowledge base", "지식 베이스"))
st.caption(t(
    "Documents are split into chunks, each chunk is embedded into a vector and stored in a Chroma collection together "
    "with a BM25 index; a question then retrieves the closest chunks.",
    "문서를 청크로 나누고, 각 청크를 벡터로 임베딩해 BM25 색인과 함께 Chroma 컬렉션에 저장합니다. 질문을 하면 가장 가까운 "
    "청크를 찾아옵니다.",
))

# A collection made by an action (ingest, sample) becomes the selected one before the selector is drawn.
if "kb.pending" in st.session_state:
    st.session_state["kb.collection"] = st.session_state.pop("kb.pending")
with user_errors():
    collections = {c.name: c for c in vectordb.list_collections(ws)}
options = [*collections, NEW]
if st.session_state.get("kb.collection") not in options:
    st.session_state["kb.collection"] = options[0]
left, right = st.columns([2, 3])
new_label = t("New collection…", "새 컬렉션…")
choice = left.selectbox(t("Collection", "컬렉션"), options, key="kb.collection",
                        format_func=lambda n: new_label if n == NEW else n)
if choice == NEW:
    name = left.text_input(t("Name of the new collection", "새 컬렉션 이름"), value="shop", key="kb.new_name",
                           help=t("Any language; Chroma's name rules are handled for you.",
                                  "어떤 언어든 괜찮습니다. Chroma 이름 규칙은 자동으로 맞춥니다."))
    info = None
else:
    name, info = choice, collections[choice]
if info is not None:
    c = right.columns(4)
    c[0].metric(t("Chunks", "청크"), info.chunks)
    c[1].metric(t("Documents", "문서"), info.documents)
    c[2].metric(t("Embedding", "임베딩"), info.embedding)
    c[3].metric(f"{info.splitter.get('splitter', '?')} ({t('size / overlap', '크기 / 겹침')})",
                f"{info.splitter.get('chunk_size', '?')} / {info.splitter.get('chunk_overlap', '?')}")

tab_add, tab_browse, tab_search, tab_lab = tabs("kb.tab", [("Add documents", "문서 추가"), ("Browse", "둘러보기"),
                                                          ("Search", "검색"), ("Retrieval lab", "검색 실험")])


def _ingest(paths: list, chunking: ChunkingConfig, embedding: str | None, encoding: str = "auto") -> None:
    if ingest_jobs.is_large(paths):  # a child process, polled below: the page stays usable and can cancel
        st.session_state["kb.ingest_job"] = str(ingest_jobs.start_ingest(paths, name, chunking, embedding, ws, encoding))
        st.rerun()
    report_cb, bar = progress_reporter(t("Ingesting…", "넣는 중…"))
    report = ingest.ingest_paths(paths, name, chunking, embedding, ws, report_cb, encoding=encoding)
    bar.empty()
    _finish(report.to_dict())


def _finish(report: dict) -> None:
    st.session_state["kb.last_report"] = report
    if report["sources"]:
        st.session_state["kb.pending"] = report["collection"]
    st.rerun()


@st.fragment(run_every=1.0)
def _watch_ingest(folder: str) -> None:
    status = ingest_jobs.ingest_status(folder)
    if job_progress(status, cancel=lambda: ingest_jobs.cancel_ingest(folder), key="kb.ingest_cancel",
                    starting=t("Starting the ingest…", "넣기를 시작하는 중…"), cancel_label=t("Cancel the ingest", "넣기 취소")):
        return
    st.session_state.pop("kb.ingest_job", None)
    vectordb.reload_store(ws)  # the child wrote the collection: this process reads it afresh
    report = ingest_jobs.ingest_report(folder)
    if status["state"] == "completed" and report is not None:
        _finish(report)
    st.session_state["kb.ingest_message"] = (status["state"], message_of(status, "error"))
    st.rerun(scope="app")


# --- add documents ----------------------------------------------------------------------------------
with tab_add:
    if "kb.ingest_job" in st.session_state:
        _watch_ingest(st.session_state["kb.ingest_job"])
    if "kb.ingest_message" in st.session_state:
        state, error = st.session_state.pop("kb.ingest_message")
        if state == "cancelled":
            st.warning(t("The ingest was cancelled; ingest the same files again to finish it.",
                         "넣기가 취소되었습니다. 같은 파일을 다시 넣으면 마무리됩니다."))
        else:
            st.error(error or t("The ingest failed.", "넣기에 실패했습니다."), icon="⚠️")
    uploads = st.file_uploader(t("Upload files", "파일 올리기"), accept_multiple_files=True, key="kb.upload",
                               type=[s.lstrip(".") for s in SUPPORTED_SUFFIXES])
    s1, s2, s3, s4 = st.columns(4)
    chunk_values = {name: config_field(ChunkingConfig, name, key=key, container=col) for name, key, col in (
        ("splitter", "kb.splitter", s1), ("chunk_size", "kb.chunk_size", s2), ("chunk_overlap", "kb.overlap", s3))}
    if info is None:
        embedding = s4.selectbox(t("Embedding model", "임베딩 모델"), list(EMBEDDING_REGISTRY), key="kb.embedding",
                                 index=list(EMBEDDING_REGISTRY).index(DEFAULT_EMBEDDING),
                                 format_func=lambda k: EMBEDDING_REGISTRY[k].label)
    else:
        embedding = info.embedding
        s4.text_input(t("Embedding model", "임베딩 모델"), embedding, disabled=True, key="kb.embedding_fixed",
                      help=t("A collection keeps the model it was built with.", "컬렉션은 처음 만든 모델을 유지합니다."))
    chunking = build_config(ChunkingConfig, chunk_values)

    encoding = kb_views.encoding_select("kb.encoding")
    if chunking is not None:  # the chunk boundaries of the first uploaded file (or a sample file), live
        kb_views.chunk_preview(uploads, SAMPLE / "payment_refund_ko.txt", chunking, embedding, encoding)

    b1, b2 = st.columns(2)
    if b1.button(t("Ingest uploaded files", "올린 파일 넣기"), type="primary", key="kb.ingest",
                 disabled=not uploads or chunking is None or "kb.ingest_job" in st.session_state):
        with user_errors():
            folder = f"vectorstore/uploads/{vectordb.chroma_name(name)}"
            written, errors = save_uploads([(u.name, u.getvalue()) for u in uploads], folder, ws)
            for err in errors:
                st.warning(message_of(err))
            if written:
                _ingest(written, chunking, embedding, encoding)
    if b2.button(t("Ingest the sample shop (one click)", "예제 상점 문서 넣기 (한 번에)"), key="kb.sample",
                 disabled=not SAMPLE.is_dir() or chunking is None or "kb.ingest_job" in st.session_state,
                 help=t("Korean and English documents of a small shop, from examples/shop.",
                        "작은 상점의 한국어·영어 문서 (examples/shop).")):
        with user_errors():
            _ingest([SAMPLE], chunking, embedding)

    last = st.session_state.get("kb.last_report")
    if last and not last["sources"]:  # nothing could be read: no collection was made, say why
        st.error(t("None of the files could be read; nothing was ingested.", "읽을 수 있는 파일이 없어 아무것도 넣지 않았습니다."))
        for err in last["errors"]:
            st.warning(message_of(err))
    elif last and last["collection"] == name:
        st.success(t(f"{last['collection']}: {last['added']} chunks added, {last['removed']} removed, "
                     f"{last['chunks']} in the files ({last['seconds']:.1f} s).",
                     f"{last['collection']}: 청크 {last['added']}개 추가, {last['removed']}개 삭제, "
                     f"파일의 청크 {last['chunks']}개 ({last['seconds']:.1f}초)."))
        status = {"new": t("new", "새 문서"), "changed": t("changed", "변경"), "unchanged": t("unchanged", "그대로")}
        st.dataframe(pd.DataFrame([{t("document", "문서"): s["source"], t("status", "상태"): status[s["status"]],
                                    t("chunks", "청크"): s["chunks"], t("added", "추가"): s["added"],
                                    t("removed", "삭제"): s["removed"]} for s in last["sources"]]),
                     hide_index=True, width="stretch")
        for err in last["errors"]:
            st.warning(message_of(err))
        for note in last.get("warnings", []):  # files read, with a warning (an unclear encoding, a long ingest)
            st.warning(message_of(note))

# --- browse -----------------------------------------------------------------------------------------
with tab_browse:
    if info is None:
        st.info(t("Ingest documents first: this collection does not exist yet.",
                  "먼저 문서를 넣으세요: 이 컬렉션은 아직 없습니다."))
    else:
        docs = vectordb.list_documents(name, ws)
        st.dataframe(pd.DataFrame([{t("document", "문서"): d.source, t("type", "형식"): d.file_type,
                                    t("chunks", "청크"): d.chunks} for d in docs]), hide_index=True, width="stretch")
        source = st.selectbox(t("Show the chunks of", "청크 보기"), [d.source for d in docs], key="kb.browse_source")
        if source:
            chunks = vectordb.get_chunks(name, ws, where={"source": source})
            st.dataframe(pd.DataFrame([{"#": c.metadata.get("chunk_index"), t("start", "시작"): c.metadata.get("start_index"),
                                        t("chars", "글자"): len(c.text), t("bytes", "바이트"): len(c.text.encode("utf-8")),
                                        "id": c.id[:12], t("chunk", "청크"): c.text} for c in chunks]),
                         hide_index=True, width="stretch", column_config=wide_column(t("chunk", "청크")))
            confirm = st.checkbox(t(f"Yes, delete {source}", f"네, {source} 삭제"), key="kb.confirm_delete_doc")
            if st.button(t("Delete this document", "이 문서 삭제"), key="kb.delete_doc", disabled=not confirm):
                with user_errors():
                    removed = ingest.delete_document(name, source, ws)
                    st.session_state["kb.last_report"] = None
                    st.toast(t(f"Deleted {removed} chunks of {source}", f"{source}의 청크 {removed}개 삭제"))
                    st.rerun()
        with st.expander(t("Delete the whole collection", "컬렉션 전체 삭제")):
            sure = st.checkbox(t(f"Yes, delete {name} and all its chunks", f"네, {name}와 모든 청크 삭제"),
                               key="kb.confirm_delete_collection")
            if st.button(t("Delete collection", "컬렉션 삭제"), key="kb.delete_collection", disabled=not sure):
                with user_errors():
                    ingest.delete_collection(name, ws)
                    st.session_state.pop("kb.collection", None)
                    st.rerun()

# --- search -----------------------------------------------------------------------------------------
with tab_search:
    if info is None:
        st.info(t("Ingest documents first: there is nothing to search yet.", "먼저 문서를 넣으세요: 아직 검색할 것이 없습니다."))
    else:
        query = st.text_input(t("Question", "질문"), key="kb.query", placeholder="현금으로 결제가 가능한가요?")
        retrieval_views.follow_saved(name, ws, retrieval_views.SEARCH_KEYS, "kb.saved_for")  # the lab's saved setting
        m1, m2, m3 = st.columns([2, 1, 3])
        mode = config_field(RetrievalConfig, "mode", key="kb.mode", container=m1)
        k = config_field(RetrievalConfig, "k", key="kb.k", container=m2)
        sources = m3.multiselect(t("Only these documents", "이 문서에서만"),
                                 [d.source for d in vectordb.list_documents(name, ws)], key="kb.sources")
        with st.expander(t("More settings", "추가 설정")):
            more = config_form(RetrievalConfig, ["fetch_k", "lambda_mult", "lexical_weight", "scale"], key_prefix="kb.", columns=4,
                               keys={"lambda_mult": "kb.lambda"})
            where = config_field(RetrievalConfig, "filter", key="kb.filter", placeholder='{"file_type": "markdown"}')
        if st.button(t("Search", "검색"), type="primary", key="kb.search") and query.strip():
            config = build_config(RetrievalConfig, {**more, "mode": mode, "k": k,
                                                    "filter": where if where is INVALID else only_sources(where, sources)})
            if config is not None:
                with user_errors():
                    hits = retrieve(name, query, config, ws)
                    st.session_state["kb.results"] = (name, [(r.text, r.score, r.metadata) for r in hits])
        retrieval_views.show_hits(name)

with tab_lab:
    retrieval_views.lab_section(name if info is not None else "", ws)
