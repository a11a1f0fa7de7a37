from __future__ import annotations

import numpy as np
import pytest

from workbench.common.errors import OfflineError
from workbench.kb.embeddings import DEFAULT_EMBEDDING, EMBEDDING_REGISTRY, load_embeddings

CASES = [
    ("현금으로 결제가 가능한가요?", "현금 결제도 됩니다. 카드와 현금 모두 받습니다.", "주차장은 건물 지하 2층에 있습니다."),
    ("Can I pay in cash?", "Yes, we accept cash as well as cards.", "The parking lot is on the second basement floor."),
]


@pytest.mark.parametrize("key", [DEFAULT_EMBEDDING, "use-multilingual"])
def test_packaged_multilingual_models_rank_paraphrase_first(key):
    emb = load_embeddings(key)
    for query, para, other in CASES:
        q = np.array(emb.embed_query(query))
        docs = np.array(emb.embed_documents([para, other]))
        assert docs.shape == (2, EMBEDDING_REGISTRY[key].dim)
        np.testing.assert_allclose(np.linalg.norm(docs, axis=1), 1.0, atol=1e-3)
        sims = docs @ q
        assert sims[0] > sims[1], (key, query, sims)


def test_english_model_from_its_package():
    emb = load_embeddings("all-minilm-l6-v2")
    q, (para, other) = np.array(emb.embed_query(CASES[1][0])), np.array(emb.embed_documents(list(CASES[1][1:])))
    assert para @ q > other @ q


def test_unknown_hub_model_offline_is_a_clear_error():
    with pytest.raises(OfflineError, match="not cached and the Hub cannot be reached"):
        load_embeddings("some-org/not-a-cached-model")
