"""TrainConfig (the tutorial's recipe and its traps) and the auto settings; the helpers other tests use to make
datasets. The trainer's tests (data preparation, real training on CPU) are in test_trainer.py."""

from __future__ import annotations

import json

import pytest

from workbench.common.errors import ConfigError
from workbench.models.registry import DeviceInfo
from workbench.training.finetune import GROUPS, LORA_TARGETS, TrainConfig, resolve_settings
from workbench.training.trainer import offload_kwargs

CPU = DeviceInfo(kind="cpu", name="test CPU", memory_gb=24.0, cpu_threads=2)
GPU = DeviceInfo(kind="cuda", name="NVIDIA H200", memory_gb=139.8, bf16=True, cpu_threads=16)


def make_dataset(ws, name: str, train: list[dict], validation: list[dict], test: list[dict] | None = None) -> None:
    """A split dataset through the dataset stage's API, with the exact rows of each split."""
    from workbench.dataset.alpaca import SplitConfig, dataset_dir, load_split, save_dataset, split_dataset
    from workbench.dataset.splitfiles import split_path

    test = test or train[:2]
    rows = train + validation + test
    save_dataset(name, rows, source={"kind": "test"}, workspace=ws, overwrite=True, settings={"tokenizer": ""})
    record = split_dataset(name, SplitConfig(test_size=max(len(test) / len(rows), 0.01), val_size=0.2),
                           workspace=ws).info.split
    for split, part in (("train", train), ("validation", validation), ("test", test)):  # the files the split names
        split_path(dataset_dir(name, ws), record, split).write_text("".join(json.dumps(r) + "\n" for r in part),
                                                                    encoding="utf-8")
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
    assert offload_kwargs(one) == {"offload_embedding": True}
    assert resolve_settings(TrainConfig(backend="unsloth", base_model=str(tied)), GPU).offload_embedding == "off"
    assert resolve_settings(TrainConfig(backend="unsloth", base_model=str(untied), num_processes=2), GPU) \
        .offload_embedding == "off"
    assert resolve_settings(TrainConfig(backend="unsloth", base_model=str(untied)), CPU).offload_embedding == "off"
    off = resolve_settings(TrainConfig(backend="unsloth", base_model=str(untied), offload_embedding="off"), GPU)
    assert offload_kwargs(off) == {"offload_embedding": False}  # explicit: Unsloth's own "auto" does not move it
    tut = resolve_settings(TrainConfig.tutorial(backend="unsloth", base_model=str(untied), optim="adamw_torch"), GPU)
    assert tut.offload_embedding == "unsloth" and offload_kwargs(tut) == {}  # the tutorial passes nothing
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
    assert offload_kwargs(cpu) == {}
    assert TrainConfig().offload_embedding == "auto"
    assert TrainConfig.tutorial().offload_embedding == "unsloth"
    with pytest.raises(ConfigError, match="optim = 'adamw_8bit' needs bitsandbytes on a CUDA GPU"):
        resolve_settings(TrainConfig.tutorial(), CPU)
