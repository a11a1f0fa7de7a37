"""The verdict (workbench.compare.verdict): the best source, paired intervals that match a hand computation, "too few rows"
with the rows it would take, before and after training, in English and Korean."""

from __future__ import annotations

import math

from workbench.compare.verdict import (
    before_after,
    before_after_sentence,
    paired_difference,
    rows_needed,
    sentence,
    verdict,
)


def test_the_paired_interval_matches_a_hand_computed_bootstrap():
    """20 rows, A better by 1 on 10 of them, level on the rest. A resampled mean of the differences is
    Binomial(20, 1/2) / 20, so the 2.5% and 97.5% points are its quantiles: P(X <= 5) = 0.0207 < 0.025 < P(X <= 6) =
    0.0577 gives 6/20, and symmetrically 14/20."""
    cdf = [sum(math.comb(20, i) for i in range(k + 1)) / 2**20 for k in range(21)]
    lo = next(k for k in range(21) if cdf[k] >= 0.025) / 20
    hi = next(k for k in range(21) if cdf[k] >= 0.975) / 20
    assert (lo, hi) == (0.3, 0.7)
    d = paired_difference({i: 1.0 if i < 10 else 0.0 for i in range(20)}, {i: 0.0 for i in range(20)}, n_boot=20000)
    assert (d["mean"], d["lo"], d["hi"], d["n"]) == (0.5, lo, hi, 20)
    assert (d["better"], d["worse"], d["level"], d["tells"]) == (10, 0, 10, True)


def test_rows_needed_follows_the_normal_approximation():
    assert rows_needed(0.1, 0.3) == math.ceil((1.959964 * 0.3 / 0.1) ** 2) == 35
    assert rows_needed(-0.1, 0.3) == 35 and rows_needed(0.0, 0.3) is None and rows_needed(0.1, 0.0) is None


def _results(scores: dict[str, list[float]]) -> list[dict]:
    return [{"row": i, "source": s, "question": f"q{i}", "char_f1": v} for s, vs in scores.items() for i, v in enumerate(vs)]


def test_the_verdict_names_the_best_and_says_when_rows_are_too_few():
    ft = [0.8, 0.7, 0.9, 0.6, 0.8, 0.7, 0.9, 0.8, 0.7, 0.8]
    rag = [0.2, 0.3, 0.1, 0.2, 0.3, 0.2, 0.1, 0.3, 0.2, 0.2]
    near = [0.9, 0.5, 0.9, 0.7, 0.6, 0.8, 0.8, 0.7, 0.8, 0.7]  # about as good as ft
    v = verdict(_results({"rag": rag, "ft": ft, "ft_rag": near}), ["rag", "ft", "ft_rag"])
    assert v["best"] == "ft" and v["rows"] == 10 and v["against"]["rag"]["tells"] is True
    assert v["against"]["ft_rag"]["tells"] is False and v["against"]["ft_rag"]["rows_needed"] > 10
    en = sentence(v)
    assert en.startswith("On these 10 test questions the best source is fine-tuned (char F1 0.770).")
    assert "It is ahead of base + RAG by +0.560" in en
    assert "Too few rows to tell fine-tuned from fine-tuned + RAG" in en
    assert f"about {v['against']['ft_rag']['rows_needed']} rows would be needed (this test set has 10)" in en
    ko = sentence(v, "ko")
    assert ko.startswith("이 테스트 10문항에서 가장 좋은 소스는 '파인튜닝'입니다") and "행이 너무 적어 가릴 수 없습니다" in ko
    same = verdict(_results({"base": [0.5, 0.2], "rag": [0.5, 0.2]}), ["base", "rag"])
    assert "scored the same as base + RAG on every question" in sentence(same)
    assert verdict([], ["base"]) is None and "nothing to judge" in sentence(None)


def test_before_and_after_pairs_the_where_you_start_evaluation_by_question():
    before = _results({"base": [0.1, 0.2, 0.1, 0.2], "rag": [0.3, 0.3, 0.4, 0.2]})
    after = _results({"ft": [0.6, 0.7, 0.5, 0.8], "ft_rag": [0.5, 0.5, 0.6, 0.6]})
    ba = before_after(after, before, n_boot=2000)
    assert (ba["best_before"], ba["best_after"], ba["from_baseline"]) == ("rag", "ft", True)
    assert ba["gain"]["mean"] == 0.35 and ba["gain"]["n"] == 4
    assert before_after_sentence(ba).startswith("Before training the best was base + RAG (char F1 0.300, the where-you-start")
    assert "학습 후 최고: '파인튜닝' 0.650" in before_after_sentence(ba, "ko")
    assert before_after(after) is None  # no base sources here and no baseline: nothing to compare with
    assert before_after(before + after)["from_baseline"] is False  # the evaluation's own base columns
