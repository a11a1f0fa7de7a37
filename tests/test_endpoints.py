"""Endpoints against a real local HTTP server: one error translation, answers, streaming (workbench.models.endpoints)."""

from __future__ import annotations

import pytest
from endpoint_server import CannedServer

from workbench.answers.answer import EndpointAnswerer
from workbench.common.errors import OfflineError
from workbench.compare.judge import LLMJudge


def test_endpoint_unreachable_is_an_offline_error():
    import socket

    with socket.socket() as s:  # a port that nothing listens on
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}/v1"
    with pytest.raises(OfflineError, match=f"Cannot reach the judge endpoint {url} .*Start the server"):
        LLMJudge(url, "m", retries=1, timeout=5).judge("q", "r", "a")
    with pytest.raises(OfflineError, match=f"Cannot reach the answer endpoint {url}"):
        EndpointAnswerer(url, "m", timeout=5).generate("q")


def test_endpoint_answers_with_usage():
    with CannedServer(["5번 통로에 있습니다."]) as srv:
        r = EndpointAnswerer(srv.url, "served-model").generate("아이스크림은 어디?", "[1] 5번 통로")
    assert r.text == "5번 통로에 있습니다." and (r.prompt_tokens, r.completion_tokens) == (11, 3)
    assert srv.requests[0]["messages"] == [{"role": "user", "content": "아이스크림은 어디?\n\n[1] 5번 통로"}]
    assert srv.requests[0]["temperature"] == 0  # greedy settings map to temperature 0


def test_endpoint_streams_pieces_then_the_result():
    with CannedServer(["The ice cream is in aisle 5."]) as srv:
        stream = EndpointAnswerer(srv.url, "served-model").stream("Where is the ice cream?")
        pieces = list(stream)
    assert pieces == ["The ", "ice ", "cream ", "is ", "in ", "aisle ", "5."]
    r = stream.result
    assert r.text == "The ice cream is in aisle 5." and (r.prompt_tokens, r.completion_tokens) == (11, 7)
    assert srv.requests[0]["stream"] is True


def test_a_stream_read_halfway_is_closed_and_the_endpoint_answers_again():
    """A page rerun stops reading a stream: the connection is closed, and the next request is answered."""
    with CannedServer(["one two three four", "again"]) as srv:
        stream = EndpointAnswerer(srv.url, "served-model").stream("q")
        assert next(stream) == "one "
        stream._pieces.close()  # what dropping the generator does
        assert EndpointAnswerer(srv.url, "served-model").generate("q").text == "again"
