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
from workbench.common.errors import ConfigError, NotFoundError, OfflineError
from workbench.kb import ingest, lexical, vectordb
from workbench.kb.chunking import ChunkingConfig
from workbench.kb.vectordb import VectorStoreConfig, chroma_name

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


def test_delete_document_and_collection(workspace):
    ingest.ingest_documents([doc(PAY, "pay.txt"), doc(PARK, "park.txt")], "shop", CFG, workspace=workspace)
    assert ingest.delete_document("shop", "park.txt", workspace) == 2
    assert [d.source for d in vectordb.list_documents("shop", workspace)] == ["pay.txt"]
    ids = lexical.lexical_index("shop", workspace).ids
    assert len(ids) == 2
    with pytest.raises(NotFoundError, match="no document 'park.txt'"):
        ingest.delete_document("shop", "park.txt", workspace)
    ingest.delete_collection("shop", workspace)
    assert vectordb.list_collections(workspace) == []
    assert not list(workspace.vectorstore.glob("shop.bm25*"))
    with pytest.raises(NotFoundError, match="There is no collection 'shop'"):
        vectordb.get_chunks("shop", workspace)


def test_get_chunks_limit_and_where(workspace):
    ingest.ingest_documents([doc(PAY, "pay.txt"), doc(PARK, "park.txt")], "shop", CFG, workspace=workspace)
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
    from workbench.kb.retrieval import RetrievalConfig, retrieve

    docs = [doc(PAY, "pay.txt"), doc(PARK, "park.txt")]
    report = ingest.ingest_documents(docs, "상점", CFG, workspace=workspace, store=chroma_server)
    assert report.added == 4
    assert ingest.ingest_documents(docs, "상점", CFG, workspace=workspace, store=chroma_server).added == 0
    assert not (workspace.vectorstore / "chroma.sqlite3").exists()  # nothing went into the embedded store
    (info,) = vectordb.list_collections(workspace, chroma_server)
    assert (info.name, info.chunks, info.documents) == ("상점", 4, 2)
    hits = retrieve("상점", "주차는 어디에 하나요?", RetrievalConfig(mode="hybrid", k=1), workspace, chroma_server)
    assert hits[0].metadata["source"] == "park.txt"
    ingest.delete_collection("상점", workspace, chroma_server)
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


def test_what_another_process_ingests_is_found_after_reload_store(workspace):
    """Chroma keeps a collection's vectors in memory per process: a background ingest's chunks reach this process's
    searches only once the store is read afresh (what the pages do when an ingest job ends)."""
    import subprocess
    import sys
    from pathlib import Path

    from workbench.kb import ingest, retrieval

    ingest.ingest_documents([doc(PAY, "pay.txt")], "상점 FAQ", CFG, workspace=workspace)
    dense = retrieval.RetrievalConfig(mode="dense", k=10)
    assert {c.metadata["source"] for c in retrieval.retrieve("상점 FAQ", "주차", dense, workspace)} == {"pay.txt"}
    code = ("from langchain_core.documents import Document\nfrom workbench.kb import ingest\nfrom workbench.kb.chunking import ChunkingConfig\n"
            f"ingest.ingest_documents([Document({PARK!r}, metadata={{'source': 'park.txt'}})], '상점 FAQ', "
            "ChunkingConfig(splitter='recursive', chunk_size=24, chunk_overlap=8))")
    subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parent.parent, check=True, timeout=300)
    vectordb.reload_store(workspace)
    found = {c.metadata["source"] for c in retrieval.retrieve("상점 FAQ", "주차", dense, workspace)}
    assert found == {"pay.txt", "park.txt"}
