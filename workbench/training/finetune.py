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

The trainer itself is `workbench.training.trainer` (`train_run(run_dir)`, the entry point of `python -m workbench train
RUN_DIR`, a child process started by `workbench.training.runs`), its progress callbacks `workbench.training.train_progress`.
Heavy imports (torch, transformers, trl, unsloth) stay inside functions.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from workbench.common.config import BaseConfig, setting
from workbench.common.errors import ConfigError
from workbench.common.texts import Text
from workbench.models.prompts import PromptTemplate

if TYPE_CHECKING:  # pragma: no cover
    from workbench.models.registry import DeviceInfo


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
    "context": ("context", "context_collection", "context_k", "context_max_chars", "context_oracle_share",
                "context_lang"),
}
"""How the page groups the settings (every field appears once)."""


@dataclasses.dataclass
class TrainConfig(BaseConfig):
    """One LoRA supervised fine-tuning run: data, model, LoRA, schedule, evaluation."""

    # --- data ---------------------------------------------------------------------------------------------
    dataset: str = setting("shop-qa", "Dataset to train on (a split dataset under datasets/): train.csv trains, "
                           "validation.csv is evaluated during training.",
                           help_ko="학습할 데이터셋 (datasets/ 아래 분할된 데이터셋): train.csv로 학습하고 validation.csv로 "
                           "학습 중 평가합니다.", label="Dataset", label_ko="데이터셋")
    prompt_template: PromptTemplate = setting(
        "alpaca", "How a row becomes a prompt: 'alpaca' (with ### Input: when a row has one), 'alpaca-tutorial' "
        "(the tutorial's instruction/response template), 'chat' (the model's own chat template). Inference uses the same.",
        help_ko="행을 프롬프트로 만드는 방식: 'alpaca' (입력이 있으면 ### Input: 포함), 'alpaca-tutorial' (튜토리얼의 "
        "지시/응답 템플릿), 'chat' (모델 자체의 채팅 템플릿). 추론도 같은 템플릿을 씁니다.", label="Prompt template", label_ko="프롬프트 템플릿")
    max_seq_length: int = setting(0, "Longest row in tokens; longer rows are cut. 0 = auto: 4096 on a GPU (the "
                                  "tutorial), 512 on CPU.",
                                  help_ko="행의 최대 토큰 수; 더 긴 행은 잘립니다. 0 = 자동: GPU 4096 (튜토리얼), CPU 512.",
                                  min=0, max=131072,
                                  label="Max sequence length (0 = auto)", label_ko="최대 시퀀스 길이 (0 = 자동)", step=256)
    batching: Literal["auto", "padding_free", "padded"] = setting(
        "auto", "How the rows of a micro-batch are laid out: 'padding_free' concatenates them into one sequence (no pad "
        "tokens, no compute spent on padding); 'padded' pads every row to the longest in its batch (the tutorial), which "
        "Unsloth runs as compiled blocks on a GPU at the cost of more activation memory. auto = 'padded' on a GPU, "
        "'padding_free' on CPU. Choose 'padding_free' when GPU memory is tight.",
        help_ko="마이크로배치의 행 배치 방식: 'padding_free'는 행들을 패딩 없이 한 시퀀스로 이어 붙이고 (패딩에 계산을 쓰지 "
        "않음), 'padded'는 배치에서 가장 긴 행에 맞춰 패딩합니다 (튜토리얼; GPU에서는 Unsloth가 컴파일된 블록으로 실행하지만 "
        "활성값 메모리를 더 씁니다). auto = GPU에서 'padded', CPU에서 'padding_free'. GPU 메모리가 빠듯하면 'padding_free'를 "
        "고르세요.", label="Batch layout", label_ko="배치 방식",
        choice_labels={"padding_free": ("padding-free", "패딩 없음"), "padded": ("padded", "패딩")})
    group_by_length: Literal["auto", "on", "off"] = setting(
        "auto", "Draw each micro-batch from rows of similar length (Transformers' LengthGroupedSampler), so padded "
        "batches carry little padding; the rows per step stay the same, only their order changes. auto = on for padded "
        "batches, off for padding-free ones (nothing to save).",
        help_ko="길이가 비슷한 행끼리 마이크로배치를 묶습니다 (Transformers의 LengthGroupedSampler). 패딩 배치의 패딩이 "
        "줄어듭니다; 스텝당 행 수는 같고 순서만 바뀝니다. auto = 패딩 배치면 켬, 패딩 없는 배치면 끔 (줄일 것이 없음).",
        label="Group rows by length", label_ko="길이별로 묶기")
    # --- retrieved context in the training prompts (RAG-aware fine-tuning: workbench.training.train_context) ---------
    context: Literal["none", "retrieved", "raft"] = setting(
        "none", "Train on bare questions ('none'), or on the RAG prompt the fine-tuned + RAG source answers with: "
        "'retrieved' puts the chunks retrieved for each question in front of it; 'raft' (RAFT, Zhang et al. 2024) puts the "
        "row's own source chunk among distractors in a share of rows and distractors only in the rest, so the model "
        "learns to read the context when it holds the answer. Built once per run (context.jsonl in the run folder).",
        help_ko="맨 질문으로 학습할지('none'), 파인튜닝 + RAG 소스가 답할 때 쓰는 RAG 프롬프트로 학습할지 정합니다: "
        "'retrieved'는 각 질문에 검색된 청크를 앞에 넣고, 'raft'(RAFT, Zhang 외 2024)는 일부 행에는 그 행의 출처 청크를 방해 "
        "청크 사이에, 나머지 행에는 방해 청크만 넣어 답이 문맥에 있을 때 읽도록 가르칩니다. 실행마다 한 번 만들어 실행 폴더의 "
        "context.jsonl에 저장합니다.", label="Retrieved context in training", label_ko="학습 프롬프트의 검색 문맥",
        choice_labels={"none": ("none (bare questions)", "없음 (맨 질문)"), "retrieved": ("retrieved chunks", "검색된 청크"),
                       "raft": ("RAFT: oracle + distractors", "RAFT: 정답 청크 + 방해 청크")})
    context_collection: str = setting("", "Knowledge-base collection the training context is retrieved from (with its "
                                      "own retrieval settings); needed when context is not 'none'.",
                                      help_ko="학습 문맥을 검색할 지식 베이스 컬렉션 (그 컬렉션의 검색 설정으로); context가 "
                                      "'none'이 아니면 필요합니다.", label="Context collection", label_ko="문맥 컬렉션")
    context_k: int = setting(3, "Chunks in each training prompt; the fine-tuned + RAG source of this run reads the same "
                             "number.", help_ko="학습 프롬프트마다 넣을 청크 수; 이 실행의 파인튜닝 + RAG 소스도 같은 수를 "
                             "읽습니다.", min=1, max=20, label="Context chunks (k)", label_ko="문맥 청크 수 (k)")
    context_max_chars: int = setting(0, "Characters kept of each chunk (cut at a word boundary), in training and in "
                                     "this run's fine-tuned + RAG answers; 0 = whole chunks. Shorter chunks keep CPU "
                                     "training affordable.",
                                     help_ko="청크마다 남길 글자 수 (단어 경계에서 자름), 학습과 이 실행의 파인튜닝 + RAG 답변에 "
                                     "같이 적용; 0 = 청크 전체. 짧을수록 CPU 학습이 빨라집니다.", min=0, max=100_000,
                                     label="Characters per chunk (0 = all)", label_ko="청크당 글자 수 (0 = 전체)", step=50)
    context_oracle_share: float = setting(0.8, "raft: share of rows whose context holds their own source chunk (RAFT's "
                                          "P); the rest get distractors only and learn to answer from memory.",
                                          help_ko="raft: 문맥에 자기 출처 청크가 들어가는 행의 비율 (RAFT의 P); 나머지 행은 방해 "
                                          "청크만 받아 기억으로 답하는 법을 배웁니다.", min=0.0, max=1.0,
                                          label="Rows with the oracle chunk (raft)", label_ko="정답 청크가 있는 행 비율 (raft)",
                                          step=0.05)
    context_lang: Literal["ko", "en"] = setting("ko", "Language of the RAG instruction around the question (the "
                                                "workbench's default RAG template).",
                                                help_ko="질문을 감싸는 RAG 지시문의 언어 (워크벤치 기본 RAG 템플릿).",
                                                label="RAG instruction language", label_ko="RAG 지시문 언어",
                                                choice_labels={"ko": ("Korean", "한국어"), "en": ("English", "영어")})
    # --- model --------------------------------------------------------------------------------------------
    base_model: str = setting("smollm2-135m", "Base model: a registry key, a local folder or a Hub id. The offline "
                              "default is the packaged SmolLM2; the tutorial's is llama3-open-ko-8b (GPU + Hub).",
                              help_ko="기본 모델: 레지스트리 키, 로컬 폴더, Hub id. 오프라인 기본값은 내장 SmolLM2, 튜토리얼은 "
                              "llama3-open-ko-8b (GPU + Hub).", label="Base model", label_ko="기본 모델")
    backend: Literal["auto", "unsloth", "transformers"] = setting(
        "auto", "Training library: 'unsloth' (fast kernels, 4-bit on CUDA, CPU fallback), 'transformers' "
        "(Transformers + PEFT, the baseline). auto = Unsloth when installed.",
        help_ko="학습 라이브러리: 'unsloth' (빠른 커널, CUDA에서 4비트, CPU 대체), 'transformers' (Transformers + PEFT, "
        "기준선). auto = 설치되어 있으면 Unsloth.", label="Training library", label_ko="학습 라이브러리",
        choice_labels={
            "unsloth": ("Unsloth", "Unsloth"),
            "transformers": ("Transformers + PEFT", "Transformers + PEFT"),
        })
    quantization: Literal["auto", "4bit", "none"] = setting(
        "auto", "Load the base weights in 4-bit nf4 (QLoRA). auto = 4-bit on CUDA with bitsandbytes, none elsewhere.",
        help_ko="기본 가중치를 4비트 nf4로 불러옵니다 (QLoRA). auto = CUDA와 bitsandbytes가 있으면 4비트, 아니면 없음.",
        label="Quantization", label_ko="양자화", choice_labels={"4bit": ("4-bit (QLoRA)", "4비트 (QLoRA)")})
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = setting(
        "auto", "Compute precision. auto = bfloat16 where the GPU supports it (else float16); on CPU float32 weights "
        "with bfloat16 autocast where the CPU has AMX / AVX512-BF16.",
        help_ko="계산 정밀도. auto = GPU가 지원하면 bfloat16 (아니면 float16); CPU는 float32 가중치에 AMX / AVX512-BF16이 "
        "있으면 bfloat16 autocast.", label="Compute precision", label_ko="계산 정밀도")
    gradient_checkpointing: Literal["auto", "unsloth", "on", "off"] = setting(
        "auto", "Recompute activations in the backward pass to save memory. auto = 'unsloth' on a GPU (offloaded, the "
        "tutorial), off on CPU.",
        help_ko="메모리를 아끼려고 역전파에서 활성값을 다시 계산합니다. auto = GPU에서 'unsloth' (튜토리얼), CPU에서 끔.",
        label="Gradient checkpointing", label_ko="그레이디언트 체크포인팅",
        choice_labels={"unsloth": ("Unsloth (offloaded)", "Unsloth (오프로드)")})
    offload_embedding: Literal["auto", "on", "off", "unsloth"] = setting(
        "auto", "Keep the input embedding table in host RAM (Unsloth's offload_embedding): token lookups run on the CPU "
        "and only the looked-up rows go to the GPU, so the table's GPU memory is free for activations. auto = on for a "
        "one-GPU Unsloth run whose embeddings are not tied to the output layer, off otherwise; 'unsloth' leaves it to "
        "Unsloth (only when GPU memory is tight: the tutorial).",
        help_ko="입력 임베딩 표를 호스트 RAM에 둡니다 (Unsloth의 offload_embedding): 토큰 조회는 CPU에서 하고 조회한 행만 "
        "GPU로 보내므로, 표가 쓰던 GPU 메모리를 활성값에 쓸 수 있습니다. auto = GPU 한 장의 Unsloth 실행이고 임베딩이 "
        "출력층과 묶여 있지 않으면 켬, 아니면 끔; 'unsloth'는 Unsloth에 맡깁니다 (GPU 메모리가 빠듯할 때만: 튜토리얼).",
        label="Offload the embedding table", label_ko="임베딩 표 오프로드",
        choice_labels={"unsloth": ("left to Unsloth", "Unsloth에 맡김")})
    # --- LoRA ---------------------------------------------------------------------------------------------
    lora_r: int = setting(16, "LoRA rank: the size of the low-rank update (more = more capacity, more memory).",
                          help_ko="LoRA 랭크: 저랭크 업데이트의 크기 (클수록 표현력과 메모리 증가).", min=1, max=1024,
                          label="LoRA rank (r)", label_ko="LoRA 랭크 (r)")
    lora_alpha: int = setting(32, "LoRA alpha: the update is scaled by alpha / r (alpha / sqrt(r) with rsLoRA).",
                              help_ko="LoRA 알파: 업데이트에 alpha / r을 곱합니다 (rsLoRA는 alpha / sqrt(r)).", min=1, max=4096,
                              label="LoRA alpha", label_ko="LoRA 알파")
    lora_dropout: float = setting(0.05, "Dropout on the LoRA input during training.",
                                  help_ko="학습 중 LoRA 입력에 적용하는 드롭아웃.", min=0.0, max=0.9,
                                  label="LoRA dropout", label_ko="LoRA 드롭아웃", step=0.01)
    target_modules: tuple[str, ...] = setting(default_factory=lambda: LORA_TARGETS,
                                              help="Linear layers that get a LoRA adapter (the tutorial: all seven projections).",
                                              help_ko="LoRA 어댑터를 붙일 선형 층 (튜토리얼: 7개 프로젝션 모두).",
                                              label="Target modules", label_ko="대상 모듈")
    lora_bias: Literal["none", "all", "lora_only"] = setting("none", "Which biases train ('none' as in the tutorial).",
                                                             help_ko="학습할 바이어스 (튜토리얼처럼 'none').",
                                                             label="Trained biases", label_ko="학습할 바이어스",
                                                             choice_labels={
                                                                 "all": ("all", "전부"),
                                                                 "lora_only": ("LoRA layers only", "LoRA 층만"),
                                                             })
    use_rslora: bool = setting(False, "Rank-stabilised LoRA: scale by alpha / sqrt(r).",
                               help_ko="랭크 안정화 LoRA: alpha / sqrt(r)로 스케일.",
                               label="Rank-stabilised LoRA (rsLoRA)", label_ko="랭크 안정화 LoRA (rsLoRA)")
    use_loftq: bool = setting(False, "Initialise LoRA with LoftQ (reduces 4-bit quantisation error; slower start).",
                              help_ko="LoftQ로 LoRA를 초기화합니다 (4비트 양자화 오차 감소; 시작이 느림).",
                              label="LoftQ initialisation", label_ko="LoftQ 초기화")
    random_state: int = setting(123, "Seed of the LoRA weight initialisation.", help_ko="LoRA 가중치 초기화 시드.",
                                min=0, max=2**32 - 1, label="LoRA initialisation seed", label_ko="LoRA 초기화 시드")
    # --- schedule -----------------------------------------------------------------------------------------
    per_device_train_batch_size: int = setting(8, "Rows per micro-batch on each device (the tutorial: 2).",
                                               help_ko="장치당 마이크로배치의 행 수 (튜토리얼: 2).", min=1, max=4096,
                                               label="Batch size per device", label_ko="장치당 배치 크기")
    gradient_accumulation_steps: int = setting(1, "Micro-batches per optimizer step (the tutorial: 4). Rows per step = "
                                               "batch x accumulation x processes.",
                                               help_ko="옵티마이저 스텝당 마이크로배치 수 (튜토리얼: 4). 스텝당 행 수 = 배치 x 누적 x 프로세스.",
                                               min=1, max=1024,
                                               label="Gradient accumulation steps", label_ko="그레이디언트 누적 스텝")
    num_train_epochs: float = setting(0.0, "Passes over the training rows. 0 = auto: 3 on a GPU (the tutorial), 1 on "
                                      "CPU. Leave it 0 when you set max_steps.",
                                      help_ko="학습 데이터를 도는 횟수. 0 = 자동: GPU 3 (튜토리얼), CPU 1. max_steps를 쓰면 0으로 두세요.",
                                      min=0.0, max=1000, label="Epochs (0 = auto)", label_ko="에폭 (0 = 자동)", step=0.5)
    max_steps: int = setting(0, "Optimizer steps to train instead of epochs (0 = train by epochs). The Trainer silently "
                             "lets max_steps override epochs, so setting both is refused.",
                             help_ko="에폭 대신 학습할 옵티마이저 스텝 수 (0 = 에폭 기준). Trainer는 max_steps가 에폭을 조용히 "
                             "덮어쓰므로 둘 다 설정할 수 없습니다.", min=0, max=10_000_000,
                             label="Max steps (0 = by epochs)", label_ko="최대 스텝 (0 = 에폭 기준)", step=10)
    learning_rate: float = setting(2e-4, "Peak learning rate (the tutorial: 2e-4).",
                                   help_ko="최대 학습률 (튜토리얼: 2e-4).", min=1e-8, max=1.0,
                                   label="Learning rate", label_ko="학습률", step=1e-5)
    warmup_steps: int = setting(5, "Steps of linear warm-up from 0 to the peak learning rate.",
                                help_ko="학습률을 0에서 최대까지 선형으로 올리는 스텝 수.", min=0, max=1_000_000,
                                label="Warm-up steps", label_ko="워밍업 스텝")
    lr_scheduler_type: Literal["cosine", "linear", "constant", "constant_with_warmup"] = setting(
        "cosine", "Learning-rate schedule after the warm-up.", help_ko="워밍업 이후 학습률 스케줄.",
        label="Learning-rate schedule", label_ko="학습률 스케줄",
        choice_labels={
            "cosine": ("cosine", "코사인"),
            "linear": ("linear", "선형"),
            "constant": ("constant", "고정"),
            "constant_with_warmup": ("constant after the warm-up", "워밍업 후 고정"),
        })
    optim: Literal["auto", "adamw_8bit", "paged_adamw_8bit", "adamw_torch", "adamw_torch_fused", "sgd"] = setting(
        "auto", "Optimizer. auto = adamw_8bit on CUDA with bitsandbytes (the tutorial), adamw_torch elsewhere.",
        help_ko="옵티마이저. auto = CUDA와 bitsandbytes가 있으면 adamw_8bit (튜토리얼), 아니면 adamw_torch.",
        label="Optimizer", label_ko="옵티마이저")
    weight_decay: float = setting(0.01, "Weight decay of the LoRA weights.", help_ko="LoRA 가중치의 가중치 감쇠.",
                                  min=0.0, max=1.0, label="Weight decay", label_ko="가중치 감쇠", step=0.01)
    seed: int = setting(123, "Seed of data order and dropout.", help_ko="데이터 순서와 드롭아웃의 시드.", min=0, max=2**32 - 1,
                        label="Seed", label_ko="시드")
    # --- evaluation, checkpoints, early stopping ----------------------------------------------------------
    eval_strategy: Literal["steps", "epoch", "no"] = setting(
        "steps", "When to compute the validation loss: every eval_steps, every epoch, or never.",
        help_ko="검증 손실을 계산할 때: eval_steps마다, 에폭마다, 또는 안 함.", label="Evaluate", label_ko="평가 시점",
        choice_labels={
            "steps": ("every eval_steps", "eval_steps마다"),
            "epoch": ("every epoch", "에폭마다"),
            "no": ("never", "안 함"),
        })
    eval_steps: int = setting(10, "Optimizer steps between evaluations (with eval_strategy = 'steps').",
                              help_ko="평가 사이의 옵티마이저 스텝 수 (eval_strategy = 'steps'일 때).", min=1, max=1_000_000,
                              label="Steps between evaluations", label_ko="평가 간격 (스텝)")
    save_strategy: Literal["steps", "epoch", "no"] = setting(
        "steps", "When to write a checkpoint (for resuming and for the best model). Must match eval_strategy when the "
        "best model is loaded at the end.",
        help_ko="체크포인트를 쓸 때 (재개와 최적 모델용). 마지막에 최적 모델을 불러오려면 eval_strategy와 같아야 합니다.",
        label="Save checkpoints", label_ko="체크포인트 저장 시점",
        choice_labels={
            "steps": ("every save_steps", "save_steps마다"),
            "epoch": ("every epoch", "에폭마다"),
            "no": ("never", "안 함"),
        })
    save_steps: int = setting(10, "Optimizer steps between checkpoints; a multiple of eval_steps when the best model "
                              "is loaded at the end.",
                              help_ko="체크포인트 사이의 스텝 수; 최적 모델을 불러오려면 eval_steps의 배수.", min=1, max=1_000_000,
                              label="Steps between checkpoints", label_ko="체크포인트 간격 (스텝)")
    save_total_limit: int = setting(2, "Checkpoints kept on disk (the best one is always kept).",
                                    help_ko="디스크에 남길 체크포인트 수 (최적 체크포인트는 항상 유지).", min=1, max=1000,
                                    label="Checkpoints kept", label_ko="남길 체크포인트 수")
    load_best_model_at_end: bool = setting(True, "Keep the checkpoint with the best validation metric as the final "
                                           "adapter, not the last one.",
                                           help_ko="마지막이 아니라 검증 지표가 가장 좋은 체크포인트를 최종 어댑터로 씁니다.",
                                           label="Keep the best checkpoint", label_ko="최적 체크포인트 사용")
    metric_for_best_model: str = setting("eval_loss", "Metric that picks the best checkpoint (lower is better for a loss).",
                                         help_ko="최적 체크포인트를 고르는 지표 (손실은 낮을수록 좋음).",
                                         label="Metric for the best checkpoint", label_ko="최적 체크포인트 지표")
    early_stopping_patience: int = setting(3, "Stop after this many evaluations without improvement (0 = never stop early).",
                                           help_ko="개선 없는 평가가 이만큼 이어지면 멈춥니다 (0 = 조기 종료 안 함).", min=0, max=1000,
                                           label="Early-stopping patience", label_ko="조기 종료 인내 횟수")
    early_stopping_threshold: float = setting(0.001, "How much the metric must improve to count as an improvement.",
                                              help_ko="개선으로 칠 최소 지표 변화량.", min=0.0, max=100.0,
                                              label="Early-stopping threshold", label_ko="조기 종료 기준값", step=0.001)
    logging_steps: int = setting(1, "Optimizer steps between progress lines (loss, learning rate, tokens/s).",
                                 help_ko="진행 기록 (손실, 학습률, 토큰/초) 사이의 스텝 수.", min=1, max=100_000,
                                 label="Steps between log lines", label_ko="기록 간격 (스텝)")
    # --- scale --------------------------------------------------------------------------------------------
    num_processes: int = setting(1, "Data-parallel processes (one per GPU; gloo on CPU), started with torchrun. "
                                 "Rows per step grow with it.",
                                 help_ko="데이터 병렬 프로세스 수 (GPU당 하나; CPU는 gloo), torchrun으로 시작. 스텝당 행 수가 "
                                 "함께 늘어납니다.", min=1, max=64, label="Processes (GPUs)", label_ko="프로세스 수 (GPU)")

    _label = "TrainConfig"

    def validate(self) -> None:
        super().validate()
        n = self._name()
        if not self.dataset:
            raise ConfigError(f"{n}.dataset is empty. Pick a split dataset (`python -m workbench dataset list`).",
                              ko=f"{n}.dataset이 비어 있습니다. 분할된 데이터셋을 고르세요 (`python -m workbench "
                                 f"dataset list`).")
        if not self.base_model:
            raise ConfigError(f"{n}.base_model is empty. Use a registry key such as 'smollm2-135m', a folder or a Hub id.",
                              ko=f"{n}.base_model이 비어 있습니다. 'smollm2-135m' 같은 등록 키, 폴더 또는 Hub "
                                 f"id를 쓰세요.")
        if not self.target_modules:
            raise ConfigError(f"{n}.target_modules is empty. Name at least one linear layer, e.g. q_proj.",
                              ko=f"{n}.target_modules가 비어 있습니다. 선형 층을 하나 이상 적으세요. 예: q_proj.")
        # Trap 1: TrainingArguments silently lets max_steps override num_train_epochs.
        if self.max_steps > 0 and self.num_train_epochs > 0:
            raise ConfigError(
                f"{n}: max_steps = {self.max_steps} would silently override num_train_epochs = {self.num_train_epochs}. "
                f"Set one of them and the other to 0.",
                ko=f"{n}: max_steps = {self.max_steps}이(가) num_train_epochs = {self.num_train_epochs}를 조용히 "
                   f"덮어씁니다. 하나만 정하고 다른 하나는 0으로 하세요.")
        # Trap 2: load_best_model_at_end needs matching save / eval strategies and a metric.
        if self.load_best_model_at_end:
            if self.eval_strategy == "no":
                raise ConfigError(f"{n}: load_best_model_at_end needs evaluations; eval_strategy is 'no'. "
                                  f"Set eval_strategy to 'steps' or 'epoch', or turn load_best_model_at_end off.",
                                  ko=f"{n}: load_best_model_at_end에는 평가가 필요한데 eval_strategy가 'no'입니다. "
                                     f"eval_strategy를 'steps'나 'epoch'로 하거나 load_best_model_at_end를 끄세요.")
            if self.save_strategy != self.eval_strategy:
                raise ConfigError(f"{n}: load_best_model_at_end needs save_strategy = eval_strategy "
                                  f"(got save '{self.save_strategy}', eval '{self.eval_strategy}'). Make them the same.",
                                  ko=f"{n}: load_best_model_at_end에는 save_strategy = eval_strategy가 필요합니다 "
                                     f"(지금 save '{self.save_strategy}', eval '{self.eval_strategy}'). 둘을 "
                                     f"같게 하세요.")
            if self.eval_strategy == "steps" and self.save_steps % self.eval_steps:
                raise ConfigError(f"{n}: load_best_model_at_end needs save_steps ({self.save_steps}) to be a multiple of "
                                  f"eval_steps ({self.eval_steps}). Use save_steps = {self.eval_steps * max(1, self.save_steps // self.eval_steps)}.",
                                  ko=f"{n}: load_best_model_at_end에는 save_steps({self.save_steps})가 eval_steps({self.eval_steps})의 "
                                     f"배수여야 합니다. save_steps = {self.eval_steps * max(1, self.save_steps // self.eval_steps)}를 "
                                     f"쓰세요.")
            if not self.metric_for_best_model:
                raise ConfigError(f"{n}: load_best_model_at_end needs metric_for_best_model (e.g. 'eval_loss').",
                                  ko=f"{n}: load_best_model_at_end에는 metric_for_best_model이 필요합니다 (예: "
                                     f"'eval_loss').")
        if self.early_stopping_patience > 0:
            if self.eval_strategy == "no":
                raise ConfigError(f"{n}: early stopping (patience {self.early_stopping_patience}) needs evaluations; "
                                  f"eval_strategy is 'no'. Set eval_strategy, or early_stopping_patience = 0.",
                                  ko=f"{n}: 조기 종료(patience {self.early_stopping_patience})에는 평가가 필요한데 "
                                     f"eval_strategy가 'no'입니다. eval_strategy를 정하거나 early_stopping_patience "
                                     f"= 0으로 하세요.")
            if not self.load_best_model_at_end:
                raise ConfigError(f"{n}: early stopping needs load_best_model_at_end = True (so the best checkpoint, not "
                                  f"the last, becomes the adapter). Turn it on, or set early_stopping_patience = 0.",
                                  ko=f"{n}: 조기 종료에는 load_best_model_at_end = True가 필요합니다 (마지막이 "
                                     f"아니라 가장 좋은 체크포인트가 어댑터가 되도록). 켜거나 early_stopping_patience "
                                     f"= 0으로 하세요.")
        if self.context != "none" and not self.context_collection.strip():
            raise ConfigError(f"{n}.context = {self.context!r} needs context_collection: the collection to retrieve the "
                              f"training context from. Set it (`--set context_collection=NAME`), or context = 'none'.",
                              ko=f"{n}.context = {self.context!r}에는 context_collection이 필요합니다: 학습 문맥을 검색할 "
                                 f"컬렉션입니다. 정하거나(`--set context_collection=NAME`) context = 'none'으로 하세요.")
        if self.use_loftq and self.quantization == "4bit":
            raise ConfigError(f"{n}: use_loftq initialises LoRA from full-precision weights; it cannot be combined with "
                              f"quantization = '4bit'. Use one of them.",
                              ko=f"{n}: use_loftq는 LoRA를 전체 정밀도 가중치로 초기화하므로 quantization = '4bit'와 "
                                 f"함께 쓸 수 없습니다. 하나만 쓰세요.")

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
                          "(`pip install --no-deps -r requirements-nodeps.txt`) or use backend = 'transformers'.",
                          ko="TrainConfig.backend = 'unsloth'인데 Unsloth가 설치되어 있지 않습니다. 설치하거나(`pip "
                             "install --no-deps -r requirements-nodeps.txt`) backend = 'transformers'를 쓰세요.")
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
    from workbench.models.registry import detect_device

    device = device or detect_device()
    cuda = device.kind == "cuda"
    has_bnb = importlib.util.find_spec("bitsandbytes") is not None
    notes: list[str] = []
    backend = resolve_backend(config.backend)
    if config.quantization == "auto":
        four_bit = cuda and has_bnb
        notes.append(Text("4-bit: yes (CUDA + bitsandbytes)", "4비트: 예 (CUDA + bitsandbytes)") if four_bit else
                     Text("4-bit: no (bitsandbytes is not installed)", "4비트: 아니오 (bitsandbytes 없음)") if cuda else
                     Text("4-bit: no (no CUDA GPU)", "4비트: 아니오 (CUDA GPU 없음)"))
    else:
        four_bit = config.quantization == "4bit"
        if four_bit and not (cuda and has_bnb):
            raise ConfigError("TrainConfig.quantization = '4bit' needs a CUDA GPU and bitsandbytes; this machine has "
                              f"{'no CUDA GPU' if not cuda else 'no bitsandbytes'}. Use quantization = 'none' or 'auto'.",
                              ko="TrainConfig.quantization = '4bit'에는 CUDA GPU와 bitsandbytes가 필요한데, 이 컴퓨터에는 " f"{'CUDA GPU가' if not cuda else 'bitsandbytes가'} 없습니다. quantization = 'none'이나 'auto'를 쓰세요.")
    dtype, autocast = _resolve_dtype(config.dtype, device, notes)
    max_len = config.max_seq_length or (4096 if cuda else 512)
    if not config.max_seq_length:
        notes.append(Text(f"max_seq_length: {max_len} ({'GPU' if cuda else 'CPU'} default)",
                          f"max_seq_length: {max_len} ({'GPU' if cuda else 'CPU'} 기본값)"))
    gc = config.gradient_checkpointing
    if gc == "auto":
        gc = ("unsloth" if backend == "unsloth" else "on") if cuda else "off"
        notes.append(Text(f"gradient checkpointing: {gc}", f"그레이디언트 체크포인팅: {_ON_OFF_KO.get(gc, gc)}"))
    elif gc == "unsloth" and backend != "unsloth":
        gc = "on"
    optim = config.optim
    if optim == "auto":
        optim = "adamw_8bit" if cuda and has_bnb else "adamw_torch"
        notes.append(Text(f"optimizer: {optim}", f"옵티마이저: {optim}"))
    elif "8bit" in optim and not (cuda and has_bnb):
        raise ConfigError(f"TrainConfig.optim = {optim!r} needs bitsandbytes on a CUDA GPU. Use 'adamw_torch' on this "
                          f"machine, or 'auto'.",
                          ko=f"TrainConfig.optim = {optim!r}에는 CUDA GPU의 bitsandbytes가 필요합니다. 이 컴퓨터에서는 "
                             f"'adamw_torch'나 'auto'를 쓰세요.")
    epochs = config.num_train_epochs or (3.0 if cuda else 1.0)
    if config.max_steps > 0:
        notes.append(Text(f"length: {config.max_steps} steps", f"길이: {config.max_steps} 스텝"))
    elif not config.num_train_epochs:
        notes.append(Text(f"epochs: {epochs:g} ({'GPU' if cuda else 'CPU'} default)",
                          f"에폭: {epochs:g} ({'GPU' if cuda else 'CPU'} 기본값)"))
    batching = config.batching
    if batching == "auto":
        batching = "padded" if cuda else "padding_free"
        notes.append(Text(f"batching: {batching}", f"배치 방식: {batching}"))
    grouped = config.group_by_length == "on" or (config.group_by_length == "auto" and batching == "padded")
    if config.group_by_length == "auto" and grouped:
        notes.append(Text("rows grouped by length", "길이별로 묶은 행"))
    offload = config.offload_embedding
    if offload == "auto":
        # Tied tables (the output layer reads the same weights) stay: the offload would free nothing. Several
        # processes stay too: DDP refuses a model whose parameters span CPU and GPU.
        offload = "on" if cuda and backend == "unsloth" and config.num_processes == 1 and not _ties_embeddings(
            config.base_model) else "off"
        if offload == "on":
            notes.append(Text("input embeddings in host RAM", "입력 임베딩은 호스트 RAM에"))
    elif offload in ("on", "unsloth") and backend != "unsloth":
        if offload == "on":
            raise ConfigError("TrainConfig.offload_embedding = 'on' needs the Unsloth backend (it is Unsloth's "
                              "offload_embedding). Use 'auto' or 'off' with backend = 'transformers'.",
                              ko="TrainConfig.offload_embedding = 'on'에는 Unsloth 백엔드가 필요합니다 (Unsloth의 "
                                 "offload_embedding입니다). backend = 'transformers'에서는 'auto'나 'off'를 "
                                 "쓰세요.")
        offload = "off"
    return ResolvedSettings(device=device.kind, device_name=device.name, backend=backend, load_in_4bit=four_bit,
                            dtype=dtype, autocast=autocast, max_seq_length=max_len, gradient_checkpointing=gc,
                            optim=optim, num_train_epochs=epochs, notes=notes, batching=batching, group_by_length=grouped,
                            offload_embedding=offload)


