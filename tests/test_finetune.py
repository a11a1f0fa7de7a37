"""TrainConfig (the tutorial's recipe and its traps), auto settings, data preparation, and real training on CPU."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from workbench.errors import ConfigError
from workbench.finetune import (LORA_TARGETS, GROUPS, CompletionCollator, TrainConfig, resolve_settings, _offload_kwargs,
                                tokenize_rows)
from workbench.models import DeviceInfo

CPU = DeviceInfo(kind="cpu", name="test CPU", memory_gb=24.0, cpu_threads=2)
GPU = DeviceInfo(kind="cuda", name="NVIDIA H200", memory_gb=139.8, bf16=True, cpu_threads=16)


def make_dataset(ws, name: str, train: list[dict], validation: list[dict], test: list[dict] | None = None) -> None:
    """A split dataset through the dataset stage's API, with the exact rows of each split."""
    from workbench.alpaca import SplitConfig, dataset_dir, load_split, save_dataset, split_dataset

    test = test or train[:2]
    rows = train + validation + test
    save_dataset(name, rows, source={"kind": "test"}, workspace=ws, overwrite=True, settings={"tokenizer": ""})
    split_dataset(name, SplitConfig(test_size=max(len(test) / len(rows), 0.01), val_size=0.2), workspace=ws)
    folder = dataset_dir(name, ws)
    for split, part in (("train", train), ("validation", validation), ("test", test)):
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in part), encoding="utf-8")
    assert load_split(name, "validation", ws) == validation


def color_rows(n: int, start: int = 0, colors: tuple[str, ...] = ("red", "blue", "green", "yellow")) -> list[dict]:
    return [{"instruction": f"What color is box {i}?", "input": "", "output": f"Box {i} is {colors[i % len(colors)]}."}
            for i in range(start, start + n)]


# --- the config --------------------------------------------------------------------------------------------


def test_defaults_are_the_tutorials_recipe_and_the_preset_is_its_exact_configuration():
    c = TrainConfig()
    assert (c.lora_r, c.lora_alpha, c.lora_dropout, c.target_modules, c.lora_bias) == (16, 32, 0.05, LORA_TARGETS, "none")
    assert (c.learning_rate, c.warmup_steps, c.weight_decay, c.lr_scheduler_type, c.seed, c.random_state) == \
        (2e-4, 5, 0.01, "cosine", 123, 123)
    assert (c.early_stopping_patience, c.early_stopping_threshold, c.load_best_model_at_end) == (3, 0.001, True)
    assert (c.use_rslora, c.use_loftq, c.optim, c.quantization) == (False, False, "auto", "auto")
    # the same 8 rows per optimizer step as the tutorial, in one micro-batch (its layout resolved per device)
    assert (c.per_device_train_batch_size, c.gradient_accumulation_steps, c.batching, c.rows_per_step) == (8, 1, "auto", 8)
    assert c.group_by_length == "auto"
    t = TrainConfig.tutorial()
    assert (t.base_model, t.max_seq_length, t.per_device_train_batch_size, t.gradient_accumulation_steps) == \
        ("llama3-open-ko-8b", 4096, 2, 4)
    assert (t.max_steps, t.num_train_epochs, t.batching, t.group_by_length, t.optim, t.prompt_template) == \
        (100, 0.0, "padded", "off", "adamw_8bit", "alpaca-tutorial")
    assert t.rows_per_step == c.rows_per_step
    assert sorted(f for g in GROUPS.values() for f in g) == sorted(TrainConfig().to_dict())  # every field on the page


