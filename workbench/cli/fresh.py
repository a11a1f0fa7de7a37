"""`freshness`: the knowledge-freshness measurement from the command line: ask the demo's checks of every source,
change the fact and re-ingest, ask again, restore, and keep the result (what the Compare page's tab does step by step)."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from workbench.cli import passive_threads, print_json, stderr_progress


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("freshness", help="measure knowledge freshness: change a fact, re-ingest, ask every source again")
    p.add_argument("--collection", required=True, help="the collection whose documents change (the sample shop's)")
    p.add_argument("--run", default="", help="training run whose adapter answers as fine-tuned (default: base sources only)")
    p.add_argument("--base-model", default="", help="base model (default: the run's, else the offline default)")
    p.add_argument("--sources", default=None, help="comma-separated (default: base,rag, plus ft,ft_rag with --run)")
    p.add_argument("--demo", default="", help="a freshness demo file (default: examples/freshness/shop_ice_cream.json)")
    p.add_argument("--lang", choices=["ko", "en", "both"], default="both", help="which questions of the checks to ask")
    p.add_argument("--max-new-tokens", type=int, default=None)
    p.add_argument("--keep", action="store_true", help="keep the changed documents (default: restore the originals)")
    p.add_argument("--json", action="store_true", help="print the measurement as JSON")
    p.set_defaults(handler=run_freshness)


def run_freshness(args: argparse.Namespace) -> int:
    from workbench.answers.answer import prepare
    from workbench.answers.inference import GenerationConfig
    from workbench.common.config import Workspace
    from workbench.compare.freshness import DEMO_FILE, ask_checks, change_facts, load_demo, restore_facts, save_measure

    passive_threads()
    ws = Workspace.default()
    demo = load_demo(args.demo or DEMO_FILE)
    run = None
    if args.run:
        from workbench.training.runs import get_run

        run = get_run(args.run, ws)
    sources = ([s.strip() for s in args.sources.split(",") if s.strip()] if args.sources
               else ["base", "ft", "rag", "ft_rag"] if run is not None else ["base", "rag"])
    setup = prepare(sources, ws, run=run, base_model=args.base_model, collection=args.collection,
                    progress=None if args.json else stderr_progress)
    settings = GenerationConfig(**({"max_new_tokens": args.max_new_tokens} if args.max_new_tokens else {}))
    langs = ["ko", "en"] if args.lang == "both" else [args.lang]

    def ask_all(step: str) -> list[dict[str, Any]]:
        print(f"asking {len(demo.checks) * len(langs)} questions of {', '.join(sources)} ({step} the change)",
              file=sys.stderr)
        return [r for lang in langs for r in ask_checks(setup, sources, demo.checks, lang, settings)]

    before = ask_all("before")
    t0 = time.perf_counter()
    changed = change_facts(args.collection, demo.edits, demo.source_dir, ws, None if args.json else stderr_progress)
    seconds = round(time.perf_counter() - t0, 2)
    try:
        after = ask_all("after")
    finally:
        if not args.keep:
            restore_facts(args.collection, changed["files"], demo.source_dir, ws)
    record = save_measure(args.collection, before, after, changed.get("seconds", seconds), ws,
                          run=args.run, sources=sources, files=changed["files"])
    if args.json:
        print_json(record)
        return 0
    print(f"re-ingest of {', '.join(changed['files'])}: {record['reingest_seconds']} s")
    for source, m in record["summary"].items():
        line = (f"{source:<8} old fact before: {m['old_before']}/{m['questions']}  new fact after: "
                f"{m['new_after']}/{m['questions']}  old fact after: {m['old_after']}/{m['questions']}")
        print(line + (f"  stale although retrieval gave the new fact: {len(m['stale'])}" if m["stale"] else ""))
    return 0
