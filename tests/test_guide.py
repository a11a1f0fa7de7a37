"""The workshop's "start here" path (workbench.overview.guide): each step's state from the workspace's real files."""

from __future__ import annotations

import json

from workbench.overview.guide import STEPS, guide_steps, workspace_progress


def _states(done: dict) -> list[str]:
    return [s.state for s in guide_steps(done)]


def test_the_first_step_not_done_is_next_and_the_rest_later():
    assert _states({}) == ["next", "later", "later", "later", "later"]
    assert _states({"ingest": True, "dataset": True}) == ["done", "done", "next", "later", "later"]
    # a later step done out of order stays "later" until the path reaches it
    assert _states({"ingest": True, "compare": True}) == ["done", "next", "later", "later", "later"]
    assert _states({s.key: True for s in STEPS}) == ["done"] * 5


def test_every_step_names_its_page_in_both_languages():
    assert [s.key for s in STEPS] == ["ingest", "dataset", "train", "compare", "freshness"]
    for s in STEPS:
        assert s.page.startswith("app_pages/") and s.title.ko != s.title and s.hint.ko != s.hint


def test_the_workspace_files_decide(workspace):
    assert workspace_progress(workspace) == dict.fromkeys(["ingest", "dataset", "train", "compare", "freshness"], False)
    (workspace.vectorstore / "shop.bm25").mkdir(parents=True)
    ds = workspace.datasets / "shop"
    ds.mkdir(parents=True)
    (ds / "meta.json").write_text(json.dumps({"name": "shop", "split": None}))
    assert workspace_progress(workspace)["dataset"] is False  # imported, not split
    (ds / "meta.json").write_text(json.dumps({"name": "shop", "split": {"seed": 42, "dir": "split-x"}}))
    run = workspace.runs / "r1"
    (run / "adapter").mkdir(parents=True)
    (run / "status.json").write_text(json.dumps({"state": "running"}))
    assert workspace_progress(workspace)["train"] is False
    (run / "status.json").write_text(json.dumps({"state": "completed"}))
    (run / "adapter" / "adapter_config.json").write_text("{}")
    (run / "eval" / "e1").mkdir(parents=True)
    (run / "eval" / "e1" / "summary.json").write_text("{}")
    (workspace.root / "freshness" / "shop").mkdir(parents=True)
    (workspace.root / "freshness" / "shop" / "a.txt").write_text("x")
    assert workspace_progress(workspace) == dict.fromkeys(["ingest", "dataset", "train", "compare", "freshness"], True)
    assert workspace_progress(workspace, collections=["x"])["ingest"] is True
