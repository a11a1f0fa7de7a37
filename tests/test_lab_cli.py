"""`workbench retrieval-eval` and `workbench retrieval-config` as a script would call them."""

from __future__ import annotations

import csv
import json

import pytest
from langchain_core.documents import Document

from workbench.cli import main
from workbench.kb import ingest
from workbench.kb.chunking import ChunkingConfig

DOCS = {"pay.txt": "현금으로 결제가 가능합니다. 카드와 현금 모두 받습니다.",
        "park.txt": "주차장은 건물 지하 2층에 있습니다. 두 시간 무료입니다."}


@pytest.fixture()
def questions(workspace, tmp_path):
    ingest.ingest_documents([Document(t, metadata={"source": s}) for s, t in DOCS.items()], "faq",
                            ChunkingConfig(chunk_size=200, chunk_overlap=0), workspace=workspace)
    path = tmp_path / "q.csv"
    with path.open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows([["question", "source"], *[[t, s] for s, t in DOCS.items()]])
    return path


def test_retrieval_eval_prints_json_and_saves_the_best(capsys, questions):
    code = main(["retrieval-eval", "--collection", "faq", "--csv", str(questions), "--weights", "0.3,0.9",
                 "--limit", "0", "--save", "--json", "--quiet"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["collection"] == "faq" and out["questions"] == 2 and out["skipped"] == 0
    rows = {r["setting"]: r for r in out["rows"]}
    assert {"dense", "mmr", "bm25 bigrams", "bm25 subwords", "hybrid (default)", "hybrid, collection z", "hybrid w=0.3",
            "hybrid w=0.9"} == set(rows)
    assert set(rows["dense"]) >= {"hit@1", "hit@3", "hit@5", "hit@10", "mrr@10", "ms_p50", "config"}
    assert rows["bm25 bigrams"]["hit@1"] == {"mean": 1.0, "lo": 1.0, "hi": 1.0, "n": 2, "missing": 0}
    best = rows[out["best"]]["config"]
    assert out["saved"] == {k: best[k] for k in ("mode", "fetch_k", "lambda_mult", "lexical_weight", "scale")}

    assert main(["retrieval-config", "faq", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["saved"] == out["saved"] and shown["effective"]["lexical_weight"] == best["lexical_weight"]


def test_retrieval_config_sets_and_clears(capsys, questions):
    assert main(["retrieval-config", "faq", "--set", "mode=dense", "--set", "lexical_weight=0.25", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["saved"] == {"mode": "dense", "lexical_weight": 0.25}
    assert main(["retrieval-config", "faq", "--set", "mode=fast"]) == 2  # a value RetrievalConfig refuses
    assert "mode" in capsys.readouterr().err
    assert main(["retrieval-config", "faq", "--clear", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["saved"] == {}


def test_retrieval_eval_needs_questions(capsys, questions):
    assert main(["retrieval-eval", "--collection", "faq"]) == 2
    assert "dataset or a CSV" in capsys.readouterr().err
