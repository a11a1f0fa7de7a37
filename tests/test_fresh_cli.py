"""`workbench freshness`: the whole measurement from the command line, with the real SmolLM2 and a real collection."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHOP = ROOT / "examples" / "shop"


@pytest.mark.slow
@pytest.mark.skipif(not (SHOP / "store_map_ko.md").is_file(), reason="the sample shop is not there")
def test_freshness_asks_changes_asks_again_restores_and_keeps_the_measurement(workspace, smollm2_dir):
    from workbench.compare.freshness import load_measure, reingest_seconds
    from workbench.kb.ingest import ingest_paths
    from workbench.kb.retrieval import RetrievalConfig, retrieve

    ingest_paths([SHOP / "store_map_ko.md", SHOP / "store_guide_en.md"], "shop", workspace=workspace)
    env = dict(os.environ, WORKBENCH_HOME=str(workspace.root))
    r = subprocess.run([sys.executable, "-m", "workbench", "freshness", "--collection", "shop", "--sources", "base,rag",
                        "--max-new-tokens", "12", "--json"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout)
    assert out == load_measure("shop", workspace) and out["files"] == ["store_guide_en.md", "store_map_ko.md"]
    assert len(out["before"]) == len(out["after"]) == 3 * 2 * 2  # 3 checks, Korean and English, 2 sources
    after_rag = [x for x in out["after"] if x["source"] == "rag"]
    assert all(x["context"] in ("new", "both") for x in after_rag)  # retrieval read the changed documents
    assert all(x["context"] == "" for x in out["after"] if x["source"] == "base")
    assert set(out["summary"]) == {"base", "rag"} and out["summary"]["rag"]["questions"] == 6
    assert reingest_seconds("shop", workspace) == out["reingest_seconds"] > 0
    top = retrieve("shop", "아이스크림이 있는 곳은?", RetrievalConfig(mode="dense", k=2, fetch_k=5), workspace)
    assert any("3번 통로 냉동고" in c.text for c in top)  # the originals are back (no --keep)
