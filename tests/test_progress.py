"""One progress type (workbench.common.progress): no module defines its own."""

from __future__ import annotations

import re
from pathlib import Path

from workbench.common.progress import no_progress

CORE = Path(__file__).resolve().parent.parent / "workbench"


def test_no_module_defines_its_own_progress_type():
    own = [str(p.relative_to(CORE)) for p in CORE.rglob("*.py")
           if p.name != "progress.py" and re.search(r"^Progress\s*=", p.read_text(encoding="utf-8"), flags=re.M)]
    assert own == []


def test_no_progress_shows_nothing():
    assert no_progress("anything", 0.5) is None


def test_every_progress_message_of_the_core_is_a_text():
    """A message written in place (`report("Splitting", 0.3)`) must be `Text(english, korean)`: a Korean page shows
    the Korean, a background job stores both (`message`, `message_ko`)."""
    import ast

    calls = {"progress", "report", "_report", "_progress", "status", "log"}
    bare = []
    for path in sorted(CORE.rglob("*.py")):
        if path.relative_to(CORE).parts[0] in ("ui", "cli"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and node.args:
                name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
                first = node.args[0]
                if name in calls and isinstance(first, (ast.JoinedStr, ast.Constant, ast.BinOp, ast.IfExp)) \
                        and not (isinstance(first, ast.Constant) and not isinstance(first.value, str)):
                    bare.append(f"{path.relative_to(CORE)}:{node.lineno}")
    assert bare == []
