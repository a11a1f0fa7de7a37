from __future__ import annotations

import json

import pytest

from workbench.errors import ModelError
from workbench.models import (DEFAULT_MODEL, REGISTRY, detect_backends, detect_device, estimate_memory_gb, hub_reachable,
                              resolve_model)


def test_registry_has_the_tutorial_model_and_offline_defaults():
    assert REGISTRY[DEFAULT_MODEL].source == "packaged"
    assert REGISTRY["llama3-open-ko-8b"].hub_id == "beomi/Llama-3-Open-Ko-8B-Instruct-preview"
    assert "ko" in REGISTRY["gemma3-270m"].languages
    assert any(s.four_bit_prequantized for s in REGISTRY.values())


def test_resolve_model_accepts_hub_ids_and_rejects_nonsense(tmp_path):
    assert resolve_model("beomi/Llama-3-Open-Ko-8B-Instruct-preview") == "beomi/Llama-3-Open-Ko-8B-Instruct-preview"
    assert resolve_model("llama3-open-ko-8b") == "beomi/Llama-3-Open-Ko-8B-Instruct-preview"
    with pytest.raises(ModelError, match="neither a registered model"):
        resolve_model("no such model")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="has no config.json"):
        resolve_model(str(tmp_path / "empty"))


def test_device_and_backends_offline():
    d = detect_device()
    assert d.kind in ("cpu", "cuda") and d.memory_gb > 0
    names = {b.name: b for b in detect_backends(check_hub=True)}
    assert set(names) == {"unsloth", "bitsandbytes", "transformers+peft", "huggingface-hub"}
    assert names["huggingface-hub"].available is False  # HF_HUB_OFFLINE=1 in conftest: no traffic at all
    assert hub_reachable()[1].startswith("offline")


def test_memory_estimate_matches_the_h200_measurements():
    # shared/gpu/README.md: Llama-3-8B LoRA peak 6.2 GiB in 4-bit, 16 GiB in bf16
    assert 5.0 <= estimate_memory_gb(8.0, four_bit=True) <= 7.5
    assert 15.0 <= estimate_memory_gb(8.0, four_bit=False) <= 19.0


@pytest.mark.slow
def test_packaged_llm_converts_once_loads_offline_and_answers(smollm2_dir, workspace):
    from workbench.models import load_causal_lm

    marker = json.loads((smollm2_dir / "workbench-model.json").read_text())
    assert marker["key"] == "smollm2-135m"
    model, tok = load_causal_lm("smollm2-135m", workspace)
    assert tok.eos_token == "<|im_end|>" and tok.pad_token == "<|endoftext|>"
    assert 130e6 < sum(p.numel() for p in model.parameters()) < 140e6
    inputs = tok.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                     add_generation_prompt=True, return_tensors="pt", return_dict=True)
    out = model.generate(**inputs, max_new_tokens=20, do_sample=False)
    answer = tok.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
    assert "Paris" in answer
