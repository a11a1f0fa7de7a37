"""The trainer: rows to answer-only labels, the collator, and real training on CPU (SmolLM2, a few steps)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from test_finetune import color_rows, make_dataset  # noqa: E402  (tests/ is on sys.path under pytest)

from workbench.training.finetune import LORA_TARGETS, TrainConfig
from workbench.training.trainer import CompletionCollator, tokenize_rows


def test_rows_become_answer_only_labels_with_the_inference_prompt(smollm2_dir):
    from transformers import AutoTokenizer

    from workbench.models.prompts import format_prompt

    tok = AutoTokenizer.from_pretrained(str(smollm2_dir))
    rows = [{"instruction": "Can I pay in cash?", "input": "", "output": "Yes, cash is fine."},
            {"instruction": "long " * 300, "input": "", "output": "cut"}]
    examples, cut = tokenize_rows(rows, tok, "alpaca", 64)
    assert cut == 1 and len(examples) == 1  # the second row's prompt alone fills 64 tokens: dropped
    ex = examples[0]
    n_prompt = ex["completion_mask"].index(1)
    assert tok.decode(ex["input_ids"][:n_prompt]) == format_prompt("Can I pay in cash?", template="alpaca")
    assert tok.decode(ex["input_ids"][n_prompt:]) == "Yes, cash is fine." + tok.eos_token
    assert set(ex["completion_mask"][n_prompt:]) == {1}


def test_collator_pads_or_concatenates_without_padding():
    feats = [{"input_ids": [5, 6, 7], "completion_mask": [0, 1, 1]}, {"input_ids": [8, 9], "completion_mask": [0, 1]}]
    padded = CompletionCollator(0, padding_free=False)(feats)
    assert padded["input_ids"].tolist() == [[5, 6, 7], [8, 9, 0]]
    assert padded["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]
    assert padded["labels"].tolist() == [[-100, 6, 7], [-100, 9, -100]]
    flat = CompletionCollator(0, padding_free=True)(feats)
    assert flat["input_ids"].tolist() == [[5, 6, 7, 8, 9]]
    assert flat["position_ids"].tolist() == [[0, 1, 2, 0, 1]]  # restarts: no attention across rows
    assert flat["labels"].tolist() == [[-100, 6, 7, -100, 9]]
    assert "attention_mask" not in flat


# --- real training on CPU (SmolLM2, a few steps) -------------------------------------------------------------


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def trained(tmp_path_factory, smollm2_dir):
    """One short Unsloth run through the real path (a child process), shared by the tests below."""
    from workbench.common.config import Workspace
    from workbench.training.runs import start_training, wait_run

    root = tmp_path_factory.mktemp("ft")
    ws = Workspace(root / "ws").ensure()
    ws.models.rmdir()
    ws.models.symlink_to(smollm2_dir.parent, target_is_directory=True)
    make_dataset(ws, "boxes", color_rows(24), color_rows(6, start=100))
    weights = smollm2_dir / "model.safetensors"
    before = _sha(weights)
    config = TrainConfig(dataset="boxes", backend="auto", max_steps=4, eval_steps=2, save_steps=2,
                         per_device_train_batch_size=4, learning_rate=1e-3, warmup_steps=0)
    run = wait_run(start_training(config, ws).id, ws, timeout=600)
    return ws, run, before, weights


@pytest.mark.slow
def test_run_completes_with_progress_files(trained):
    ws, run, _, _ = trained
    assert run.state == "completed", run.log_tail()
    s = run.status
    assert s["step"] == s["max_steps"] == 4 and s["error"] is None and s["train_seconds"] > 0
    assert s["resolved"]["device"] == "cpu" and s["resolved"]["max_seq_length"] == 512
    assert s["best_checkpoint"].endswith(("checkpoint-2", "checkpoint-4")) and s["num_input_tokens_seen"] > 0
    lines = run.metrics()
    train = [m for m in lines if "loss" in m]
    assert [m["step"] for m in train] == [1, 2, 3, 4]
    assert {"loss", "learning_rate", "grad_norm", "tokens_per_s", "eta_s", "epoch", "time"} <= set(train[-1])
    assert [m["step"] for m in lines if "eval_loss" in m] == [2, 4]
    assert json.loads((run.path / "config.json").read_text())["backend"] in ("unsloth", "transformers")


@pytest.mark.slow
def test_lora_weights_change_and_the_base_weights_do_not(trained):
    from safetensors.torch import load_file

    ws, run, before, weights = trained
    tensors = load_file(str(run.adapter_dir / "adapter_model.safetensors"))
    assert tensors and all("lora_" in k for k in tensors)  # only LoRA weights are trained and saved
    lora_b = [v for k, v in tensors.items() if "lora_B" in k]
    assert len(lora_b) == 30 * len(LORA_TARGETS)  # every layer, every projection
    assert all(float(v.abs().sum()) > 0 for v in lora_b)  # B starts at zero: training moved every one
    assert _sha(weights) == before  # the base model on disk is untouched


@pytest.mark.slow
def test_adapter_and_merged_model_load_and_generate_the_same(trained):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from workbench.answers.inference import GenerationConfig, load_generator_for_run
    from workbench.training.runs import export_run, get_run

    ws, run, _, _ = trained
    gen = load_generator_for_run(run, ws)
    prompt = gen.format_prompt("What color is box 1?", adapter=run.id, template="alpaca")
    answer = gen.generate(prompt, adapter=run.id, settings=GenerationConfig(max_new_tokens=12), template="alpaca")
    assert answer.completion_tokens > 0
    out = export_run(run.id, ws, merged=True)
    merged = get_run(run.id, ws).merged_dir
    assert merged is not None and out["merged"] == str(merged)
    model = AutoModelForCausalLM.from_pretrained(str(merged), dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(str(merged))
    enc = tok(prompt, return_tensors="pt", add_special_tokens=False)
    ids = model.generate(**enc, max_new_tokens=answer.completion_tokens, do_sample=False, pad_token_id=tok.pad_token_id)
    text = tok.decode(ids[0, enc["input_ids"].shape[1]:], skip_special_tokens=True).strip()
    assert text == answer.text


@pytest.mark.slow
def test_early_stopping_stops_when_validation_loss_rises(workspace, smollm2_dir):
    """Validation answers contradict the training answers, so every step that fits training makes validation
    worse: the best checkpoint is the first, and training stops after `patience` evaluations without gain."""
    from workbench.training.runs import start_training, wait_run

    make_dataset(workspace, "contra", color_rows(16, colors=("red",)), color_rows(4, colors=("blue",)))
    # padded batches grouped by length (the GPU default's layout), through the real Trainer on CPU
    config = TrainConfig(dataset="contra", backend="transformers", max_steps=20, eval_steps=1, save_steps=1,
                         save_total_limit=1, early_stopping_patience=2, per_device_train_batch_size=4,
                         learning_rate=2e-3, warmup_steps=0, lr_scheduler_type="constant", batching="padded")
    run = wait_run(start_training(config, workspace).id, workspace, timeout=600)
    assert run.state == "completed", run.log_tail()
    assert (run.status["resolved"]["batching"], run.status["resolved"]["group_by_length"]) == ("padded", True)
    evals = [m["eval_loss"] for m in run.metrics() if "eval_loss" in m]
    assert run.status["stopped_early"] is True and run.status["step"] == 3 < 20
    assert evals[1] > evals[0] and evals[2] > evals[0]
    assert run.status["best_checkpoint"].endswith("checkpoint-1")
    assert run.adapter_dir is not None


@pytest.mark.slow
def test_padding_free_batches_give_the_same_loss_as_padded_ones(smollm2_dir):
    """Concatenated rows must not attend to each other: with position_ids restarting per row and no KV cache (as in
    training), transformers builds a block-diagonal mask (SDPA), so the loss equals the padded batch's. With the
    cache on (transformers' default) it does not, and the loss differs by ~20 %."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from workbench.training.trainer import no_cache_in_training

    tok = AutoTokenizer.from_pretrained(str(smollm2_dir))
    model = AutoModelForCausalLM.from_pretrained(str(smollm2_dir), dtype=torch.float32).train()
    no_cache_in_training(model)
    examples, _ = tokenize_rows(color_rows(3) + [{"instruction": "Where is the bakery?", "output": "Aisle 2."}], tok, "alpaca", 512)
    losses = []
    for padding_free in (False, True):
        batch = CompletionCollator(tok.pad_token_id, padding_free)(examples)
        labels = batch.pop("labels")
        with torch.no_grad():
            logits = model(**batch).logits
        nll = torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1), labels[:, 1:].flatten(), reduction="sum")
        losses.append(float(nll))
    assert losses[0] == pytest.approx(losses[1], rel=1e-4)


def test_the_runs_train_loss_covers_the_steps_before_a_resume():
    from workbench.training.trainer import run_train_loss

    # Logged every 2 steps; the run was resumed at step 4, so transformers' own number (0.5) misses steps 1-4.
    history = [{"loss": 2.0, "step": 2}, {"loss": 2.0, "step": 4}, {"eval_loss": 1.9, "step": 4},
               {"loss": 1.0, "step": 6}, {"loss": 1.0, "step": 8}, {"train_runtime": 9.0, "step": 8}]
    assert run_train_loss(history, 0.5) == 1.5
    assert run_train_loss([{"loss": 3.0, "step": 1}, {"loss": 1.0, "step": 4}], 0.0) == 1.5  # weighted by steps
    assert run_train_loss([], 0.7777777) == 0.7778  # nothing logged: transformers' number
