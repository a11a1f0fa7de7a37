"""The LLM judge: an endpoint grades an answer 1-5 against the reference with a rubric.

An unparseable verdict is asked again, then recorded as missing (None), never as 0, so it stays out of the mean
instead of pulling it down. The endpoint is any `workbench.models.endpoints.Endpoint` (OpenAI-compatible or Anthropic).
"""

from __future__ import annotations

import dataclasses
import json
import re

from workbench.common.errors import OfflineError
from workbench.models.endpoints import Endpoint, EndpointRequestError

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


@dataclasses.dataclass
class JudgeVerdict:
    score: int | None  # 1..5, None when no parseable verdict came back
    raw: str
    attempts: int


class LLMJudge:
    """Grades answers with a rubric through a chat endpoint (OpenAI, vLLM, Ollama, LM Studio, Anthropic)."""

    def __init__(self, base_url: str, model: str, api_key: str | None = None, retries: int = 2, timeout: float = 60.0,
                 provider: str = "openai") -> None:
        self.base_url, self.model, self.retries = base_url, model, retries
        self.endpoint = Endpoint(base_url, model, api_key, provider=provider, role="judge", timeout=timeout)

    def judge(self, question: str, reference: str, answer: str) -> JudgeVerdict:
        """One verdict. Unparseable replies are asked again `retries` times, then the score is None.

        Raises:
            OfflineError: the endpoint cannot be reached or refuses the key (after the retries).
        """
        prompt = JUDGE_PROMPT.format(question=question, reference=reference, answer=answer or "(empty)")
        raw, attempts, last_error = "", 0, None
        for _ in range(self.retries + 1):
            attempts += 1
            try:
                raw = self.endpoint.complete([{"role": "user", "content": prompt}], temperature=0, max_tokens=200).text
            except EndpointRequestError as exc:  # a failed request or a garbage body counts as unparseable
                raw = f"<unreadable response: {exc}>"
                continue
            except OfflineError as exc:
                last_error = exc
                continue
            score = parse_verdict(raw)
            if score is not None:
                return JudgeVerdict(score, raw, attempts)
        if last_error is not None and not raw:
            raise last_error
        return JudgeVerdict(None, raw, attempts)
