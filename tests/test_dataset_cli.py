"""`python -m workbench dataset ...` as a user runs it: real subprocesses, JSON on stdout, exit 2 on user errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.test_synth import CannedLLMServer, pairs_json

ROOT = Path(__file__).resolve().parent.parent


def cli(workspace, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    full_env = dict(os.environ, WORKBENCH_HOME=str(workspace.root), HF_HUB_OFFLINE="1", **(env or {}))
    return subprocess.run([sys.executable, "-m", "workbench", "dataset", *args], cwd=ROOT, capture_output=True, text=True,
                          env=full_env, timeout=300)


def ok(r: subprocess.CompletedProcess):
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_import_validate_split_show_list_export_push(workspace, tmp_path, smollm2_dir):
    rows = ["Q,A,label", "현금 돼요?,네 됩니다.,0", "카드 돼요?,네.,0", ",빈 질문,0", "주차?,지하 2층,1"]
    rows += [f"질문 {i}?,답 {i}.,0" for i in range(16)]
    src = tmp_path / "qa.csv"
    src.write_bytes(("\n".join(rows) + "\n").encode("cp949"))

    out = ok(cli(workspace, "import", str(src), "--name", "qa", "--map", "instruction=Q,output=A"))
    assert out["dataset"]["rows"] == 20 and out["encoding"] == "cp949" and out["errors"] == 1
    assert [(i["row"], i["kind"]) for i in out["issues"]] == [(3, "missing_instruction")]

    r = cli(workspace, "split", "qa")
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.strip().splitlines() == [line for line in r.stderr.strip().splitlines() if line.startswith(("[", "error:"))]
    assert "error: Dataset 'qa' has 1 problems in rows 3" in r.stderr

    out = ok(cli(workspace, "validate", "qa", "--drop-errors"))
    assert out["rows"] == 19 and out["errors"] == 0 and out["actions"] == ["dropped rows [3]"]

    out = ok(cli(workspace, "split", "qa", "--test-size", "0.2", "--seed", "7", "--val-size", "0.25"))
    assert out["sizes"] == {"train": 11, "validation": 4, "test": 4} and out["split"]["seed"] == 7

    show = ok(cli(workspace, "show", "qa", "--json"))
    assert show["name"] == "qa" and show["split"]["sizes"] == out["sizes"] and show["issues"]["errors"] == 0
    assert show["column_map"] == {"instruction": "Q", "input": "", "output": "A"} and show["leakage"] == []
    assert ok(cli(workspace, "list")) == [{"name": "qa", "rows": 19, "sizes": out["sizes"], "source": "csv",
                                           "updated": show["updated"], "split_stale": False}]

    exported = ok(cli(workspace, "export", "qa"))
    assert exported["files"] == ["README.md", "test.csv", "train.csv"]

    r = cli(workspace, "push", "qa", "--repo", "me/qa", "--private", env={"HF_TOKEN": "hf_secret_never_printed"})
    assert r.returncode == 2 and r.stdout == ""
    err = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(err) == 1 and "Cannot upload to me/qa: the Hugging Face Hub is offline" in err[0] and "export are kept" in err[0]
    assert "hf_secret_never_printed" not in r.stderr
    assert (workspace.datasets / "qa" / "export" / "train.csv").is_file()

    r = cli(workspace, "show", "nope")
    assert r.returncode == 2 and r.stderr.startswith("error: Dataset 'nope' does not exist")


def test_generate_from_a_real_collection(workspace):
    from langchain_core.documents import Document

    from workbench.kb import ingest, vectordb
    from workbench.kb.chunking import ChunkingConfig

    docs = [Document(page_content="현금으로 결제가 가능합니다. 5만 원권도 받습니다.", metadata={"source": "pay.txt", "file_type": "text"}),
            Document(page_content="아이스크림은 2번 통로 냉동고에 있습니다.", metadata={"source": "map.md", "file_type": "markdown"})]
    ingest.ingest_documents(docs, "shop", ChunkingConfig(splitter="recursive", chunk_size=200, chunk_overlap=0), workspace=workspace)
    chunk_ids = {c.id: c.metadata["source"] for c in vectordb.get_chunks("shop", workspace)}

    replies = [pairs_json(("현금 돼요?", "네."), ("5만 원권 받나요?", "받습니다.")), "```json\n" + pairs_json(("아이스크림 어디?", "2번 통로.")) + "\n```"]
    with CannedLLMServer(replies) as srv:
        out = ok(cli(workspace, "generate", "--collection", "shop", "--n", "500", "--endpoint", srv.url, "--model", "canned",
                     "--name", "gen", "--pairs", "2", env={"OPENAI_API_KEY": "sk-env-key-xyz"}))
        assert srv.requests[0]["headers"]["authorization"] == "Bearer sk-env-key-xyz"
    gen = out["generation"]
    assert (gen["rows"], gen["requests"], gen["chunks_used"], gen["failures"]) == (3, 2, 2, [])
    assert "gave 3 of 500 rows" in gen["note"]
    rows = ok(cli(workspace, "show", "gen", "--rows", "5"))["head"]
    # chunks come in document order (map.md before pay.txt); the canned replies in request order
    assert [(r["instruction"], r["source"]) for r in rows] == [("현금 돼요?", "map.md"), ("5만 원권 받나요?", "map.md"),
                                                                ("아이스크림 어디?", "pay.txt")]
    assert all(chunk_ids[r["chunk_id"]] == r["source"] for r in rows)
    meta_text = (workspace.datasets / "gen" / "meta.json").read_text(encoding="utf-8")
    assert "sk-env-key-xyz" not in meta_text and json.loads(meta_text)["source"]["collection"] == "shop"

    r = cli(workspace, "generate", "--collection", "nope", "--model", "m", "--name", "x")
    assert r.returncode == 2 and r.stderr.startswith("error: ") and "nope" in r.stderr
