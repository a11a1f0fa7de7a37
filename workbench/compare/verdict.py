"""The verdict of an evaluation: which source is best on this test set, by how much over each other source, and
whether the test set can tell.

Every source answered the same rows, so sources are compared row by row: for the best source B (highest mean of the
metric) and another source A, the per-row differences B - A get a mean and a percentile-bootstrap interval (the same
resampling as `metrics.mean_ci`, fixed seed). An interval above 0 says B is ahead on this kind of question; one that
holds 0 says the rows are too few to tell the two apart, and `rows_needed` says about how many would be, at the
spread seen: the interval's half-width is about z * sd / sqrt(n), so it clears a difference d once
n > (z * sd / d)^2.

`before_after` puts an evaluation next to where the user started: the base model, with and without retrieval, on the
same test split before any training ("where you start", `evaluation.find_baseline`).

`sentence` writes a verdict in English or Korean, for the report, the Compare page and the CLI.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from statistics import NormalDist
from typing import Any

from workbench.answers.answer import source_label as _label
from workbench.compare.metrics import mean_ci

METRIC_NAMES = {"char_f1": ("char F1", "문자 F1"), "rouge_l": ("ROUGE-L", "ROUGE-L"),
                "embedding_similarity": ("embedding similarity", "임베딩 유사도"), "exact_match": ("exact match", "완전 일치"),
                "judge": ("judge score", "심사 점수")}


def _scores(results: Sequence[Mapping[str, Any]], source: str, metric: str) -> dict[Any, float]:
    """Row -> score of `source` (rows whose score is missing left out)."""
    return {r["row"]: float(r[metric]) for r in results if r["source"] == source and r.get(metric) is not None}


def rows_needed(mean: float, sd: float, confidence: float = 0.95) -> int | None:
    """About how many rows an interval of a mean difference `mean` needs to exclude 0 at spread `sd` (None: no
    difference to find, every row scored alike)."""
    if mean == 0 or sd == 0:
        return None
    z = NormalDist().inv_cdf(1 - (1 - confidence) / 2)
    return math.ceil((z * sd / abs(mean)) ** 2)


def paired_difference(a: Mapping[Any, float], b: Mapping[Any, float], *, confidence: float = 0.95, n_boot: int = 1000,
                      seed: int = 0) -> dict[str, Any]:
    """The per-row differences a - b over the rows both scored: mean, interval, rows, how many rows a is better /
    worse / level on, the spread, and whether the interval tells the two apart (it does not hold 0)."""
    rows = [r for r in a if r in b]
    diffs = [a[r] - b[r] for r in rows]
    ci = mean_ci(diffs, confidence, n_boot, seed)
    n = len(diffs)
    mean = sum(diffs) / n if n else 0.0
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1)) if n > 1 else 0.0
    tells = n > 1 and ci["lo"] is not None and (ci["lo"] > 0 or ci["hi"] < 0)
    return {**ci, "sd": round(sd, 4), "better": sum(d > 0 for d in diffs), "worse": sum(d < 0 for d in diffs),
            "level": sum(d == 0 for d in diffs), "tells": tells,
            "rows_needed": None if tells else rows_needed(mean, sd, confidence)}


def verdict(results: Sequence[Mapping[str, Any]], sources: Sequence[str], *, metric: str = "char_f1",
            confidence: float = 0.95, n_boot: int = 1000, seed: int = 0) -> dict[str, Any] | None:
    """Which of `sources` is best by `metric` on these rows, and its paired difference to each other source (None
    when no source has a score)."""
    scores = {s: _scores(results, s, metric) for s in sources}
    scores = {s: v for s, v in scores.items() if v}
    if not scores:
        return None
    means = {s: sum(v.values()) / len(v) for s, v in scores.items()}
    best = max(means, key=lambda s: (means[s], -list(sources).index(s)))
    others = [s for s in sources if s in scores and s != best]
    return {"metric": metric, "confidence": confidence, "best": best, "mean": round(means[best], 4),
            "rows": len(scores[best]), "means": {s: round(m, 4) for s, m in means.items()},
            "against": {s: paired_difference(scores[best], scores[s], confidence=confidence, n_boot=n_boot, seed=seed)
                        for s in others}}


def _num(x: float) -> str:
    return f"{x:+.3f}"


def _interval(d: Mapping[str, Any]) -> str:
    return f"{_num(d['mean'])} [{_num(d['lo'])}, {_num(d['hi'])}]"


def sentence(v: Mapping[str, Any] | None, lang: str = "en") -> str:
    """The verdict in one short paragraph, in "en" or "ko"."""
    if not v:
        return ("아직 점수가 있는 답변이 없어 판정할 수 없습니다." if lang == "ko"
                else "No answer has a score yet: there is nothing to judge.")
    name_en, name_ko = METRIC_NAMES.get(v["metric"], (v["metric"], v["metric"]))
    best, n = v["best"], v["rows"]
    ahead = {s: d for s, d in v["against"].items() if d["tells"]}
    unsure = {s: d for s, d in v["against"].items() if not d["tells"]}
    if lang == "ko":
        parts = [f"이 테스트 {n}문항에서 가장 좋은 소스는 '{_label(best, 'ko')}'입니다 ({name_ko} {v['mean']:.3f})."]
        if ahead:
            parts.append(", ".join(f"'{_label(s, 'ko')}'보다 {_interval(d)}" for s, d in ahead.items()) + " 앞섭니다.")
        for s, d in unsure.items():
            if d["rows_needed"] is None:
                parts.append(f"'{_label(s, 'ko')}': 모든 문항에서 점수가 같아 차이가 없습니다.")
            else:
                parts.append(f"'{_label(best, 'ko')}' 대 '{_label(s, 'ko')}': 행이 너무 적어 가릴 수 없습니다 "
                             f"({_interval(d)}). 지금의 편차라면 약 {d['rows_needed']}행이 필요합니다 (지금 {d['n']}행).")
        if not v["against"]:
            parts.append("비교할 다른 소스가 없습니다.")
        parts.append(f"괄호는 {int(v['confidence'] * 100)}% 신뢰 구간입니다 (같은 문항끼리의 차이, 부트스트랩).")
        return " ".join(parts)
    parts = [f"On these {n} test questions the best source is {_label(best, 'en')} ({name_en} {v['mean']:.3f})."]
    if ahead:
        items = [("" if i == 0 else "of ") + f"{_label(s, 'en')} by {_interval(d)}" for i, (s, d) in enumerate(ahead.items())]
        listed = items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]
        parts.append(f"It is ahead of {listed}.")
    for s, d in unsure.items():
        if d["rows_needed"] is None:
            parts.append(f"It scored the same as {_label(s, 'en')} on every question: no difference to tell.")
        else:
            parts.append(f"Too few rows to tell {_label(best, 'en')} from {_label(s, 'en')} ({_interval(d)}): at the "
                         f"spread seen here about {d['rows_needed']} rows would be needed (this test set has {d['n']}).")
    if not v["against"]:
        parts.append("No other source was evaluated to compare it with.")
    parts.append(f"Brackets: {int(v['confidence'] * 100)}% intervals of the per-question differences (bootstrap).")
    return " ".join(parts)


# --- before and after training -------------------------------------------------------------------------------------

BEFORE_SOURCES = ("base", "rag")
AFTER_SOURCES = ("ft", "ft_rag")


def before_after(results: Sequence[Mapping[str, Any]], before_results: Sequence[Mapping[str, Any]] | None = None, *,
                 metric: str = "char_f1", confidence: float = 0.95, n_boot: int = 1000, seed: int = 0) -> dict[str, Any] | None:
    """Where the user started (the best of base and base + RAG, from `before_results`, a "where you start" evaluation
    of the same test split, else from these results) against the best fine-tuned source here, paired by question
    (rows matched by question text). None when either side is missing."""
    before_rows = list(before_results) if before_results is not None else list(results)

    def by_question(rows: Sequence[Mapping[str, Any]], source: str) -> dict[str, float]:
        return {str(r["question"]): float(r[metric]) for r in rows if r["source"] == source and r.get(metric) is not None}

    before = {s: by_question(before_rows, s) for s in BEFORE_SOURCES}
    after = {s: by_question(results, s) for s in AFTER_SOURCES}
    before, after = {s: v for s, v in before.items() if v}, {s: v for s, v in after.items() if v}
    if not before or not after:
        return None

    def mean(v: Mapping[str, float]) -> float:
        return sum(v.values()) / len(v)

    b = max(before, key=lambda s: mean(before[s]))
    a = max(after, key=lambda s: mean(after[s]))
    return {"metric": metric, "from_baseline": before_results is not None,
            "before": {s: round(mean(v), 4) for s, v in before.items()}, "after": {s: round(mean(v), 4) for s, v in after.items()},
            "best_before": b, "best_after": a,
            "gain": paired_difference(after[a], before[b], confidence=confidence, n_boot=n_boot, seed=seed)}


def before_after_sentence(ba: Mapping[str, Any] | None, lang: str = "en") -> str:
    """Before and after training in one sentence ("" when there is no before or no after)."""
    if not ba:
        return ""
    g, b, a = ba["gain"], ba["best_before"], ba["best_after"]
    name_en, name_ko = METRIC_NAMES.get(ba["metric"], (ba["metric"], ba["metric"]))
    if lang == "ko":
        where = "학습 전 시작점 평가" if ba["from_baseline"] else "이 평가의 기본 모델 열"
        text = (f"학습 전 최고: '{_label(b, 'ko')}' ({name_ko} {ba['before'][b]:.3f}, {where}). 학습 후 최고: "
                f"'{_label(a, 'ko')}' {ba['after'][a]:.3f}, 차이 {_interval(g)}.")
        return text + ("" if g["tells"] else " 이 차이는 이 테스트 크기로는 가릴 수 없습니다.")
    where = "the where-you-start evaluation" if ba["from_baseline"] else "this evaluation's base columns"
    text = (f"Before training the best was {_label(b, 'en')} ({name_en} {ba['before'][b]:.3f}, {where}); after "
            f"training {_label(a, 'en')} scores {ba['after'][a]:.3f}: {_interval(g)}.")
    return text + ("" if g["tells"] else " This test set is too small to tell that difference apart.")
