"""Large ingests as child processes on the job runner: the threshold, a real ingest, cancel, a bad request."""

from __future__ import annotations

import pytest

from workbench.common.errors import ConfigError
from workbench.jobs.runner import log_tail, read_progress, wait_job
from workbench.kb import vectordb
from workbench.kb.chunking import ChunkingConfig
from workbench.kb.ingest_jobs import cancel_ingest, ingest_report, ingest_status, is_large, start_ingest


def docs(folder, n: int, size: int = 40):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (folder / f"doc{i}.txt").write_text(f"문서 {i}. " + "가나다라 " * (size // 5), encoding="utf-8")
    return folder


def test_is_large_counts_files_and_bytes(tmp_path, monkeypatch):
    small = docs(tmp_path / "small", 3)
    assert not is_large([small]) and not is_large(list(small.iterdir()))
    assert is_large([docs(tmp_path / "many", 21)])
    big = tmp_path / "big.txt"
    big.write_bytes(b"x" * 2_000_001)
    assert is_large([big])


def test_an_ingest_job_fills_the_collection_and_reports(workspace, tmp_path):
    folder = start_ingest([docs(tmp_path / "d", 3)], "대량", ChunkingConfig(chunk_size=100, chunk_overlap=0),
                          workspace=workspace)
    status = wait_job(folder, timeout=300)
    assert status["state"] == "completed", log_tail(folder)
    report = ingest_report(folder)
    assert report["collection"] == "대량" and report["added"] == status["added"] == status["chunks"] > 0
    assert vectordb.collection_info("대량", workspace).chunks == report["chunks"]
    assert read_progress(folder)[-1]["fraction"] == pytest.approx(1.0)
    assert ChunkingConfig.load(folder / "chunking.json").chunk_size == 100


def test_a_cancelled_ingest_is_cancelled(workspace, tmp_path):
    folder = start_ingest([docs(tmp_path / "d", 30)], "cut", workspace=workspace)
    cancel_ingest(folder)
    assert wait_job(folder, timeout=120)["state"] == "cancelled"
    assert ingest_report(folder) is None and ingest_status(folder)["cancel_requested"]


def test_a_missing_path_is_refused_before_a_process_starts(workspace, tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        start_ingest([tmp_path / "nope"], "x", workspace=workspace)
