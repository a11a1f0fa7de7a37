"""The knowledge base: reading, chunking, embedding, storing and finding documents (the RAG side).

Modules:
    documents    files -> LangChain `Document`s (`load_paths`, `load_bytes`, `save_uploads`)
    chunking     `ChunkingConfig`, `split_documents`, `split_text`
    embeddings   `EmbeddingSpec`, `load_embeddings`, `token_counter`
    e5torch      multilingual-e5-small run by torch (`E5Torch`)
    vectordb     Chroma collections: `VectorStoreConfig`, `open_collection`, `get_chunks`, `list_collections`
    lexical      the BM25 index beside each collection (`LexicalIndex`, `lexical_index`)
    ingest       files -> chunks -> vectors -> a collection, and deletes (`ingest_paths`, `ingest_documents`,
                 `delete_document`, `delete_collection`)
    ingest_jobs  large ingests as jobs on the runner (`start_ingest`, `ingest_status`)
    retrieval    `RetrievalConfig`, `retrieve` (dense, MMR, hybrid), `fuse`

It must run without the training stack (a test checks that no module here imports `workbench.training`).
Chroma, LangChain and torch load with the modules that need them, so import the module you need
(`from workbench.kb import vectordb`).
"""
