"""LoRA fine-tuning from one `TrainConfig`: Unsloth (the default) or Transformers + PEFT.

The tutorial's recipe is the default (LoRA r=16 / alpha=32 / dropout 0.05 on all seven projections, lr 2e-4,
cosine schedule, warmup 5, weight decay 0.01, seed 123, early stopping with patience 3) with changes that keep
the same optimisation (8 rows per step) but waste less of the device: the tutorial's 2 x 4 gradient accumulation
becomes one micro-batch of 8 rows, grouped by length when padded (GPU), concatenated without padding on CPU.
`TrainConfig.tutorial()` is the tutorial's exact configuration (for comparisons and benchmarks).

Settings whose best value depends on the machine are "auto" (0 for numbers) and are resolved by
`resolve_settings(config, device)`, which the run records in `status.json`:

| setting | CUDA GPU | CPU |
| --- | --- | --- |
| quantization | 4-bit nf4 when bitsandbytes is installed | none (bitsandbytes needs CUDA) |
| dtype | bfloat16 where the GPU supports it, else float16 | float32 weights, bfloat16 autocast where the CPU has AMX / AVX512-BF16 |
| max_seq_length | 4096 (the tutorial) | 512 |
| gradient_checkpointing | "unsloth" (Unsloth) / on (Transformers) | off (memory is not the limit, time is) |
| optim | adamw_8bit | adamw_torch (adamw_8bit needs bitsandbytes on CUDA) |
| batching / group_by_length | padded, grouped by length (compiled blocks, fewer launches) | padding-free (no compute on pads) |
| offload_embedding | on for one GPU with Unsloth and an untied table (frees 1.0 GiB on Llama-3-8B) | off |

`train_run(run_dir)` is the training entry point: `python -m workbench train RUN_DIR` calls it in a child
process (see `workbench.runs`), so Unsloth's patches never reach the app, and the two backends never share a
process. Heavy imports (torch, transformers, trl, unsloth) stay inside functions.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import math
import os
import signal
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from workbench.alpaca import PromptTemplate, format_example
from workbench.config import BaseConfig, Workspace, setting
from workbench.errors import ConfigError, JobError, ModelError, WorkbenchError
from workbench.progress import Progress
from workbench.runfiles import append_jsonl, now_iso, read_json, update_json, write_json  # noqa: F401  (re-exported)

if TYPE_CHECKING:  # pragma: no cover
    from workbench.models import DeviceInfo


LORA_TARGETS: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
OPTIMIZERS: tuple[str, ...] = ("auto", "adamw_8bit", "paged_adamw_8bit", "adamw_torch", "adamw_torch_fused", "sgd")
GROUPS: dict[str, tuple[str, ...]] = {
    "data": ("dataset", "prompt_template", "max_seq_length", "batching", "group_by_length"),
    "model": ("base_model", "backend", "quantization", "dtype", "gradient_checkpointing", "offload_embedding"),
    "lora": ("lora_r", "lora_alpha", "lora_dropout", "target_modules", "lora_bias", "use_rslora", "use_loftq",
             "random_state"),
    "schedule": ("per_device_train_batch_size", "gradient_accumulation_steps", "num_train_epochs", "max_steps",
                 "learning_rate", "warmup_steps", "lr_scheduler_type", "optim", "weight_decay", "seed"),
    "evaluation": ("eval_strategy", "eval_steps", "save_strategy", "save_steps", "save_total_limit",
                   "load_best_model_at_end", "metric_for_best_model", "early_stopping_patience",
                   "early_stopping_threshold", "logging_steps"),
    "scale": ("num_processes",),
}
"""How the page groups the settings (every field appears once)."""


@dataclasses.dataclass
class TrainConfig(BaseConfig):
    """One LoRA supervised fine-tuning run: data, model, LoRA, schedule, evaluation."""

    # --- data ---------------------------------------------------------------------------------------------
    dataset: str = setting("shop-qa", "Dataset to train on (a split dataset under datasets/): train.csv trains, "
                           "validation.csv is evaluated during training.",
                           help_ko="학습할 데이터셋 (datasets/ 아래 분할된 데이터셋): train.csv로 학습하고 validation.csv로 "
                           "학습 중 평가합니다.")
    prompt_template: PromptTemplate = setting(
        "alpaca", "How a row becomes a prompt: 'alpaca' (with ### Input: when a row has one), 'alpaca-tutorial' "
        "(the tutorial's instruction/response template), 'chat' (the model's own chat template). Inference uses the same.",
        help_ko="행을 프롬프트로 만드는 방식: 'alpaca' (입력이 있으면 ### Input: 포함), 'alpaca-tutorial' (튜토리얼의 "
        "지시/응답 템플릿), 'chat' (모델 자체의 채팅 템플릿). 추론도 같은 템플릿을 씁니다.")
    max_seq_length: int = setting(0, "Longest row in tokens; longer rows are cut. 0 = auto: 4096 on a GPU (the "
                                  "tutorial), 512 on CPU.",
                                  help_ko="행의 최대 토큰 수; 더 긴 행은 잘립니다. 0 = 자동: GPU 4096 (튜토리얼), CPU 512.",
                                  min=0, max=131072)
    batching: Literal["auto", "padding_free", "padded"] = setting(
        "auto", "How the rows of a micro-batch are laid out: 'padding_free' concatenates them into one sequence (no pad "
        "tokens); 'padded' pads every row to the longest in its batch (the tutorial). auto = 'padded' on a GPU (Unsloth "
        "compiles the padded blocks: on an H200 a padded micro-batch of 8 rows took 0.43 s against 0.84 s padding-free, "
        "+0.46 GiB of activations on the 8B shape, paid for by offload_embedding), 'padding_free' on CPU (no compute spent "
        "on padding).",
        help_ko="마이크로배치의 행 배치 방식: 'padding_free'는 행들을 패딩 없이 한 시퀀스로 이어 붙이고, 'padded'는 배치에서 가장 "
        "긴 행에 맞춰 패딩합니다 (튜토리얼). auto = GPU에서 'padded' (Unsloth가 패딩 블록을 컴파일: H200에서 8행 마이크로배치 "
        "0.43초 대 패딩 없이 0.84초, 8B 모델에서 활성값 +0.46 GiB, offload_embedding으로 상쇄), CPU에서 'padding_free' "
        "(패딩에 계산을 쓰지 않음).")
    group_by_length: Literal["auto", "on", "off"] = setting(
        "auto", "Draw each micro-batch from rows of similar length (Transformers' LengthGroupedSampler), so padded "
        "batches carry little padding; the rows per step stay the same, only their order changes. auto = on for padded "
        "batches, off for padding-free ones (nothing to save).",
        help_ko="길이가 비슷한 행끼리 마이크로배치를 묶습니다 (Transformers의 LengthGroupedSampler). 패딩 배치의 패딩이 "
        "줄어듭니다; 스텝당 행 수는 같고 순서만 바뀝니다. auto = 패딩 배치면 켬, 패딩 없는 배치면 끔 (줄일 것이 없음).")
    # --- model --------------------------------------------------------------------------------------------
    base_model: str = setting("smollm2-135m", "Base model: a registry key, a local folder or a Hub id. The offline "
                              "default is the packaged SmolLM2; the tutorial's is llama3-open-ko-8b (GPU + Hub).",
                              help_ko="기본 모델: 레지스트리 키, 로컬 폴더, Hub id. 오프라인 기본값은 내장 SmolLM2, 튜토리얼은 "
                              "llama3-open-ko-8b (GPU + Hub).")
    backend: Literal["auto", "unsloth", "transformers"] = setting(
        "auto", "Training library: 'unsloth' (fast kernels, 4-bit on CUDA, CPU fallback), 'transformers' "
        "(Transformers + PEFT, the baseline). auto = Unsloth when installed.",
        help_ko="학습 라이브러리: 'unsloth' (빠른 커널, CUDA에서 4비트, CPU 대체), 'transformers' (Transformers + PEFT, "
        "기준선). auto = 설치되어 있으면 Unsloth.")
    quantization: Literal["auto", "4bit", "none"] = setting(
        "auto", "Load the base weights in 4-bit nf4 (QLoRA). auto = 4-bit on CUDA with bitsandbytes, none elsewhere.",
        help_ko="기본 가중치를 4비트 nf4로 불러옵니다 (QLoRA). auto = CUDA와 bitsandbytes가 있으면 4비트, 아니면 없음.")
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = setting(
        "auto", "Compute precision. auto = bfloat16 where the GPU supports it (else float16); on CPU float32 weights "
        "with bfloat16 autocast where the CPU has AMX / AVX512-BF16.",
        help_ko="계산 정밀도. auto = GPU가 지원하면 bfloat16 (아니면 float16); CPU는 float32 가중치에 AMX / AVX512-BF16이 "
        "있으면 bfloat16 autocast.")
    gradient_checkpointing: Literal["auto", "unsloth", "on", "off"] = setting(
        "auto", "Recompute activations in the backward pass to save memory. auto = 'unsloth' on a GPU (offloaded, the "
        "tutorial), off on CPU.",
        help_ko="메모리를 아끼려고 역전파에서 활성값을 다시 계산합니다. auto = GPU에서 'unsloth' (튜토리얼), CPU에서 끔.")
    offload_embedding: Literal["auto", "on", "off", "unsloth"] = setting(
        "auto", "Keep the input embedding table in host RAM (Unsloth's offload_embedding): token lookups run on the CPU "
        "and only the looked-up rows go to the GPU, so the table's GPU memory is free for activations (1.0 GiB on "
        "Llama-3-8B; on an H200 the step time stayed within run-to-run noise). auto = on for a one-GPU Unsloth run whose "
        "embeddings are not tied to the output layer, off otherwise; 'unsloth' leaves it to Unsloth (only when GPU "
        "memory is tight: the tutorial).",
        help_ko="입력 임베딩 표를 호스트 RAM에 둡니다 (Unsloth의 offload_embedding): 토큰 조회는 CPU에서 하고 조회한 행만 "
        "GPU로 보내므로, 표가 쓰던 GPU 메모리를 활성값에 쓸 수 있습니다 (Llama-3-8B에서 1.0 GiB). auto = GPU 한 장의 "
        "Unsloth 실행이고 임베딩이 출력층과 묶여 있지 않으면 켬, 아니면 끔; 'unsloth'는 Unsloth에 맡깁니다 (GPU 메모리가 "
        "빠듯할 때만: 튜토리얼).")
    # --- LoRA ---------------------------------------------------------------------------------------------
    lora_r: int = setting(16, "LoRA rank: the size of the low-rank update (more = more capacity, more memory).",
                          help_ko="LoRA 랭크: 저랭크 업데이트의 크기 (클수록 표현력과 메모리 증가).", min=1, max=1024)
    lora_alpha: int = setting(32, "LoRA alpha: the update is scaled by alpha / r (alpha / sqrt(r) with rsLoRA).",
                              help_ko="LoRA 알파: 업데이트에 alpha / r을 곱합니다 (rsLoRA는 alpha / sqrt(r)).", min=1, max=4096)
    lora_dropout: float = setting(0.05, "Dropout on the LoRA input during training.",
                                  help_ko="학습 중 LoRA 입력에 적용하는 드롭아웃.", min=0.0, max=0.9)
    target_modules: tuple[str, ...] = setting(default_factory=lambda: LORA_TARGETS,
                                              help="Linear layers that get a LoRA adapter (the tutorial: all seven projections).",
                                              help_ko="LoRA 어댑터를 붙일 선형 층 (튜토리얼: 7개 프로젝션 모두).")
    lora_bias: Literal["none", "all", "lora_only"] = setting("none", "Which biases train ('none' as in the tutorial).",
                                                             help_ko="학습할 바이어스 (튜토리얼처럼 'none').")
    use_rslora: bool = setting(False, "Rank-stabilised LoRA: scale by alpha / sqrt(r).",
                               help_ko="랭크 안정화 LoRA: alpha / sqrt(r)로 스케일.")
    use_loftq: bool = setting(False, "Initialise LoRA with LoftQ (reduces 4-bit quantisation error; slower start).",
                              help_ko="LoftQ로 LoRA를 초기화합니다 (4비트 양자화 오차 감소; 시작이 느림).")
    random_state: int = setting(123, "Seed of the LoRA weight initialisation.", help_ko="LoRA 가중치 초기화 시드.",
                                min=0, max=2**32 - 1)
    # --- schedule -----------------------------------------------------------------------------------------
    per_device_train_batch_size: int = setting(8, "Rows per micro-batch on each device (the tutorial: 2).",
                                               help_ko="장치당 마이크로배치의 행 수 (튜토리얼: 2).", min=1, max=4096)
    gradient_accumulation_steps: int = setting(1, "Micro-batches per optimizer step (the tutorial: 4). Rows per step = "
                                               "batch x accumulation x processes.",
                                               help_ko="옵티마이저 스텝당 마이크로배치 수 (튜토리얼: 4). 스텝당 행 수 = 배치 x 누적 x 프로세스.",
                                               min=1, max=1024)
    num_train_epochs: float = setting(0.0, "Passes over the training rows. 0 = auto: 3 on a GPU (the tutorial), 1 on "
                                      "CPU. Leave it 0 when you set max_steps.",
                                      help_ko="학습 데이터를 도는 횟수. 0 = 자동: GPU 3 (튜토리얼), CPU 1. max_steps를 쓰면 0으로 두세요.",
                                      min=0.0, max=1000)
    max_steps: int = setting(0, "Optimizer steps to train instead of epochs (0 = train by epochs). The Trainer silently "
                             "lets max_steps override epochs, so setting both is refused.",
                             help_ko="에폭 대신 학습할 옵티마이저 스텝 수 (0 = 에폭 기준). Trainer는 max_steps가 에폭을 조용히 "
                             "덮어쓰므로 둘 다 설정할 수 없습니다.", min=0, max=10_000_000)
    learning_rate: float = setting(2e-4, "Peak learning rate (the tutorial: 2e-4).",
                                   help_ko="최대 학습률 (튜토리얼: 2e-4).", min=1e-8, max=1.0)
    warmup_steps: int = setting(5, "Steps of linear warm-up from 0 to the peak learning rate.",
                                help_ko="학습률을 0에서 최대까지 선형으로 올리는 스텝 수.", min=0, max=1_000_000)
    lr_scheduler_type: Literal["cosine", "linear", "constant", "constant_with_warmup"] = setting(
        "cosine", "Learning-rate schedule after the warm-up.", help_ko="워밍업 이후 학습률 스케줄.")
    optim: Literal["auto", "adamw_8bit", "paged_adamw_8bit", "adamw_torch", "adamw_torch_fused", "sgd"] = setting(
        "auto", "Optimizer. auto = adamw_8bit on CUDA with bitsandbytes (the tutorial), adamw_torch elsewhere.",
        help_ko="옵티마이저. auto = CUDA와 bitsandbytes가 있으면 adamw_8bit (튜토리얼), 아니면 adamw_torch.")
    weight_decay: float = setting(0.01, "Weight decay of the LoRA weights.", help_ko="LoRA 가중치의 가중치 감쇠.",
                                  min=0.0, max=1.0)
    seed: int = setting(123, "Seed of data order and dropout.", help_ko="데이터 순서와 드롭아웃의 시드.", min=0, max=2**32 - 1)
    # --- evaluation, checkpoints, early stopping ----------------------------------------------------------
    eval_strategy: Literal["steps", "epoch", "no"] = setting(
        "steps", "When to compute the validation loss: every eval_steps, every epoch, or never.",
        help_ko="검증 손실을 계산할 때: eval_steps마다, 에폭마다, 또는 안 함.")
    eval_steps: int = setting(10, "Optimizer steps between evaluations (with eval_strategy = 'steps').",
                              help_ko="평가 사이의 옵티마이저 스텝 수 (eval_strategy = 'steps'일 때).", min=1, max=1_000_000)
    save_strategy: Literal["steps", "epoch", "no"] = setting(
        "steps", "When to write a checkpoint (for resuming and for the best model). Must match eval_strategy when the "
        "best model is loaded at the end.",
        help_ko="체크포인트를 쓸 때 (재개와 최적 모델용). 마지막에 최적 모델을 불러오려면 eval_strategy와 같아야 합니다.")
    save_steps: int = setting(10, "Optimizer steps between checkpoints; a multiple of eval_steps when the best model "
                              "is loaded at the end.",
                              help_ko="체크포인트 사이의 스텝 수; 최적 모델을 불러오려면 eval_steps의 배수.", min=1, max=1_000_000)
    save_total_limit: int = setting(2, "Checkpoints kept on disk (the best one is always kept).",
                                    help_ko="디스크에 남길 체크포인트 수 (최적 체크포인트는 항상 유지).", min=1, max=1000)
    load_best_model_at_end: bool = setting(True, "Keep the checkpoint with the best validation metric as the final "
                                           "adapter, not the last one.",
                                           help_ko="마지막이 아니라 검증 지표가 가장 좋은 체크포인트를 최종 어댑터로 씁니다.")
    metric_for_best_model: str = setting("eval_loss", "Metric that picks the best checkpoint (lower is better for a loss).",
                                         help_ko="최적 체크포인트를 고르는 지표 (손실은 낮을수록 좋음).")
    early_stopping_patience: int = setting(3, "Stop after this many evaluations without improvement (0 = never stop early).",
                                           help_ko="개선 없는 평가가 이만큼 이어지면 멈춥니다 (0 = 조기 종료 안 함).", min=0, max=1000)
    early_stopping_threshold: float = setting(0.001, "How much the metric must improve to count as an improvement.",
                                              help_ko="개선으로 칠 최소 지표 변화량.", min=0.0, max=100.0)
    logging_steps: int = setting(1, "Optimizer steps between progress lines (loss, learning rate, tokens/s).",
                                 help_ko="진행 기록 (손실, 학습률, 토큰/초) 사이의 스텝 수.", min=1, max=100_000)
    # --- scale --------------------------------------------------------------------------------------------
    num_processes: int = setting(1, "Data-parallel processes (one per GPU; gloo on CPU), started with torchrun. "
                                 "Rows per step grow with it.",
                                 help_ko="데이터 병렬 프로세스 수 (GPU당 하나; CPU는 gloo), torchrun으로 시작. 스텝당 행 수가 "
                                 "함께 늘어납니다.", min=1, max=64)

    _label = "TrainConfig"

    def validate(self) -> None:
        super().validate()
        n = self._name()
        if not self.dataset:
            raise ConfigError(f"{n}.dataset is empty. Pick a split dataset (`python -m workbench dataset list`).")
        if not self.base_model:
            raise ConfigError(f"{n}.base_model is empty. Use a registry key such as 'smollm2-135m', a folder or a Hub id.")
        if not self.target_modules:
            raise ConfigError(f"{n}.target_modules is empty. Name at least one linear layer, e.g. q_proj.")
        # Trap 1: TrainingArguments silently lets max_steps override num_train_epochs.
        if self.max_steps > 0 and self.num_train_epochs > 0:
            raise ConfigError(
                f"{n}: max_steps = {self.max_steps} would silently override num_train_epochs = {self.num_train_epochs}. "
                f"Set one of them and the other to 0.")
        # Trap 2: load_best_model_at_end needs matching save / eval strategies and a metric.
        if self.load_best_model_at_end:
            if self.eval_strategy == "no":
                raise ConfigError(f"{n}: load_best_model_at_end needs evaluations; eval_strategy is 'no'. "
                                  f"Set eval_strategy to 'steps' or 'epoch', or turn load_best_model_at_end off.")
            if self.save_strategy != self.eval_strategy:
                raise ConfigError(f"{n}: load_best_model_at_end needs save_strategy = eval_strategy "
                                  f"(got save '{self.save_strategy}', eval '{self.eval_strategy}'). Make them the same.")
            if self.eval_strategy == "steps" and self.save_steps % self.eval_steps:
                raise ConfigError(f"{n}: load_best_model_at_end needs save_steps ({self.save_steps}) to be a multiple of "
                                  f"eval_steps ({self.eval_steps}). Use save_steps = {self.eval_steps * max(1, self.save_steps // self.eval_steps)}.")
            if not self.metric_for_best_model:
                raise ConfigError(f"{n}: load_best_model_at_end needs metric_for_best_model (e.g. 'eval_loss').")
        if self.early_stopping_patience > 0:
            if self.eval_strategy == "no":
                raise ConfigError(f"{n}: early stopping (patience {self.early_stopping_patience}) needs evaluations; "
                                  f"eval_strategy is 'no'. Set eval_strategy, or early_stopping_patience = 0.")
            if not self.load_best_model_at_end:
                raise ConfigError(f"{n}: early stopping needs load_best_model_at_end = True (so the best checkpoint, not "
                                  f"the last, becomes the adapter). Turn it on, or set early_stopping_patience = 0.")
        if self.use_loftq and self.quantization == "4bit":
            raise ConfigError(f"{n}: use_loftq initialises LoRA from full-precision weights; it cannot be combined with "
                              f"quantization = '4bit'. Use one of them.")

    # --- presets ------------------------------------------------------------------------------------------
    @classmethod
    def tutorial(cls, **changes: Any) -> "TrainConfig":
        """The tutorial's exact configuration: its model, 4096 tokens, padded 2 x 4 batches, max_steps 100 (which
        in the tutorial silently overrode its 3 epochs), the instruction/response template."""
        base = dict(base_model="llama3-open-ko-8b", prompt_template="alpaca-tutorial", max_seq_length=4096,
                    batching="padded", group_by_length="off", per_device_train_batch_size=2, gradient_accumulation_steps=4,
                    num_train_epochs=0.0, max_steps=100, optim="adamw_8bit", gradient_checkpointing="unsloth",
                    offload_embedding="unsloth")
        base.update(changes)
        return cls(**base)

    @property
    def rows_per_step(self) -> int:
        return self.per_device_train_batch_size * self.gradient_accumulation_steps * self.num_processes


# --- resolving "auto" for a device ------------------------------------------------------------------------


@dataclasses.dataclass
class ResolvedSettings:
    """What "auto" means on this machine; written to status.json["resolved"]."""

    device: str  # "cuda" | "cpu"
    device_name: str
    backend: Literal["unsloth", "transformers"]
    load_in_4bit: bool
    dtype: str  # weights: bfloat16 | float16 | float32
    autocast: str | None  # mixed precision: "bf16" | "fp16" | None
    max_seq_length: int
    gradient_checkpointing: str  # "unsloth" | "on" | "off"
    optim: str
    num_train_epochs: float
    notes: list[str]
    batching: str = "padding_free"  # "padding_free" | "padded"
    group_by_length: bool = False
    offload_embedding: str = "off"  # "on" | "off" | "unsloth" (Unsloth's own rule)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def resolve_backend(backend: str) -> Literal["unsloth", "transformers"]:
    """'auto' is Unsloth when it is installed (looked up, not imported: importing it patches libraries)."""
    if backend == "auto":
        return "unsloth" if importlib.util.find_spec("unsloth") is not None else "transformers"
    if backend == "unsloth" and importlib.util.find_spec("unsloth") is None:
        raise ConfigError("TrainConfig.backend = 'unsloth' but Unsloth is not installed. Install it "
                          "(`pip install --no-deps -r requirements-nodeps.txt`) or use backend = 'transformers'.")
    return backend  # type: ignore[return-value]


def cpu_has_bf16() -> bool:
    """Whether the CPU has bfloat16 matrix instructions (AMX or AVX512-BF16): then bf16 autocast is ~2-3x faster."""
    try:
        flags = Path("/proc/cpuinfo").read_text(errors="ignore")
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def resolve_settings(config: TrainConfig, device: "DeviceInfo | None" = None) -> ResolvedSettings:
    """Turn the config's "auto" values into concrete ones for `device` (default: this machine).

    Raises:
        ConfigError: a choice this machine cannot run (4-bit or an 8-bit optimizer without CUDA, float16 on CPU).
    """
    from workbench.models import detect_device

    device = device or detect_device()
    cuda = device.kind == "cuda"
    has_bnb = importlib.util.find_spec("bitsandbytes") is not None
    notes: list[str] = []
    backend = resolve_backend(config.backend)
    if config.quantization == "auto":
        four_bit = cuda and has_bnb
        notes.append("4-bit: " + ("yes (CUDA + bitsandbytes)" if four_bit else
                                  "no (" + ("bitsandbytes is not installed" if cuda else "no CUDA GPU") + ")"))
    else:
        four_bit = config.quantization == "4bit"
        if four_bit and not (cuda and has_bnb):
            raise ConfigError("TrainConfig.quantization = '4bit' needs a CUDA GPU and bitsandbytes; this machine has "
                              f"{'no CUDA GPU' if not cuda else 'no bitsandbytes'}. Use quantization = 'none' or 'auto'.")
    if config.dtype == "auto":
        if cuda:
            dtype = "bfloat16" if device.bf16 else "float16"
            autocast = "bf16" if device.bf16 else "fp16"
        else:
            dtype = "float32"
            autocast = "bf16" if cpu_has_bf16() else None
        notes.append(f"dtype: {dtype} weights" + (f", {autocast} autocast" if autocast else ""))
    else:
        dtype = config.dtype
        if not cuda and dtype == "float16":
            raise ConfigError("TrainConfig.dtype = 'float16' needs a CUDA GPU. Use 'float32' or 'bfloat16' on CPU, or 'auto'.")
        autocast = {"bfloat16": "bf16", "float16": "fp16"}.get(dtype) if cuda else ("bf16" if dtype == "bfloat16" else None)
        if not cuda and dtype == "bfloat16":
            dtype = "float32"  # bf16 master weights lose LoRA updates on CPU; autocast keeps fp32 weights
    max_len = config.max_seq_length or (4096 if cuda else 512)
    if not config.max_seq_length:
        notes.append(f"max_seq_length: {max_len} ({'GPU' if cuda else 'CPU'} default)")
    gc = config.gradient_checkpointing
    if gc == "auto":
        gc = ("unsloth" if backend == "unsloth" else "on") if cuda else "off"
        notes.append(f"gradient checkpointing: {gc}")
    elif gc == "unsloth" and backend != "unsloth":
        gc = "on"
    optim = config.optim
    if optim == "auto":
        optim = "adamw_8bit" if cuda and has_bnb else "adamw_torch"
        notes.append(f"optimizer: {optim}")
    elif "8bit" in optim and not (cuda and has_bnb):
        raise ConfigError(f"TrainConfig.optim = {optim!r} needs bitsandbytes on a CUDA GPU. Use 'adamw_torch' on this "
                          f"machine, or 'auto'.")
    epochs = config.num_train_epochs or (3.0 if cuda else 1.0)
    if config.max_steps > 0:
        notes.append(f"length: {config.max_steps} steps")
    elif not config.num_train_epochs:
        notes.append(f"epochs: {epochs:g} ({'GPU' if cuda else 'CPU'} default)")
    batching = config.batching
    if batching == "auto":
        batching = "padded" if cuda else "padding_free"
        notes.append(f"batching: {batching}")
    grouped = config.group_by_length == "on" or (config.group_by_length == "auto" and batching == "padded")
    if config.group_by_length == "auto" and grouped:
        notes.append("rows grouped by length")
    offload = config.offload_embedding
    if offload == "auto":
        # Tied tables (the output layer reads the same weights) stay: the offload would free nothing. Several
        # processes stay too: DDP refuses a model whose parameters span CPU and GPU.
        offload = "on" if cuda and backend == "unsloth" and config.num_processes == 1 and not _ties_embeddings(
            config.base_model) else "off"
        if offload == "on":
            notes.append("input embeddings in host RAM")
    elif offload in ("on", "unsloth") and backend != "unsloth":
        if offload == "on":
            raise ConfigError("TrainConfig.offload_embedding = 'on' needs the Unsloth backend (it is Unsloth's "
                              "offload_embedding). Use 'auto' or 'off' with backend = 'transformers'.")
        offload = "off"
    return ResolvedSettings(device=device.kind, device_name=device.name, backend=backend, load_in_4bit=four_bit,
                            dtype=dtype, autocast=autocast, max_seq_length=max_len, gradient_checkpointing=gc,
                            optim=optim, num_train_epochs=epochs, notes=notes, batching=batching, group_by_length=grouped,
                            offload_embedding=offload)


def _model_config(base_model: str) -> dict[str, Any]:
    """The config.json of a local model folder or of a converted registry model; {} where none can be read here
    (a Hub id offline, a registry model not converted yet)."""
    from workbench.models import REGISTRY, local_model_dir

    folder = local_model_dir(base_model) if base_model in REGISTRY else Path(base_model)
    try:
        cfg = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return cfg if isinstance(cfg, dict) else {}


def _ties_embeddings(base_model: str) -> bool:
    """Whether the base model's output layer shares the input embedding table (config.json's tie_word_embeddings).
    A model whose config cannot be read counts as untied; Unsloth itself declines the offload of a tied table."""
    cfg = _model_config(base_model)
    text = cfg.get("text_config") or {}
    return bool(cfg.get("tie_word_embeddings", text.get("tie_word_embeddings", False)))


def fit_report(config: TrainConfig, device: "DeviceInfo | None" = None) -> dict[str, Any]:
    """Whether a config's base model fits this machine: device, 4-bit, estimated and available memory (GiB)."""
    from workbench.models import REGISTRY, detect_device, estimate_memory_gb

    device = device or detect_device()
    resolved = resolve_settings(config, device)
    spec = REGISTRY.get(config.base_model)
    params = spec.params_b if spec else _params_from_folder(config.base_model)
    need = estimate_memory_gb(params, resolved.load_in_4bit) if params else None
    return {"device": device.kind, "device_name": device.name, "memory_gb": device.memory_gb, "four_bit": resolved.load_in_4bit,
            "params_b": params, "estimated_gb": need, "fits": None if need is None else need <= device.memory_gb,
            "resolved": resolved.to_dict()}


