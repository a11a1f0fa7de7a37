"""The README stays short and true: its commands exist, and every relative link in it and in docs/ resolves."""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))

FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.DOTALL | re.MULTILINE)
# [text](target) and ![alt](target); the target ends at whitespace or ')'.
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def code_blocks(text: str) -> list[str]:
    return FENCE.findall(text)


def without_code(text: str) -> str:
    return re.sub(r"`[^`\n]*`", "", FENCE.sub("", text))


def test_readme_is_short():
    n = len(README.read_text(encoding="utf-8").splitlines())
    assert n <= 150, f"README.md has {n} lines; move details to docs/ (limit 150)"


def test_first_code_block_is_make_run_and_make_test():
    first = code_blocks(README.read_text(encoding="utf-8"))[0]
    commands = [line.split("#")[0].strip() for line in first.splitlines()]
    assert commands[:2] == ["make run", "make test"], first


@pytest.mark.parametrize("page", [README, *DOCS], ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_point_to_existing_files(page):
    missing = []
    for target in LINK.findall(without_code(page.read_text(encoding="utf-8"))):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue  # http(s)://, mailto:, and anchors within the page
        path = target.split("#")[0]
        if not (page.parent / path).exists():
            missing.append(target)
    assert not missing, f"{page.name} links to missing files: {missing}"


def _subcommands() -> dict[str, set[str]]:
    """Top-level subcommands, each with its own sub-subcommands (dataset import, runs list, ...)."""
    from workbench.cli import build_parser

    def choices(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                return dict(action.choices)
        return {}

    return {name: set(choices(sub)) for name, sub in choices(build_parser()).items()}


def test_readme_commands_are_real_subcommands():
    commands = _subcommands()
    shown = []
    for block in code_blocks(README.read_text(encoding="utf-8")):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split("  #")[0]
            if not line.startswith("workbench "):
                continue
            words = shlex.split(line)
            shown.append(words[1])
            assert words[1] in commands, f"README shows `workbench {words[1]}`, which is not a subcommand: {line}"
            actions = commands[words[1]]
            if actions and not words[2].startswith("-"):
                assert words[2] in actions, f"README shows `workbench {words[1]} {words[2]}`, not an action: {line}"
    # Every stage has its block: the knowledge base, the dataset, the fine-tune and the comparison.
    assert {"ingest", "search", "dataset", "train", "ask", "evaluate"} <= set(shown), shown


def test_api_reference_has_a_section_per_command():
    """docs/api.md's CLI reference covers every command and action (a new one needs its --help pasted there)."""
    headings = set(re.findall(r"^#{3,4} (.+)$", (ROOT / "docs" / "api.md").read_text(encoding="utf-8"), re.MULTILINE))
    commands = _subcommands()
    expected = set(commands) | {f"{name} {action}" for name, actions in commands.items() for action in actions}
    assert not expected - headings, f"docs/api.md has no section for {sorted(expected - headings)}"


def test_the_module_table_lists_every_module():
    """docs/api.md's module table names every package of the library and every module of a stage package (cli/ and
    ui/ are one row each), and no module that is gone."""
    table = re.findall(r"^\| `([^`]+)` \|", (ROOT / "docs" / "api.md").read_text(encoding="utf-8"), flags=re.M)
    core = ROOT / "workbench"
    packages = [p for p in core.iterdir() if (p / "__init__.py").is_file()]
    actual = {p.name for p in core.glob("*.py")} | {f"{p.name}/" for p in packages}
    actual |= {f"{pkg.name}/{p.name}" for pkg in packages if pkg.name not in ("cli", "ui")
               for p in pkg.glob("*.py") if p.name != "__init__.py"}
    assert sorted(actual - set(table)) == [] and sorted(set(table) - actual) == []


def _subparser(parser, words):
    """The argparse parser of `workbench WORDS...` (nested subcommands)."""
    import argparse

    for w in words:
        action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))  # noqa: SLF001
        parser = action.choices[w]
    return parser


def test_every_command_block_in_api_md_is_its_help(monkeypatch):
    """docs/api.md's command blocks are `--help` as printed at 120 columns: a flag added, renamed or given another
    default shows here until the block is written again (`COLUMNS=120 python -m workbench CMD --help`)."""
    import re

    from workbench.cli import build_parser

    monkeypatch.setenv("COLUMNS", "120")
    text = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    blocks = re.findall(r"### [\w -]+\n\n```text\n(usage: workbench .*?)\n```", text, re.S)
    assert len(blocks) >= 20
    stale = []
    for block in blocks:
        words = []
        for w in block.split("\n")[0].split()[2:]:
            if w.startswith("["):
                break
            words.append(w)
        if _subparser(build_parser(), words).format_help().rstrip("\n") != block:
            stale.append(" ".join(words))
    assert stale == [], f"write these blocks again from --help: {stale}"
