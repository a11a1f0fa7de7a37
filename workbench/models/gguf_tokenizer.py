"""A SentencePiece-BPE tokenizer rebuilt from a GGUF file's own vocabulary (the packaged Gemma 3).

Why this exists: transformers 5.17 converts a GGUF Gemma tokenizer (`GGUFGemmaConverter`) into a *Unigram*
model whose piece scores are the GGUF scores. Gemma's SentencePiece model is BPE, and its scores are merge
priorities (-rank: 0 for single characters, down to about -255,000 for the last merge). As Unigram
log-probabilities they make every long piece lose to single characters, so the converted tokenizer reads text
one character at a time ("Below is an instruction that describes a task." is 46 tokens instead of 9); the
model, trained on BPE pieces, then reads shredded text.

The rebuilt tokenizer is what SentencePiece-BPE does, in the Hugging Face `tokenizers` BPE model:
- merges: every split of a normal piece into two vocabulary pieces, ranked by the merged piece's score (the
  higher, the earlier), as transformers' `generate_merges` does for slow SentencePiece-BPE tokenizers;
- spaces become `▁` (no dummy prefix: Gemma does not add one; a vocabulary that wants one is refused),
  characters outside the vocabulary fall back to their UTF-8 bytes (`<0xE2>` ...);
- control pieces (`<bos>`, `<eos>`, `<start_of_turn>`, `<unused…>` …) are special tokens; user-defined pieces
  (runs of newlines, spaces and tabs, HTML tags …) are matched whole before BPE, as SentencePiece does;
- `<bos>` is added in front when the GGUF says so (`tokenizer.ggml.add_bos_token`), as Gemma's own tokenizer does
  (the workbench itself always tokenizes with `add_special_tokens=False` and writes BOS through its templates).

Only the GGUF's metadata is read (header and key/value pairs, a few MB at the front of the file), so the
tokenizer can be rebuilt without loading or converting any weights, straight from the package's chunk files.
"""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Iterable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from workbench.common.errors import ModelError
from workbench.common.progress import Progress
from workbench.common.texts import Text

if TYPE_CHECKING:  # pragma: no cover
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerBase


TOKENIZER_VERSION = 3
"""Written into a converted model's marker (`tokenizer_version`). 1 (or absent): the tokenizer as transformers'
GGUF loader made it; 2: rebuilt here as SentencePiece-BPE; 3: Gemma's EOS is the GGUF's <eos> (was <end_of_turn>).
A folder with an older version is repaired on next use."""

# SentencePiece piece types as stored in `tokenizer.ggml.token_type`.
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6

_GGUF_MAGIC = b"GGUF"
# GGUF value types -> (struct format, size); 8 = string, 9 = array.
_SCALARS = {0: ("B", 1), 1: ("b", 1), 2: ("H", 2), 3: ("h", 2), 4: ("I", 4), 5: ("i", 4), 6: ("f", 4), 7: ("?", 1),
            10: ("Q", 8), 11: ("q", 8), 12: ("d", 8)}
_STRING, _ARRAY = 8, 9


class _ChainedReader:
    """Reads a sequence of files as one stream (the GGUF package ships its file in chunks)."""

    def __init__(self, paths: Iterable[Path]):
        self._paths = list(paths)
        self._file: IO[bytes] | None = None

    def read(self, n: int) -> bytes:
        out = bytearray()
        while len(out) < n:
            if self._file is None:
                if not self._paths:
                    break
                self._file = open(self._paths.pop(0), "rb")
            data = self._file.read(n - len(out))
            if not data:
                self._file.close()
                self._file = None
                continue
            out += data
        return bytes(out)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


