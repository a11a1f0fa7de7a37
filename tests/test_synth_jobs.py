"""Dataset generation as a child process on the job runner: progress, the key only in the environment, the dataset
saved at the end, a failure in one line, cancel keeps the rows so far."""

from __future__ import annotations

import pytest

from tests.test_synth import SECRET, CannedLLMServer, cfg, pairs_json
from workbench.common.errors import ConfigError
from workbench.dataset import alpaca
from workbench.dataset.synth_jobs import (
    cancel_generation,
    generation_result,
    generation_status,
    list_generations,
    start_generation,
)
from workbench.jobs.runner import log_tail, read_progress, wait_job


@pytest.fixture()
def shop(workspace):
    from langchain_core.documents import Document

    from workbench.kb import ingest
    from workbench.kb.chunking import ChunkingConfig

    docs = [Document(page_content=text, metadata={"source": f"doc{i}.txt", "file_type": "text"})
            for i, text in enumerate(["현금으로 결제가 가능합니다.", "아이스크림은 2번 통로에 있습니다.", "매일 9시에 엽니다."])]
    ingest.ingest_documents(docs, "shop", ChunkingConfig(splitter="recursive", chunk_size=200, chunk_overlap=0),
                              workspace=workspace)
    return workspace


def test_a_generation_job_saves_the_dataset_and_never_writes_the_key(shop):
    with CannedLLMServer([pairs_json(("Q1", "A1"), ("Q2", "A2")), pairs_json(("Q3", "A3"), ("Q4", "A4"))]) as srv:
        folder = start_generation("gen-ds", "shop", cfg(srv, n_target=4), api_key=SECRET, workspace=shop)
        status = wait_job(folder, timeout=120)
    assert status["state"] == "completed", log_tail(folder)
    assert srv.requests[0]["headers"]["authorization"] == f"Bearer {SECRET}"  # through the child's environment
    assert (status["dataset"], status["rows"], status["fraction"]) == ("gen-ds", 4, 1.0)
    assert "4 / 4 rows" in status["message"] and read_progress(folder)[-1]["fraction"] == 1.0
    assert generation_result(folder)["rows"] == 4 and (folder / "rows.jsonl").read_text().count("\n") == 4
    assert [r["instruction"] for r in alpaca.load_rows("gen-ds", shop)] == ["Q1", "Q2", "Q3", "Q4"]
    assert list_generations(shop) == [folder]
    for root in (folder, shop.datasets / "gen-ds"):
        assert all(SECRET not in p.read_text(encoding="utf-8", errors="replace") for p in root.iterdir() if p.is_file())
    with pytest.raises(ConfigError, match="already exists"):
        start_generation("gen-ds", "shop", cfg(srv), workspace=shop)


def test_what_cannot_run_starts_no_generation(shop):
    """An empty model field or a collection that does not exist: refused before a job folder exists."""
    from dataclasses import replace

    from workbench.common.errors import NotFoundError

    with CannedLLMServer(["no json"]) as srv:
        with pytest.raises(ConfigError, match="SynthConfig.model is empty"):
            start_generation("gen-x", "shop", replace(cfg(srv), model=" "), workspace=shop)
        with pytest.raises(NotFoundError, match="nope"):
            start_generation("gen-x", "nope", cfg(srv), workspace=shop)
    assert list_generations(shop) == []


def test_a_generation_that_gives_no_rows_fails_in_one_line(shop):
    with CannedLLMServer(["no json"]) as srv:
        folder = start_generation("gen-fail", "shop", cfg(srv, retries=0), workspace=shop)
        status = wait_job(folder, timeout=120)
    assert status["state"] == "failed" and "produced no usable" in status["error"] and "\n" not in status["error"]
    assert generation_result(folder) is None


def test_cancel_stops_after_the_current_request_and_keeps_the_rows(shop):
    with CannedLLMServer([pairs_json(("Q1", "A1"))], delay=1.0) as srv:
        folder = start_generation("gen-cut", "shop", cfg(srv, pairs_per_chunk=1), workspace=shop)
        wait_job(folder, timeout=120, until=lambda s: (s.get("fraction") or 0) > 0)
        cancel_generation(folder)
        status = wait_job(folder, timeout=60)
    assert status["state"] == "cancelled" and 1 <= status["rows"] < 3
    assert generation_status(folder)["dataset"] == "gen-cut" and len(alpaca.load_rows("gen-cut", shop)) == status["rows"]