def _params_from_folder(path: str) -> float | None:
    """Parameters (billions) of a local model folder from its config.json, for the memory estimate."""
    c = _model_config(path)
    try:
        h, layers, inter, vocab = c["hidden_size"], c["num_hidden_layers"], c["intermediate_size"], c["vocab_size"]
        kv = c.get("num_key_value_heads", c["num_attention_heads"]) * (h // c["num_attention_heads"])
        per_layer = 2 * h * h + 2 * h * kv + 3 * h * inter
        return round((layers * per_layer + vocab * h * (1 if c.get("tie_word_embeddings") else 2)) / 1e9, 3)
    except (KeyError, ValueError, TypeError, ZeroDivisionError):
        return None


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


# --- run files ---------------------------------------------------------------------------------------------


def update_status(run_dir: Path, **changes: Any) -> dict[str, Any]:
    return update_json(run_dir / "status.json", **changes)


def append_metrics(run_dir: Path, record: Mapping[str, Any]) -> None:
    append_jsonl(run_dir / "metrics.jsonl", record)


def last_checkpoint(run_dir: Path) -> Path | None:
    """The newest complete `checkpoints/checkpoint-<step>` (one with trainer_state.json)."""
    ckpts = []
    for p in (run_dir / "checkpoints").glob("checkpoint-*"):
        try:
            step = int(p.name.rsplit("-", 1)[1])
        except ValueError:
            continue
        if (p / "trainer_state.json").is_file():
            ckpts.append((step, p))
    return max(ckpts)[1] if ckpts else None


def one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return text if isinstance(exc, WorkbenchError) else f"{type(exc).__name__}: {text}"[:500]


def oom_message(config: TrainConfig, resolved: ResolvedSettings | None, step: int) -> str:
    where = f"{resolved.device_name}" if resolved else "the device"
    seq = resolved.max_seq_length if resolved else config.max_seq_length
    tips = [f"a smaller per_device_train_batch_size (now {config.per_device_train_batch_size})",
            f"a shorter max_seq_length (now {seq})"]
    if resolved is None or not resolved.load_in_4bit:
        tips.append("4-bit loading (quantization = '4bit', CUDA only)")
    return f"Out of memory on {where} at step {step}. Try " + ", ".join(tips) + "."


# --- the training entry point ------------------------------------------------------------------------------


class Cancelled(Exception):
    """SIGTERM arrived before training started (nothing to checkpoint yet)."""


class _CancelFlag:
    """SIGTERM sets the flag; the training callback saves a checkpoint and stops at the next step end. Before
    training starts there is nothing to save, so the signal ends the process at once."""

    def __init__(self) -> None:
        self.set = False
        self.in_training = False

    def install(self) -> None:
        def handler(signum: int, frame: Any) -> None:
            self.set = True
            if not self.in_training:
                raise Cancelled()

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)