def read_gguf_metadata(paths: Path | Iterable[Path], prefix: str = "") -> dict[str, Any]:
    """The key/value metadata of a GGUF file (or of its chunks, in order), without reading any tensor.

    Args:
        paths: the GGUF file, or its chunk files in order.
        prefix: keep only keys that start with it (e.g. "tokenizer.ggml.").

    Returns:
        key -> value: numbers, strings, booleans, and lists for arrays (strings decoded as UTF-8).

    Raises:
        ModelError: the file is not a GGUF file or ends inside its metadata.
    """
    chunks = [paths] if isinstance(paths, Path) else list(paths)
    stream = _ChainedReader(chunks)
    name = chunks[0].name if chunks else "(no file)"

    def take(n: int) -> bytes:
        data = stream.read(n)
        if len(data) != n:
            raise ModelError(f"{name}: the GGUF metadata ends early (wanted {n} bytes, got {len(data)}). "
                             f"The file is truncated: reinstall the model's package.",
                             ko=f"{name}: GGUF 메타데이터가 일찍 끝납니다 ({n}바이트가 필요한데 {len(data)}바이트). "
                                f"파일이 잘렸습니다: 모델 패키지를 다시 설치하세요.")
        return data

    try:
        if take(4) != _GGUF_MAGIC:
            raise ModelError(f"{name} is not a GGUF file (it does not start with 'GGUF').",
                             ko=f"{name}은(는) GGUF 파일이 아닙니다 ('GGUF'로 시작하지 않습니다).")
        version = struct.unpack("<I", take(4))[0]
        endian = "<"
        if version & 0xFFFF == 0:  # a big-endian file reads as a huge version number
            endian, version = ">", struct.unpack(">I", struct.pack("<I", version))[0]
        if version < 2:
            raise ModelError(f"{name} is GGUF version {version}; only versions 2 and later are supported.",
                             ko=f"{name}은(는) GGUF 버전 {version}입니다. 버전 2 이상만 지원합니다.")
        _tensors, n_kv = struct.unpack(endian + "QQ", take(16))

        def string() -> str:
            (length,) = struct.unpack(endian + "Q", take(8))
            return take(length).decode("utf-8", errors="replace")

        def value(kind: int) -> Any:
            if kind in _SCALARS:
                fmt, size = _SCALARS[kind]
                return struct.unpack(endian + fmt, take(size))[0]
            if kind == _STRING:
                return string()
            if kind == _ARRAY:
                elem, count = struct.unpack(endian + "IQ", take(12))
                if elem in _SCALARS:  # one read and one unpack for a numeric array (the 262k scores)
                    fmt, size = _SCALARS[elem]
                    return list(struct.unpack(f"{endian}{count}{fmt}", take(count * size)))
                return [value(elem) for _ in range(count)]
            raise ModelError(f"{name}: unknown GGUF value type {kind} in the metadata.",
                             ko=f"{name}: 메타데이터에 알 수 없는 GGUF 값 형식 {kind}이(가) 있습니다.")

        meta: dict[str, Any] = {}
        for _ in range(n_kv):
            key = string()
            (kind,) = struct.unpack(endian + "I", take(4))
            val = value(kind)
            if key.startswith(prefix):
                meta[key] = val
        return meta
    finally:
        stream.close()


@dataclasses.dataclass(frozen=True)
class GGUFVocab:
    """The tokenizer part of a GGUF file's metadata (`tokenizer.ggml.*`)."""

    model: str  # "llama" = SentencePiece, "gpt2" = byte-level BPE ...
    tokens: list[str]
    scores: list[float]
    types: list[int]  # NORMAL, CONTROL, USER_DEFINED, BYTE ...
    bos_id: int | None = None
    eos_id: int | None = None
    unk_id: int | None = None
    pad_id: int | None = None
    add_bos: bool = False
    add_eos: bool = False
    add_space_prefix: bool = False

    @classmethod
    def from_gguf(cls, paths: Path | Iterable[Path]) -> GGUFVocab:
        """Read the vocabulary from a GGUF file or its chunks (metadata only: well under a second).

        Raises:
            ModelError: not a GGUF file, truncated, or without a SentencePiece vocabulary with scores.
        """
        meta = read_gguf_metadata(paths, prefix="tokenizer.ggml.")

        def get(key: str, default: Any = None) -> Any:
            return meta.get(f"tokenizer.ggml.{key}", default)

        tokens, scores, types = get("tokens"), get("scores"), get("token_type")
        if not tokens or scores is None or types is None or not len(tokens) == len(scores) == len(types):
            raise ModelError("The GGUF file has no SentencePiece vocabulary with scores and piece types "
                             "(tokenizer.ggml.tokens / scores / token_type); its tokenizer cannot be rebuilt here.",
                             ko="GGUF 파일에 점수와 조각 형식이 있는 SentencePiece 어휘(tokenizer.ggml.tokens "
                                "/ scores / token_type)가 없어 토크나이저를 여기서 다시 만들 수 없습니다.")
        return cls(model=get("model", ""), tokens=tokens, scores=[float(s) for s in scores],
                   types=[int(t) for t in types],
                   bos_id=get("bos_token_id"), eos_id=get("eos_token_id"), unk_id=get("unknown_token_id"),
                   pad_id=get("padding_token_id"), add_bos=bool(get("add_bos_token", False)),
                   add_eos=bool(get("add_eos_token", False)), add_space_prefix=bool(get("add_space_prefix", False)))

    def token(self, token_id: int | None) -> str | None:
        return None if token_id is None else self.tokens[token_id]


