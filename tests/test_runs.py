"""Training runs on the job runner: create, list, detect a killed process, force cancel, SIGKILL + resume, data parallel."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys

import pytest
from test_finetune import color_rows, make_dataset  # noqa: E402  (tests/ is on sys.path under pytest)

from workbench.common.errors import JobError, NotFoundError
from workbench.training.finetune import TrainConfig
from workbench.training.runs import (
    cancel_run,
    child_command,
    create_run,
    get_run,
    list_runs,
    process_alive,
    resume_run,
    start_training,
    wait_run,
)


@pytest.fixture()
def boxes(workspace):
    make_dataset(workspace, "boxes", color_rows(24), color_rows(6, start=100))
    return workspace


def test_a_run_directory_holds_its_config_before_anything_runs(boxes):
    run = create_run(TrainConfig(dataset="boxes", backend="transformers", max_steps=3), boxes)
    assert re.fullmatch(r"\d{8}-\d{6}-smollm2-135m", run.id)
    assert TrainConfig.load(run.path / "config.json").to_dict() == run.config.to_dict()
    assert run.state == "pending" and run.status["pid"] is None and run.adapter_dir is None
    assert (run.path / "checkpoints").is_dir() and (run.path / "logs").is_dir()
    second = create_run(TrainConfig(dataset="boxes", backend="transformers"), boxes)
    assert second.id != run.id and [r.id for r in list_runs(boxes)] == sorted([run.id, second.id], reverse=True)
    # a run that never started has no process to signal: cancelling just records it
    assert cancel_run(second.id, boxes).state == "cancelled"


def test_settings_this_machine_cannot_run_start_no_run_and_have_an_equivalent(boxes):
    """The tutorial's 8-bit optimizer on a machine without CUDA: refused before a run exists (no run in the history, no
    "resume" that cannot work); its equivalent for this machine is the same config with "auto" for what cannot run."""
    from workbench.common.errors import ConfigError
    from workbench.models.registry import detect_device
    from workbench.training.finetune import machine_equivalent

    if detect_device().kind == "cuda":
        pytest.skip("this machine has CUDA: the tutorial's settings run here")
    config = TrainConfig(dataset="boxes", backend="transformers", optim="adamw_8bit", dtype="float16", max_steps=3)
    with pytest.raises(ConfigError, match="optim = 'adamw_8bit' needs bitsandbytes on a CUDA GPU|dtype = 'float16'"):
        create_run(config, boxes)
    assert list_runs(boxes) == [] and not any(boxes.runs.iterdir())
    fixed, notes = machine_equivalent(config)
    assert (fixed.optim, fixed.dtype) == ("auto", "auto") and fixed.max_steps == 3 and fixed.dataset == "boxes"
    assert [n.split(":")[0] for n in notes] == ["optim", "dtype"] and "adamw_8bit → adamw_torch" in notes[0]
    assert "(이 컴퓨터)" in notes[0].ko
    assert machine_equivalent(fixed) == (fixed, [])
    assert create_run(fixed, boxes).state == "pending"


def test_missing_things_are_named(workspace):
    with pytest.raises(NotFoundError, match="Dataset 'nope' does not exist"):
        create_run(TrainConfig(dataset="nope"), workspace)
    with pytest.raises(NotFoundError, match="Run '20990101-000000-x' does not exist"):
        get_run("20990101-000000-x", workspace)
    with pytest.raises(NotFoundError, match="is not a run id"):
        get_run("../etc", workspace)


def test_a_process_that_died_without_a_word_marks_the_run_failed(boxes):
    run = create_run(TrainConfig(dataset="boxes", backend="transformers"), boxes)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    from workbench.common.runfiles import update_status

    update_status(run.path, state="running", pid=dead.pid)
    assert not process_alive(dead.pid)
    again = get_run(run.id, boxes)
    assert again.state == "failed" and f"pid {dead.pid}" in again.status["error"]
    assert "No checkpoint was written yet" in again.status["error"]
    with pytest.raises(JobError, match="is failed, not running"):
        cancel_run(run.id, boxes)


def test_a_forced_cancel_is_recorded_as_cancelled_not_failed(boxes):
    from workbench.common.runfiles import process_start_time, update_status

    run = create_run(TrainConfig(dataset="boxes", backend="transformers"), boxes)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    try:
        update_status(run.path, state="running", pid=child.pid, start_time=process_start_time(child.pid))
        assert get_run(run.id, boxes).state == "running"
        cancelled = cancel_run(run.id, boxes, force=True)
        assert cancelled.state == "cancelled" and cancelled.status["error"] is None
        child.wait(timeout=10)  # the runner may have reaped it already (then the exit code reads 0)
    finally:
        child.kill()


def test_child_command_uses_torchrun_for_several_processes(tmp_path):
    assert child_command(tmp_path)[1:] == ["-m", "workbench", "train", str(tmp_path)]
    cmd = child_command(tmp_path, 2)
    assert cmd[1:5] == ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]
    assert cmd[-4:] == ["-m", "workbench", "train", str(tmp_path)]


@pytest.mark.slow
def test_sigkill_then_resume_continues_from_the_checkpoint(boxes):
    config = TrainConfig(dataset="boxes", backend="transformers", max_steps=8, eval_steps=2, save_steps=2,
                         per_device_train_batch_size=4, warmup_steps=0)
    run = start_training(config, boxes)
    run = wait_run(run.id, boxes, timeout=600, until=lambda r: r.last_checkpoint is not None or r.state in ("completed", "failed"))
    assert run.state == "running", run.log_tail()
    os.killpg(run.status["pid"], signal.SIGKILL)  # kill -9 from outside: no chance to save or to write a final state
    killed = wait_run(run.id, boxes, timeout=60)
    assert killed.state == "failed" and "stopped without reporting" in killed.status["error"]
    ckpt = killed.last_checkpoint
    step = int(ckpt.name.split("-")[1])
    resumed = wait_run(resume_run(run.id, boxes).id, boxes, timeout=600)
    assert resumed.state == "completed", resumed.log_tail()
    assert resumed.status["start_step"] == step > 0 and resumed.status["step"] == 8
    assert resumed.status["resumed_from"] == str(ckpt)
    train_steps = [m["step"] for m in resumed.metrics() if "loss" in m]
    assert train_steps == sorted(set(train_steps)) and train_steps[-1] == 8  # each step once, in order
    logged = [(m["step"], m["loss"]) for m in resumed.metrics() if "loss" in m]
    mean = sum(loss * (s - p) for (s, loss), p in zip(logged, [0] + [s for s, _ in logged])) / logged[-1][0]
    assert resumed.status["train_loss"] == pytest.approx(mean, abs=1e-3)  # the whole run's, not the resumed half's
    assert resumed.adapter_dir is not None
    with pytest.raises(JobError, match="already completed"):
        resume_run(run.id, boxes)


@pytest.mark.slow
def test_two_processes_train_data_parallel_and_write_like_one(boxes):
    """`--num-processes 2`: torchrun + gloo on CPU; only rank 0 writes, the token count covers both processes.
    Padded batches grouped by length, as the GPU default lays them out (the length-grouped sampler under DDP)."""
    config = TrainConfig(dataset="boxes", backend="transformers", max_steps=3, eval_steps=3, save_steps=3,
                         per_device_train_batch_size=2, num_processes=2, warmup_steps=0, batching="padded")
    run = wait_run(start_training(config, boxes).id, boxes, timeout=600)
    assert run.state == "completed", run.log_tail()
    assert (run.status["resolved"]["batching"], run.status["resolved"]["group_by_length"]) == ("padded", True)
    assert run.status["num_processes"] == 2 and run.config.rows_per_step == 4
    assert "torch.distributed.run" in run.log_path.read_text()
    steps = [m["step"] for m in run.metrics() if "loss" in m]
    assert steps == [1, 2, 3]  # one line per step, not one per process
    # 3 steps x 2 processes x 2 rows = 12 rows of ~30 tokens: counted across processes
    assert run.status["num_input_tokens_seen"] > 12 * 20
    assert json.loads((run.adapter_dir / "adapter_config.json").read_text())["r"] == 16
    assert [p.name for p in (run.path / "checkpoints").iterdir() if p.name.startswith("checkpoint-")] == ["checkpoint-3"]


# --- export: one at a time per run, a merged folder whole or absent ---------------------------------------------


@pytest.fixture()
def tiny_run(workspace, tmp_path):
    """A completed run of a tiny random Llama (16 wide, 1 layer, a 6-word tokenizer) with a real LoRA adapter, so that
    a real merge takes a fraction of a second."""
    import torch
    from peft import LoraConfig, get_peft_model
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    words = Tokenizer(models.WordLevel({w: i for i, w in enumerate(["<unk>", "<s>", "</s>", "cash", "yes", "no"])},
                                       unk_token="<unk>"))
    words.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(tokenizer_object=words, unk_token="<unk>", bos_token="<s>", eos_token="</s>")
    torch.manual_seed(0)
    base = tmp_path / "tiny-base"
    LlamaForCausalLM(LlamaConfig(vocab_size=6, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                 num_attention_heads=2, num_key_value_heads=1)).save_pretrained(str(base))
    tok.save_pretrained(str(base))
    path = workspace.runs / "20261129-120000-tiny"
    (path / "logs").mkdir(parents=True)
    TrainConfig(dataset="d", base_model=str(base)).save(path / "config.json")
    (path / "status.json").write_text(json.dumps({"state": "completed", "resolved_base_model": str(base)}))
    model = get_peft_model(LlamaForCausalLM.from_pretrained(str(base)),
                           LoraConfig(r=2, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
    model.save_pretrained(str(path / "adapter"))
    tok.save_pretrained(str(path / "adapter"))
    return get_run(path.name, workspace)


def test_two_exports_of_one_run_at_once_one_runs_and_merged_is_whole(tiny_run, workspace):
    """Issue #23: two exports shared one temporary folder: merged/ ended without config or weights (both exit 0), or one
    crashed with a SafetensorError. 50 rounds of two real merges started together."""
    import threading

    from transformers import AutoModelForCausalLM

    from workbench.training.runs import export_run

    for n in range(50):
        outcomes: list[str] = []
        start = threading.Barrier(2)

        def export() -> None:
            start.wait()
            try:
                export_run(tiny_run.id, workspace, merged=True)
                outcomes.append("exported")
            except JobError as exc:
                outcomes.append(str(exc))
            except Exception as exc:  # noqa: BLE001  (what the race did: any crash fails the round)
                outcomes.append(f"crash: {type(exc).__name__}: {exc}")

        threads = [threading.Thread(target=export) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert "exported" in outcomes and all(o == "exported" or o.startswith(
            f"Run {tiny_run.id} is being exported by another process.") for o in outcomes), (n, outcomes)
        merged = get_run(tiny_run.id, workspace).merged_dir
        assert merged is not None and {"config.json", "model.safetensors", "tokenizer.json"} <= {
            p.name for p in merged.iterdir()}, (n, sorted(p.name for p in merged.iterdir()))
        assert sorted(p.name for p in tiny_run.path.iterdir() if p.name.startswith(".merged")) == [], n
    AutoModelForCausalLM.from_pretrained(str(merged))  # the last one loads


def test_a_killed_exports_leftovers_are_removed_and_the_old_merged_model_stays_until_the_new_one_is_whole(tiny_run,
                                                                                                     workspace):
    from workbench.training.runs import export_run

    export_run(tiny_run.id, workspace, merged=True)
    (tiny_run.path / ".merged.partial-x1").mkdir()  # what an export killed mid-write leaves
    (tiny_run.path / ".merged.partial-x1" / "model.safetensors").write_bytes(b"half")
    before = (tiny_run.path / "merged" / "model.safetensors").stat().st_ino
    out = export_run(tiny_run.id, workspace, merged=True)
    assert out["merged"] == str(tiny_run.path / "merged")
    assert (tiny_run.path / "merged" / "model.safetensors").stat().st_ino != before  # replaced by the new whole folder
    assert sorted(p.name for p in tiny_run.path.iterdir() if p.name.startswith(".merged")) == []


def test_a_run_cancelled_while_its_process_starts_is_cancelled_not_failed(boxes):
    """Issue #23: `runs cancel` right after `train` ended as failed with an ImportError (or 'partially initialized module
    torch'): the cancel landed inside an import and a library's `except Exception` swallowed it. Eight real training
    processes start together (their imports slow each other, as on a busy machine) and each is cancelled at its own
    moment of its start."""
    import time

    delays = [0.5, 1.5, 2.5, 3.5, 4.5, 6.0, 7.5, 9.0]
    runs = [start_training(TrainConfig(dataset="boxes", max_steps=2), boxes) for _ in delays]
    t0 = time.monotonic()
    for delay, run in zip(delays, runs):
        time.sleep(max(0.0, delay - (time.monotonic() - t0)))
        cancel_run(run.id, boxes)
    ended = [wait_run(run.id, boxes, timeout=300) for run in runs]
    assert [(r.state, r.status.get("error")) for r in ended] == [("cancelled", None)] * len(delays), \
        [(d, r.state, r.status.get("error")) for d, r in zip(delays, ended)]
