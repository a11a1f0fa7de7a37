"""Chroma collections through `langchain-chroma`: clients, collections, browse.

Where the vectors live (`VectorStoreConfig`): an embedded `PersistentClient` under the workspace's
`vectorstore/` folder by default, or a Chroma server (`chroma run`, `HttpClient`) when a host is set
(`WORKBENCH_CHROMA_HOST` / `WORKBENCH_CHROMA_PORT`). The same code serves both.

A collection is always opened through `langchain_chroma.Chroma` with our embedding model: a raw
`chromadb` collection without an embedding function would try to download an ONNX model.

Names: users name collections freely ("상점 FAQ"); Chroma wants 3-512 characters of [a-zA-Z0-9._-].
`chroma_name` maps a display name to a valid, stable Chroma name and the display name is kept in
the collection's metadata, beside the embedding model and the splitter settings.

The ingest pipeline (idempotent: chunk ids from source, position and text) is `workbench.kb.ingest`; the lexical
(BM25) index kept beside each collection is `workbench.kb.lexical`, which builds on this module. This module keeps
the storage: clients, collections, browsing; changes that must keep the lexical index in step (ingest, delete) are
`workbench.kb.ingest`'s.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.common.config import BaseConfig, Workspace, setting
from workbench.common.errors import ConfigError, NotFoundError, OfflineError
from workbench.common.runfiles import raise_if_disk_full
from workbench.common.texts import Text
from workbench.kb.documents import FileError
from workbench.kb.embeddings import DEFAULT_EMBEDDING, load_embeddings

if TYPE_CHECKING:  # pragma: no cover
    import chromadb
    from langchain_chroma import Chroma
    from langchain_core.embeddings import Embeddings


HOST_ENV = "WORKBENCH_CHROMA_HOST"
PORT_ENV = "WORKBENCH_CHROMA_PORT"
SCHEMA = 1
GET_BATCH = 5000  # below Chroma's max batch size
SCRATCH_PREFIX = "lab-scratch-"  # collections made for a moment (the retrieval lab's chunkings), never listed


@dataclasses.dataclass
class VectorStoreConfig(BaseConfig):
    """Where Chroma keeps the vectors: embedded under the workspace, or a Chroma server."""

    host: str = setting("", "Chroma server host (`chroma run`). Empty: the embedded store under vectorstore/.",
                        help_ko="Chroma 서버 호스트 (`chroma run`). 비워 두면 작업 공간 vectorstore/ 의 내장 저장소.",
                        label="Chroma server host", label_ko="Chroma 서버 호스트")
    port: int = setting(8000, "Chroma server port.", help_ko="Chroma 서버 포트.", min=1, max=65535,
                        label="Port", label_ko="포트")
    ssl: bool = setting(False, "Connect to the server over HTTPS.", help_ko="HTTPS로 서버에 연결.",
                        label="Use HTTPS", label_ko="HTTPS 사용")

    @classmethod
    def default(cls) -> "VectorStoreConfig":
        """From `WORKBENCH_CHROMA_HOST` / `WORKBENCH_CHROMA_PORT` (embedded when the host is unset)."""
        port = os.environ.get(PORT_ENV, "8000")
        if not port.isdigit():
            raise ConfigError(f"{PORT_ENV} = {port!r} is not a port number. Set it to e.g. 8000.",
                              ko=f"{PORT_ENV} = {port!r}은(는) 포트 번호가 아닙니다. 예: 8000.")
        return cls(host=os.environ.get(HOST_ENV, ""), port=int(port))

    @property
    def embedded(self) -> bool:
        return not self.host

    def describe(self, workspace: Workspace) -> str:
        if self.embedded:
            return f"embedded Chroma at {workspace.vectorstore}"
        return f"Chroma server at {'https' if self.ssl else 'http'}://{self.host}:{self.port}"


@dataclasses.dataclass
class Chunk:
    """One stored chunk: its Chroma id, text and metadata (source, chunk_index, start_index, ...)."""

    id: str
    text: str
    metadata: dict[str, Any]


@dataclasses.dataclass
class CollectionInfo:
    name: str  # the display name the user gave
    chroma_name: str
    chunks: int
    documents: int
    embedding: str
    splitter: dict[str, Any]
    metadata: dict[str, Any]


@dataclasses.dataclass
class DocumentInfo:
    source: str
    chunks: int
    file_type: str


@dataclasses.dataclass
class SourceResult:
    source: str
    chunks: int
    added: int
    removed: int
    encoding: str = ""  # how a text file was decoded ("utf-8", "cp949", "latin-1" ...); "" for PDF / DOCX

    @property
    def status(self) -> str:
        if not self.added and not self.removed:
            return "unchanged"
        return "new" if self.added == self.chunks and not self.removed else "changed"


@dataclasses.dataclass
class IngestReport:
    """What an ingest did: per source, how many chunks it has now and how many were added / removed."""

    collection: str
    chroma_name: str
    embedding: str
    sources: list[SourceResult]
    errors: list[FileError]
    seconds: float = 0.0
    warnings: list[FileError] = dataclasses.field(default_factory=list)  # files read, with a note (a guessed encoding)
    embed_seconds: float = 0.0  # the embedding model's calls
    write_seconds: float = 0.0  # Chroma upserts and deletes
    lexical_seconds: float = 0.0  # the lexical index brought in step (the new chunks' subwords included)

    @property
    def added(self) -> int:
        return sum(s.added for s in self.sources)

    @property
    def removed(self) -> int:
        return sum(s.removed for s in self.sources)

    @property
    def chunks(self) -> int:
        return sum(s.chunks for s in self.sources)

    def to_dict(self) -> dict[str, Any]:
        return {
            "collection": self.collection, "chroma_name": self.chroma_name, "embedding": self.embedding,
            "chunks": self.chunks, "added": self.added, "removed": self.removed,
            "sources": [{**dataclasses.asdict(s), "status": s.status} for s in self.sources],
            "errors": [dataclasses.asdict(e) for e in self.errors],
            "warnings": [dataclasses.asdict(w) for w in self.warnings],
            "seconds": round(self.seconds, 3), "embed_seconds": round(self.embed_seconds, 3),
            "write_seconds": round(self.write_seconds, 3), "lexical_seconds": round(self.lexical_seconds, 3),
        }


# --- names --------------------------------------------------------------------------------------

_CHROMA_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9._-]{1,510}[a-zA-Z0-9]$")
_IPV4 = re.compile(r"^\d{1,3}(\.\d{1,3}){3}$")
MAX_DISPLAY_NAME = 200


def chroma_name(display_name: str) -> str:
    """A valid Chroma collection name for any display name, stable across runs.

    A name that Chroma accepts is used as is; otherwise its ASCII letters and digits are kept and a
    short hash of the whole name makes it unique ("상점 FAQ" -> "FAQ-<hash>", "상점" -> "kb-<hash>").

    Raises:
        ConfigError: the name is empty or too long.
    """
    name = display_name.strip()
    if not name:
        raise ConfigError("The collection name is empty. Give it a name, e.g. 'shop' or '상점'.",
                          ko="컬렉션 이름이 비어 있습니다. 이름을 주세요. 예: 'shop' 또는 '상점'.")
    if len(name) > MAX_DISPLAY_NAME:
        raise ConfigError(f"The collection name is {len(name)} characters long. Use at most {MAX_DISPLAY_NAME}.",
                          ko=f"컬렉션 이름이 {len(name)}자입니다. 최대 {MAX_DISPLAY_NAME}자까지 쓰세요.")
    if _CHROMA_NAME.match(name) and ".." not in name and not _IPV4.match(name):
        return name
    ascii_part = re.sub(r"[^a-zA-Z0-9]+", "-", name).strip("-")[:40].strip("-")
    digest = hashlib.sha1(name.encode("utf-8")).hexdigest()[:10]
    return f"{ascii_part}-{digest}" if ascii_part else f"kb-{digest}"


def chunk_id(source: str, chunk_index: int, start_index: int, text: str) -> str:
    """The id of a chunk: a hash of where it comes from and what it says."""
    h = hashlib.sha256()
    for part in (source, str(chunk_index), str(start_index), text):
        h.update(part.encode("utf-8"))
        h.update(b"\x00")
    return h.hexdigest()[:32]


# --- clients and collections --------------------------------------------------------------------


@functools.lru_cache(maxsize=8)
def _client(key: tuple[str, str, int, bool]) -> "chromadb.ClientAPI":
    import chromadb
    from chromadb.config import Settings

    kind, where, port, ssl = key
    settings = Settings(anonymized_telemetry=False)
    if kind == "embedded":
        try:
            return chromadb.PersistentClient(path=where, settings=settings)
        except Exception as exc:  # only a full disk is turned into a message; anything else goes on as it was
            raise_if_disk_full(exc, Text("Opening the knowledge base", "지식 베이스 열기"),
                               Text("Nothing was changed in it.", "바뀐 것은 없습니다."), where)
            raise
    try:
        return chromadb.HttpClient(host=where, port=port, ssl=ssl, settings=settings)
    except Exception as exc:  # chromadb raises ValueError / httpx errors / its own; all mean "no server"
        raise OfflineError(
            f"The Chroma server at {where}:{port} cannot be reached ({exc}). Start it with "
            f"`chroma run --path DIR --host {where} --port {port}`, or unset {HOST_ENV} to use the embedded store.",
            ko=f"{where}:{port}의 Chroma 서버에 연결할 수 없습니다 ({exc}). `chroma run --path DIR --host {where} "
               f"--port {port}`로 시작하거나, 내장 저장소를 쓰려면 {HOST_ENV}를 해제하세요."
        ) from exc


def client(workspace: Workspace | None = None, store: VectorStoreConfig | None = None) -> "chromadb.ClientAPI":
    """The Chroma client for this workspace (embedded) or the configured server; cached per location.

    Raises:
        OfflineError: a configured server does not answer.
    """
    ws = workspace or Workspace.default()
    store = store or VectorStoreConfig.default()
    if store.embedded:
        ws.vectorstore.mkdir(parents=True, exist_ok=True)
        return _client(("embedded", str(ws.vectorstore.resolve()), 0, False))
    return _client(("server", store.host, store.port, store.ssl))


def reload_store(workspace: Workspace | None = None, store: VectorStoreConfig | None = None) -> None:
    """Read the embedded store afresh, after another process (a background ingest) wrote to it.

    Chroma keeps each collection's vector index in memory per process: another process's writes change its counts
    but not its queries (checked with chromadb 1.5.9) until the store is opened again. This drops this process's
    handles of the workspace's store; the next call opens it anew. A Chroma server needs nothing: it serves every
    process the same data.
    """
    ws, store = workspace or Workspace.default(), store or VectorStoreConfig.default()
    forget_open_collections()
    if not store.embedded:
        return
    from chromadb.api.shared_system_client import SharedSystemClient

    _client.cache_clear()
    path = str(ws.vectorstore.resolve())
    # Not stopped: a page of another session may still be reading through it; it goes when nothing holds it.
    SharedSystemClient._identifier_to_system.pop(path, None)
    SharedSystemClient._identifier_to_refcount.pop(path, None)


@functools.lru_cache(maxsize=4)
def get_embeddings(name: str) -> "Embeddings":
    """An embedding model loaded once per process (they are read-only once loaded)."""
    return load_embeddings(name)


def lexical_dir(chroma: str, workspace: Workspace, store: VectorStoreConfig) -> Path:
    """The folder of the lexical index kept beside the collection named `chroma` (its Chroma name) in this store."""
    base = workspace.vectorstore if store.embedded else workspace.vectorstore / f"server-{store.host}-{store.port}"
    return base / f"{chroma}.bm25"


def find_collection(name: str, workspace: Workspace, store: VectorStoreConfig) -> "chromadb.Collection | None":
    """The collection a user means by `name`: its display name, or its Chroma name."""
    cl = client(workspace, store)
    for candidate in dict.fromkeys([chroma_name(name), name.strip()]):
        try:
            return cl.get_collection(candidate)
        except Exception as exc:  # chromadb raises NotFoundError (1.x) or ValueError (older) for a missing one
            if "does not exist" not in str(exc) and "not found" not in str(exc).lower():
                raise
    return None


def require_collection(name: str, workspace: Workspace, store: VectorStoreConfig) -> "chromadb.Collection":
    """The collection a user means by `name`, as `find_collection` finds it.

    Raises:
        NotFoundError: no such collection (the message lists the ones there are).
    """
    coll = find_collection(name, workspace, store)
    if coll is None:
        known = ", ".join(repr(c.name) for c in list_collections(workspace, store)) or "none yet"
        raise NotFoundError(f"There is no collection {name!r} ({store.describe(workspace)}; collections: {known}). "
                            f"Ingest documents into it first.",
                            ko=f"컬렉션 {name!r}이(가) 없습니다 ({store.describe(workspace)}; 컬렉션: {known}). "
                               f"먼저 문서를 넣으세요.")
    return coll


_OPEN: dict[tuple[str, str], tuple[float, "chromadb.Collection"]] = {}
_OPEN_TTL = 2.0  # seconds a collection handle (and its chunk count) is trusted without asking Chroma again


def forget_open_collections() -> None:
    """Drop the handles `open_collection` keeps, after a change that may have removed or replaced a collection."""
    _OPEN.clear()


def open_collection(name: str, workspace: Workspace | None = None,
                    store: VectorStoreConfig | None = None) -> "chromadb.Collection":
    """A collection handle for searching, reused for a moment: a query should not pay two Chroma round
    trips just to find the collection (see `lexical_index`). Changes made through this module drop it.

    Raises:
        NotFoundError: no such collection.
    """
    ws, store = workspace or Workspace.default(), store or VectorStoreConfig.default()
    key = (store.describe(ws), name)
    hit = _OPEN.get(key)
    if hit is not None and time.monotonic() - hit[0] < _OPEN_TTL:
        return hit[1]
    coll = require_collection(name, ws, store)
    _OPEN[key] = (time.monotonic(), coll)
    return coll


def vector_store(
    name: str, workspace: Workspace | None = None, store: VectorStoreConfig | None = None
) -> "Chroma":
    """An existing collection as a LangChain `Chroma` vector store with its own embedding model.

    Raises:
        NotFoundError: no such collection.
    """
    from langchain_chroma import Chroma

    ws, store = workspace or Workspace.default(), store or VectorStoreConfig.default()
    coll = require_collection(name, ws, store)
    embedding = (coll.metadata or {}).get("embedding", DEFAULT_EMBEDDING)
    return Chroma(collection_name=coll.name, embedding_function=get_embeddings(embedding),
                  client=client(ws, store), create_collection_if_not_exists=False)


# --- browse and delete --------------------------------------------------------------------------


def list_collections(workspace: Workspace | None = None, store: VectorStoreConfig | None = None, *,
                     scratch: bool = False) -> list[CollectionInfo]:
    """All collections with their chunk and document counts, embedding model and splitter settings. Scratch
    collections (`SCRATCH_PREFIX`: the retrieval lab's, for the minutes it measures a chunking) are left out unless
    `scratch`: a lab killed with -9 cannot delete its own, and they are nobody's to pick."""
    ws, store = workspace or Workspace.default(), store or VectorStoreConfig.default()
    if store.embedded and not (ws.vectorstore / "chroma.sqlite3").is_file():
        return []  # do not create a store just to list nothing
    out = []
    for coll in client(ws, store).list_collections():
        if scratch or not coll.name.startswith(SCRATCH_PREFIX):
            out.append(describe_collection(coll))
    return sorted(out, key=lambda c: c.name)


def collection_info(name: str, workspace: Workspace | None = None, store: VectorStoreConfig | None = None) -> CollectionInfo:
    """Stats of one collection.

    Raises:
        NotFoundError: no such collection.
    """
    ws, store = workspace or Workspace.default(), store or VectorStoreConfig.default()
    return describe_collection(require_collection(name, ws, store))


def describe_collection(coll: "chromadb.Collection") -> CollectionInfo:
    """Stats of an open collection (`collection_info` finds it by name first)."""
    meta = dict(coll.metadata or {})
    # Ingest and delete record the number of sources; count them only for a collection made elsewhere.
    documents = meta.get("documents")
    if not isinstance(documents, int):
        documents = len(set(_all_metadata_values(coll, "source")))
    return CollectionInfo(
        name=meta.get("display_name", coll.name), chroma_name=coll.name, chunks=coll.count(),
        documents=documents, embedding=meta.get("embedding", DEFAULT_EMBEDDING),
        splitter={k: meta[k] for k in ("splitter", "chunk_size", "chunk_overlap") if k in meta}, metadata=meta,
    )


def _all_metadata_values(coll: "chromadb.Collection", key: str) -> list[Any]:
    values: list[Any] = []
    total = coll.count()
    for offset in range(0, total, GET_BATCH):
        got = coll.get(include=["metadatas"], limit=GET_BATCH, offset=offset)
        values.extend((m or {}).get(key) for m in got["metadatas"])
    return values


def list_documents(collection: str, workspace: Workspace | None = None,
                   store: VectorStoreConfig | None = None) -> list[DocumentInfo]:
    """The sources in a collection, with how many chunks each has."""
    ws, store = workspace or Workspace.default(), store or VectorStoreConfig.default()
    coll = require_collection(collection, ws, store)
    counts: dict[str, list[Any]] = {}
    total = coll.count()
    for offset in range(0, total, GET_BATCH):
        got = coll.get(include=["metadatas"], limit=GET_BATCH, offset=offset)
        for m in got["metadatas"]:
            m = m or {}
            entry = counts.setdefault(str(m.get("source")), [0, m.get("file_type", "")])
            entry[0] += 1
    return [DocumentInfo(s, n, t) for s, (n, t) in sorted(counts.items())]


def get_chunks(
    collection: str,
    workspace: Workspace | None = None,
    limit: int | None = None,
    where: dict[str, Any] | None = None,
    store: VectorStoreConfig | None = None,
    include_embeddings: bool = False,
) -> list[Chunk]:
    """All chunks of a collection (or the first `limit`, or those matching `where`), in document
    order: by source, then chunk_index. With `include_embeddings`, metadata["embedding"] holds the vector.

    Raises:
        NotFoundError: no such collection.
    """
    ws, store = workspace or Workspace.default(), store or VectorStoreConfig.default()
    coll = require_collection(collection, ws, store)
    include = ["documents", "metadatas"] + (["embeddings"] if include_embeddings else [])
    chunks: list[Chunk] = []
    total = coll.count()
    for offset in range(0, total, GET_BATCH):
        got = coll.get(where=where, include=include, limit=GET_BATCH, offset=offset)
        for j, (id_, text, meta) in enumerate(zip(got["ids"], got["documents"], got["metadatas"])):
            meta = dict(meta or {})
            if include_embeddings:
                meta["embedding"] = [float(x) for x in got["embeddings"][j]]
            chunks.append(Chunk(id_, text or "", meta))
        if len(got["ids"]) < GET_BATCH:
            break
    chunks.sort(key=lambda c: (str(c.metadata.get("source", "")), int(c.metadata.get("chunk_index", 0))))
    return chunks[:limit] if limit is not None else chunks