def build_sentencepiece_bpe(vocab: GGUFVocab) -> Tokenizer:
    """A `tokenizers.Tokenizer` that tokenizes like the SentencePiece-BPE model the vocabulary came from.

    Raises:
        ModelError: the vocabulary is not a SentencePiece one ("llama" in GGUF terms).
    """
    from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, processors
    from transformers.convert_slow_tokenizer import generate_merges

    if vocab.model != "llama":
        raise ModelError(f"The GGUF tokenizer model is {vocab.model!r}, not a SentencePiece one ('llama'): "
                         f"it needs no rebuilding; load it with transformers as it is.",
                         ko=f"GGUF 토크나이저 모델이 SentencePiece('llama')가 아니라 {vocab.model!r}입니다: 다시 "
                            f"만들 필요가 없으니 transformers로 그대로 불러오세요.")
    if vocab.add_space_prefix:  # Llama-2-style SentencePiece; transformers' own GGUF converter handles those
        raise ModelError("The GGUF tokenizer adds a dummy space prefix (tokenizer.ggml.add_space_prefix): only "
                         "SentencePiece-BPE without it (Gemma's) is rebuilt here; load it with transformers.",
                         ko="GGUF 토크나이저가 앞에 빈칸을 붙입니다 (tokenizer.ggml.add_space_prefix): 여기서는 "
                            "그것이 없는 SentencePiece-BPE(Gemma)만 다시 만듭니다. transformers로 불러오세요.")
    ids = {piece: i for i, piece in enumerate(vocab.tokens)}
    # Merge targets: normal pieces only, ranked by score (SentencePiece-BPE merges the pair whose merged piece
    # scores highest). Control, user-defined and byte pieces are never the result of a merge.
    normal = [(piece, score) for piece, score, kind in zip(vocab.tokens, vocab.scores, vocab.types) if kind == NORMAL]
    merges = generate_merges(ids, normal)
    unk = vocab.token(vocab.unk_id)
    tok = Tokenizer(models.BPE(vocab=ids, merges=merges, unk_token=unk, byte_fallback=True, fuse_unk=True))
    tok.normalizer = normalizers.Replace(" ", "▁")
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()])
    # Matched in the raw text before BPE, like SentencePiece's user-defined symbols. The GGUF spells the
    # whitespace runs among them with real spaces, so they match the text before spaces become "▁".
    tok.add_special_tokens([AddedToken(p, special=True, normalized=False)
                            for p, kind in zip(vocab.tokens, vocab.types) if kind == CONTROL])
    tok.add_tokens([AddedToken(p, special=False, normalized=False)
                    for p, kind in zip(vocab.tokens, vocab.types) if kind == USER_DEFINED])
    bos, eos = vocab.token(vocab.bos_id), vocab.token(vocab.eos_id)
    bos_part = [f"{bos}:0"] if vocab.add_bos and bos else []
    single = bos_part + ["$A:0"] + ([f"{eos}:0"] if vocab.add_eos and eos else [])
    specials = [(t, ids[t]) for t in {bos if vocab.add_bos else None, eos if vocab.add_eos else None} if t]
    tok.post_processor = processors.TemplateProcessing(single=" ".join(single), pair=" ".join(single + ["$B:1"]),
                                                       special_tokens=specials)
    if tok.get_vocab_size(with_added_tokens=True) != len(vocab.tokens):
        raise ModelError(f"The rebuilt tokenizer has {tok.get_vocab_size(with_added_tokens=True)} tokens, the GGUF "
                         f"{len(vocab.tokens)}: the vocabulary has duplicate pieces and cannot be rebuilt as is.",
                         ko=f"다시 만든 토크나이저의 토큰은 {tok.get_vocab_size(with_added_tokens=True)}개, GGUF는 "
                            f"{len(vocab.tokens)}개입니다: 어휘에 중복 조각이 있어 그대로 다시 만들 수 없습니다.")
    return tok


