"""Splitting documents into chunks: by characters, by UTF-8 bytes, by tokens, and recursively.

- `characters`: fixed windows of `chunk_size` characters, each starting `chunk_size - chunk_overlap`
  characters after the previous one. Predictable; cuts words anywhere.
- `bytes`: fixed windows of at most `chunk_size` UTF-8 bytes that never end inside a character. A
  Hangul syllable is 3 bytes, so 300 bytes hold 100 Korean syllables but 300 English letters: the
  tutorial's point about measuring text in bytes.
- `tokens`: LangChain's recursive splitter measuring length in tokens of the embedding model's own
  tokenizer (what the model actually reads, and what its 512-token limit counts).
- `recursive`: LangChain's `RecursiveCharacterTextSplitter` (paragraphs, then lines, then words,
  then characters), measuring length in characters. The default.

Every chunk knows where it came from: `start_index` is its character offset in the document, so
`document.page_content[start_index : start_index + len(chunk)] == chunk` always holds.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Literal

from langchain_core.documents import Document

from workbench.common.config import BaseConfig, setting
from workbench.common.errors import ConfigError

TokenCounter = Callable[[str], int]
Splitter = Literal["recursive", "characters", "bytes", "tokens"]

UNITS: dict[str, str] = {"recursive": "characters", "characters": "characters", "bytes": "bytes", "tokens": "tokens"}

# Metadata keys a chunk gets from its splitter (also recorded on the collection).
SPLITTER_KEYS = ("splitter", "chunk_size", "chunk_overlap")


@dataclasses.dataclass
class ChunkingConfig(BaseConfig):
    """How documents are cut into chunks before they are embedded."""

    splitter: Splitter = setting(
        "recursive",
        "recursive: paragraphs, then lines, then words (characters); characters / bytes: fixed windows; "
        "tokens: recursive, counted in the embedding model's tokens.",
        help_ko="recursive: 문단, 줄, 단어 순으로 나눔(글자 수 기준); characters / bytes: 고정 크기 창; "
        "tokens: 임베딩 모델의 토큰 수 기준으로 recursive 분할.", label="Splitter", label_ko="분할 방식",
        choice_labels={
            "recursive": ("recursive (paragraphs, lines, words)", "재귀 (문단, 줄, 단어)"),
            "characters": ("characters", "글자"),
            "bytes": ("UTF-8 bytes", "UTF-8 바이트"),
            "tokens": ("tokens", "토큰"),
        },
    )
    chunk_size: int = setting(
        500, "Largest chunk, in the splitter's unit (characters, bytes or tokens).",
        help_ko="청크의 최대 크기 (분할기 단위: 글자, 바이트, 토큰).", min=1, max=100_000, label="Chunk size", label_ko="청크 크기", step=50,
    )
    chunk_overlap: int = setting(
        50, "How much of the end of one chunk the next chunk repeats, in the same unit.",
        help_ko="다음 청크가 앞 청크의 끝부분을 얼마나 겹쳐서 다시 포함할지 (같은 단위).", min=0, max=100_000,
        label="Overlap", label_ko="겹침", step=10,
    )

    def validate(self) -> None:
        super().validate()
        if self.chunk_overlap > self.chunk_size:
            raise ConfigError(
                f"ChunkingConfig: got a larger chunk overlap ({self.chunk_overlap}) than chunk size ({self.chunk_size}). "
                f"Make the overlap smaller than the size (10-20% of it is usual).",
                ko=f"ChunkingConfig: 청크 겹침({self.chunk_overlap})이 청크 크기({self.chunk_size})보다 큽니다. "
                   f"겹침을 크기보다 작게 하세요 (보통 크기의 10-20%)."
            )
        if self.chunk_overlap == self.chunk_size:
            raise ConfigError(
                f"ChunkingConfig: got a chunk overlap ({self.chunk_overlap}) equal to the chunk size ({self.chunk_size}); "
                f"chunks would never advance. Make the overlap smaller than the size.",
                ko=f"ChunkingConfig: 청크 겹침({self.chunk_overlap})이 청크 크기({self.chunk_size})와 같아 청크가 "
                   f"앞으로 나아가지 않습니다. 겹침을 크기보다 작게 하세요."
            )
        if self.splitter == "bytes" and self.chunk_size < 4:
            raise ConfigError(
                f"ChunkingConfig: chunk_size = {self.chunk_size} bytes cannot hold every character "
                f"(a UTF-8 character takes up to 4 bytes). Use chunk_size >= 4.",
                ko=f"ChunkingConfig: chunk_size = {self.chunk_size}바이트로는 모든 문자를 담을 수 없습니다 (UTF-8 "
                   f"문자 하나는 최대 4바이트). chunk_size >= 4를 쓰세요."
            )

    @property
    def unit(self) -> str:
        """What `chunk_size` counts: "characters", "bytes" or "tokens"."""
        return UNITS[self.splitter]

    def metadata(self) -> dict[str, str | int]:
        """The settings every chunk (and the collection) records."""
        return {"splitter": self.splitter, "chunk_size": self.chunk_size, "chunk_overlap": self.chunk_overlap}


@dataclasses.dataclass(frozen=True)
class TextChunk:
    """A piece of a text and where it starts (in characters)."""

    start: int
    text: str

    @property
    def end(self) -> int:
        return self.start + len(self.text)

    @property
    def chars(self) -> int:
        return len(self.text)

    @property
    def bytes(self) -> int:
        return len(self.text.encode("utf-8"))


def utf8_len(text: str) -> int:
    return len(text.encode("utf-8"))


# --- the splitters ----------------------------------------------------------------------------


def _character_windows(text: str, size: int, overlap: int) -> list[TextChunk]:
    step = size - overlap
    out = []
    for start in range(0, len(text), step):
        out.append(TextChunk(start, text[start : start + size]))
        if start + size >= len(text):
            break
    return out


def _byte_windows(text: str, size: int, overlap: int) -> list[TextChunk]:
    """Windows of at most `size` UTF-8 bytes made of whole characters; the next window starts at the
    first character from which at most `overlap` bytes of the previous window remain."""
    widths = [utf8_len(c) for c in text]
    out: list[TextChunk] = []
    start = 0
    while start < len(text):
        end, used = start, 0
        while end < len(text) and used + widths[end] <= size:
            used += widths[end]
            end += 1
        out.append(TextChunk(start, text[start:end]))
        if end >= len(text):
            break
        # Walk back from the end while the overlap still fits; always move forward by >= 1 character.
        nxt, tail = end, 0
        while nxt - 1 > start and tail + widths[nxt - 1] <= overlap:
            nxt -= 1
            tail += widths[nxt]
        start = nxt
    return out


def _recursive(text: str, size: int, overlap: int, length: Callable[[str], int]) -> list[TextChunk]:
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    splitter = RecursiveCharacterTextSplitter(chunk_size=size, chunk_overlap=overlap, length_function=length)
    out: list[TextChunk] = []
    cursor = 0
    for piece in splitter.split_text(text):
        # Chunks come in document order and each starts after the previous start: search forward.
        start = text.find(piece, cursor)
        if start < 0:  # cannot happen for text the splitter only trimmed; keep the invariant anyway
            raise AssertionError(f"chunk not found in its text: {piece[:40]!r}")
        out.append(TextChunk(start, piece))
        cursor = start + 1
    return out


def split_text(text: str, config: ChunkingConfig, token_counter: TokenCounter | None = None) -> list[TextChunk]:
    """Split one text. Chunks that are only whitespace are dropped.

    Args:
        text: the text.
        config: splitter, size and overlap.
        token_counter: counts tokens of the embedding model's tokenizer; needed by `tokens`
            (`workbench.kb.embeddings.token_counter(model)` gives one).

    Raises:
        ConfigError: the `tokens` splitter without a token counter.
    """
    if config.splitter == "characters":
        chunks = _character_windows(text, config.chunk_size, config.chunk_overlap)
    elif config.splitter == "bytes":
        chunks = _byte_windows(text, config.chunk_size, config.chunk_overlap)
    elif config.splitter == "tokens":
        if token_counter is None:
            raise ConfigError(
                "ChunkingConfig: the 'tokens' splitter counts tokens of the embedding model's tokenizer, and none "
                "was given. Pass token_counter=workbench.kb.embeddings.token_counter(model), or use splitter='recursive'.",
                ko="ChunkingConfig: 'tokens' 분할기는 임베딩 모델의 토크나이저로 토큰을 세는데, 토크나이저가 "
                   "주어지지 않았습니다. token_counter=workbench.kb.embeddings.token_counter(model)을 넘기거나 "
                   "splitter='recursive'를 쓰세요."
            )
        chunks = _recursive(text, config.chunk_size, config.chunk_overlap, token_counter)
    else:
        chunks = _recursive(text, config.chunk_size, config.chunk_overlap, len)
    return [c for c in chunks if c.text.strip()]


def split_documents(
    documents: Sequence[Document], config: ChunkingConfig, token_counter: TokenCounter | None = None
) -> list[Document]:
    """Split documents into chunk documents.

    Each chunk's metadata: the document's metadata (`source`, `page`, ...), plus `chunk_index` (its
    position among the chunks of the same source), `start_index` (character offset in its document),
    and the splitter settings (`splitter`, `chunk_size`, `chunk_overlap`).
    """
    out: list[Document] = []
    per_source: dict[str, int] = {}
    settings = config.metadata()
    for doc in documents:
        source = str(doc.metadata.get("source", ""))
        for chunk in split_text(doc.page_content, config, token_counter):
            index = per_source.get(source, 0)
            per_source[source] = index + 1
            meta = {**doc.metadata, "chunk_index": index, "start_index": chunk.start, **settings}
            out.append(Document(page_content=chunk.text, metadata=meta))
    return out
