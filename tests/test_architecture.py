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


# --- layering, sizes, tests per module ------------------------------------------------------------------------------

# The retrieval side (workbench.kb): reading, chunking, embedding, storing and finding documents. It must run without
# the training stack (a workshop laptop searches its documents before anyone trains).
RETRIEVAL = "kb"
TRAINING = {"workbench.training", "peft", "trl", "unsloth", "accelerate"}
MODULE_LINES, FUNCTION_LINES, PAGE_LINES = 620, 80, 250


def _all_imports(path: Path) -> set[str]:
    """Every module a file imports, at the top or inside functions, as dotted names."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


def _hits(names: set[str], banned: set[str]) -> set[str]:
    return {n for n in names for b in banned if n == b or n.startswith(b + ".")}


def test_core_and_cli_never_import_the_ui():
    offenders = {str(p.relative_to(ROOT)): sorted(_hits(_all_imports(p), {"workbench.ui", "streamlit"}))
                 for p in CORE.rglob("*.py") if "ui" not in p.relative_to(CORE).parts[:1]}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_retrieval_never_imports_training():
    offenders = {str(p.relative_to(ROOT)): sorted(_hits(_all_imports(p), TRAINING))
                 for p in sorted((CORE / RETRIEVAL).glob("*.py"))}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_modules_functions_and_pages_stay_small():
    too_long = []
    for p in sorted(CORE.rglob("*.py")) + sorted((ROOT / "app_pages").glob("*.py")):
        text = p.read_text(encoding="utf-8")
        limit = PAGE_LINES if p.parent.name == "app_pages" else MODULE_LINES
        if len(text.splitlines()) > limit:
            too_long.append(f"{p.relative_to(ROOT)}: {len(text.splitlines())} lines > {limit}")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > FUNCTION_LINES:
                    too_long.append(f"{p.relative_to(ROOT)}: {node.name}() {n} lines > {FUNCTION_LINES}")
    assert too_long == []


def test_every_module_has_its_test_file():
    """tests/test_<module>.py for every module of a stage package, test_<command>_cli.py for the CLI's."""
    tests = ROOT / "tests"
    stages = [p for p in CORE.iterdir() if (p / "__init__.py").is_file() and p.name not in ("cli", "ui")]
    expected = {f"test_{p.stem}.py" for pkg in stages for p in pkg.glob("*.py") if p.stem != "__init__"}
    expected |= {f"test_{p.stem}_cli.py" for p in (CORE / "cli").glob("*.py") if p.stem not in ("__init__", "doctor")}
    expected |= {"test_cli.py"} | {f"test_{p.stem}.py" for p in (CORE / "ui").glob("*.py") if p.stem != "__init__"}
    assert sorted(name for name in expected if not (tests / name).is_file()) == []
