"""`train`, `runs list|show|cancel|resume`, `export`: fine-tuning from the command line.

    python -m workbench train --dataset shop-qa [--config FILE] [--base-model ID] [--backend unsloth]
                              [--set key=value ...] [--num-processes N] [--follow]
    python -m workbench train RUN_DIR        # the training process itself (what `train --dataset` starts)
    python -m workbench runs list | show ID | cancel ID | resume ID [--json]
    python -m workbench export ID --merged [--push REPO] [--private]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from workbench.cli import print_json
from workbench.common.errors import ConfigError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="fine-tune a LoRA adapter as a background run (or run RUN_DIR in this process)",
                       description="Start a training run: prints its id at once (--follow streams its progress). "
                                   "Given a RUN_DIR instead, trains that run in this process (the child process entry).")
    p.add_argument("run_dir", nargs="?", metavar="RUN_DIR", help="train this existing run directory in this process")
    p.add_argument("--dataset", help="split dataset to train on")
    p.add_argument("--config", type=Path, help="TrainConfig as JSON or YAML (the page's 'download config')")
    p.add_argument("--base-model", help="registry key, local folder or Hub id")
    p.add_argument("--backend", choices=["auto", "unsloth", "transformers"])
    p.add_argument("--tutorial", action="store_true", help="start from the tutorial's exact configuration")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any TrainConfig setting, e.g. --set max_steps=30 --set num_train_epochs=0")
    p.add_argument("--num-processes", type=int, help="data-parallel processes (torchrun; one per GPU, gloo on CPU)")
    p.add_argument("--follow", action="store_true", help="stream progress until the run ends")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=run_train)

    r = sub.add_parser("runs", help="list, show, cancel or resume training runs")
    rs = r.add_subparsers(dest="runs_command", required=True, metavar="ACTION")
    x = rs.add_parser("list", help="all runs, newest first")
    x.add_argument("--json", action="store_true")
    x.set_defaults(handler=run_list)
    for name, helptext, fn in (("show", "one run: config, status, last metrics", run_show),
                               ("cancel", "stop a run (it saves a checkpoint first)", run_cancel),
                               ("resume", "continue a cancelled, failed or killed run from its last checkpoint", run_resume)):
        x = rs.add_parser(name, help=helptext)
        x.add_argument("run_id", metavar="ID")
        x.add_argument("--json", action="store_true")
        if name == "cancel":
            x.add_argument("--force", action="store_true", help="SIGKILL at once instead of a clean stop")
            x.add_argument("--wait", action="store_true", help="wait until the process has stopped")
        if name == "resume":
            x.add_argument("--follow", action="store_true")
        x.set_defaults(handler=fn)

    e = sub.add_parser("export", help="merge a run's adapter into 16-bit weights and/or push it to the Hub")
    e.add_argument("run_id", metavar="ID")
    e.add_argument("--merged", action="store_true", help="merge into the base model (runs/ID/merged/)")
    e.add_argument("--push", metavar="REPO", help="upload to this Hub repository (the merged model with --merged, else the adapter)")
    e.add_argument("--private", action="store_true")
    e.add_argument("--json", action="store_true")
    e.set_defaults(handler=run_export)


def parse_value(text: str) -> Any:
    """`--set` values: JSON where it parses (numbers, true/false, null, lists), else the plain string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def build_config(args: argparse.Namespace) -> Any:
    from workbench.training.finetune import TrainConfig

    base = TrainConfig.load(args.config).to_dict() if args.config else (
        TrainConfig.tutorial().to_dict() if args.tutorial else {})
    for flag, key in (("dataset", "dataset"), ("base_model", "base_model"), ("backend", "backend"),
                      ("num_processes", "num_processes")):
        if getattr(args, flag) is not None:
            base[key] = getattr(args, flag)
    for item in args.set:
        if "=" not in item:
            raise ConfigError(f"--set {item!r} must look like key=value, e.g. --set max_steps=30.")
        key, value = item.split("=", 1)
        base[key.strip()] = parse_value(value.strip())
    if "dataset" not in base and not args.config:
        raise ConfigError("Name the dataset to train on: --dataset NAME (`python -m workbench dataset list`).")
    return TrainConfig.from_dict(base)


def run_train(args: argparse.Namespace) -> int:
    if args.run_dir:
        if args.dataset or args.config or args.set or args.tutorial:
            raise ConfigError("Give either RUN_DIR (train an existing run here) or --dataset/--config (start a new run).")
        from workbench.training.trainer import train_run

        status = train_run(args.run_dir)
        return 0 if status.get("state") in ("completed", "cancelled") else 1
    from workbench.training.runs import start_training

    config = build_config(args)
    run = start_training(config)
    if args.json and not args.follow:
        print_json(run.to_dict())
    else:
        print(run.id, flush=True)
    if args.follow:
        return _follow(run.id, args.json)
    return 0


