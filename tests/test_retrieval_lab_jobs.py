"""The retrieval lab as a child process on the job runner: a real lab, cancel, a missing collection."""

from __future__ import annotations

import csv

import pytest
from langchain_core.documents import Document

from workbench.common.errors import NotFoundError
from workbench.compare.retrieval_lab import LabConfig
from workbench.compare.retrieval_lab_jobs import CONFIG_FILE, cancel_lab, lab_report, lab_status, start_lab
from workbench.jobs.runner import log_tail, read_progress, wait_job
from workbench.kb import ingest
from workbench.kb.chunking import ChunkingConfig

DOCS = {"pay.txt": "현금으로 결제가 가능합니다. 카드와 현금 모두 받습니다.",
        "park.txt": "주차장은 건물 지하 2층에 있습니다. 두 시간 무료입니다."}


@pytest.fixture()
def lab(workspace, tmp_path) -> LabConfig:
    ingest.ingest_documents([Document(t, metadata={"source": s}) for s, t in DOCS.items()], "faq",
                            ChunkingConfig(chunk_size=200, chunk_overlap=0), workspace=workspace)
    path = tmp_path / "q.csv"
    with path.open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows([["question", "source"], ["현금 결제 되나요?", "pay.txt"], ["주차장이 어디죠?", "park.txt"]])
    return LabConfig(collection="faq", csv=str(path), limit=0, weights=(0.4,))


def test_a_lab_job_writes_its_report(workspace, lab):
    folder = start_lab(lab, workspace)
    assert LabConfig.load(folder / CONFIG_FILE) == lab  # the config is written before the child starts
    status = wait_job(folder, timeout=300)
    assert status["state"] == "completed", log_tail(folder)
    report = lab_report(folder)
    assert report["questions"] == 2 and status["best"] == report["best"] and status["questions"] == 2
    assert {r["setting"] for r in report["rows"]} >= {"dense", "hybrid (default)", "hybrid w=0.4"}
    assert read_progress(folder)[-1]["fraction"] == pytest.approx(1.0)


def test_a_cancelled_lab_is_cancelled(workspace, lab):
    folder = start_lab(lab.replace(chunkings=("characters:10:0",)), workspace)
    cancel_lab(folder)
    assert wait_job(folder, timeout=120)["state"] == "cancelled"
    assert lab_report(folder) is None and lab_status(folder)["cancel_requested"]


def test_a_missing_collection_is_refused_before_a_process_starts(workspace, lab):
    with pytest.raises(NotFoundError):
        start_lab(lab.replace(collection="nowhere"), workspace)


def test_an_uploaded_questions_csv_with_a_300_character_name_is_kept_and_read(workspace):
    """Issue #23: the lab's CSV upload with a 300-character name raised OSError (File name too long)."""
    from workbench.compare.retrieval_lab import load_questions
    from workbench.compare.retrieval_lab_jobs import save_questions_csv

    name = "질문" * 150 + ".csv"  # 900 bytes in UTF-8
    path = save_questions_csv(name, "question,source\n현금 결제 되나요?,pay.txt\n".encode(), workspace)
    assert path.suffix == ".csv" and len(path.name.encode()) <= 255 and path.is_file()
    questions = load_questions(LabConfig(collection="faq", csv=str(path), limit=0), workspace)
    assert [(q.question, q.source) for q in questions] == [("현금 결제 되나요?", "pay.txt")]
    assert save_questions_csv(name, b"question,source\n", workspace) == path  # the same name, the same file
