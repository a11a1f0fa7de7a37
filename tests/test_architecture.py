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
    offenders = {k: v for k, v in offenders.items() if v}
    assert offenders == {}, "workbench.kb imports the training stack: " + "; ".join(
        f"{k}: {', '.join(v)}" for k, v in offenders.items())


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


# --- how modules use each other: public names only, no cycles, packages in one direction ------------------------------

# The stage packages in the order they build on each other: a package imports only itself and packages before it.
ORDER = ["common", "jobs", "models", "kb", "dataset", "training", "answers", "compare", "overview", "cli", "ui"]
SCANNED = [*sorted(CORE.rglob("*.py")), *sorted((ROOT / "app_pages").glob("*.py")), ROOT / "streamlit_app.py",
           *sorted((ROOT / "tests").rglob("*.py")), *sorted((ROOT / "bench").rglob("*.py"))]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p) for p in CORE.rglob("*.py")}


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _workbench_imports(tree: ast.AST) -> list[tuple[int, str, list[str]]]:
    """(line, module, names) of every `import workbench...` / `from workbench... import ...`, at the top, inside
    functions and under TYPE_CHECKING alike."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name, []) for a in node.names if a.name.split(".")[0] == "workbench"]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "workbench":
            out.append((node.lineno, node.module, [a.name for a in node.names]))
    return out


def _imported_modules(tree: ast.AST) -> set[str]:
    """The workbench modules a file imports (`from workbench.kb import vectordb` imports workbench.kb.vectordb)."""
    found = set()
    for _, module, names in _workbench_imports(tree):
        found |= {f"{module}.{n}" if f"{module}.{n}" in MODULES else module for n in names} or {module}
    return found & MODULES


def _private_uses(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    me, where = _module_name(path), str(path.relative_to(ROOT))
    aliases: dict[str, str] = {}  # local name -> the workbench module it is bound to
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            aliases |= {a.asname: a.name for a in node.names if a.asname and a.name in MODULES}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module in MODULES:
            for a in node.names:
                if f"{node.module}.{a.name}" in MODULES:
                    aliases[a.asname or a.name] = f"{node.module}.{a.name}"
                elif _private(a.name) and node.module != me:
                    found.append(f"{where}:{node.lineno} from {node.module} import {a.name}")
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr):
            base, chain = node.value, []
            while isinstance(base, ast.Attribute):
                chain.insert(0, base.attr)
                base = base.value
            if isinstance(base, ast.Name):
                target = ".".join([aliases.get(base.id, base.id), *chain])
                if target in MODULES and target != me:
                    found.append(f"{where}:{node.lineno} {target}.{node.attr}")
        elif isinstance(node, ast.Call) and len(node.args) >= 2 and isinstance(node.args[0], ast.Name) \
                and isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str) \
                and _private(node.args[1].value) and aliases.get(node.args[0].id, "") in MODULES - {me}:
            found.append(f"{where}:{node.lineno} {aliases[node.args[0].id]}.{node.args[1].value} (by name)")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("workbench."):
            parts = node.value.split(".")
            if any(".".join(parts[:i]) in MODULES and _private(parts[i]) for i in range(2, len(parts))):
                found.append(f"{where}:{node.lineno} {node.value!r}")
    return found


def test_no_module_uses_a_private_name_of_another():
    """Modules, pages, tests and benchmarks use each other's public names only (house rule 2): a helper that another
    module needs is public, with a docstring, in the module that owns it."""
    found = [use for p in SCANNED if p.is_file() for use in _private_uses(p)]
    assert found == [], "private names used across modules (make them public where they are owned):\n" + "\n".join(found)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return groups


def _import_graph() -> dict[str, set[str]]:
    return {_module_name(p): _imported_modules(ast.parse(p.read_text(encoding="utf-8"))) - {_module_name(p)}
            for p in CORE.rglob("*.py")}


def test_no_import_cycle_between_modules():
    """Imports inside functions and under TYPE_CHECKING count: a lazy import hides a cycle, it does not break it."""
    cycles = _cycles(_import_graph())
    assert cycles == [], "import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_relative_imports():
    found = [f"{p.relative_to(ROOT)}:{node.lineno}" for p in SCANNED if p.is_file()
             for node in ast.walk(ast.parse(p.read_text(encoding="utf-8")))
             if isinstance(node, ast.ImportFrom) and node.level > 0]
    assert found == [], "relative imports (write `from workbench.<package>.<module> import ...`):\n" + "\n".join(found)


def test_every_package_is_in_the_order():
    packages = {p.name for p in CORE.iterdir() if (p / "__init__.py").is_file()}
    assert packages == set(ORDER), (f"packages missing from ORDER: {sorted(packages - set(ORDER))}; "
                                    f"in ORDER but gone: {sorted(set(ORDER) - packages)}")


def test_packages_import_only_themselves_and_earlier_packages():
    """common < jobs < models < kb < dataset < training < answers < compare < overview < cli < ui."""
    found = []
    for p in sorted(CORE.rglob("*.py")):
        parts = p.relative_to(CORE).parts
        if len(parts) < 2:
            continue  # workbench/__init__.py, __main__.py: the entry point above every package
        for line, module, names in _workbench_imports(ast.parse(p.read_text(encoding="utf-8"))):
            targets = [f"{module}.{n}" for n in names] if module == "workbench" else [module]
            for target in targets:
                pkg = target.split(".")[1] if "." in target else ""
                if pkg in ORDER and ORDER.index(pkg) > ORDER.index(parts[0]):
                    found.append(f"{p.relative_to(ROOT)}:{line} imports {target} ({parts[0]} comes before {pkg})")
    assert found == [], "imports against the package order:\n" + "\n".join(found)
