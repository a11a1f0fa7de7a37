"""The ingest pipeline: files -> documents -> chunks -> vectors -> a Chroma collection and its lexical index; deletes.

Ingestion is idempotent. A chunk's id is a hash of its source, position and text, so:
- re-ingesting an unchanged file computes the same ids and embeds nothing;
- a changed file gets new ids for the changed chunks; its old chunks are deleted after the new ones
  are in (a reader never sees the file missing);
- a run killed halfway leaves some of the new ids written; the re-run embeds only the rest.

Deleting a document or a collection is here too: like an ingest, it changes the collection and its lexical index
together. Storage (clients, collections, browse) is `workbench.kb.vectordb`; the lexical index `workbench.kb.lexical`.
Large ingests run as a child process through `workbench.kb.ingest_jobs`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langchain_core.documents import Document

from workbench.common.config import Workspace
from workbench.common.errors import ConfigError, NotFoundError
from workbench.common.progress import Progress, no_progress
from workbench.common.runfiles import locked, raise_if_disk_full
from workbench.common.texts import Text
from workbench.kb.chunking import ChunkingConfig, split_documents
from workbench.kb.documents import load_paths
from workbench.kb.embeddings import DEFAULT_EMBEDDING, token_counter
from workbench.kb.lexical import LexicalIndex
from workbench.kb.vectordb import (
    GET_BATCH,
    SCHEMA,
    Chunk,
    CollectionInfo,
    IngestReport,
    SourceResult,
    VectorStoreConfig,
    chroma_name,
    chunk_id,
    client,
    describe_collection,
    find_collection,
    forget_open_collections,
    get_embeddings,
    lexical_dir,
    require_collection,
)

if TYPE_CHECKING:  # pragma: no cover
    import chromadb
    import numpy as np
    from langchain_chroma import Chroma


def _open_for_ingest(
    name: str, embedding: str | None, chunking: ChunkingConfig, ws: Workspace, store: VectorStoreConfig
) -> tuple["Chroma", str]:
    """Create the collection, or open it after checking that it was built with the same embedding model."""
    from langchain_chroma import Chroma

    existing = find_collection(name, ws, store)
    if existing is not None:
        meta = dict(existing.metadata or {})
        recorded = meta.get("embedding", DEFAULT_EMBEDDING)
        if embedding is not None and embedding != recorded:
            raise ConfigError(
                f"Collection {meta.get('display_name', existing.name)!r} holds vectors of the embedding model "
                f"{recorded!r}; you asked for {embedding!r}, whose vectors cannot be compared with them. "
                f"Ingest with embedding {recorded!r}, or use a new collection (or delete this one).",
                ko=f"컬렉션 {meta.get('display_name', existing.name)!r}에는 임베딩 모델 {recorded!r}의 벡터가 "
                   f"있습니다. 요청한 {embedding!r}의 벡터는 그것과 비교할 수 없습니다. 임베딩 {recorded!r}로 "
                   f"넣거나, 새 컬렉션을 쓰세요 (또는 이 컬렉션을 지우세요)."
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
    encoding: str = "auto",
) -> IngestReport:
    """Load files and folders and ingest them into `collection` (created when missing). `encoding`: the text files'
    encoding ("auto" detects it per file; a guess that is not clear comes back as a warning).

    A file that cannot be read is listed in `report.errors`; the others still go in. A source's
    name is its file name (or its path inside a given folder), so ingesting a new version of a file
    replaces the old one's chunks.

    Raises:
        ConfigError: `embedding` differs from the one the collection was built with; bad settings.
        ModelError / OfflineError: the embedding model or the Chroma server is unavailable.
    """
    progress = progress or no_progress
    loaded = load_paths(paths, progress=lambda m, f: progress(m, 0.05 * f), encoding=encoding)
    report = ingest_documents(loaded.documents, collection, chunking, embedding, workspace,
                              lambda m, f: progress(m, 0.05 + 0.95 * f), store)
    report.errors = loaded.errors + report.errors
    report.warnings = loaded.warnings + report.warnings
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
    progress = progress or no_progress
    if not documents:  # nothing readable: do not create an empty collection
        return IngestReport(collection=collection, chroma_name=chroma_name(collection), embedding=embedding or "",
                            sources=[], errors=[], seconds=time.perf_counter() - t0)
    missing = [i for i, d in enumerate(documents) if not d.metadata.get("source")]
    if missing:
        raise ConfigError(f"Documents {missing[:5]} have no metadata['source']. Give every document a source name.",
                          ko=f"문서 {missing[:5]}에 metadata['source']가 없습니다. 모든 문서에 출처 이름을 주세요.")
    # One ingest per collection at a time: a second one waits, then finds the chunks already there and embeds nothing.
    with locked(lexical_dir(chroma_name(collection), ws, store), what=f"Collection {collection!r}"):
        vs, embedding = _open_for_ingest(collection, embedding, chunking, ws, store)
        coll = vs._collection
        counter = token_counter(vs.embeddings) if chunking.splitter == "tokens" else None

        progress(Text("splitting",
                      "분할하는 중"), 0.0)
        chunks = prepare_chunks(documents, chunking, counter)
        by_source: dict[str, list[Chunk]] = {str(d.metadata["source"]): [] for d in documents}
        for c in chunks:
            by_source[c.metadata["source"]].append(c)

        to_add, to_remove, results = _plan(coll, by_source)
        lex = LexicalIndex(lexical_dir(coll.name, ws, store))
        written = [0]  # new chunks in Chroma so far, for the message of a full disk
        try:
            embed_seconds, write_seconds, lexical_seconds = _write_changes(vs, coll, lex, to_add, to_remove, batch_size,
                                                                           write_size, progress, written)
        except Exception as exc:  # only a full disk becomes a StorageError; anything else goes on as it was
            raise_if_disk_full(exc, Text(f"Ingesting into collection {collection!r}",
                                         f"컬렉션 {collection!r}에 넣기"),
                               Text(f"The collection keeps every chunk it had ({written[0]} of {len(to_add)} new chunks "
                                    f"were added); ingesting again after freeing space embeds only the rest.",
                                    f"컬렉션은 있던 청크를 모두 그대로 가지고 있습니다 (새 청크 {len(to_add)}개 중 "
                                    f"{written[0]}개 추가됨). 공간을 비운 뒤 다시 넣으면 나머지만 임베딩합니다."),
                               ws.vectorstore)
            raise
        progress(Text("done",
                      "완료"), 1.0)
        return IngestReport(collection=(coll.metadata or {}).get("display_name", coll.name), chroma_name=coll.name,
                            embedding=embedding, sources=results, errors=[], seconds=time.perf_counter() - t0,
                            embed_seconds=embed_seconds, write_seconds=write_seconds, lexical_seconds=lexical_seconds)


def _write_changes(vs: Any, coll: "chromadb.Collection", lex: LexicalIndex, to_add: Sequence[Chunk],
                   to_remove: Sequence[str], batch_size: int, write_size: int, progress: Progress,
                   written: list[int]) -> tuple[float, float, float]:
    """Embed and add the new chunks, then delete the stale ones, then rebuild the lexical index (the order that keeps a
    source findable throughout); returns (embedding s, writing s, lexical index s)."""
    if to_add or to_remove:
        lex.mark_stale()
    # The new chunks' subwords are tokenized after the embedding, by the rebuild (~0.2 ms a chunk).
    embed_seconds, write_seconds = _embed_and_write(vs, coll, to_add, batch_size, write_size, progress, written)
    t = time.perf_counter()
    for i in range(0, len(to_remove), GET_BATCH):
        coll.delete(ids=to_remove[i : i + GET_BATCH])
    write_seconds += time.perf_counter() - t
    t_lex = time.perf_counter()
    # Whenever this ingest changed the collection: a search during the embedding may have rebuilt the index from half
    # of it (and cleared the stale marker).
    if to_add or to_remove or lex.stale or not lex.exists():
        progress(Text("updating the lexical index",
                      "어휘 색인 갱신 중"), 0.92)
        lex.rebuild(coll)
    return embed_seconds, write_seconds, time.perf_counter() - t_lex


def _plan(coll: "chromadb.Collection", by_source: dict[str, list[Chunk]]) -> tuple[list[Chunk], list[str], list[SourceResult]]:
    """What an ingest changes: the chunks to embed (new ids), the ids to delete (stale), and a result per source."""
    existing = _ids_by_source(coll, list(by_source))
    to_add, to_remove, results = [], [], []
    for source, source_chunks in by_source.items():
        have = existing.get(source, set())
        stale = have - {c.id for c in source_chunks}
        to_add.extend(c for c in source_chunks if c.id not in have)
        to_remove.extend(sorted(stale))
        results.append(SourceResult(source, len(source_chunks), sum(1 for c in source_chunks if c.id not in have), len(stale),
                                    str(source_chunks[0].metadata.get("encoding", "")) if source_chunks else ""))
    return to_add, to_remove, results


def _embed_and_write(vs: Any, coll: "chromadb.Collection", to_add: Sequence[Chunk], batch_size: int, write_size: int,
                     progress: Progress, written: list[int]) -> tuple[float, float]:
    """Embed `to_add` in batches and upsert them `write_size` at a time; returns (embedding s, writing s).
    `written[0]` counts the chunks upserted so far."""
    embed_seconds = write_seconds = 0.0
    pending: list[tuple[Chunk, list[float]]] = []

    def write() -> None:
        nonlocal write_seconds
        t = time.perf_counter()
        coll.upsert(ids=[c.id for c, _ in pending], documents=[c.text for c, _ in pending],
                    metadatas=[c.metadata for c, _ in pending], embeddings=[v for _, v in pending])
        written[0] += len(pending)
        pending.clear()
        write_seconds += time.perf_counter() - t

    for i in range(0, len(to_add), batch_size):
        batch = to_add[i : i + batch_size]
        progress(Text(f"embedding chunks {i + 1}-{i + len(batch)} of {len(to_add)}",
                      f"청크 임베딩 중 {i + 1}-{i + len(batch)} / {len(to_add)}"), 0.05 + 0.85 * i / len(to_add))
        t = time.perf_counter()
        vectors = vs.embeddings.embed_documents([c.text for c in batch])
        embed_seconds += time.perf_counter() - t
        pending.extend(zip(batch, vectors))
        if len(pending) >= write_size:
            write()
    if pending:
        write()
    return embed_seconds, write_seconds


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
    return describe_collection(vs._collection)


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
    progress = progress or no_progress
    coll = require_collection(collection, ws, store)
    lex = LexicalIndex(lexical_dir(coll.name, ws, store))
    lex.mark_stale()
    step = 2000
    for i in range(0, len(chunks), step):
        progress(Text(f"writing chunks {i + 1}-{min(i + step, len(chunks))} of {len(chunks)}",
                      f"청크 쓰는 중 {i + 1}-{min(i + step, len(chunks))} / {len(chunks)}"), i / max(len(chunks), 1))
        part = chunks[i : i + step]
        coll.upsert(ids=[c.id for c in part], documents=[c.text for c in part], metadatas=[c.metadata for c in part],
                    embeddings=[list(map(float, v)) for v in vectors[i : i + step]])
    progress(Text("updating the lexical index",
                  "어휘 색인 갱신 중"), 0.95)
    lex.rebuild(coll)
    progress(Text("done",
                  "완료"), 1.0)


# --- delete: the collection and its lexical index change together, as in an ingest --------------------------------

def delete_document(collection: str, source: str, workspace: Workspace | None = None,
                    store: VectorStoreConfig | None = None) -> int:
    """Delete every chunk of one source; returns how many were deleted.

    Raises:
        NotFoundError: no such collection, or no such source in it.
    """
    ws, store = workspace or Workspace.default(), store or VectorStoreConfig.default()
    coll = require_collection(collection, ws, store)
    ids = coll.get(where={"source": source}, include=[])["ids"]
    if not ids:
        raise NotFoundError(f"Collection {collection!r} has no document {source!r}. See its document list.",
                            ko=f"컬렉션 {collection!r}에 문서 {source!r}이(가) 없습니다. 문서 목록을 확인하세요.")
    lex = LexicalIndex(lexical_dir(coll.name, ws, store))
    lex.mark_stale()
    for i in range(0, len(ids), GET_BATCH):
        coll.delete(ids=ids[i : i + GET_BATCH])
    lex.rebuild(coll)
    return len(ids)


def delete_collection(name: str, workspace: Workspace | None = None, store: VectorStoreConfig | None = None) -> None:
    """Delete a collection and its lexical index.

    Raises:
        NotFoundError: no such collection.
    """
    ws, store = workspace or Workspace.default(), store or VectorStoreConfig.default()
    coll = require_collection(name, ws, store)
    client(ws, store).delete_collection(coll.name)
    forget_open_collections()
    LexicalIndex(lexical_dir(coll.name, ws, store)).remove()
    lexical_dir(coll.name, ws, store).with_name(f"{coll.name}.retrieval.json").unlink(missing_ok=True)  # its own settings
