"""`workbench ...` (or `python -m workbench ...`): every stage headless, from the same configs as the UI.

Each stage registers its subcommands from its own module in this package (`register(subparsers)`),
so stages can grow independently. A handler returns an int exit status. User errors
(`WorkbenchError`) print one line on stderr and exit with 2; anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import sys
from collections.abc import Callable
from typing import Any

from workbench.common.errors import WorkbenchError

# Stage modules under workbench/cli/, in the order their commands appear in --help.
STAGES = ["doctor", "kb", "lab", "dataset", "train", "infer", "fresh"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="workbench", description="RAG-vs-Fine-Tune Workbench")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for stage in STAGES:
        importlib.import_module(f"workbench.cli.{stage}").register(sub)
    return parser


def print_json(data: Any) -> None:
    """JSON on stdout, Korean kept readable."""
    json.dump(data, sys.stdout, ensure_ascii=False, indent=2, default=str)
    sys.stdout.write("\n")


def stderr_progress(message: str, fraction: float) -> None:
    """The CLI's one progress printer: `[ 40%] message` lines on stderr (stdout stays for the result)."""
    print(f"[{fraction:4.0%}] {message}", file=sys.stderr, flush=True)


def progress_printer(quiet: bool = False) -> Callable[[str, float], None]:
    """`stderr_progress`, or a callback that prints nothing for `--quiet`."""
    return (lambda message, fraction: None) if quiet else stderr_progress


def passive_threads() -> None:
    """Let idle OpenMP threads sleep instead of spin, unless the user chose otherwise.

    Must run before torch is imported. Measured on the 2-core machine with other jobs running (load 7-8):
    12 greedy tokens of SmolLM2 took 43-79 s with the default (spinning) policy and 2.4-4.7 s with PASSIVE.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")



def show_notes() -> None:
    """Lines the core logs for the user (a file read as Latin-1, a guessed encoding, a very large file) go to stderr
    as `note: ...` / `warning: ...`, beside the JSON on stdout."""
    for name in ("workbench.common.textcodec", "workbench.kb.documents"):
        logger = logging.getLogger(name)
        if not any(isinstance(h, _Notes) for h in logger.handlers):
            logger.addHandler(_Notes())
            logger.setLevel(logging.INFO)


class _Notes(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        # sys.stderr at the time of the message (not of the handler's creation).
        print(("warning: " if record.levelno >= logging.WARNING else "note: ") + record.getMessage(), file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    show_notes()
    try:
        status = int(args.handler(args) or 0)
        sys.stdout.flush()  # here, where a closed pipe can be answered, not in the interpreter's exit
        return status
    except WorkbenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return _reader_gone()


def _reader_gone() -> int:
    """The reader of stdout went away (`workbench dataset show NAME --json | head`): stop quietly, as `cat` does,
    instead of a BrokenPipeError traceback. What is still buffered goes to /dev/null, so the exit does not fail again;
    the status is the shell's for a process ended by SIGPIPE."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 128 + 13
