"""Knowledge freshness: change a fact, re-ingest, ask again (workbench.compare.freshness)."""

from __future__ import annotations

from pathlib import Path

import pytest

from workbench.common.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(not (ROOT / "examples" / "shop" / "store_map_ko.md").is_file(), reason="the sample shop is not there")
def test_change_facts_moves_the_ice_cream_and_restores_it(workspace):
    from workbench.compare.freshness import change_facts, load_demo, restore_facts
    from workbench.kb.ingest import ingest_paths
    from workbench.kb.retrieval import RetrievalConfig, retrieve
    from workbench.kb.vectordb import list_documents

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


def test_an_answer_states_the_old_fact_the_new_one_both_or_neither():
    from workbench.compare.freshness import FactCheck, fact_in, load_demo, measure

    check = FactCheck({"ko": "아이스크림은?"}, ("3번 통로", "aisle 3"), ("5번 통로", "aisle 5"))
    assert fact_in("아이스크림은 5번통로 냉동고로 옮겼습니다.", check) == "new"  # spaces ignored
    assert fact_in("It is in Aisle 3, next to the checkout.", check) == "old"  # case ignored
    assert fact_in("aisle 35", check) == "neither"  # not a part of a longer number
    assert fact_in("3번 통로에서 5번 통로로 옮겼어요", check) == "both"
    assert fact_in("모르겠습니다", check) == "neither"
    assert len(load_demo().checks) == 3 and all({"ko", "en"} <= set(c.questions) for c in load_demo().checks)
    before = [{"question": "q", "source": s, "answer": "", "fact": "old", "context": "old" if s == "ft_rag" else ""}
              for s in ("ft", "ft_rag")]
    after = [{"question": "q", "source": "ft", "answer": "", "fact": "old", "context": ""},
             {"question": "q", "source": "ft_rag", "answer": "", "fact": "old", "context": "new"}]
    m = measure(before, after)
    assert m["ft"] == {"questions": 1, "old_before": 1, "new_after": 0, "old_after": 1, "stale": []}
    assert m["ft_rag"]["stale"] == ["q"]  # it kept the old fact although retrieval gave it the new one


def test_a_saved_measurement_gives_the_report_its_reingest_time(workspace):
    from workbench.compare.freshness import load_measure, reingest_seconds, save_measure

    assert reingest_seconds("shop", workspace) is None
    rec = save_measure("shop", [], [], 4.25, workspace, run="r1")
    assert load_measure("shop", workspace) == rec and rec["run"] == "r1"
    assert reingest_seconds("shop", workspace) == 4.25
