from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_cli(*args: str, env_home: Path) -> subprocess.CompletedProcess:
    import os

    env = dict(os.environ, WORKBENCH_HOME=str(env_home))
    return subprocess.run([sys.executable, "-m", "workbench", *args], cwd=ROOT, capture_output=True, text=True, env=env)


def test_user_errors_are_one_line_with_exit_code_2(tmp_path):
    import argparse

    from workbench.cli import main
    from workbench.common.errors import ConfigError

    def boom(args: argparse.Namespace) -> int:
        raise ConfigError("TrainConfig.lr = -1 is below the minimum 0. Use a value >= 0.")

    import workbench.cli as cli

    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    sub.add_parser("boom").set_defaults(handler=boom)
    orig = cli.build_parser
    cli.build_parser = lambda: parser
    try:
        import contextlib
        import io

        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            code = main(["boom"])
    finally:
        cli.build_parser = orig
    assert code == 2
    assert err.getvalue() == "error: TrainConfig.lr = -1 is below the minimum 0. Use a value >= 0.\n"



def test_notes_and_warnings_of_the_core_reach_stderr_as_one_line_each(tmp_path, capsys):
    from workbench.cli import show_notes
    from workbench.kb.documents import load_paths

    (tmp_path / "menu.txt").write_bytes("Café crème brûlée naïve".encode("latin-1"))
    (tmp_path / "greek.txt").write_bytes("Καλημέρα κόσμε, αυτό είναι ένα ελληνικό κείμενο για δοκιμή.".encode("cp1253"))
    show_notes()
    show_notes()  # once per logger, however often main() runs in a process
    load_paths([tmp_path])
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and err[1] == "note: menu.txt: read as latin-1 (not UTF-8)"
    assert err[0].startswith("warning: greek.txt: not UTF-8; its encoding was guessed as ")


def test_a_reader_that_goes_away_ends_the_cli_quietly(workspace):
    """Issue #23: `workbench dataset show NAME --json | head` ended in a BrokenPipeError traceback. A real pipe whose
    reader closes it after the first bytes, while the CLI still writes."""
    import os

    from workbench.dataset.alpaca import save_dataset

    rows = [{"instruction": f"질문 {i}번은 무엇인가요?", "input": "", "output": "답변 " * 20} for i in range(3000)]
    save_dataset("big", rows, source={"kind": "test"}, workspace=workspace, settings={"tokenizer": ""})
    proc = subprocess.Popen([sys.executable, "-m", "workbench", "dataset", "show", "big", "--json", "--rows", "3000"],
                            cwd=ROOT, env=dict(os.environ, WORKBENCH_HOME=str(workspace.root)), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert proc.stdout.read(100).startswith(b"{")  # what `head -c 100` reads, then it goes away
    proc.stdout.close()
    stderr = proc.stderr.read().decode()
    assert proc.wait(60) == 141 and stderr == "", stderr  # 128 + SIGPIPE, as `cat` ends; no traceback, no word
