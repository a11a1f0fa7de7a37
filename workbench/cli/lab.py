"""`retrieval-eval` (the retrieval lab on the user's own questions) and `retrieval-config` (a collection's own
retrieval settings: show, set, clear)."""

from __future__ import annotations

import argparse

from workbench.cli import print_json, progress_printer
from workbench.common.errors import ConfigError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("retrieval-eval", help="measure every retrieval setting on your questions (hit@k, MRR@10; JSON)")
    p.add_argument("--collection", default="", help="the collection to measure (required)")
    p.add_argument("--dataset", default="", help="an Alpaca dataset whose rows carry source / chunk_id (the gold)")
    p.add_argument("--split", choices=["test", "train", "validation", "all"], help="which rows of the dataset (default test)")
    p.add_argument("--csv", default="", help="or a CSV with the columns question, source (and optionally chunk_id)")
    p.add_argument("--limit", type=int, help="at most this many questions, a fixed random sample (default 200; 0 = all)")
    p.add_argument("--match", choices=["source", "chunk"], help="a hit: the right document (default) or the exact chunk")
    p.add_argument("--weights", help="hybrid BM25 weights to try, comma-separated (default 0,0.2,0.4,0.5,0.6,0.7,0.8,1)")
    p.add_argument("--chunkings", default="",
                   help="chunkings to try, comma-separated splitter:size:overlap (e.g. recursive:300:30,characters:200:20)")
    p.add_argument("--save", action="store_true", help="save the best setting as the collection's own retrieval settings")
    p.add_argument("--json", action="store_true", help="print the whole report as JSON (default: a table)")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.add_argument("--from-dir", default=None, help="run the lab job in this folder (written by the page: lab.json)")
    p.set_defaults(handler=run_retrieval_eval)

    p = sub.add_parser("retrieval-config", help="show, set or clear a collection's own retrieval settings")
    p.add_argument("collection")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="mode, fetch_k, lambda_mult, lexical_weight or scale (repeatable)")
    p.add_argument("--clear", action="store_true", help="remove the saved settings (back to the defaults)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=run_retrieval_config)


def _number_list(text: str, what: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError as exc:
        raise ConfigError(f"{what} {text!r} is not a comma-separated list of numbers, e.g. 0,0.5,1.") from exc


def run_retrieval_eval(args: argparse.Namespace) -> int:
    from workbench.compare.retrieval_lab import LabConfig, run_lab, save_best

    if args.from_dir:
        from workbench.compare.retrieval_lab_jobs import run_lab_dir

        report = run_lab_dir(args.from_dir, progress=progress_printer(args.quiet))
    else:
        if not args.collection:
            raise ConfigError("`retrieval-eval` needs --collection NAME and --dataset NAME or --csv FILE.")
        values = {"collection": args.collection, "dataset": args.dataset, "csv": args.csv, "split": args.split,
                  "limit": args.limit, "match": args.match,
                  "weights": _number_list(args.weights, "--weights") if args.weights else None,
                  "chunkings": tuple(s.strip() for s in args.chunkings.split(",") if s.strip())}
        report = run_lab(LabConfig.from_dict({k: v for k, v in values.items() if v is not None}),
                         progress=progress_printer(args.quiet))
    if args.save:
        report["saved"] = save_best(report)
    if args.json:
        print_json(report)
        return 0
    print(f"{report['collection']}: {report['questions']} questions ({report['skipped']} skipped: their document is "
          f"not in the collection), a hit = {report['match']}")
    print(f"{'setting':<22} {'hit@1':>14} {'hit@5':>14} {'hit@10':>14} {'MRR@10':>14} {'ms':>7}")
    for r in report["rows"]:
        cells = [f"{r[m]['mean']:.3f} ±{(r[m]['hi'] - r[m]['lo']) / 2:.3f}" for m in ("hit@1", "hit@5", "hit@10", "mrr@10")]
        mark = " *" if r["setting"] == report["best"] else ""
        print(f"{r['setting']:<22} " + " ".join(f"{c:>14}" for c in cells) + f" {r['ms_p50']:>7}{mark}")
    for c in report["chunkings"]:
        line = ", ".join(f"{r['setting']} MRR@10 {r['mrr@10']['mean']:.3f}" for r in c["rows"])
        print(f"chunking {c['label']}: {c['chunks']} chunks in {c['ingest_s']} s; {line}")
    print(f"best: {report['best']}" + (f" (saved: {report['saved']})" if args.save else " (--save keeps it)"))
    return 0


def run_retrieval_config(args: argparse.Namespace) -> int:
    from workbench.kb.retrieval import collection_config, save_retrieval, saved_retrieval

    if args.clear:
        save_retrieval(args.collection, None)
    if args.set:
        changes = dict(saved_retrieval(args.collection))
        for item in args.set:
            key, sep, value = item.partition("=")
            if not sep:
                raise ConfigError(f"--set {item!r} is not KEY=VALUE, e.g. --set lexical_weight=0.4.")
            changes[key.strip()] = value.strip()
        save_retrieval(args.collection, changes)
    saved = saved_retrieval(args.collection)
    effective = collection_config(args.collection).to_dict()
    if args.json:
        print_json({"collection": args.collection, "saved": saved, "effective": effective})
        return 0
    print(f"{args.collection}: " + (", ".join(f"{k}={v}" for k, v in saved.items()) or "no saved settings (the defaults)"))
    return 0