@pytest.mark.parametrize("changes,message", [
    (dict(max_steps=100, num_train_epochs=3.0), "max_steps = 100 would silently override num_train_epochs = 3.0"),
    (dict(eval_strategy="no"), "load_best_model_at_end needs evaluations; eval_strategy is 'no'"),
    (dict(save_strategy="epoch"), "needs save_strategy = eval_strategy (got save 'epoch', eval 'steps')"),
    (dict(eval_steps=10, save_steps=15), "save_steps (15) to be a multiple of eval_steps (10). Use save_steps = 10"),
    (dict(metric_for_best_model=""), "needs metric_for_best_model"),
    (dict(load_best_model_at_end=False), "early stopping needs load_best_model_at_end = True"),
    (dict(load_best_model_at_end=False, early_stopping_patience=0, eval_strategy="no"), None),
    (dict(lora_r=0), "TrainConfig.lora_r = 0 is below the minimum 1"),
    (dict(batching="packed"), "TrainConfig.batching = 'packed' is not one of"),
])
def test_the_tutorials_traps_are_refused_in_one_line(changes, message):
    if message is None:
        TrainConfig(**changes)  # a consistent way to train without evaluation
        return
    with pytest.raises(ConfigError) as err:
        TrainConfig(**changes)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_embedding_offload_resolves_per_backend_device_and_model(tmp_path):
    untied, tied = tmp_path / "untied", tmp_path / "tied"
    for folder, tie in ((untied, False), (tied, True)):
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps({"model_type": "llama", "tie_word_embeddings": tie}))
    one = resolve_settings(TrainConfig(backend="unsloth", base_model=str(untied)), GPU)
    assert one.offload_embedding == "on" and "input embeddings in host RAM" in one.notes
    assert _offload_kwargs(one) == {"offload_embedding": True}
    assert resolve_settings(TrainConfig(backend="unsloth", base_model=str(tied)), GPU).offload_embedding == "off"
    assert resolve_settings(TrainConfig(backend="unsloth", base_model=str(untied), num_processes=2), GPU) \
        .offload_embedding == "off"
    assert resolve_settings(TrainConfig(backend="unsloth", base_model=str(untied)), CPU).offload_embedding == "off"
    off = resolve_settings(TrainConfig(backend="unsloth", base_model=str(untied), offload_embedding="off"), GPU)
    assert _offload_kwargs(off) == {"offload_embedding": False}  # explicit: Unsloth's own "auto" does not move it
    tut = resolve_settings(TrainConfig.tutorial(backend="unsloth", base_model=str(untied), optim="adamw_torch"), GPU)
    assert tut.offload_embedding == "unsloth" and _offload_kwargs(tut) == {}  # the tutorial passes nothing
    assert resolve_settings(TrainConfig.tutorial(backend="transformers", optim="adamw_torch"), GPU).offload_embedding == "off"
    with pytest.raises(ConfigError, match="offload_embedding = 'on' needs the Unsloth backend"):
        resolve_settings(TrainConfig(backend="transformers", offload_embedding="on"), GPU)


def test_config_round_trips_through_json_and_yaml(tmp_path):
    c = TrainConfig(dataset="shop", max_steps=30, target_modules=("q_proj", "v_proj"), use_rslora=True)
    for name in ("c.json", "c.yaml"):
        assert TrainConfig.load(c.save(tmp_path / name)).to_dict() == c.to_dict()
    with pytest.raises(ConfigError, match="has no setting 'lr'"):
        TrainConfig.from_dict({"lr": 1e-3})


def test_auto_resolves_per_device():
    cpu = resolve_settings(TrainConfig(backend="transformers"), CPU)
    assert (cpu.load_in_4bit, cpu.dtype, cpu.max_seq_length, cpu.gradient_checkpointing, cpu.optim, cpu.num_train_epochs) == \
        (False, "float32", 512, "off", "adamw_torch", 1.0)
    gpu = resolve_settings(TrainConfig(backend="transformers"), GPU)
    import importlib.util

    has_bnb = importlib.util.find_spec("bitsandbytes") is not None
    assert (gpu.load_in_4bit, gpu.dtype, gpu.autocast, gpu.max_seq_length, gpu.gradient_checkpointing, gpu.num_train_epochs) == \
        (has_bnb, "bfloat16", "bf16", 4096, "on", 3.0)
    assert gpu.optim == ("adamw_8bit" if has_bnb else "adamw_torch")
    # padded + grouped by length on a GPU (compiled blocks), padding-free on CPU; explicit choices are kept
    assert (cpu.batching, cpu.group_by_length, gpu.batching, gpu.group_by_length) == ("padding_free", False, "padded", True)
    tut = resolve_settings(TrainConfig.tutorial(backend="transformers", optim="adamw_torch"), GPU)
    assert (tut.batching, tut.group_by_length) == ("padded", False)
    mixed = resolve_settings(TrainConfig(backend="transformers", batching="padded", group_by_length="auto"), CPU)
    assert (mixed.batching, mixed.group_by_length) == ("padded", True)
    with pytest.raises(ConfigError, match="quantization = '4bit' needs a CUDA GPU"):
        resolve_settings(TrainConfig(quantization="4bit"), CPU)
    # the input embedding table goes to host RAM for a one-GPU Unsloth run with an untied table; the tutorial leaves it
    # to Unsloth; Transformers, several processes, CPU and tied tables keep it where it is
    assert (cpu.offload_embedding, gpu.offload_embedding) == ("off", "off")
    assert _offload_kwargs(cpu) == {}
    assert TrainConfig().offload_embedding == "auto"
    assert TrainConfig.tutorial().offload_embedding == "unsloth"
    with pytest.raises(ConfigError, match="optim = 'adamw_8bit' needs bitsandbytes on a CUDA GPU"):
        resolve_settings(TrainConfig.tutorial(), CPU)


def test_rows_become_answer_only_labels_with_the_inference_prompt(smollm2_dir):
    from transformers import AutoTokenizer

    from workbench.alpaca import format_prompt

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
    from workbench.config import Workspace
    from workbench.runs import start_training, wait_run

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

    from workbench.inference import GenerationConfig, load_generator_for_run
    from workbench.runs import export_run, get_run

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
    from workbench.runs import start_training, wait_run

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

    from workbench.finetune import no_cache_in_training

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
