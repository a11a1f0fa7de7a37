"""The trainer: LoRA + SFT on one run directory, Unsloth or Transformers + PEFT; the merge after training.

`train_run(run_dir)` is the training entry point: `python -m workbench train RUN_DIR` calls it in a child process
(started by `workbench.training.runs` on the job runner), so Unsloth's patches never reach the app and the two backends never
share a process. The settings come from `workbench.training.finetune` (TrainConfig, resolve_settings); progress is reported by
the callback of `workbench.training.train_progress`. Heavy imports (torch, transformers, trl, unsloth) stay inside functions.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from workbench.common.config import Workspace
from workbench.common.errors import ConfigError, JobError, ModelError, WorkbenchError
from workbench.common.progress import Progress
from workbench.common.runfiles import last_checkpoint, now_iso, read_json, update_status
from workbench.common.texts import Text, both
from workbench.jobs.runner import one_line
from workbench.models.prompts import PromptTemplate, format_example
from workbench.training.finetune import ResolvedSettings, TrainConfig, resolve_settings
from workbench.training.train_progress import (
    CancelFlag,
    Cancelled,
    gather,
    gpu_mem_gb,
    make_progress_callback,
    rank,
    world_size,
)

# --- data --------------------------------------------------------------------------------------------------


def tokenize_rows(rows: Sequence[Mapping[str, Any]], tokenizer: Any, template: PromptTemplate, max_len: int
                  ) -> tuple[list[dict[str, list[int]]], int]:
    """Rows -> {"input_ids", "completion_mask"} (1 on answer tokens: the loss is on the answer only).

    The prompt is tokenized the way inference tokenizes it (`add_special_tokens=False`: a chat template writes its
    own BOS, the Alpaca templates write it when the tokenizer adds one: `alpaca.bos_prefix`), so training and
    generation see the same tokens. Rows longer than `max_len` are cut at the end.

    Returns:
        (examples, number of rows that were cut).
    """
    out, cut = [], 0
    for row in rows:
        ex = format_example(row, template=template, tokenizer=tokenizer)
        p = tokenizer(ex["prompt"], add_special_tokens=False)["input_ids"]
        full = tokenizer(ex["prompt"] + ex["completion"], add_special_tokens=False)["input_ids"]
        # BPE merges across the prompt / answer boundary are rare; mark as answer what follows the prompt's length.
        n_prompt = len(p) if full[: len(p)] == p else _common_prefix(full, p)
        mask = [0] * n_prompt + [1] * (len(full) - n_prompt)
        if len(full) > max_len:
            cut += 1
            full, mask = full[:max_len], mask[:max_len]
        if sum(mask) == 0:
            continue  # the prompt alone fills max_len: nothing to learn from this row
        out.append({"input_ids": full, "completion_mask": mask})
    return out, cut


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


class CompletionCollator:
    """Batches of tokenized rows for the plain Transformers backend: padded, or padding-free (one flat sequence
    with position_ids restarting at every row, which SDPA and flash attention turn into a block-diagonal mask).
    Labels are -100 on prompt tokens and padding, so the loss covers answers only."""

    def __init__(self, pad_token_id: int, padding_free: bool) -> None:
        self.pad_token_id = pad_token_id
        self.padding_free = padding_free

    def __call__(self, features: list[dict[str, list[int]]]) -> dict[str, Any]:
        import torch

        if self.padding_free:
            ids, pos, labels = [], [], []
            for f in features:
                ids += f["input_ids"]
                pos += list(range(len(f["input_ids"])))
                labels += [t if m else -100 for t, m in zip(f["input_ids"], f["completion_mask"])]
            return {"input_ids": torch.tensor([ids]), "position_ids": torch.tensor([pos]), "labels": torch.tensor([labels])}
        width = max(len(f["input_ids"]) for f in features)
        ids = torch.full((len(features), width), self.pad_token_id, dtype=torch.long)
        att = torch.zeros((len(features), width), dtype=torch.long)
        labels = torch.full((len(features), width), -100, dtype=torch.long)
        for i, f in enumerate(features):
            n = len(f["input_ids"])
            row = torch.tensor(f["input_ids"])
            ids[i, :n], att[i, :n] = row, 1
            labels[i, :n] = row.masked_fill(torch.tensor(f["completion_mask"]) == 0, -100)
        return {"input_ids": ids, "attention_mask": att, "labels": labels}


def oom_message(config: TrainConfig, resolved: ResolvedSettings | None, step: int) -> str:
    where = f"{resolved.device_name}" if resolved else "the device"
    seq = resolved.max_seq_length if resolved else config.max_seq_length
    tips = [f"a smaller per_device_train_batch_size (now {config.per_device_train_batch_size})",
            f"a shorter max_seq_length (now {seq})"]
    if resolved is None or not resolved.load_in_4bit:
        tips.append("4-bit loading (quantization = '4bit', CUDA only)")
    return f"Out of memory on {where} at step {step}. Try " + ", ".join(tips) + "."


# --- the training entry point ------------------------------------------------------------------------------


def train_run(run_dir: str | Path) -> dict[str, Any]:
    """Train the run in `run_dir` (config.json written by `workbench.training.runs.create_run`) in this process.

    Resumes from the newest checkpoint if there is one. Writes status.json, metrics.jsonl, checkpoints/ and at the
    end adapter/ (the best or last LoRA adapter plus the tokenizer). Under torchrun only rank 0 writes run files.

    Returns:
        The final status.

    Raises:
        JobError: the run directory has no config.
    """
    run_dir = Path(run_dir).resolve()
    if not (run_dir / "config.json").is_file():
        raise JobError(f"{run_dir} has no config.json: it is not a run directory. Create runs with "
                       f"`python -m workbench train --dataset NAME`.",
                       ko=f"{run_dir}에 config.json이 없습니다: 실행 폴더가 아닙니다. 실행은 `python -m workbench "
                          f"train --dataset NAME`으로 만드세요.")
    config = TrainConfig.load(run_dir / "config.json")
    main = rank() == 0
    flag = CancelFlag()
    ws = Workspace(run_dir.parent.parent)
    resolved: ResolvedSettings | None = None
    trainer = None
    t0 = time.time()
    (run_dir / "checkpoints").mkdir(exist_ok=True)
    status = read_json(run_dir / "status.json", {}) or {}
    resume = last_checkpoint(run_dir)
    try:
        flag.install()  # inside the try: a cancel during what follows is recorded as one
        if main:
            _mark_running(run_dir, status, resume)
        resolved = resolve_settings(config)
        from workbench.models.registry import resolve_model

        base = resolve_model(config.base_model, ws)
        if main:
            update_status(run_dir, resolved=resolved.to_dict(), resolved_base_model=base)
        train_rows, val_rows = _load_rows(config, ws)
        if config.context != "none":
            train_rows, val_rows = _context_rows(run_dir, config, ws, train_rows, val_rows, main)
        trainer, tokenizer = _build_trainer(config, resolved, base, train_rows, val_rows, run_dir, flag)
        flag.in_training = True
        if flag.set:
            raise Cancelled()
        if main and resume is not None:
            _truncate_metrics(run_dir, int(resume.name.rsplit("-", 1)[1]))
        result = trainer.train(resume_from_checkpoint=str(resume) if resume else None)
        state = trainer.state
        progress = next((cb for cb in trainer.callback_handler.callbacks if hasattr(cb, "summary")), None)
        peaks = gather(progress.peak("end") if progress else gpu_mem_gb())  # a collective: every rank takes part
        train_seconds = round(time.time() - t0, 1)
        if flag.set:
            if main:
                update_status(run_dir, state="cancelled", ended_at=now_iso(), step=state.global_step,
                              train_seconds=train_seconds, last_checkpoint=_str(last_checkpoint(run_dir)))
            return read_json(run_dir / "status.json", {})
        if main:
            _save_completed(run_dir, config, trainer, tokenizer, result, progress, peaks, train_seconds)
        return read_json(run_dir / "status.json", {})
    except Cancelled:
        if main:
            update_status(run_dir, state="cancelled", ended_at=now_iso(), train_seconds=round(time.time() - t0, 1))
        return read_json(run_dir / "status.json", {})
    except BaseException as exc:  # recorded in one line for the UI, then re-raised with its traceback for the log
        if main:
            step = trainer.state.global_step if trainer is not None else 0
            message = oom_message(config, resolved, step) if _is_oom(exc) else one_line(exc)
            update_status(run_dir, state="failed", ended_at=now_iso(), error=message, error_ko=message if _is_oom(exc) else one_line(exc, "ko"),
                          train_seconds=round(time.time() - t0, 1))
        raise


def _mark_running(run_dir: Path, status: dict[str, Any], resume: Path | None) -> None:
    from workbench.common.runfiles import process_start_time
    from workbench.jobs.runner import JOB_ENV

    # started by the runner (which records torchrun's pid), or in a terminal: then this process is the job
    started_by_runner = os.environ.get(JOB_ENV) == str(run_dir)
    own = {} if started_by_runner else {"pid": os.getpid(), "start_time": process_start_time(os.getpid())}
    update_status(run_dir, state="running", **own, error=None, error_ko=None, phase=None, ended_at=None,
                  started_at=status.get("started_at") or now_iso(), resumed_from=str(resume) if resume else None,
                  num_processes=world_size())


def _load_rows(config: TrainConfig, ws: Workspace) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The train and validation rows of the run's dataset.

    Raises:
        ConfigError: no training rows, or no validation rows while evaluation is on.
    """
    from workbench.dataset.alpaca import load_splits

    parts = load_splits(config.dataset, ("train", "validation"), ws)  # one split's files, never two splits' halves
    train_rows, val_rows = parts["train"], (parts["validation"] if config.eval_strategy != "no" else [])
    if not train_rows:
        raise ConfigError(f"Dataset {config.dataset!r} has no training rows. Split it with a smaller test size.",
                          ko=f"데이터셋 {config.dataset!r}에 학습 행이 없습니다. 테스트 비율을 줄여 분할하세요.")
    if config.eval_strategy != "no" and not val_rows:
        raise ConfigError(f"Dataset {config.dataset!r} has no validation rows, but eval_strategy = "
                          f"{config.eval_strategy!r}. Split it with val_size > 0, or set eval_strategy = 'no' "
                          f"(and load_best_model_at_end / early stopping off).",
                          ko=f"데이터셋 {config.dataset!r}에 검증 행이 없는데 eval_strategy = {config.eval_strategy!r}입니다. "
                             f"val_size > 0으로 분할하거나 eval_strategy = 'no'로 하세요 (load_best_model_at_end "
                             f"/ 조기 종료도 끄고).")
    return train_rows, val_rows


