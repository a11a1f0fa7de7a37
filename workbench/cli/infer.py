"""`ask` (one question to the base or fine-tuned model, with or without retrieval) and `evaluate` (the batch
comparison over a test split), plus `evaluations` to list / show / cancel background evaluations."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from workbench.cli import passive_threads, print_json, stderr_progress
from workbench.common.errors import ConfigError
from workbench.kb.modes import MODES


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ask", help="ask the base or fine-tuned model a question (optionally with retrieved context)")
    p.add_argument("question")
    p.add_argument("--input", default="", help="a dataset row's input (context) that goes with the question")
    p.add_argument("--run", default="", help="training run whose adapter answers (default: the base model alone)")
    p.add_argument("--base-model", default="", help="base model (default: the run's base model, else the offline default)")
    p.add_argument("--adapter-dir", default="", help="a LoRA adapter folder instead of a run's adapter")
    p.add_argument("--no-adapter", action="store_true", help="answer with the run's base model, adapter off")
    p.add_argument("--template", choices=["auto", "alpaca-tutorial", "alpaca", "chat", "completion"], default=None,
                   help="prompt template (default auto: a run's own template for the fine-tuned answers; for the base "
                        "model's own answers its chat template, or question -> answer examples (completion) for a "
                        "pretrained base model)")
    p.add_argument("--collection", default="", help="retrieve context from this collection (RAG)")
    p.add_argument("--k", type=int, default=None, help="chunks to retrieve (default 3, as on the Compare page)")
    p.add_argument("--mode", choices=list(MODES), default=None, help="retrieval mode")
    p.add_argument("--lang", choices=["auto", "ko", "en"], default="auto",
                   help="language of the default RAG template (default auto: the question's own)")
    p.add_argument("--rag-template", default="", help="RAG prompt template with {question} (and optionally {context})")
    p.add_argument("--max-new-tokens", type=int, default=None)
    p.add_argument("--sample", action="store_true", help="sample instead of greedy decoding")
    p.add_argument("--temperature", type=float, default=None)
    p.add_argument("--stream", action="store_true", help="print the answer as it is generated")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=run_ask)

    e = sub.add_parser("evaluate", help="answer a dataset's test split with base / fine-tuned / RAG / both, and score them")
    e.add_argument("--config", default="", help="an EvalConfig file (JSON/YAML); the flags below override it")
    e.add_argument("--run", default=None, help="training run whose adapter is the fine-tuned model")
    e.add_argument("--dataset", default=None, help="dataset whose test split is answered")
    e.add_argument("--collection", default=None, help="collection for the RAG sources")
    e.add_argument("--sources", default=None, help="comma-separated: base,ft,rag,ft_rag,api,api_rag (default: base,ft,rag,ft_rag)")
    e.add_argument("--limit", type=int, default=None, help="only the first N rows")
    e.add_argument("--base-model", default=None)
    e.add_argument("--adapter-dir", default=None, help="a LoRA adapter folder instead of a run's adapter")
    e.add_argument("--template", choices=["auto", "alpaca-tutorial", "alpaca", "chat", "completion"], default=None,
                   help="prompt template (default auto: a run's own template for the fine-tuned answers; for the base "
                        "model's own answers its chat template, or question -> answer examples (completion) for a "
                        "pretrained base model)")
    e.add_argument("--lang", choices=["auto", "ko", "en"], default=None,
                   help="language of the default RAG template (default auto: each question's own)")
    e.add_argument("--max-new-tokens", type=int, default=None)
    e.add_argument("--k", type=int, default=None, help="chunks to retrieve (default 3)")
    e.add_argument("--batch-size", type=int, default=None,
                   help="answers of a local source generated together (default 8; 1: one at a time)")
    e.add_argument("--embedding-model", default=None, help="embedding model for the similarity score ('' to skip)")
    e.add_argument("--judge-url", default=None, help="OpenAI-compatible endpoint of an LLM judge (key: OPENAI_API_KEY)")
    e.add_argument("--judge-model", default=None)
    e.add_argument("--endpoint-url", default=None, help="OpenAI-compatible endpoint for the api / api_rag sources")
    e.add_argument("--endpoint-model", default=None)
    e.add_argument("--out", default="", help="folder for the full report (default: runs/<run>/eval/<id>/ or evals/<id>/)")
    e.add_argument("--background", action="store_true", help="start as a background job and print its folder")
    e.add_argument("--from-dir", default="", help=argparse.SUPPRESS)  # the background job's own entry point
    e.add_argument("--json", action="store_true", help="print the aggregate scores per source as JSON")
    e.set_defaults(handler=run_evaluate)

    ls = sub.add_parser("evaluations", help="list, show or cancel evaluations")
    ls.add_argument("action", choices=["list", "show", "cancel"], nargs="?", default="list")
    ls.add_argument("folder", nargs="?", default="", help="an evaluation folder (show / cancel)")
    ls.add_argument("--run", default=None, help="only this run's evaluations")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(handler=run_evaluations)


def keep_freed_memory() -> None:
    """Keep freed memory in this process (glibc only): big blocks from the heap instead of mmap, and no trimming.

    A batch of long prompts allocates activations of 50-200 MB per layer. glibc serves blocks over 32 MiB with mmap and
    unmaps them when freed, so every layer of every batch page-faults its memory in again. Measured on the 2-core CPU
    (SmolLM2 reading 4 prompts of ~1,900 tokens at once): 3.5-4.1 s of system time and 1-2 million page faults per
    batch, against 0.8-1.2 s and 0.1-0.2 million with this, at the same peak memory (2.1 GB). Only for the evaluation
    process, which is short-lived and holds one model.
    """
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc (macOS, musl): nothing to tune
        return
    m_trim_threshold, m_mmap_max = -1, -4
    libc.mallopt(m_mmap_max, 0)
    libc.mallopt(m_trim_threshold, 1 << 30)


# --- ask -----------------------------------------------------------------------------------------------------


def run_ask(args: argparse.Namespace) -> int:
    if not args.question.strip():  # before a model is loaded (answer.ask refuses it too, after)
        raise ConfigError("The question is empty. Type a question, e.g. python -m workbench ask \"Can I pay in cash?\".")
    passive_threads()
    from workbench.answers.answer import prepare
    from workbench.answers.inference import GenerationConfig
    from workbench.common.config import Workspace

    ws = Workspace.default()
    run = None
    if args.run:
        from workbench.training.runs import get_run

        run = get_run(args.run, ws)
    fine_tuned = bool(args.adapter_dir or run is not None) and not args.no_adapter
    source = ask_source(fine_tuned, bool(args.collection))
    retrieval = None
    if args.collection:
        from workbench.answers.answer import DEFAULT_K
        from workbench.kb.retrieval import collection_config
        from workbench.kb.vectordb import open_collection

        open_collection(args.collection, ws)  # a missing collection is named before a model loads
        retrieval = collection_config(args.collection, ws, k=args.k or DEFAULT_K, mode=args.mode)
    setup = prepare([source], ws, run=run, adapter_dir=args.adapter_dir, base_model=args.base_model,
                    template=args.template, collection=args.collection, retrieval=retrieval,
                    rag_template=args.rag_template, lang=args.lang,
                    progress=None if args.json else stderr_progress)
    settings = GenerationConfig(**{k: v for k, v in (("max_new_tokens", args.max_new_tokens), ("temperature", args.temperature))
                                   if v is not None}, do_sample=args.sample)
    asked = _ask(args, source, setup, settings)
    result = asked.results()[source]
    if args.json:
        print_json({"answer": result.text, "source": source, "base_model": setup.generator.base_model,  # type: ignore[union-attr]
                    "adapter": setup.adapter, "template": setup.template_for(source), "prompt": asked.prompts[source],
                    "prompt_tokens": result.prompt_tokens, "completion_tokens": result.completion_tokens,
                    "latency_s": result.latency_s, "tokens_per_s": result.tokens_per_s, "stopped": result.stopped,
                    "retrieved": [{"text": c.text, "score": c.score, "source": c.metadata.get("source"),
                                   "chunk_id": c.metadata.get("chunk_id")} for c in asked.chunks],
                    "warnings": setup.warnings})
    else:
        print(f"{result.completion_tokens} tokens in {result.latency_s:.2f} s ({result.tokens_per_s:.1f} tokens/s), "
              f"prompt {result.prompt_tokens} tokens", file=sys.stderr)
    return 0


def ask_source(fine_tuned: bool, rag: bool) -> str:
    """The answer source `ask` uses: base, ft, rag (the base model with retrieved context) or ft_rag."""
    if rag:
        return "ft_rag" if fine_tuned else "rag"
    return "ft" if fine_tuned else "base"


def _ask(args: argparse.Namespace, source: str, setup: Any, settings: Any) -> Any:
    """`answer.ask` for one source, printed as it streams (or at the end) unless --json."""
    from workbench.answers.answer import ask

    asked = ask(args.question, [source], setup, settings, row_input=args.input)
    if args.json:
        return asked
    for w in setup.warnings:
        print(f"warning: {w}", file=sys.stderr)
    for i, c in enumerate(asked.chunks, 1):
        print(f"[{i}] {c.score:.3f} {Path(str(c.metadata.get('source', ''))).name}", file=sys.stderr)
    stream = asked.streams[source]
    for piece in stream:
        if args.stream:
            sys.stdout.write(piece)
            sys.stdout.flush()
    print("" if args.stream else stream.result.text)  # type: ignore[union-attr]
    return asked


# --- evaluate ------------------------------------------------------------------------------------------------


def _eval_config(args: argparse.Namespace) -> Any:
    from workbench.compare.evaluation import EvalConfig

    data: dict[str, Any] = EvalConfig.load(args.config).to_dict() if args.config else {}
    flags = {"run_id": args.run, "dataset": args.dataset, "collection": args.collection, "limit": args.limit,
             "base_model": args.base_model, "adapter_dir": args.adapter_dir, "prompt_template": args.template,
             "lang": args.lang, "embedding_model": args.embedding_model, "judge_base_url": args.judge_url,
             "judge_model": args.judge_model, "endpoint_base_url": args.endpoint_url, "endpoint_model": args.endpoint_model,
             "batch_size": args.batch_size}
    data.update({k: v for k, v in flags.items() if v is not None})
    if data.get("prompt_template") == "auto":  # the run's own template (EvalConfig's None)
        data["prompt_template"] = None
    if args.sources is not None:
        data["sources"] = tuple(s.strip() for s in args.sources.split(",") if s.strip())
    elif "sources" not in data and not data.get("run_id") and not data.get("adapter_dir"):
        # Without a fine-tuned model the default is what can run: base, and RAG when a collection is given.
        data["sources"] = ("base", "rag") if data.get("collection") else ("base",)
    if args.max_new_tokens is not None:
        data["generation"] = {**data.get("generation", {}), "max_new_tokens": args.max_new_tokens}
    if args.k is not None:
        data["retrieval"] = {**data.get("retrieval", {}), "k": args.k}
    return EvalConfig.from_dict(data)


def aggregate(summary: dict[str, Any]) -> dict[str, Any]:
    """The per-source aggregate scores that `evaluate --json` prints."""
    return {
        "folder": summary.get("folder"),
        "rows": summary["rows"],
        "cancelled": summary["cancelled"],
        "sources": {s: {"metrics": v["metrics"], "latency_s": v["latency_s"], "prompt_tokens": v["prompt_tokens"],
                        "completion_tokens": v["completion_tokens"], "tokens_per_s": v["tokens_per_s"]}
                    for s, v in summary["per_source"].items()},
        "wins": summary["wins"],
        "verdict": summary.get("verdict"),
        "before_after": summary.get("before_after"),
        "cost": summary["cost"],
        "warnings": summary["warnings"],
    }


def run_evaluate(args: argparse.Namespace) -> int:
    passive_threads()
    keep_freed_memory()
    from workbench.common.config import Workspace
    from workbench.compare.eval_jobs import new_eval_dir, run_evaluation_dir, start_evaluation
    from workbench.compare.evaluation import check_evaluation
    from workbench.compare.report import summary_table, verdict_lines

    ws = Workspace.default()
    if args.from_dir:
        run_evaluation_dir(args.from_dir, ws, progress=stderr_progress)
        return 0
    config = _eval_config(args)
    if args.background:
        folder = start_evaluation(config, ws)
        print_json({"folder": str(folder)}) if args.json else print(folder)
        return 0
    check_evaluation(config, ws)
    folder = new_eval_dir(config, ws, args.out or None)
    summary = run_evaluation_dir(folder, ws, progress=stderr_progress)
    summary["folder"] = str(folder)
    if args.json:
        print_json(aggregate(summary))
    else:
        for row in summary_table(summary):
            print("  ".join(f"{k}: {v}" for k, v in row.items()))
        for line in verdict_lines(summary):
            print(line)
        print(f"report: {folder / 'report.md'}")
    return 0


def run_evaluations(args: argparse.Namespace) -> int:
    from workbench.common.config import Workspace
    from workbench.common.errors import ConfigError
    from workbench.compare.eval_jobs import cancel_evaluation, evaluation_status, list_evaluations
    from workbench.compare.evaluation import load_summary

    ws = Workspace.default()
    if args.action == "list":
        rows = []
        for folder in list_evaluations(ws, args.run):
            st = evaluation_status(folder)
            rows.append({"folder": str(folder), "state": st.get("state"), "done": st.get("done"), "total": st.get("total"),
                         "error": st.get("error")})
        if args.json:
            print_json(rows)
        else:
            for r in rows:
                print(f"{r['state']:<10} {r['done'] or 0}/{r['total'] or 0}  {r['folder']}" + (f"  ({r['error']})" if r["error"] else ""))
        return 0
    if not args.folder:
        raise ConfigError(f"`evaluations {args.action}` needs the evaluation folder (see `evaluations list`).")
    if args.action == "cancel":
        status = cancel_evaluation(args.folder)
    else:
        status = evaluation_status(args.folder)
    summary = load_summary(args.folder) if args.action == "show" else None
    if args.json:
        print_json({"status": status, "summary": aggregate(summary) if summary else None})
    else:
        print(f"state: {status.get('state')}  {status.get('done') or 0}/{status.get('total') or 0}")
        if summary:
            print((Path(args.folder) / "report.md").read_text(encoding="utf-8"))
    return 0
