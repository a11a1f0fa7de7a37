"""The retrieval modes, one registry: every list of modes (RetrievalConfig.mode's choices, labels and help, the CLI's
`--mode`, the retrieval lab's settings) is read from `MODES`, so a new mode is one `register_mode` plus its function.

Light on purpose (no Chroma, no numpy): the CLI builds its `--mode` choices from here at start-up. A mode's function is
named as "module:function" and imported when the first query needs it.

    register_mode(RetrievalMode("rerank", ("reranked", "재정렬"), ("hybrid, then a cross-encoder", "..."),
                                "mypackage.rerank:rerank_mode"))
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import chromadb
    import numpy as np

    from workbench.kb.lexical import LexicalData


@dataclasses.dataclass(frozen=True)
class ModeQuery:
    """What a retrieval mode's function gets: the open collection, the query, the settings, the query's unit vector
    and the collection's lexical index (each computed on first use)."""

    collection: "chromadb.Collection"
    query: str
    config: Any  # a workbench.kb.retrieval.RetrievalConfig (not imported: retrieval imports this module)
    vector: "Callable[[], np.ndarray]"
    lexical: "Callable[[], LexicalData]"


@dataclasses.dataclass(frozen=True)
class RetrievalMode:
    """One way of finding chunks.

    Args:
        name: the value of RetrievalConfig.mode.
        label: (English, Korean) as the choice is shown.
        help: (English, Korean), one phrase each, joined into RetrievalConfig.mode's help.
        function: "module:function" taking a `ModeQuery` and returning the `RetrievedChunk`s, best first.
        lab_label: (English, Korean) of the retrieval lab's row, when it differs from `label`.
    """

    name: str
    label: tuple[str, str]
    help: tuple[str, str]
    function: str
    lab_label: tuple[str, str] | None = None

    def run(self, query: ModeQuery) -> list[Any]:
        """The mode's `RetrievedChunk`s for `query`, best first."""
        module, _, name = self.function.partition(":")
        fn: Callable[[ModeQuery], Any] = getattr(importlib.import_module(module), name)
        return fn(query)


MODES: dict[str, RetrievalMode] = {}


def register_mode(mode: RetrievalMode) -> RetrievalMode:
    """Add (or replace) a mode. Register before `workbench.kb.retrieval` is imported: RetrievalConfig reads its choices
    from `MODES` then."""
    MODES[mode.name] = mode
    return mode


register_mode(RetrievalMode("dense", ("similarity", "유사도"), ("vector similarity", "벡터 유사도"),
                            "workbench.kb.retrieval:dense_mode", lab_label=("dense (vectors)", "dense (벡터)")))
register_mode(RetrievalMode("mmr", ("MMR", "MMR"), ("similar but diverse", "유사하면서 서로 다른 청크"),
                            "workbench.kb.retrieval:mmr_mode"))
register_mode(RetrievalMode("hybrid", ("hybrid (BM25 + vectors)", "하이브리드 (BM25 + 벡터)"),
                            ("BM25 + vectors, fused by score", "BM25 + 벡터 점수 결합"), "workbench.kb.retrieval:hybrid_mode"))
