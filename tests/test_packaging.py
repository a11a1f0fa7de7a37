"""The installed `workbench` command works from any folder, and the package list covers every subpackage."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

from setuptools import find_packages

ROOT = Path(__file__).resolve().parent.parent
# pip puts console scripts next to the interpreter of the environment it installs into.
SCRIPT = Path(sys.executable).parent / "workbench"


def run_script(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    assert SCRIPT.is_file(), (
        f"{SCRIPT} is missing: the package is not installed in this environment. "
        "Run `make setup` (it runs `pip install --no-deps -e .`)."
    )
    # WORKBENCH_HOME keeps the checkout's own workspace out of it; offline: no Hub traffic.
    env = dict(os.environ, WORKBENCH_HOME=str(cwd / "ws"), HF_HUB_OFFLINE="1")
    return subprocess.run(
        [str(SCRIPT), *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=300, check=False
    )


def test_help_outside_the_checkout_lists_the_subcommands(tmp_path):
    from workbench.cli import build_parser

    r = run_script("--help", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("usage: workbench ")
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    for name in sub.choices:
        assert f"    {name}" in r.stdout, f"`workbench --help` does not list {name!r}"


def test_doctor_json_outside_the_checkout(tmp_path):
    r = run_script("doctor", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    facts = json.loads(r.stdout)
    assert facts["workspace"]["root"] == str((tmp_path / "ws").resolve())


def test_exit_status_is_mains_return_value(tmp_path):
    r = run_script("no-such-command", cwd=tmp_path)
    assert r.returncode == 2 and "invalid choice" in r.stderr


def test_package_list_covers_every_subpackage():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    find = config["tool"]["setuptools"]["packages"]["find"]
    found = set(find_packages(where=str(ROOT), include=find["include"], exclude=find.get("exclude", ())))
    on_disk = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for init in (ROOT / "workbench").rglob("__init__.py")
        if "__pycache__" not in init.parts
    }
    assert on_disk <= found, f"pyproject.toml's package discovery misses {sorted(on_disk - found)}"
    assert all(name == "workbench" or name.startswith("workbench.") for name in found), sorted(found)
    assert config["project"]["scripts"]["workbench"] == "workbench.cli:main"


def test_ruff_finds_nothing():
    """`ruff check .` with the rules in pyproject.toml ([tool.ruff.lint]): pycodestyle, pyflakes, import order."""
    import importlib.util

    import pytest

    if importlib.util.find_spec("ruff") is None:
        pytest.skip("ruff is not installed in this environment (requirements-dev.txt pins it; `make test` installs it)")
    r = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "."], cwd=ROOT, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, f"ruff check . found problems:\n{r.stdout}{r.stderr}"