def _rank() -> int:
    return int(os.environ.get("RANK", "0"))


def _world() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def train_run(run_dir: str | Path) -> dict[str, Any]:
    """Train the run in `run_dir` (config.json written by `workbench.runs.create_run`) in this process.

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
                       f"`python -m workbench train --dataset NAME`.")
    config = TrainConfig.load(run_dir / "config.json")
    main = _rank() == 0
    flag = _CancelFlag()
    flag.install()
    ws = Workspace(run_dir.parent.parent)
    resolved: ResolvedSettings | None = None
    trainer = None
    t0 = time.time()
    (run_dir / "checkpoints").mkdir(exist_ok=True)
    status = read_json(run_dir / "status.json", {}) or {}
    resume = last_checkpoint(run_dir)
    if main:
        from workbench.jobs import JOB_ENV
        from workbench.runfiles import process_start_time

        # started by the runner (which records torchrun's pid), or in a terminal: then this process is the job
        started_by_runner = os.environ.get(JOB_ENV) == str(run_dir)
        own = {} if started_by_runner else {"pid": os.getpid(), "start_time": process_start_time(os.getpid())}
        status = update_status(run_dir, state="running", **own, error=None, ended_at=None,
                               started_at=status.get("started_at") or now_iso(), resumed_from=str(resume) if resume else None,
                               num_processes=_world())
    try:
        resolved = resolve_settings(config)
        from workbench.alpaca import load_split
        from workbench.models import resolve_model

        base = resolve_model(config.base_model, ws)
        if main:
            update_status(run_dir, resolved=resolved.to_dict(), resolved_base_model=base)
        train_rows = load_split(config.dataset, "train", ws)
        val_rows = load_split(config.dataset, "validation", ws) if config.eval_strategy != "no" else []
        if not train_rows:
            raise ConfigError(f"Dataset {config.dataset!r} has no training rows. Split it with a smaller test size.")
        if config.eval_strategy != "no" and not val_rows:
            raise ConfigError(f"Dataset {config.dataset!r} has no validation rows, but eval_strategy = "
                              f"{config.eval_strategy!r}. Split it with val_size > 0, or set eval_strategy = 'no' "
                              f"(and load_best_model_at_end / early stopping off).")
        trainer, tokenizer = _build_trainer(config, resolved, base, train_rows, val_rows, run_dir, flag)
        flag.in_training = True
        if flag.set:
            raise Cancelled()
        if main and resume is not None:
            _truncate_metrics(run_dir, int(resume.name.rsplit("-", 1)[1]))
        result = trainer.train(resume_from_checkpoint=str(resume) if resume else None)
        state = trainer.state
        progress = next((cb for cb in trainer.callback_handler.callbacks if hasattr(cb, "summary")), None)
        peaks = _gather(progress.peak("end") if progress else _gpu_mem_gb())  # a collective: every rank takes part
        train_seconds = round(time.time() - t0, 1)
        if flag.set:
            if main:
                update_status(run_dir, state="cancelled", ended_at=now_iso(), step=state.global_step,
                              train_seconds=train_seconds, last_checkpoint=_str(last_checkpoint(run_dir)))
            return read_json(run_dir / "status.json", {})
        adapter = run_dir / "adapter"
        if main:
            trainer.model.save_pretrained(str(adapter))
            tokenizer.save_pretrained(str(adapter))
            early = any(getattr(cb, "early_stopping_patience_counter", 0) >= config.early_stopping_patience > 0
                        for cb in trainer.callback_handler.callbacks)
            summary = progress.summary(state) if progress else {}
            update_status(run_dir, state="completed", ended_at=now_iso(), step=state.global_step,
                          max_steps=state.max_steps, best_checkpoint=state.best_model_checkpoint,
                          best_metric=state.best_metric, stopped_early=early, train_seconds=train_seconds,
                          train_loss=round(float(result.training_loss), 4), adapter=str(adapter),
                          num_input_tokens_seen=int(state.num_input_tokens_seen or 0), **summary,
                          peak_gpu_mem_gb_per_process=peaks if any(p is not None for p in peaks) else None,
                          cpu_seconds=_cpu_seconds())
        return read_json(run_dir / "status.json", {})
    except Cancelled:
        if main:
            update_status(run_dir, state="cancelled", ended_at=now_iso(), train_seconds=round(time.time() - t0, 1))
        return read_json(run_dir / "status.json", {})
    except BaseException as exc:  # recorded in one line for the UI, then re-raised with its traceback for the log
        if main:
            if _is_oom(exc):
                step = trainer.state.global_step if trainer is not None else 0
                message = oom_message(config, resolved, step)
            else:
                message = one_line(exc)
            update_status(run_dir, state="failed", ended_at=now_iso(), error=message,
                          train_seconds=round(time.time() - t0, 1))
        raise


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
        ddp_find_unused_parameters=False if _world() > 1 else None,
        ddp_backend=("nccl" if cuda else "gloo") if _world() > 1 else None,
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
                   val_rows: list[dict[str, Any]], run_dir: Path, flag: _CancelFlag) -> tuple[Any, Any]:
    if resolved.backend == "unsloth":
        return _unsloth_trainer(config, resolved, base, train_rows, val_rows, run_dir, flag)
    return _transformers_trainer(config, resolved, base, train_rows, val_rows, run_dir, flag)


def _callbacks(config: TrainConfig, run_dir: Path, flag: _CancelFlag) -> list[Any]:
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
    from workbench.errors import OfflineError

    if not Path(base).exists() and isinstance(exc, OSError):
        return OfflineError(f"Could not load {base!r} from the Hugging Face Hub ({type(exc).__name__}). Offline, use a "
                            f"packaged model (smollm2-135m) or a local folder.")
    return ModelError(f"Could not load {base!r} for training: {one_line(exc)}")


def _unsloth_trainer(config: TrainConfig, resolved: ResolvedSettings, base: str, train_rows: list[dict[str, Any]],
                     val_rows: list[dict[str, Any]], run_dir: Path, flag: _CancelFlag) -> tuple[Any, Any]:
    import unsloth  # noqa: F401  (first: it patches transformers / trl / peft on import)
    from unsloth import FastLanguageModel

    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    try:
        model, tokenizer = FastLanguageModel.from_pretrained(
            model_name=base, max_seq_length=resolved.max_seq_length, dtype=_dtype(resolved.dtype),
            load_in_4bit=resolved.load_in_4bit, random_state=config.random_state,
            use_gradient_checkpointing=_unsloth_gc(resolved), **_device_map(resolved), **_offload_kwargs(resolved))
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
    train, _ = tokenize_rows(train_rows, tokenizer, config.prompt_template, resolved.max_seq_length)
    val, _ = tokenize_rows(val_rows, tokenizer, config.prompt_template, resolved.max_seq_length)
    if _rank() == 0:
        update_status(run_dir, train_rows=len(train), validation_rows=len(val))
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


def _offload_kwargs(resolved: ResolvedSettings) -> dict[str, Any]:
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
    if _world() > 1:
        import torch

        torch.cuda.set_device(local)
    return {"device_map": {"": local}}


def _unsloth_gc(resolved: ResolvedSettings) -> Any:
    return {"unsloth": "unsloth", "on": True, "off": False}[resolved.gradient_checkpointing]


def no_cache_in_training(model: Any) -> None:
    """Training needs no KV cache, and with one transformers skips the packed-sequence mask: padding-free rows
    would attend to each other (checked in tests/test_finetune.py). Unsloth's get_peft_model does the same."""
    model.config.use_cache = False
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.use_cache = True  # generation after training still caches


