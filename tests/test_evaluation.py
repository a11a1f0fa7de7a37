"""Evaluation: metrics on literal inputs (Korean included), the LLM judge against a real HTTP server on 127.0.0.1,
reports, and the batch evaluation with the real SmolLM2, a real LoRA adapter, real Chroma and the real embedding model."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from workbench.compare.evaluation import DEFAULT_EVAL_K, EvalConfig, load_results, run_evaluation

ROOT = Path(__file__).resolve().parent.parent

# --- text metrics --------------------------------------------------------------------------------------------


# --- endpoints on a real local HTTP server -------------------------------------------------------------------


# --- reports (the config's rules: tests/test_eval_config.py) ---------------------------------------------------


# --- the real batch evaluation -------------------------------------------------------------------------------

ROWS = [
    {"instruction": "Where is the ice cream?", "input": "", "output": "The ice cream is in aisle 5.", "source": "store_map.md"},
    {"instruction": "When does the shop open?", "input": "", "output": "The shop opens at 9 am.", "source": "hours.txt"},
]


@pytest.fixture(scope="module")
def gen_and_adapter(smollm2_dir, tmp_path_factory):
    """The real SmolLM2 with a real (randomly perturbed) LoRA adapter attached, loaded once for this module."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from workbench.answers.inference import load_generator

    torch.manual_seed(0)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(str(smollm2_dir), dtype=torch.float32),
                           LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.02)  # LoRA starts as a no-op (B = 0); this makes it change the answers
    out = tmp_path_factory.mktemp("eval-adapter")
    model.save_pretrained(str(out))
    AutoTokenizer.from_pretrained(str(smollm2_dir)).save_pretrained(str(out))
    del model
    gen = load_generator(str(smollm2_dir))
    gen.attach_adapter("adapter", out)
    return gen, out


@pytest.fixture()
def shop_collection(workspace, tmp_path):
    from workbench.kb.ingest import ingest_paths

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "store_map.md").write_text("Store map. The ice cream is in aisle 5, next to the frozen food.\n", encoding="utf-8")
    (docs / "hours.txt").write_text("Opening hours. The shop opens at 9 am and closes at 10 pm.\n", encoding="utf-8")
    ingest_paths([docs], "shop-eval", workspace=workspace)
    return "shop-eval"


@pytest.mark.slow
def test_four_way_evaluation_writes_the_report(workspace, shop_collection, gen_and_adapter, tmp_path):
    gen, adapter = gen_and_adapter
    cfg = EvalConfig(dataset="literal", adapter_dir=str(adapter), collection=shop_collection, lang="en",
                     sources=("base", "ft", "rag", "ft_rag"), generation={"max_new_tokens": 12},
                     retrieval={"k": 1, "mode": "dense", "fetch_k": 4})
    seen: list[tuple[str, float]] = []
    summary = run_evaluation(cfg, tmp_path / "eval", workspace, lambda m, f: seen.append((m, f)), generator=gen, rows=ROWS)
    out = tmp_path / "eval"
    assert {p.name for p in out.iterdir()} >= {"results.csv", "progress.jsonl", "summary.json", "report.md", "report.html"}
    results = load_results(out)
    assert [(r["row"], r["source"]) for r in results] == [(1, "base"), (1, "ft"), (1, "rag"), (1, "ft_rag"),
                                                          (2, "base"), (2, "ft"), (2, "rag"), (2, "ft_rag")]
    by = {(r["row"], r["source"]): r for r in results}
    assert by[(1, "base")]["answer"] != by[(1, "ft")]["answer"]  # one base model, adapter switched on and off
    assert by[(1, "rag")]["retrieval_hit"] is True and by[(2, "rag")]["retrieval_hit"] is True
    assert by[(1, "base")]["retrieval_hit"] is None
    assert json.loads(by[(1, "rag")]["retrieved"])[0]["source"] == "store_map.md"
    assert all(0 <= r["char_f1"] <= 1 and r["embedding_similarity"] is not None for r in results)
    assert summary["cost"]["prompt_tokens_added_by_retrieval"]["rag"] > 10
    assert summary["per_source"]["rag"]["metrics"]["retrieval_hit"]["mean"] == 1.0
    assert summary["cost"]["adapter_bytes"] > 0
    prog = [json.loads(line) for line in (out / "progress.jsonl").read_text().splitlines()]
    assert prog[-1]["done"] == 8 and seen[-1] == ("Report written", 1.0)
    # both rows in one batch per source: the adapter is switched four times in all, not per row
    assert [(p["source"], p["rows"]) for p in prog if "rows" in p] == [(s, [1, 2]) for s in ("base", "ft", "rag", "ft_rag")]
    for row in (1, 2):  # one retrieval per row, shared by both RAG sources
        assert by[(row, "rag")]["retrieved"] == by[(row, "ft_rag")]["retrieved"]
        assert by[(row, "rag")]["retrieval_s"] == by[(row, "ft_rag")]["retrieval_s"] is not None
    assert summary["retrieval"]["k"] == 1 and summary["config"]["batch_size"] == 8
    # the rag source answered from the retrieved context: its score beats the base model's on the first row
    assert by[(1, "rag")]["char_f1"] >= by[(1, "base")]["char_f1"]


