"""One progress type (workbench.progress): no module defines its own."""

from __future__ import annotations

import re
from pathlib import Path

from workbench.progress import no_progress

CORE = Path(__file__).resolve().parent.parent / "workbench"


def test_no_module_defines_its_own_progress_type():
    own = [str(p.relative_to(CORE)) for p in CORE.rglob("*.py")
           if p.name != "progress.py" and re.search(r"^Progress\s*=", p.read_text(encoding="utf-8"), flags=re.M)]
    assert own == []


def test_no_progress_shows_nothing():
    assert no_progress("anything", 0.5) is None