def _context_rows(run_dir: Path, config: TrainConfig, ws: Workspace, train_rows: list[dict[str, Any]],
                  val_rows: list[dict[str, Any]], main: bool) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The rows with their retrieved context (`workbench.training.train_context`): built once into context.jsonl before the
    model loads, read back on a resume. Progress goes to status.json ("message") and the log."""
    import sys

    from workbench.training.train_context import prepare_context

    def report(message: str, fraction: float) -> None:
        print(message, file=sys.stderr, flush=True)
        if main:
            update_status(run_dir, **both(message))

    parts, summary = prepare_context(run_dir, config, {"train": train_rows, "validation": val_rows}, ws,
                                     report=report, write=main)
    if main:
        update_status(run_dir, context=summary, message=None, message_ko=None)
    return parts["train"], parts["validation"]


def _tokenize(config: TrainConfig, resolved: ResolvedSettings, tokenizer: Any, train_rows: list[dict[str, Any]],
              val_rows: list[dict[str, Any]], run_dir: Path) -> tuple[list[dict[str, list[int]]], list[dict[str, list[int]]]]:
    """Tokenized train and validation rows; rows with context get the run's context prompt, fitted to max_seq_length
    (`train_context.fit_context_rows`), and the extra tokens it costs are recorded in status.json["context_tokens"]."""
    extra: dict[str, Any] = {}
    if config.context != "none":
        from workbench.training.train_context import fit_context_rows

        kw = dict(k=config.context_k, max_chars=config.context_max_chars, lang=config.context_lang)
        train_rows, stats = fit_context_rows(train_rows, tokenizer, config.prompt_template, resolved.max_seq_length, **kw)
        val_rows, _ = fit_context_rows(val_rows, tokenizer, config.prompt_template, resolved.max_seq_length, **kw)
        stats["token_ratio"] = round(stats["context_tokens"] / max(stats["plain_tokens"], 1), 3)
        extra["context_tokens"] = stats
    train, _ = tokenize_rows(train_rows, tokenizer, config.prompt_template, resolved.max_seq_length)
    val, _ = tokenize_rows(val_rows, tokenizer, config.prompt_template, resolved.max_seq_length)
    if rank() == 0:
        update_status(run_dir, train_rows=len(train), validation_rows=len(val), **extra)
    return train, val


def _save_completed(run_dir: Path, config: TrainConfig, trainer: Any, tokenizer: Any, result: Any, progress: Any,
                    peaks: list[Any], train_seconds: float) -> None:
    """Save the adapter and the tokenizer, and record the finished run in status.json (rank 0 only)."""
    state = trainer.state
    adapter = run_dir / "adapter"
    trainer.model.save_pretrained(str(adapter))
    tokenizer.save_pretrained(str(adapter))
    early = any(getattr(cb, "early_stopping_patience_counter", 0) >= config.early_stopping_patience > 0
                for cb in trainer.callback_handler.callbacks)
    summary = progress.summary(state) if progress else {}
    update_status(run_dir, state="completed", ended_at=now_iso(), step=state.global_step,
                  max_steps=state.max_steps, best_checkpoint=state.best_model_checkpoint,
                  best_metric=state.best_metric, stopped_early=early, train_seconds=train_seconds,
                  train_loss=run_train_loss(state.log_history, result.training_loss), adapter=str(adapter),
                  num_input_tokens_seen=int(state.num_input_tokens_seen or 0), **summary,
                  peak_gpu_mem_gb_per_process=peaks if any(p is not None for p in peaks) else None,
                  cpu_seconds=_cpu_seconds())


def run_train_loss(log_history: list[dict[str, Any]], trainer_loss: float) -> float:
    """The mean training loss over the whole run, from the logged losses weighted by the steps each covers.

    After a resume, transformers' own `training_loss` divides the loss summed since the resume by all the run's steps
    (a run resumed halfway reported 0.93 where its steps' mean was 1.92); the log history, restored from the
    checkpoint, covers the steps before the resume too. Without logged losses: transformers' number.
    """
    prev = total = steps = 0.0
    for entry in log_history:
        if "loss" in entry and "step" in entry and entry["step"] > prev:
            total += float(entry["loss"]) * (entry["step"] - prev)
            steps += entry["step"] - prev
            prev = entry["step"]
    return round(total / steps if steps else float(trainer_loss), 4)


def _cpu_seconds() -> float:
    """CPU time of this process so far (user + system): the load-independent cost of a CPU run."""
    import resource

    ru = resource.getrusage(resource.RUSAGE_SELF)
    return round(ru.ru_utime + ru.ru_stime, 1)


def _str(p: Path | None) -> str | None:
    return str(p) if p else None


def _is_oom(exc: BaseException) -> bool:
    return type(exc).__name__ in ("OutOfMemoryError", "MemoryError") or "out of memory" in str(exc).lower()


def _truncate_metrics(run_dir: Path, step: int) -> None:
    """On resume, drop progress lines after the checkpoint's step: those steps are trained again."""
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return
    keep = [line for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip() and json.loads(line).get("step", 0) <= step]
    path.write_text("".join(line + "\n" for line in keep), encoding="utf-8")


def _training_arguments(config: TrainConfig, resolved: ResolvedSettings, run_dir: Path, cls: Any, **extra: Any) -> Any:
    cuda = resolved.device == "cuda"
    kw: dict[str, Any] = dict(
        output_dir=str(run_dir / "checkpoints"),
        per_device_train_batch_size=config.per_device_train_batch_size,
        per_device_eval_batch_size=config.per_device_train_batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        warmup_steps=config.warmup_steps,
        learning_rate=config.learning_rate,
        lr_scheduler_type=config.lr_scheduler_type,
        optim=resolved.optim,
        weight_decay=config.weight_decay,
        seed=config.seed,
        data_seed=config.seed,
        logging_steps=config.logging_steps,
        eval_strategy=config.eval_strategy,
        eval_steps=config.eval_steps,
        save_strategy=config.save_strategy,
        save_steps=config.save_steps,
        save_total_limit=config.save_total_limit,
        load_best_model_at_end=config.load_best_model_at_end,
        metric_for_best_model=config.metric_for_best_model if config.load_best_model_at_end else None,
        greater_is_better=(not config.metric_for_best_model.endswith("loss")) if config.load_best_model_at_end else None,
        bf16=resolved.autocast == "bf16",
        fp16=resolved.autocast == "fp16",
        use_cpu=not cuda,
        report_to=[],
        disable_tqdm=True,
        include_num_input_tokens_seen="non_padding",
        gradient_checkpointing=resolved.gradient_checkpointing == "on",
        remove_unused_columns=False,
        dataloader_num_workers=0,
        save_only_model=False,
        ddp_find_unused_parameters=False if world_size() > 1 else None,
        ddp_backend=("nccl" if cuda else "gloo") if world_size() > 1 else None,
        train_sampling_strategy="group_by_length" if resolved.group_by_length else "random",
    )
    if config.max_steps > 0:
        kw["max_steps"] = config.max_steps
    else:
        kw["num_train_epochs"] = resolved.num_train_epochs
    if resolved.gradient_checkpointing == "on":
        kw["gradient_checkpointing_kwargs"] = {"use_reentrant": False}
    kw.update(extra)
    return cls(**kw)


def _build_trainer(config: TrainConfig, resolved: ResolvedSettings, base: str, train_rows: list[dict[str, Any]],
                   val_rows: list[dict[str, Any]], run_dir: Path, flag: CancelFlag) -> tuple[Any, Any]:
    if resolved.backend == "unsloth":
        return _unsloth_trainer(config, resolved, base, train_rows, val_rows, run_dir, flag)
    return _transformers_trainer(config, resolved, base, train_rows, val_rows, run_dir, flag)


def _callbacks(config: TrainConfig, run_dir: Path, flag: CancelFlag) -> list[Any]:
    from transformers import EarlyStoppingCallback

    cbs: list[Any] = [make_progress_callback(run_dir, flag)]
    if config.early_stopping_patience > 0:
        cbs.append(EarlyStoppingCallback(early_stopping_patience=config.early_stopping_patience,
                                         early_stopping_threshold=config.early_stopping_threshold))
    return cbs


def _dtype(name: str) -> Any:
    import torch

    return getattr(torch, name)


def _load_error(base: str, exc: BaseException) -> WorkbenchError:
    from workbench.common.errors import OfflineError

    if not Path(base).exists() and isinstance(exc, OSError):
        return OfflineError(f"Could not load {base!r} from the Hugging Face Hub ({type(exc).__name__}). Offline, use a "
                            f"packaged model (smollm2-135m) or a local folder.",
                            ko=f"Hugging Face Hub에서 {base!r}을(를) 불러오지 못했습니다 ({type(exc).__name__}). "
                               f"오프라인에서는 내장 모델(smollm2-135m)이나 로컬 폴더를 쓰세요.")
    return ModelError(f"Could not load {base!r} for training: {one_line(exc)}",
                      ko=f"학습할 {base!r}을(를) 불러오지 못했습니다: {one_line(exc, 'ko')}")


def _unsloth_trainer(config: TrainConfig, resolved: ResolvedSettings, base: str, train_rows: list[dict[str, Any]],
                     val_rows: list[dict[str, Any]], run_dir: Path, flag: CancelFlag) -> tuple[Any, Any]:
    import unsloth  # noqa: F401  (first: it patches transformers / trl / peft on import)
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer
    from unsloth import FastLanguageModel

    try:
        model, tokenizer = FastLanguageModel.from_pretrained(
            model_name=base, max_seq_length=resolved.max_seq_length, dtype=_dtype(resolved.dtype),
            load_in_4bit=resolved.load_in_4bit, random_state=config.random_state,
            use_gradient_checkpointing=_unsloth_gc(resolved), **_device_map(resolved), **offload_kwargs(resolved))
    except (OSError, ValueError, RuntimeError) as exc:
        raise _load_error(base, exc) from exc
    _fix_pad(tokenizer)
    loftq = {}
    if config.use_loftq:
        from peft import LoftQConfig

        loftq = LoftQConfig(loftq_bits=4)
    model = FastLanguageModel.get_peft_model(
        model, r=config.lora_r, target_modules=list(config.target_modules), lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout, bias=config.lora_bias, use_gradient_checkpointing=_unsloth_gc(resolved),
        random_state=config.random_state, use_rslora=config.use_rslora, loftq_config=loftq,
        init_lora_weights="loftq" if config.use_loftq else True)
    no_cache_in_training(model)
    train, val = _tokenize(config, resolved, tokenizer, train_rows, val_rows, run_dir)
    args = _training_arguments(
        config, resolved, run_dir, SFTConfig,
        # Rows are tokenized and cut above (`tokenize_rows`), so TRL's own truncation is off; padding-free keeps
        # the rows of a micro-batch as they are and concatenates them.
        max_length=None, padding_free=resolved.batching == "padding_free", packing=False,
        completion_only_loss=True, dataset_num_proc=None, dataset_kwargs={"skip_prepare_dataset": False},
    )
    trainer = SFTTrainer(model=model, args=args, processing_class=tokenizer,
                         train_dataset=Dataset.from_list(train), eval_dataset=Dataset.from_list(val) if val else None,
                         callbacks=_callbacks(config, run_dir, flag))
    return trainer, tokenizer


def offload_kwargs(resolved: ResolvedSettings) -> dict[str, Any]:
    """Unsloth's offload_embedding: True / False on a GPU; nothing at all for 'unsloth' (its own default, "auto") and
    on CPU (nothing to offload to)."""
    if resolved.offload_embedding == "unsloth" or resolved.device != "cuda":
        return {}
    return {"offload_embedding": resolved.offload_embedding == "on"}


def _device_map(resolved: ResolvedSettings) -> dict[str, Any]:
    """Under torchrun every process holds a whole copy of the model on its own GPU (data parallel)."""
    if resolved.device != "cuda":
        return {}
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if world_size() > 1:
        import torch

        torch.cuda.set_device(local)
    return {"device_map": {"": local}}


def _unsloth_gc(resolved: ResolvedSettings) -> Any:
    return {"unsloth": "unsloth", "on": True, "off": False}[resolved.gradient_checkpointing]


def no_cache_in_training(model: Any) -> None:
    """Training needs no KV cache, and with one transformers skips the packed-sequence mask: padding-free rows
    would attend to each other (checked in tests/test_trainer.py). Unsloth's get_peft_model does the same."""
    model.config.use_cache = False
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.use_cache = True  # generation after training still caches


def _fix_pad(tokenizer: Any) -> None:
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token


def _transformers_trainer(config: TrainConfig, resolved: ResolvedSettings, base: str, train_rows: list[dict[str, Any]],
                          val_rows: list[dict[str, Any]], run_dir: Path, flag: CancelFlag) -> tuple[Any, Any]:
    import torch
    from datasets import Dataset
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, AutoTokenizer, Trainer, TrainingArguments

    kwargs: dict[str, Any] = {"dtype": _dtype(resolved.dtype)}
    if resolved.load_in_4bit:
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=_dtype(resolved.dtype))
    kwargs.update(_device_map(resolved))
    try:
        tokenizer = AutoTokenizer.from_pretrained(base)
        model = AutoModelForCausalLM.from_pretrained(base, **kwargs)
    except (OSError, ValueError, RuntimeError) as exc:
        raise _load_error(base, exc) from exc
    _fix_pad(tokenizer)
    no_cache_in_training(model)
    if resolved.load_in_4bit:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=resolved.gradient_checkpointing != "off")
    torch.manual_seed(config.random_state)
    lora = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                      target_modules=list(config.target_modules), bias=config.lora_bias, use_rslora=config.use_rslora,
                      task_type="CAUSAL_LM", init_lora_weights="loftq" if config.use_loftq else True,
                      **({"loftq_config": __import__("peft").LoftQConfig(loftq_bits=4)} if config.use_loftq else {}))
    model = get_peft_model(model, lora)
    if resolved.gradient_checkpointing == "on":
        model.enable_input_require_grads()
    train, val = _tokenize(config, resolved, tokenizer, train_rows, val_rows, run_dir)
    args = _training_arguments(config, resolved, run_dir, TrainingArguments)
    trainer = Trainer(model=model, args=args, train_dataset=Dataset.from_list(train),
                      eval_dataset=Dataset.from_list(val) if val else None, processing_class=tokenizer,
                      data_collator=CompletionCollator(tokenizer.pad_token_id, resolved.batching == "padding_free"),
                      callbacks=_callbacks(config, run_dir, flag))
    return trainer, tokenizer


