"""`python -m workbench ask / evaluate / evaluations`, as a user runs them (real subprocesses, the real SmolLM2)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from apphelpers import split_csv_dataset

ROOT = Path(__file__).resolve().parent.parent


def cli(*args: str) -> subprocess.CompletedProcess:
    # WORKBENCH_HOME comes from the `workspace` fixture (monkeypatched into os.environ).
    return subprocess.run([sys.executable, "-m", "workbench", *args], cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_user_errors_are_one_line(workspace):
    r = cli("ask", "q", "--run", "20990101-000000-nope")
    assert r.returncode == 2 and r.stderr.startswith("error: Run '20990101-000000-nope' does not exist")
    r = cli("evaluate", "--dataset", "nope", "--json")
    assert r.returncode == 2 and r.stderr.startswith("error: Dataset 'nope' does not exist")
    r = cli("evaluate", "--dataset", "d", "--sources", "base,ft")
    assert r.returncode == 2 and "need a fine-tuned adapter" in r.stderr and r.stderr.count("\n") == 1
    r = cli("evaluations", "list", "--json")
    assert r.returncode == 0 and json.loads(r.stdout) == []
    r = cli("evaluations", "show")
    assert r.returncode == 2 and "needs the evaluation folder" in r.stderr


@pytest.mark.slow
def test_ask_answers_with_the_base_model(workspace, smollm2_dir):
    r = cli("ask", "What is the capital of France?", "--base-model", str(smollm2_dir), "--max-new-tokens", "12", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert "Paris" in out["answer"] and out["source"] == "base" and out["template"] == "chat"
    assert out["stopped"] == "stop_token" and 0 < out["completion_tokens"] <= 12 and out["warnings"] == []


def make_run(workspace, smollm2_dir: Path, tmp_path: Path) -> str:
    """A finished run in the contract's format, whose adapter is a real LoRA adapter (randomly perturbed)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from workbench.training.finetune import TrainConfig

    run_id = "20261129-120000-smollm2-135m"
    path = workspace.runs / run_id
    (path / "logs").mkdir(parents=True)
    TrainConfig(dataset="sums", base_model="smollm2-135m", prompt_template="alpaca").save(path / "config.json")
    (path / "status.json").write_text(json.dumps({
        "state": "completed", "pid": None, "started_at": None, "ended_at": None, "error": None, "step": 10,
        "max_steps": 10, "resolved_base_model": str(smollm2_dir), "best_checkpoint": None, "train_seconds": 42.0}))
    torch.manual_seed(0)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(str(smollm2_dir), dtype=torch.float32),
                           LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.02)
    model.save_pretrained(str(path / "adapter"))
    AutoTokenizer.from_pretrained(str(smollm2_dir)).save_pretrained(str(path / "adapter"))
    return run_id


@pytest.mark.slow
def test_evaluate_a_run_prints_aggregates_and_writes_the_report(workspace, smollm2_dir, tmp_path):
    split_csv_dataset(workspace, "sums", [[f"What is {i} plus {i}?", "", f"{2 * i}"] for i in range(6)], tmp_path,
                      test_size=0.34)
    run_id = make_run(workspace, smollm2_dir, tmp_path)
    out_dir = tmp_path / "report"
    r = cli("evaluate", "--run", run_id, "--dataset", "sums", "--sources", "base,ft", "--limit", "1",
            "--max-new-tokens", "4", "--embedding-model", "", "--batch-size", "2", "--json", "--out", str(out_dir))
    assert r.returncode == 0, r.stderr
    agg = json.loads(r.stdout)
    assert list(agg["sources"]) == ["base", "ft"] and agg["rows"] == 1
    f1 = agg["sources"]["ft"]["metrics"]["char_f1"]
    assert f1["n"] == 1 and 0 <= f1["mean"] <= 1
    assert agg["cost"]["train_seconds"] == 42.0 and agg["cost"]["adapter_mb"] > 0
    summary = json.loads((out_dir / "summary.json").read_text(encoding="utf-8"))
    assert summary["template"] == "alpaca"  # the run's training template
    assert summary["config"]["batch_size"] == 2
    assert {p.name for p in out_dir.iterdir()} >= {"config.json", "results.csv", "summary.json", "report.md", "report.html"}
    assert "[100%] Report written" in r.stderr


def test_ask_uses_the_collections_saved_settings(workspace, monkeypatch, capsys):
    """`ask --collection` retrieves with what the retrieval lab saved for the collection (k and --mode still win)."""
    from langchain_core.documents import Document

    from workbench.answers import answer
    from workbench.cli import main
    from workbench.common.errors import ConfigError
    from workbench.kb import ingest
    from workbench.kb.retrieval import save_retrieval

    ingest.ingest_documents([Document("현금으로 결제가 가능합니다.", metadata={"source": "pay.txt"})], "faq", workspace=workspace)
    save_retrieval("faq", {"mode": "mmr", "lexical_weight": 0.2}, workspace)
    seen = []

    def stop(sources, ws, **kwargs):  # noqa: ANN001, ANN202
        seen.append(kwargs["retrieval"])
        raise ConfigError("stop here")

    monkeypatch.setattr(answer, "prepare", stop)
    assert main(["ask", "q", "--collection", "faq", "--no-adapter"]) == 2
    assert main(["ask", "q", "--collection", "faq", "--mode", "dense", "--k", "4"]) == 2
    assert [(c.mode, c.lexical_weight, c.k) for c in seen] == [("mmr", 0.2, 3), ("dense", 0.2, 4)]


def test_ask_with_a_missing_collection_names_the_collection_before_a_model_loads(workspace):
    """Issue #23: it said 'Unknown answer source base_rag', after loading the model."""
    r = cli("ask", "현금 돼요?", "--collection", "nope")
    assert r.returncode == 2 and r.stderr.startswith("error: There is no collection 'nope'"), r.stderr
    assert "Loading weights" not in r.stderr and r.stderr.count("\n") == 1


def test_ask_picks_the_rag_source_of_the_base_model():
    from workbench.cli.infer import ask_source

    assert [ask_source(ft, rag) for ft in (False, True) for rag in (False, True)] == ["base", "rag", "ft", "ft_rag"]


@pytest.mark.slow
def test_ask_with_a_collection_and_no_run_answers_with_retrieved_context(workspace, smollm2_dir):
    """The plainest RAG question from the CLI (issue #23: always refused, it asked for a source `base_rag`)."""
    from langchain_core.documents import Document

    from workbench.kb import ingest

    ingest.ingest_documents([Document("현금과 카드 모두 받습니다.", metadata={"source": "pay.txt"})], "faq", workspace=workspace)
    r = cli("ask", "현금 돼요?", "--collection", "faq", "--base-model", str(smollm2_dir), "--max-new-tokens", "4", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["source"] == "rag" and out["adapter"] is None and 0 < out["completion_tokens"] <= 4
    assert [c["source"] for c in out["retrieved"]] == ["pay.txt"] and "현금과 카드 모두 받습니다." in out["prompt"]
