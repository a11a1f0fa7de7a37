"""The error hierarchy (workbench.errors): what callers may catch, and that every error class is in use."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

from workbench import errors

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
