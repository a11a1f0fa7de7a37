"""`doctor`: what this installation can do."""

from __future__ import annotations

import argparse

from workbench.cli import print_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("doctor", help="show workspace, device, backends and models")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--no-hub", action="store_true", help="do not test whether the Hub is reachable")
    p.add_argument("--prepare", action="store_true", help="convert the packaged default model now")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from workbench.overview.doctor import collect_facts, format_facts

    if args.prepare:
        from workbench.models.registry import DEFAULT_MODEL, prepare_packaged_model

        prepare_packaged_model(DEFAULT_MODEL, progress=lambda msg, frac: print(f"[{frac:4.0%}] {msg}", flush=True))
    facts = collect_facts(check_hub=not args.no_hub)
    if args.json:
        print_json(facts)
    else:
        print(format_facts(facts))
    return 0