# Round-trip checks run on every rebuilt tokenizer once saved (and their token counts go into the marker).
CHECK_SAMPLES = ("Below is an instruction that describes a task.",
                 "아이스크림은 3번 통로 냉동고(계산대 바로 옆)에 있습니다.")


def save_sentencepiece_bpe(vocab: GGUFVocab, folder: Path, *, eos_token: str | None = None,
                           pad_token: str | None = None, chat_template: str | None = None,
                           progress: Progress | None = None) -> tuple[PreTrainedTokenizerBase, dict[str, Any]]:
    """Build the tokenizer of `vocab`, save it as a transformers tokenizer into `folder`, and load it back.

    `eos_token` / `pad_token` / `chat_template` override the GGUF's (whose eos is Gemma's `<eos>`, while the
    chat model ends a turn with `<end_of_turn>`).

    Returns:
        (the tokenizer as loaded back from `folder`, what was done for the model's marker: tokenizer kind and
        version, token counts of `CHECK_SAMPLES`, seconds).

    Raises:
        ModelError: the vocabulary cannot be rebuilt, or the rebuilt tokenizer fails its round-trip check.
    """
    import time

    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    report = progress or (lambda msg, frac: None)
    t0 = time.perf_counter()
    report(Text(f"Building the tokenizer: BPE merges from {len(vocab.tokens):,} scored pieces",
                f"토크나이저 만드는 중: 점수가 있는 조각 {len(vocab.tokens):,}개에서 BPE 병합"), 0.1)
    backend = build_sentencepiece_bpe(vocab)
    cls: type[PreTrainedTokenizerFast] = PreTrainedTokenizerFast
    if vocab.model == "llama" and vocab.token(vocab.bos_id) == "<bos>":
        from transformers import GemmaTokenizer

        cls = GemmaTokenizer
    tok = cls(tokenizer_object=backend, bos_token=vocab.token(vocab.bos_id),
              eos_token=eos_token or vocab.token(vocab.eos_id), unk_token=vocab.token(vocab.unk_id),
              pad_token=pad_token or vocab.token(vocab.pad_id),
              add_bos_token=vocab.add_bos, add_eos_token=vocab.add_eos)
    if chat_template:
        tok.chat_template = chat_template
    report(Text("Saving the tokenizer",
                "토크나이저 저장 중"), 0.6)
    folder.mkdir(parents=True, exist_ok=True)
    tok.save_pretrained(str(folder))
    report(Text("Checking the saved tokenizer",
                "저장한 토크나이저 검사 중"), 0.8)
    back = AutoTokenizer.from_pretrained(str(folder))
    counts = []
    for text in CHECK_SAMPLES:
        ids = back(text, add_special_tokens=False)["input_ids"]
        if back.decode(ids) != text:
            raise ModelError(f"The rebuilt tokenizer in {folder} does not give back {text!r} (got "
                             f"{back.decode(ids)!r}); the GGUF vocabulary is not the SentencePiece-BPE kind expected.",
                             ko=f"{folder}에 다시 만든 토크나이저가 {text!r}을(를) 되돌려 주지 않습니다 ({back.decode(ids)!r}). "
                                f"GGUF 어휘가 기대한 SentencePiece-BPE 종류가 아닙니다.")
        counts.append(len(ids))
    if len(back) != len(vocab.tokens):
        raise ModelError(f"The saved tokenizer in {folder} has {len(back)} tokens, the GGUF {len(vocab.tokens)}.",
                         ko=f"{folder}에 저장한 토크나이저의 토큰은 {len(back)}개, GGUF는 {len(vocab.tokens)}개입니다.")
    report(Text("Tokenizer ready",
                "토크나이저 준비됨"), 1.0)
    return back, {"tokenizer": "sentencepiece-bpe", "tokenizer_version": TOKENIZER_VERSION, "tokenizer_samples": counts,
                  "tokenizer_s": round(time.perf_counter() - t0, 1)}