@pytest.mark.slow
def test_cancel_stops_after_the_current_batch(workspace, gen_and_adapter, tmp_path):
    gen, _ = gen_and_adapter
    cancel = threading.Event()
    seen: list[str] = []

    def progress(message: str, fraction: float) -> None:
        seen.append(message)
        if message.startswith("Rows "):
            cancel.set()

    rows = ROWS + [{"instruction": "Do you take cash?", "input": "", "output": "Yes."}]
    cfg = EvalConfig(dataset="literal", sources=("base",), generation={"max_new_tokens": 4}, embedding_model="", batch_size=2)
    summary = run_evaluation(cfg, tmp_path, workspace, progress, generator=gen, rows=rows, cancel=cancel)
    assert summary["cancelled"] and summary["rows"] == 2 and summary["rows_total"] == 3
    results = load_results(tmp_path)
    assert len(results) == 2 and [r["row"] for r in results] == sorted(r["row"] for r in results)  # row order on disk
    assert sum(m.startswith("Rows ") for m in seen) == 1  # one batch answered, then it stopped


# --- knowledge freshness -------------------------------------------------------------------------------------




def test_an_unreachable_judge_leaves_its_scores_missing_not_the_evaluation(workspace, tmp_path):
    """The answers come from a real local endpoint; the judge's port has nothing behind it."""
    import socket

    from endpoint_server import CannedServer

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/v1"
    rows = [{"instruction": "아이스크림은 어디?", "input": "", "output": "5번 통로"},
            {"instruction": "현금 되나요?", "input": "", "output": "네"}]
    with CannedServer(["5번 통로에 있어요", "네 됩니다"]) as srv:
        cfg = EvalConfig(dataset="d", sources=("api",), endpoint_base_url=srv.url, endpoint_model="m", embedding_model="",
                         judge_base_url=dead, judge_model="j", judge_retries=0)
        summary = run_evaluation(cfg, tmp_path / "out", workspace, rows=rows)
    assert summary["rows"] == 2 and not summary["cancelled"]
    assert [r["judge"] for r in load_results(tmp_path / "out")] == [None, None]
    assert summary["per_source"]["api"]["metrics"]["judge"]["missing"] == 2
    assert any("judge failed" in w and "Cannot reach the judge endpoint" in w for w in summary["warnings"])


def test_evaluations_retrieve_with_the_collections_saved_settings(workspace, monkeypatch):
    from langchain_core.documents import Document

    from workbench.kb import ingest
    from workbench.kb.retrieval import save_retrieval

    ingest.ingest_documents([Document("현금으로 결제가 가능합니다.", metadata={"source": "pay.txt"})], "faq", workspace=workspace)
    save_retrieval("faq", {"mode": "dense", "lexical_weight": 0.1}, workspace)
    config = EvalConfig(dataset="d", sources=("rag",), collection="faq")
    got = config.retrieval_config(workspace)
    assert (got.mode, got.lexical_weight, got.k) == ("dense", 0.1, DEFAULT_EVAL_K)
    got = config.replace(retrieval={"mode": "hybrid", "k": 2}).retrieval_config(workspace)  # the config's own values win
    assert (got.mode, got.lexical_weight, got.k) == ("hybrid", 0.1, 2)
    from workbench.answers import answer
    from workbench.compare.evaluation import answer_setup

    seen = []
    monkeypatch.setattr(answer, "prepare", lambda sources, ws, **kw: seen.append(kw["retrieval"]))
    answer_setup(config, workspace, None, object(), lambda m, f: None)  # what run_evaluation hands to the answer sources
    assert (seen[0].mode, seen[0].lexical_weight) == ("dense", 0.1)


