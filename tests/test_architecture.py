"""House rules that a test can check."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORE = ROOT / "workbench"


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_core_never_imports_streamlit():
    offenders = [str(p.relative_to(ROOT)) for p in CORE.rglob("*.py")
                 if "ui" not in p.relative_to(CORE).parts[:1] and "streamlit" in _imports(p)]
    assert offenders == []


def test_core_modules_import_without_streamlit_or_torch():
    """Importing any core module must not drag in streamlit, and the light ones not torch either."""
    modules = sorted(
        ".".join(p.relative_to(ROOT).with_suffix("").parts) for p in CORE.rglob("*.py")
        if "ui" not in p.relative_to(CORE).parts[:1] and p.name != "__main__.py"
    )
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        "print('streamlit' in sys.modules, 'torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"], "a core module imports streamlit or torch at import time"
