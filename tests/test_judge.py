"""The LLM judge against a real local HTTP server (workbench.compare.judge)."""

from __future__ import annotations

from endpoint_server import CannedServer

from workbench.compare.judge import LLMJudge, parse_verdict
from workbench.compare.metrics import mean_ci


def test_parse_verdict():
    assert parse_verdict('{"score": 4, "reason": "ok"}') == 4
    assert parse_verdict('Sure! ```json\n{"score": 2, "reason": "wrong aisle"}\n```') == 2
    assert parse_verdict("Score: 5") == 5
    assert parse_verdict(" 3 ") == 3
    for garbage in ("I think it is good", '{"score": 7}', '{"score": "high"}', "score 4.5", ""):
        assert parse_verdict(garbage) is None, garbage


def test_judge_retries_garbage_then_scores():
    with CannedServer(["I think it's fine", b"<html>not json</html>", '{"score": 4, "reason": "same facts"}']) as srv:
        v = LLMJudge(srv.url, "judge-model", retries=2).judge("아이스크림은 어디?", "5번 통로", "5번 통로에 있어요")
    assert (v.score, v.attempts) == (4, 3)
    assert len(srv.requests) == 3 and srv.requests[0]["model"] == "judge-model" and srv.requests[0]["temperature"] == 0
    prompt = srv.requests[0]["messages"][0]["content"]
    assert "Reference answer: 5번 통로" in prompt and "Answer to grade: 5번 통로에 있어요" in prompt


def test_judge_unparseable_is_missing_not_zero():
    with CannedServer(["great answer!", "10/10", "yes"]) as srv:
        v = LLMJudge(srv.url, "m", retries=2).judge("q", "r", "a")
    assert v.score is None and v.attempts == 3 and len(srv.requests) == 3
    # ... and a missing verdict stays out of the mean instead of pulling it down
    assert mean_ci([v.score, 5, 3]) == {"mean": 4.0, "lo": 3.0, "hi": 5.0, "n": 2, "missing": 1}
