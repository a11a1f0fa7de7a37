"""Knowledge freshness: change a fact, re-ingest, ask again (workbench.freshness)."""

from __future__ import annotations

from pathlib import Path

import pytest

from workbench.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(not (ROOT / "examples" / "shop" / "store_map_ko.md").is_file(), reason="the sample shop is not there")
def test_change_facts_moves_the_ice_cream_and_restores_it(workspace):
    from workbench.freshness import change_facts, load_demo, restore_facts
    from workbench.retrieval import RetrievalConfig, retrieve
    from workbench.ingest import ingest_paths
    from workbench.vectordb import list_documents

    demo = load_demo()
    shop, ICE_CREAM_EDITS, FRESHNESS_QUESTIONS = demo.source_dir, demo.edits, demo.questions
    assert shop == ROOT / "examples" / "shop"
    files = ["store_guide_en.md", "store_map_ko.md"]  # price_list.csv (47 chunks) left out to keep the test fast
    ingest_paths([shop / f for f in files], "shop", workspace=workspace)
    dense = RetrievalConfig(mode="dense", k=3, fetch_k=10)

    def top(question: str) -> str:
        return "\n".join(c.text for c in retrieve("shop", question, dense, workspace))

    assert "3번 통로 냉동고" in top(FRESHNESS_QUESTIONS["ko"])
    done = change_facts("shop", ICE_CREAM_EDITS, shop, workspace)
    assert done["files"] == files and done["replacements"] == 3
    assert done["skipped"] == ["price_list.csv"]  # not in the collection: the experiment never adds documents
    assert done["added"] > 0 and done["removed"] > 0
    moved = top(FRESHNESS_QUESTIONS["ko"])
    assert "5번 통로 냉동고" in moved and "3번 통로 냉동고" not in moved
    assert "aisle 5" in top(FRESHNESS_QUESTIONS["en"])
    edited = (workspace.root / "freshness" / "shop" / "store_map_ko.md").read_text(encoding="utf-8")
    assert "냉동 고기만두" in edited and "### 3번 통로 — 냉동식품" in edited  # only the ice-cream lines changed
    assert change_facts("shop", ICE_CREAM_EDITS, shop, workspace)["replacements"] == 0
    assert {d.source for d in list_documents("shop", workspace)} == set(files)  # applying twice is harmless
    with pytest.raises(ConfigError, match="does not contain 'no such text'"):
        change_facts("shop", [ICE_CREAM_EDITS[0].__class__("store_map_ko.md", "no such text", "x")], shop, workspace)
    restore_facts("shop", done["files"], shop, workspace)
    restored = top(FRESHNESS_QUESTIONS["ko"])
    assert "3번 통로 냉동고" in restored and "5번 통로 냉동고" not in restored