# --- before and after training ---------------------------------------------------------------------------------------


def _write_eval(workspace, cfg, results, **fields):
    """An evaluation folder as `run_evaluation` leaves it: config, results.csv, report files, summary, status."""
    import csv

    from workbench.common.runfiles import update_json
    from workbench.compare.eval_jobs import new_eval_dir
    from workbench.compare.evaluation import RESULT_COLUMNS
    from workbench.compare.report import summarize, write_report

    folder = new_eval_dir(cfg, workspace)
    with (folder / "results.csv").open("w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=RESULT_COLUMNS, extrasaction="ignore")
        w.writeheader()
        w.writerows(results)
    summary = {**summarize(results, cfg, rows_total=len({r["row"] for r in results}), base_template="completion",
                           baseline=fields.pop("baseline", None)), **fields}
    write_report(folder, summary, results)
    update_json(folder / "status.json", state="completed")
    return folder, summary


def test_an_evaluation_after_training_finds_where_it_started(workspace, tmp_path):
    import time

    from apphelpers import split_csv_dataset

    from workbench.compare.evaluation import find_baseline, split_id
    from workbench.compare.metrics import score_answer
    from workbench.dataset.alpaca import SplitConfig, split_dataset

    split_csv_dataset(workspace, "faq", [[f"Question {i}?", "", f"Answer {i}."] for i in range(10)], tmp_path, test_size=0.3)

    def rec(row, source, answer):
        return {"row": row, "source": source, "question": f"Question {row}?", "reference": f"Answer {row}.",
                "answer": answer, **score_answer(answer, f"Answer {row}."), "stopped": "stop_token"}

    start = EvalConfig(dataset="faq", base_model="gemma3-270m", collection="c", sources=("base", "rag"), embedding_model="")
    before = [rec(i, s, "No idea." if s == "base" else f"Answer {i}") for i in range(3) for s in ("base", "rag")]
    folder, _ = _write_eval(workspace, start, before, split_id=split_id("faq", workspace), base_model="gemma3-270m")
    after_cfg = EvalConfig(dataset="faq", run_id="r1", collection="c", sources=("ft",), embedding_model="")
    found = find_baseline(after_cfg, "gemma3-270m", "completion", workspace)
    assert found is not None and found["folder"] == str(folder) and len(found["results"]) == 6
    assert find_baseline(after_cfg, "smollm2-135m", "completion", workspace) is None  # another base model
    assert find_baseline(after_cfg, "gemma3-270m", "chat", workspace) is None  # other prompts: not where it started
    other = EvalConfig(dataset="faq", run_id="r1", collection="other", sources=("ft",), embedding_model="")
    assert find_baseline(other, "gemma3-270m", "completion", workspace) is None  # base + RAG read another collection

    after = [rec(i, "ft", f"Answer {i}.") for i in range(3)]
    _, summary = _write_eval(workspace, after_cfg, after, baseline=found)
    assert summary["before_after"]["from_baseline"] and summary["before_after"]["best_before"] == "rag"
    assert summary["baseline"] == {"folder": found["folder"], "created": found["created"]}
    md = (sorted((workspace.runs / "r1" / "eval").iterdir())[-1] / "report.md").read_text(encoding="utf-8")
    assert "## Verdict" in md and "Before training the best was base + RAG" in md
    assert "| without retrieval | base: 0.462 | fine-tuned: 1.000 |\n| with retrieval | base + RAG: 1.000 | – |" in md

    time.sleep(1.1)  # a new split is a new split id, even within the same second of the old one
    split_dataset("faq", SplitConfig(test_size=0.3, seed=7), workspace=workspace)
    assert find_baseline(after_cfg, "gemma3-270m", "completion", workspace) is None  # re-split: the old start is stale