_ON_OFF_KO = {"on": "켬", "off": "끔"}

def _resolve_dtype(choice: str, device: "DeviceInfo", notes: list[str]) -> tuple[str, str | None]:
    """(weight dtype, autocast) for a dtype setting on `device`; "auto" is noted in `notes`."""
    cuda = device.kind == "cuda"
    if choice == "auto":
        if cuda:
            dtype, autocast = ("bfloat16", "bf16") if device.bf16 else ("float16", "fp16")
        else:
            dtype, autocast = "float32", "bf16" if cpu_has_bf16() else None
        notes.append(Text(f"dtype: {dtype} weights" + (f", {autocast} autocast" if autocast else ""),
                          f"dtype: {dtype} 가중치" + (f", {autocast} 자동 혼합 정밀도" if autocast else "")))
        return dtype, autocast
    if not cuda and choice == "float16":
        raise ConfigError("TrainConfig.dtype = 'float16' needs a CUDA GPU. Use 'float32' or 'bfloat16' on CPU, or 'auto'.",
                          ko="TrainConfig.dtype = 'float16'에는 CUDA GPU가 필요합니다. CPU에서는 'float32'나 "
                             "'bfloat16', 또는 'auto'를 쓰세요.")
    autocast = {"bfloat16": "bf16", "float16": "fp16"}.get(choice) if cuda else ("bf16" if choice == "bfloat16" else None)
    # bf16 master weights lose LoRA updates on CPU; autocast keeps fp32 weights
    return ("float32" if not cuda and choice == "bfloat16" else choice), autocast