def _fix_pad(tokenizer: Any) -> None:
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token


def _transformers_trainer(config: TrainConfig, resolved: ResolvedSettings, base: str, train_rows: list[dict[str, Any]],
                          val_rows: list[dict[str, Any]], run_dir: Path, flag: _CancelFlag) -> tuple[Any, Any]:
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
    train, _ = tokenize_rows(train_rows, tokenizer, config.prompt_template, resolved.max_seq_length)
    val, _ = tokenize_rows(val_rows, tokenizer, config.prompt_template, resolved.max_seq_length)
    if _rank() == 0:
        update_status(run_dir, train_rows=len(train), validation_rows=len(val))
    args = _training_arguments(config, resolved, run_dir, TrainingArguments)
    trainer = Trainer(model=model, args=args, train_dataset=Dataset.from_list(train),
                      eval_dataset=Dataset.from_list(val) if val else None, processing_class=tokenizer,
                      data_collator=CompletionCollator(tokenizer.pad_token_id, resolved.batching == "padding_free"),
                      callbacks=_callbacks(config, run_dir, flag))
    return trainer, tokenizer


# --- progress ----------------------------------------------------------------------------------------------


def make_progress_callback(run_dir: Path, flag: _CancelFlag | None = None) -> Any:
    """A `TrainerCallback` that appends one JSON line per log to metrics.jsonl and keeps status.json current.

    tokens/s counts real (non-padding) input tokens over training time only (evaluations excluded), across all
    processes. Under torchrun only rank 0 writes; the cancel flag is agreed on by all ranks (an all-reduce), so
    every process stops at the same step.
    """
    from transformers import TrainerCallback

    class ProgressCallback(TrainerCallback):
        def __init__(self) -> None:
            self.train_time = 0.0  # seconds spent in optimizer steps this session (evaluations and saves excluded)
            self.mark = time.perf_counter()
            self.session_steps = 0
            self.start_step = 0
            self.last_tokens = 0
            self.last_time = 0.0
            self.eval_time = 0.0
            self.evals = 0
            self.peaks: dict[str, float] = {}  # GiB by phase: load (before training), train (steps), eval
            self.memory_trace = _MemoryTrace.from_env()  # diagnostics only (bench/memsnap.py)

        def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            self.last_tokens = int(state.num_input_tokens_seen or 0)
            self.start_step = state.global_step  # > 0 when resumed from a checkpoint
            self._peak("load")
            if self.memory_trace:
                self.memory_trace.start()
            self.mark = time.perf_counter()
            if state.is_world_process_zero:
                update_status(run_dir, state="running", step=state.global_step, max_steps=state.max_steps,
                              start_step=state.global_step)

        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            now = time.perf_counter()
            self.train_time += now - self.mark
            self.mark = now
            self.session_steps += 1
            if self.memory_trace:
                self.memory_trace.step(state, self.session_steps, _gpu_mem_gb())
            self._peak("train")
            if _agree_on_cancel(flag, args):
                control.should_save = True
                control.should_training_stop = True
            if state.is_world_process_zero:
                update_status(run_dir, step=state.global_step, epoch=round(state.epoch or 0.0, 4),
                              eta_s=self._eta(state))

        def on_evaluate(self, args: Any, state: Any, control: Any, metrics: Any = None, **kw: Any) -> None:
            if metrics and "eval_runtime" in metrics:
                self.eval_time += float(metrics["eval_runtime"])
                self.evals += 1
            self._peak("eval")
            self.mark = time.perf_counter()

        def on_save(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            self.mark = time.perf_counter()
            if state.is_world_process_zero:
                update_status(run_dir, last_checkpoint=str(Path(args.output_dir) / f"checkpoint-{state.global_step}"),
                              best_checkpoint=state.best_model_checkpoint)

        def _peak(self, phase: str) -> None:
            """Fold the allocator's peak since the last call into `phase`, then start a new window: the peaks of
            loading, of training steps and of evaluations are kept apart (the evaluation batch is not the training one)."""
            mem = _gpu_mem_gb(reset=True)
            if mem is not None:
                self.peaks[phase] = max(self.peaks.get(phase, 0.0), mem)

        def peak(self, phase: str = "train") -> float | None:
            """The highest peak of any phase so far (GiB), after folding the current window into `phase`."""
            self._peak(phase if self.session_steps else "load")
            return max(self.peaks.values()) if self.peaks else None

        def summary(self, state: Any) -> dict[str, Any]:
            """Whole-session throughput and memory, for status.json at the end."""
            tokens = int(state.num_input_tokens_seen or 0)
            out: dict[str, Any] = {
                "train_step_seconds": round(self.train_time, 2),
                "tokens_per_s": round(tokens / self.train_time, 1) if self.train_time > 0 and not self.start_step else None}
            if self.peaks:
                out["peak_gpu_mem_gb"] = max(self.peaks.values())
                out["peak_gpu_mem_gb_by_phase"] = dict(self.peaks)
            return out

        def _eta(self, state: Any) -> float | None:
            if not self.session_steps or not state.max_steps:
                return None
            per_step = self.train_time / self.session_steps
            left = max(state.max_steps - state.global_step, 0)
            per_eval = self.eval_time / self.evals if self.evals else 0.0
            evals_left = left / max(float(getattr(state, "eval_steps", 0) or 0), 1.0) if per_eval else 0
            return round(left * per_step + evals_left * per_eval, 1)

        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
            if not state.is_world_process_zero or not logs:
                return
            record: dict[str, Any] = {"step": state.global_step, "epoch": round(state.epoch or 0.0, 4)}
            for key in ("loss", "eval_loss", "learning_rate", "grad_norm"):
                if key in logs and logs[key] is not None:
                    record[key] = float(logs[key])
            if "loss" not in record and "eval_loss" not in record:
                return  # the final summary (train_runtime ...) is in status.json
            if "loss" in record:
                tokens = int(state.num_input_tokens_seen or 0)
                dt = self.train_time - self.last_time
                if dt > 0 and tokens > self.last_tokens:
                    record["tokens_per_s"] = round((tokens - self.last_tokens) / dt, 1)
                self.last_tokens, self.last_time = tokens, self.train_time
                record["tokens_seen"] = tokens
            mem = self.peak()
            if mem is not None:
                record["gpu_mem_gb"] = mem
            eta = self._eta(state)
            if eta is not None:
                record["eta_s"] = eta
            record["time"] = round(time.time(), 3)
            append_metrics(run_dir, record)
            self.mark = time.perf_counter()

    return ProgressCallback()


class _MemoryTrace:
    """Where a training step's GPU memory goes: with WORKBENCH_CUDA_MEMORY_SNAPSHOT=PREFIX, the allocator's history of
    the first WORKBENCH_CUDA_MEMORY_SNAPSHOT_STEPS (default 3) steps goes to PREFIX.pickle (torch's memory_viz
    format, read by bench/memsnap.py) and every step's peak and tokens to PREFIX.steps.jsonl. Costs time while it
    records; nothing happens without the variable or without CUDA."""

    def __init__(self, prefix: str, steps: int) -> None:
        self.prefix, self.steps, self.recording, self.tokens = prefix, steps, False, 0

    @classmethod
    def from_env(cls) -> _MemoryTrace | None:
        import sys

        prefix = os.environ.get("WORKBENCH_CUDA_MEMORY_SNAPSHOT")
        torch = sys.modules.get("torch")
        if not prefix or torch is None or not torch.cuda.is_available() or _rank() != 0:
            return None
        return cls(prefix, int(os.environ.get("WORKBENCH_CUDA_MEMORY_SNAPSHOT_STEPS", "3")))

    def _write(self, record: dict[str, Any]) -> None:
        with open(self.prefix + ".steps.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

    def start(self) -> None:
        import torch

        self._write({"start_allocated_gb": torch.cuda.memory_allocated() / 2**30})
        torch.cuda.memory._record_memory_history(max_entries=2_000_000, stacks="python")
        self.recording = True

    def step(self, state: Any, step: int, peak_gb: float | None) -> None:
        import torch

        tokens = int(state.num_input_tokens_seen or 0)
        self._write({"step": step, "peak_gb": peak_gb, "tokens": tokens - self.tokens,
                     "allocated_gb": torch.cuda.memory_allocated() / 2**30})
        self.tokens = tokens
        if self.recording and step >= self.steps:
            torch.cuda.memory._dump_snapshot(self.prefix + ".pickle")
            torch.cuda.memory._record_memory_history(enabled=None)
            self.recording = False


def _agree_on_cancel(flag: _CancelFlag | None, args: Any) -> bool:
    local = bool(flag and flag.set)
    if _world() <= 1:
        return local
    import torch
    import torch.distributed as dist

    if not dist.is_available() or not dist.is_initialized():
        return local
    t = torch.tensor([1 if local else 0], device=args.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def _gather(value: Any) -> list[Any]:
    """`value` from every process (rank order); [value] without torch.distributed."""
    import sys

    torch = sys.modules.get("torch")
    if _world() <= 1 or torch is None or not torch.distributed.is_initialized():
        return [value]
    out: list[Any] = [None] * _world()
    torch.distributed.all_gather_object(out, value)
    return out


def _gpu_mem_gb(reset: bool = False) -> float | None:
    """Peak GPU memory allocated by this process (GiB) since the start or the last reset; None without CUDA."""
    import sys

    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available():
        return None
    peak = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    if reset:
        torch.cuda.reset_peak_memory_stats()
    return peak


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

    from workbench.models import resolve_model

    report = progress or (lambda m, f: None)
    adapter_dir, out_dir = Path(adapter_dir), Path(out_dir)
    if not (adapter_dir / "adapter_config.json").is_file():
        raise ModelError(f"{adapter_dir} has no adapter_config.json: finish (or resume) the run first.")
    path = resolve_model(base_model, workspace)
    report(f"Loading {base_model}", 0.1)
    cuda = torch.cuda.is_available()
    dtype = (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16) if cuda else torch.float32
    try:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
        model = PeftModel.from_pretrained(model, str(adapter_dir))
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        raise _load_error(path, exc) from exc
    report("Merging the adapter into the weights", 0.5)
    merged = model.merge_and_unload()
    tmp = out_dir.with_name(out_dir.name + ".partial")
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)
    merged.save_pretrained(str(tmp))
    tok_src = adapter_dir if (adapter_dir / "tokenizer_config.json").is_file() else Path(path)
    AutoTokenizer.from_pretrained(str(tok_src)).save_pretrained(str(tmp))
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)
    report(f"Merged model saved in {out_dir}", 1.0)
    return out_dir


def collect_metrics(path: Path) -> list[dict[str, Any]]:
    """The lines of a metrics.jsonl (a half-written last line is skipped)."""
    out = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    for line in lines:
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def eta_text(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "?"
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"