def _follow(run_id: str, as_json: bool) -> int:
    from workbench.training.runs import follow_run
    from workbench.training.train_progress import eta_text

    final: dict[str, Any] = {}
    for rec in follow_run(run_id):
        if rec.get("final"):
            final = rec
            break
        if as_json:
            print(json.dumps(rec, ensure_ascii=False), flush=True)
            continue
        parts = [f"step {rec['step']}"]
        if "loss" in rec:
            parts.append(f"loss {rec['loss']:.4f}")
        if "eval_loss" in rec:
            parts.append(f"eval_loss {rec['eval_loss']:.4f}")
        if "learning_rate" in rec:
            parts.append(f"lr {rec['learning_rate']:.2e}")
        if "tokens_per_s" in rec:
            parts.append(f"{rec['tokens_per_s']:.0f} tok/s")
        if "eta_s" in rec:
            parts.append(f"eta {eta_text(rec['eta_s'])}")
        print("  ".join(parts), flush=True)
    state = final.get("state")
    line = f"{run_id}: {state}" + (f" ({final['error']})" if final.get("error") else "")
    print(line if not as_json else json.dumps({"id": run_id, **final}, ensure_ascii=False), flush=True)
    return 0 if state in ("completed", "cancelled") else 1


def run_list(args: argparse.Namespace) -> int:
    from workbench.training.runs import list_runs

    runs = list_runs()
    if args.json:
        print_json([{"id": r.id, "state": r.state, "dataset": r.config.dataset, "base_model": r.config.base_model,
                     "backend": r.config.backend, "step": r.status.get("step"), "max_steps": r.status.get("max_steps"),
                     "error": r.status.get("error"), "adapter": str(r.adapter_dir) if r.adapter_dir else None}
                    for r in runs])
        return 0
    if not runs:
        print("no runs yet: python -m workbench train --dataset NAME")
        return 0
    for r in runs:
        last_eval = next((m["eval_loss"] for m in reversed(r.metrics()) if "eval_loss" in m), None)
        print(f"{r.id:40s} {r.state:10s} step {r.status.get('step') or 0}/{r.status.get('max_steps') or '?'}  "
              f"{r.config.dataset}  {r.config.backend}" + (f"  eval_loss {last_eval:.4f}" if last_eval is not None else ""))
    return 0


def run_show(args: argparse.Namespace) -> int:
    from workbench.training.runs import get_run

    run = get_run(args.run_id)
    if args.json:
        data = run.to_dict()
        data["metrics"] = run.metrics()
        print_json(data)
        return 0
    s = run.status
    print(f"run        {run.id}\nstate      {run.state}" + (f"\nerror      {s['error']}" if s.get("error") else ""))
    print(f"step       {s.get('step') or 0}/{s.get('max_steps') or '?'}   train {s.get('train_seconds') or '-'} s")
    print(f"model      {run.config.base_model} -> {s.get('resolved_base_model') or '?'}  ({run.config.backend})")
    print(f"dataset    {run.config.dataset}  template {run.config.prompt_template}")
    if s.get("resolved"):
        print("resolved   " + "; ".join(s["resolved"].get("notes", [])))
    if s.get("best_checkpoint"):
        print(f"best       {s['best_checkpoint']} ({s.get('best_metric')})")
    print(f"adapter    {run.adapter_dir or '-'}\nmerged     {run.merged_dir or '-'}\nlog        {run.log_path}")
    metrics = run.metrics()
    if metrics:
        print("last       " + json.dumps(metrics[-1], ensure_ascii=False))
    return 0


def run_cancel(args: argparse.Namespace) -> int:
    from workbench.training.runs import cancel_run, wait_run

    run = cancel_run(args.run_id, force=args.force)
    if args.wait:
        run = wait_run(args.run_id, timeout=600)
    print_json(run.to_dict()) if args.json else print(f"{run.id}: {'killed' if args.force else 'cancel requested'}"
                                                      + (f", now {run.state}" if args.wait else ""))
    return 0


def run_resume(args: argparse.Namespace) -> int:
    from workbench.training.runs import resume_run

    run = resume_run(args.run_id)
    ckpt = run.last_checkpoint
    print_json(run.to_dict()) if args.json else print(f"{run.id}: resumed from {ckpt.name if ckpt else 'the start'}")
    if args.follow:
        return _follow(run.id, args.json)
    return 0


def run_export(args: argparse.Namespace) -> int:
    from workbench.training.runs import export_run

    if not args.merged and not args.push:
        raise ConfigError("Say what to export: --merged (merge into 16-bit weights) and/or --push REPO.")

    def report(message: str, fraction: float) -> None:
        print(f"[{fraction:4.0%}] {message}", file=sys.stderr, flush=True)

    out = export_run(args.run_id, merged=args.merged, push=args.push, private=args.private, progress=report)
    print_json(out) if args.json else print("\n".join(f"{k:8s} {v}" for k, v in out.items() if v))
    return 0
