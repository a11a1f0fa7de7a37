"""`dataset`: import, generate, validate, split, show, export and push Alpaca datasets (JSON on stdout).

    python -m workbench dataset import FILE --name NAME [--map instruction=Q,output=A]
    python -m workbench dataset generate --collection C --n 500 --endpoint URL --model M --name NAME
    python -m workbench dataset generate --from-dir DIR     (the job folder the page writes: workbench.dataset.synth_jobs)
    python -m workbench dataset validate NAME [--drop-errors] [--drop-duplicates] [--fix]
    python -m workbench dataset split NAME [--test-size 0.1] [--seed 42] [--val-size 0.2]
    python -m workbench dataset show NAME --json
    python -m workbench dataset push NAME --repo USER/REPO [--private]
    python -m workbench dataset list

Progress goes to stderr; API keys and Hub tokens come from the environment only
(OPENAI_API_KEY, ANTHROPIC_API_KEY, HF_TOKEN), never from the command line where a shell history keeps them.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from workbench.cli import print_json, stderr_progress
from workbench.common.textcodec import ENCODINGS


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("dataset", help="Alpaca datasets: import, generate, validate, split, show, export, push")
    ds = p.add_subparsers(dest="dataset_command", required=True, metavar="ACTION")

    a = ds.add_parser("import", help="import a CSV / JSON / JSONL file, a `datasets` folder or a Hub dataset repo")
    a.add_argument("source", help="file, folder, or Hub dataset id (owner/name)")
    a.add_argument("--name", required=True, help="dataset name (folder under datasets/)")
    a.add_argument("--map", default="", help="column map target=source, e.g. instruction=Q,output=A[,input=C]")
    a.add_argument("--encoding", default="auto", choices=ENCODINGS,
                   help="text encoding of a CSV / JSON file (default auto: detected; a guess that is not clear is a warning)")
    a.add_argument("--tokenizer", default=None, help="model whose tokenizer counts tokens (default smollm2-135m; '' = no length check)")
    a.add_argument("--max-tokens", type=int, default=None, help="warn about rows longer than this many tokens (default 0: the tokenizer model's own limit)")
    a.add_argument("--hub-split", default="", help="split of a `datasets` folder / Hub repo (default: all)")
    a.add_argument("--data-files", default="", help="for a Hub repo: file(s) as in load_dataset(repo, data_files=...)")
    a.add_argument("--force", action="store_true", help="replace an existing dataset of that name")
    a.set_defaults(handler=run_import)

    g = ds.add_parser("generate", help="generate rows from knowledge-base chunks with an LLM endpoint")
    g.add_argument("--collection", default="", help="knowledge-base collection to take chunks from (required)")
    g.add_argument("--name", default="", help="dataset name (required)")
    g.add_argument("--n", type=int, default=500, help="target number of rows (default 500)")
    g.add_argument("--endpoint", default="http://127.0.0.1:8000/v1", help="base URL (OpenAI-compatible; Anthropic: empty or its URL)")
    g.add_argument("--model", default="", help="model name the endpoint serves (required)")
    g.add_argument("--provider", default="openai", choices=["openai", "anthropic"])
    g.add_argument("--lang", default="ko", choices=["ko", "en"], help="language of the default prompt")
    g.add_argument("--pairs", type=int, default=3, help="question/answer pairs per chunk")
    g.add_argument("--max-tokens", type=int, default=1024)
    g.add_argument("--temperature", type=float, default=0.7)
    g.add_argument("--retries", type=int, default=2)
    g.add_argument("--prompt-file", type=Path, default=None, help="prompt template with {chunk}, {n}, {source}")
    g.add_argument("--extra-body", default="", help="extra JSON fields for each request (server-specific)")
    g.add_argument("--limit-chunks", type=int, default=None, help="use at most this many chunks")
    g.add_argument("--force", action="store_true", help="replace an existing dataset of that name")
    g.add_argument("--from-dir", type=Path, default=None,
                   help="run the generation job in this folder (written by the page; config.json + request.json)")
    g.set_defaults(handler=run_generate)

    v = ds.add_parser("validate", help="list bad rows and duplicates; optionally drop or fix them")
    v.add_argument("name")
    v.add_argument("--fix", action="store_true", help="turn non-text values into text and strip control characters first")
    v.add_argument("--drop-errors", action="store_true", help="drop rows that are empty, non-text or too long")
    v.add_argument("--drop-duplicates", action="store_true", help="drop exact and near duplicates (keeps the first)")
    v.add_argument("--max-tokens", type=int, default=None, help="length limit for this check (default: the import's)")
    v.set_defaults(handler=run_validate)

    s = ds.add_parser("split", help="split into train / validation / test (scikit-learn, fixed seed) and check leakage")
    s.add_argument("name")
    s.add_argument("--test-size", type=float, default=0.1)
    s.add_argument("--seed", type=int, default=42)
    s.add_argument("--val-size", type=float, default=0.2)
    s.add_argument("--leakage-threshold", type=float, default=0.9)
    s.set_defaults(handler=run_split)

    sh = ds.add_parser("show", help="a dataset's source, sizes, issues and leakage")
    sh.add_argument("name")
    sh.add_argument("--json", action="store_true", help="print JSON (the default output is JSON too, shorter)")
    sh.add_argument("--rows", type=int, default=0, help="also print the first N working rows")
    sh.set_defaults(handler=run_show)

    ls = ds.add_parser("list", help="datasets in the workspace")
    ls.set_defaults(handler=run_list)

    e = ds.add_parser("export", help="write the Hub upload folder (train.csv, test.csv, README.md) without uploading")
    e.add_argument("name")
    e.add_argument("--out", type=Path, default=None, help="folder (default datasets/NAME/export)")
    e.add_argument("--repo", default="", help="repository id to name in the card's loading example")
    e.set_defaults(handler=run_export)

    pu = ds.add_parser("push", help="export, then upload train/test and the dataset card to the Hub (token: HF_TOKEN)")
    pu.add_argument("name")
    pu.add_argument("--repo", required=True, help="USER/REPO")
    pu.add_argument("--private", action="store_true")
    pu.set_defaults(handler=run_push)

    d = ds.add_parser("delete", help="delete a dataset folder")
    d.add_argument("name")
    d.set_defaults(handler=run_delete)


def _ws():
    from workbench.common.config import Workspace

    return Workspace.default().ensure()


def run_import(args: argparse.Namespace) -> int:
    from workbench.dataset.alpaca import DatasetConfig, import_dataset

    cfg = DatasetConfig(name=args.name, encoding=args.encoding, hub_split=args.hub_split, data_files=args.data_files).with_map(args.map)
    if args.tokenizer is not None:
        cfg = cfg.replace(tokenizer=args.tokenizer)
    if args.max_tokens is not None:
        cfg = cfg.replace(max_tokens=args.max_tokens)
    report = import_dataset(args.source, cfg, workspace=_ws(), overwrite=args.force, progress=stderr_progress)
    print_json(report.to_dict())
    return 0


def run_generate(args: argparse.Namespace) -> int:
    from workbench.common.errors import ConfigError
    from workbench.dataset.synth import SynthConfig, chunks_from_collection, generate_dataset

    if args.from_dir:
        from workbench.dataset.synth_jobs import run_generation_dir

        print_json(run_generation_dir(args.from_dir, _ws(), progress=stderr_progress))
        return 0
    missing = [f"--{k}" for k in ("collection", "name", "model") if not getattr(args, k)]
    if missing:
        raise ConfigError(f"`dataset generate` needs {', '.join(missing)} (or --from-dir DIR).")

    prompt = args.prompt_file.read_text(encoding="utf-8") if args.prompt_file else ""
    cfg = SynthConfig(provider=args.provider, base_url=args.endpoint, model=args.model, n_target=args.n, pairs_per_chunk=args.pairs,
                      language=args.lang, prompt=prompt, max_tokens=args.max_tokens, temperature=args.temperature,
                      retries=args.retries, extra_body=args.extra_body)
    ws = _ws()
    chunks = chunks_from_collection(args.collection, ws, limit=args.limit_chunks)
    info, result = generate_dataset(args.name, chunks, cfg, collection=args.collection, workspace=ws, overwrite=args.force,
                                    progress=stderr_progress)
    print_json({"dataset": info.to_dict(), "generation": result.to_dict()})
    return 0


def run_validate(args: argparse.Namespace) -> int:
    from workbench.dataset.alpaca import check_dataset, drop_rows, load_rows, save_rows
    from workbench.dataset.alpaca_checks import fix_rows, issue_rows, summarize_issues

    ws = _ws()
    actions = []
    if args.fix:
        save_rows(args.name, fix_rows(load_rows(args.name, ws)), ws, note="fixed non-text values")
        actions.append("fixed")
    issues = check_dataset(args.name, workspace=ws, max_tokens=args.max_tokens)
    drop: set[int] = set()
    if args.drop_errors:
        drop |= set(issue_rows(issues))
    if args.drop_duplicates:
        drop |= set(issue_rows(issues, ["duplicate", "near_duplicate"]))
    if drop:
        drop_rows(args.name, sorted(drop), ws)
        actions.append(f"dropped rows {sorted(drop)}")
        issues = check_dataset(args.name, workspace=ws, max_tokens=args.max_tokens)
    print_json({"dataset": args.name, "rows": len(load_rows(args.name, ws)), "actions": actions, **summarize_issues(issues),
                "issues": [i.to_dict() for i in issues]})
    return 0


def run_split(args: argparse.Namespace) -> int:
    from workbench.dataset.alpaca import SplitConfig, split_dataset

    cfg = SplitConfig(test_size=args.test_size, seed=args.seed, val_size=args.val_size, leakage_threshold=args.leakage_threshold)
    print_json(split_dataset(args.name, cfg, workspace=_ws(), progress=stderr_progress).to_dict())
    return 0


def run_show(args: argparse.Namespace) -> int:
    from workbench.dataset.alpaca import check_dataset, dataset_info, load_leakage, load_rows, summarize_issues

    ws = _ws()
    info = dataset_info(args.name, ws)
    issues = check_dataset(args.name, workspace=ws)
    out = {**info.to_dict(), "issues": summarize_issues(issues)}
    if args.json:
        out["issue_list"] = [i.to_dict() for i in issues]
        out["leakage"] = [lk.to_dict() for lk in load_leakage(args.name, ws)]
    if args.rows:
        out["head"] = load_rows(args.name, ws)[: args.rows]
    print_json(out)
    return 0


def run_list(args: argparse.Namespace) -> int:
    from workbench.dataset.alpaca import list_datasets

    print_json([{"name": d.name, "rows": d.rows, "sizes": d.sizes, "source": d.source.get("kind", ""), "updated": d.updated,
                 "split_stale": d.split_stale} for d in list_datasets(_ws())])
    return 0


def run_export(args: argparse.Namespace) -> int:
    from workbench.dataset.hub import export_dataset

    folder = export_dataset(args.name, _ws(), args.out, repo_id=args.repo)
    print_json({"folder": str(folder), "files": sorted(p.name for p in folder.iterdir())})
    return 0


def run_push(args: argparse.Namespace) -> int:
    from workbench.dataset.hub import push_dataset

    print_json(push_dataset(args.name, args.repo, private=args.private, workspace=_ws(), progress=stderr_progress))
    return 0


def run_delete(args: argparse.Namespace) -> int:
    from workbench.dataset.alpaca import delete_dataset

    delete_dataset(args.name, _ws())
    print_json({"deleted": args.name})
    return 0