def _model_config(base_model: str) -> dict[str, Any]:
    """The config.json of a local model folder or of a converted registry model; {} where none can be read here
    (a Hub id offline, a registry model not converted yet)."""
    from workbench.models.registry import REGISTRY, local_model_dir

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


def machine_equivalent(config: TrainConfig, device: "DeviceInfo | None" = None) -> tuple[TrainConfig, list[str]]:
    """`config` with the settings this machine cannot run replaced by "auto" (which `resolve_settings` turns into this
    machine's equivalent), and a note per replaced setting, in both languages (`Text`). A config that runs here comes
    back unchanged with no notes."""
    from workbench.models.registry import detect_device

    device = device or detect_device()
    cuda = device.kind == "cuda" and importlib.util.find_spec("bitsandbytes") is not None
    changes: dict[str, str] = {}
    if config.quantization == "4bit" and not cuda:
        changes["quantization"] = "auto"
    if "8bit" in config.optim and not cuda:
        changes["optim"] = "auto"
    if config.dtype == "float16" and device.kind != "cuda":
        changes["dtype"] = "auto"
    if not changes:
        return config, []
    fixed = config.replace(**changes)
    resolved = resolve_settings(fixed, device)
    now = {"quantization": "4bit" if resolved.load_in_4bit else "none", "optim": resolved.optim, "dtype": resolved.dtype}
    notes = [Text(f"{name}: {getattr(config, name)} → {now[name]} (this machine)",
                  f"{name}: {getattr(config, name)} → {now[name]} (이 컴퓨터)") for name in changes]
    return fixed, notes


def fit_report(config: TrainConfig, device: "DeviceInfo | None" = None) -> dict[str, Any]:
    """Whether a config's base model fits this machine: device, 4-bit, estimated and available memory (GiB)."""
    from workbench.models.registry import REGISTRY, detect_device, estimate_memory_gb

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