# --- after training: merge, export ---------------------------------------------------------------------------


def merge_adapter(adapter_dir: str | Path, base_model: str, out_dir: str | Path, *, workspace: Workspace | None = None,
                  progress: Progress | None = None) -> Path:
    """Merge a LoRA adapter into its base model in 16-bit (the tutorial's `merged_16bit`) and save it with the
    adapter's tokenizer. On CPU the merged weights are float32 for a float32 base.

    Raises:
        ModelError / OfflineError: the base model or the adapter cannot be loaded.
    """
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from workbench.models.registry import resolve_model

    report = progress or (lambda m, f: None)
    adapter_dir, out_dir = Path(adapter_dir), Path(out_dir)
    if not (adapter_dir / "adapter_config.json").is_file():
        raise ModelError(f"{adapter_dir} has no adapter_config.json: finish (or resume) the run first.",
                         ko=f"{adapter_dir}에 adapter_config.json이 없습니다: 먼저 실행을 끝내거나 재개하세요.")
    path = resolve_model(base_model, workspace)
    report(Text(f"Loading {base_model}",
                f"{base_model} 불러오는 중"), 0.1)
    cuda = torch.cuda.is_available()
    dtype = (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16) if cuda else torch.float32
    try:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
        model = PeftModel.from_pretrained(model, str(adapter_dir))
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        raise _load_error(path, exc) from exc
    report(Text("Merging the adapter into the weights",
                "어댑터를 가중치에 병합하는 중"), 0.5)
    merged = model.merge_and_unload()
    import shutil
    import tempfile

    from workbench.common.runfiles import replace_dir

    # A folder of this export's own, renamed into place when complete: `out_dir` is the old model or the new one,
    # whole, never half written or shared with another export.
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-", dir=out_dir.parent))
    try:
        merged.save_pretrained(str(tmp))
        tok_src = adapter_dir if (adapter_dir / "tokenizer_config.json").is_file() else Path(path)
        AutoTokenizer.from_pretrained(str(tok_src)).save_pretrained(str(tmp))
        replace_dir(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    report(Text(f"Merged model saved in {out_dir}",
                f"병합한 모델을 {out_dir}에 저장했습니다"), 1.0)
    return out_dir
