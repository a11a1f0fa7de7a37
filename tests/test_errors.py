"""The error hierarchy (workbench.common.errors): what callers may catch, and that every error class is in use."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

from workbench.common import errors

CORE = Path(__file__).resolve().parent.parent / "workbench"


def test_every_error_is_a_workbench_error_and_the_standard_types_still_catch():
    classes = [c for _, c in inspect.getmembers(errors, inspect.isclass) if c.__module__ == errors.__name__]
    assert all(issubclass(c, errors.WorkbenchError) for c in classes)
    assert issubclass(errors.ConfigError, ValueError) and issubclass(errors.NotFoundError, LookupError)


def test_every_error_class_is_raised_somewhere_in_the_core():
    raised: set[str] = set()
    for path in CORE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) and isinstance(node.exc.func, ast.Name):
                raised.add(node.exc.func.id)
    classes = {n for n, c in inspect.getmembers(errors, inspect.isclass)
               if c.__module__ == errors.__name__ and c is not errors.WorkbenchError}
    assert classes - raised == set(), "an error class nobody raises is dead code"


def test_every_error_the_core_raises_says_it_in_korean_too():
    """`XError("...")` in the core must pass `ko=`: a Korean page shows `exc.ko` (the CLI keeps the English)."""
    names = {n for n, c in inspect.getmembers(errors, inspect.isclass) if issubclass(c, errors.WorkbenchError)}
    missing = []
    for path in sorted(CORE.rglob("*.py")):
        if path.relative_to(CORE).parts[0] in ("ui", "cli"):  # the UI picks its own text; the CLI speaks English
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            # every construction: `raise XError(...)`, and the errors built to be raised elsewhere (`return XError(...)`)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in names \
                    and not any(k.arg == "ko" for k in node.keywords):
                missing.append(f"{path.relative_to(CORE)}:{node.lineno}")
    assert missing == []


def test_an_error_carries_both_languages():
    exc = errors.ConfigError("Use a number.", ko="숫자를 쓰세요.")
    assert str(exc) == "Use a number." and exc.message("ko") == "숫자를 쓰세요." and exc.message("en") == "Use a number."
    assert errors.NotFoundError("only English").message("ko") == "only English"
    assert errors.error_text(ValueError("bug"), "ko") == "bug"
    assert errors.error_text(exc, "ko") == "숫자를 쓰세요."
