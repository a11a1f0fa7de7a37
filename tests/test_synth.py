"""Generation of Alpaca rows: parsing, and end to end against real HTTP servers on 127.0.0.1.

`CannedLLMServer` is a real server (http.server in a thread) that answers the OpenAI and Anthropic
wire formats with replies from a list, so malformed JSON, fences and errors are reproducible;
`transformers serve` with the packaged SmolLM2 is the real model behind the same client code.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import free_port, wait_http
from workbench.common.errors import ConfigError, OfflineError
from workbench.dataset.synth import (
    GenerationError,
    SourceChunk,
    SynthConfig,
    build_prompt,
    generate_dataset,
    generate_rows,
    parse_pairs,
)

CHUNKS = [
    SourceChunk("c1", "현금으로 결제가 가능합니다. 5만 원권도 받습니다.", "payment_refund_ko.txt"),
    SourceChunk("c2", "아이스크림은 2번 통로 냉동고에 있습니다.", "store_map_ko.md"),
    SourceChunk("c3", "We are open 9:00-21:00 every day.", "hours.txt"),
]
SECRET = "sk-test-THIS-KEY-MUST-NEVER-BE-WRITTEN-0123456789"


def pairs_json(*pairs: tuple[str, str]) -> str:
    return json.dumps([{"question": q, "answer": a} for q, a in pairs], ensure_ascii=False)


class CannedLLMServer:
    """A real HTTP server on 127.0.0.1 answering POST /v1/chat/completions (OpenAI) and /v1/messages
    (Anthropic) with the next canned reply (the last one repeats). A reply is the assistant's text, or
    (status, error body). Every request is recorded with its headers and JSON body."""

    def __init__(self, replies: list[str | tuple[int, dict[str, Any]]], delay: float = 0.0):
        self.replies = list(replies)
        self.delay = delay  # seconds before each reply (to cancel a job mid-way)
        self.requests: list[dict[str, Any]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                server.requests.append({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}, "body": body})
                time.sleep(server.delay)
                reply = server.replies.pop(0) if len(server.replies) > 1 else server.replies[0]
                if isinstance(reply, tuple):
                    status, payload = reply
                elif self.path.endswith("/messages"):
                    status, payload = 200, {"id": "msg_1", "type": "message", "role": "assistant", "model": body.get("model"),
                                            "content": [{"type": "text", "text": reply}], "stop_reason": "end_turn",
                                            "stop_sequence": None, "usage": {"input_tokens": 1, "output_tokens": 1}}
                else:
                    status, payload = 200, {"id": "c1", "object": "chat.completion", "created": 0, "model": body.get("model"),
                                            "choices": [{"index": 0, "finish_reason": "stop",
                                                         "message": {"role": "assistant", "content": reply}}],
                                            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}
                data = json.dumps(payload, ensure_ascii=False).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.root = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.url = self.root + "/v1"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> "CannedLLMServer":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def cfg(server: CannedLLMServer, **kw: Any) -> SynthConfig:
    return SynthConfig(base_url=server.url, model="canned", **{"n_target": 100, "pairs_per_chunk": 2, "retries": 1, **kw})


# --- parsing --------------------------------------------------------------------------------------


@pytest.mark.parametrize("reply,expected", [
    ('[{"question": "현금 돼요?", "answer": "네."}]', [("현금 돼요?", "네.")]),
    ('Here you go:\n```json\n[{"question": "Q1", "answer": "A1"},\n {"question": "Q2", "answer": "A2"}]\n```\nAnything else?',
     [("Q1", "A1"), ("Q2", "A2")]),
    ('[{"question": "Q1", "answer": "A1"}, {"question": "Q2", "answer": "A', [("Q1", "A1")]),  # cut off by max_tokens
    ('{"pairs": [{"질문": "카드 돼요?", "답변": "네"}]} trailing {broken', [("카드 돼요?", "네")]),
    ('[{"instruction": "I", "output": "O"}, {"Q": "q", "A": "a"}, {"question": "", "answer": "x"}, {"question": 1, "answer": "x"}]',
     [("I", "O"), ("q", "a")]),
    ('[{"question": "Q", "answer": "A"}, {"question": "Q", "answer": "A"}]', [("Q", "A")]),
    ("Question: Where is the ice cream? Answer: In aisle 2. Question: Cash? Answer: Yes.",
     [("Where is the ice cream?", "In aisle 2."), ("Cash?", "Yes.")]),
    ("1. Q: 주차 돼요?\nA: 네, 지하 2층입니다.\n2. Q: 카드?\nA: 됩니다.", [("주차 돼요?", "네, 지하 2층입니다."), ("카드?", "됩니다.")]),
    ('{"name": "The Shop", "description": "a shop"}', []),
    ("I cannot help with that.", []),
    ("", []),
])
def test_parse_pairs(reply, expected):
    assert parse_pairs(reply) == expected


def test_prompt_fills_placeholders_and_keeps_the_json_example():
    c = SynthConfig(model="m", language="en")
    text = build_prompt(c, CHUNKS[2], 4)
    assert "write 4 question and answer pairs" in text and text.endswith("Document (hours.txt):\nWe are open 9:00-21:00 every day.")
    assert '[{"question": "...", "answer": "..."}]' in text
    assert "{chunk}" not in build_prompt(SynthConfig(model="m"), CHUNKS[0], 3) and "3쌍" in build_prompt(SynthConfig(model="m"), CHUNKS[0], 3)
    with pytest.raises(ConfigError, match="must contain \\{chunk\\}"):
        SynthConfig(model="m", prompt="no placeholder")
    with pytest.raises(ConfigError, match="extra_body must be a JSON object"):
        SynthConfig(model="m", extra_body="[1]")


# --- against a canned server ----------------------------------------------------------------------


def test_good_json_rows_keep_their_chunk_and_stop_at_the_target():
    replies = [pairs_json(("현금 돼요?", "네."), ("5만 원권?", "받습니다.")), pairs_json(("아이스크림?", "2번 통로."), ("냉동고?", "네."))]
    seen: list[tuple[str, float]] = []
    with CannedLLMServer(replies) as srv:
        r = generate_rows(CHUNKS, cfg(srv, n_target=3), progress=lambda m, f: seen.append((m, f)))
    assert [(x["instruction"], x["chunk_id"], x["source"]) for x in r.rows] == [
        ("현금 돼요?", "c1", "payment_refund_ko.txt"), ("5만 원권?", "c1", "payment_refund_ko.txt"), ("아이스크림?", "c2", "store_map_ko.md")]
    assert all(x["input"] == "" for x in r.rows)
    assert (r.requests, r.chunks_used, r.failures, r.cancelled) == (2, 2, [], False)
    # the second chunk is asked for only the one row still missing
    assert "1쌍" in srv.requests[1]["body"]["messages"][0]["content"]
    assert srv.requests[0]["body"]["model"] == "canned" and srv.requests[0]["body"]["max_tokens"] == 1024
    assert seen[0] == ("0 / 3 rows", 0.0) and seen[-1][1] == 1.0


def test_malformed_json_is_retried_with_a_corrective_turn():
    replies = ['Sure! [{"question": "Q1", "answer": ', "still not json", "```json\n" + pairs_json(("Q2", "A2")) + "\n```", pairs_json(("Q3", "A3"))]
    with CannedLLMServer(replies) as srv:
        r = generate_rows(CHUNKS[:2], cfg(srv, retries=2))
    assert [(x["instruction"], x["chunk_id"]) for x in r.rows] == [("Q2", "c1"), ("Q3", "c2")]
    assert r.requests == 4 and r.failures == []
    retry = srv.requests[1]["body"]["messages"]
    assert [m["role"] for m in retry] == ["user", "assistant", "user"]
    assert retry[1]["content"] == 'Sure! [{"question": "Q1", "answer": ' and "JSON 배열만 다시" in retry[2]["content"]


def test_a_model_that_never_writes_json_is_reported_and_nothing_is_saved(workspace):
    with CannedLLMServer(["I am a helpful assistant."]) as srv:
        r = generate_rows(CHUNKS[:2], cfg(srv, retries=1))
        assert r.rows == [] and r.requests == 4
        assert [(f.chunk_id, f.attempts, f.reason, f.last_reply) for f in r.failures] == [
            ("c1", 2, "no question/answer JSON in the reply", "I am a helpful assistant."),
            ("c2", 2, "no question/answer JSON in the reply", "I am a helpful assistant.")]
        assert "gave 0 of 100 rows" in r.note
        with pytest.raises(GenerationError, match=r"'canned' produced no usable question/answer pairs from 2 chunks in 4 requests.*"
                                                  r"last reply began: 'I am a helpful assistant.'"):
            generate_dataset("nothing", CHUNKS[:2], cfg(srv, retries=1), workspace=workspace)
    assert not (workspace.datasets / "nothing").exists()


def test_cancel_by_event_and_by_progress_returning_false():
    ev = threading.Event()
    with CannedLLMServer([pairs_json(("Q", "A"), ("Q2", "A2"))]) as srv:
        r = generate_rows(CHUNKS, cfg(srv), progress=lambda m, f: ev.set() if f > 0 else None, cancel=ev)
        assert r.cancelled and r.chunks_used == 1 and len(r.rows) == 2 and r.note == ""
        r = generate_rows(CHUNKS, cfg(srv), progress=lambda m, f: f == 0)
        assert r.cancelled and r.chunks_used == 1 and len(srv.requests) == 2


def test_key_is_sent_but_never_written(workspace, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with CannedLLMServer([pairs_json(("현금 돼요?", "네."))]) as srv:
        info, r = generate_dataset("shop-gen", CHUNKS[:1], cfg(srv), api_key=SECRET, collection="shop", workspace=workspace)
        assert srv.requests[0]["headers"]["authorization"] == f"Bearer {SECRET}"
        monkeypatch.setenv("OPENAI_API_KEY", SECRET + "-env")
        generate_rows(CHUNKS[:1], cfg(srv))
        assert srv.requests[-1]["headers"]["authorization"] == f"Bearer {SECRET}-env"
    assert info.rows == 1 and info.source["collection"] == "shop" and info.source["model"] == "canned"
    written = [p for p in workspace.datasets.rglob("*") if p.is_file()]
    assert {p.name for p in written} == {"raw.jsonl", "meta.json", ".shop-gen.lock"}  # the lock is an empty file
    for p in written:
        assert SECRET not in p.read_text(encoding="utf-8")
    assert SECRET not in json.dumps(r.to_dict()) and "api_key" not in info.source["config"]


def test_refused_key_unknown_model_unreachable_endpoint_and_server_errors(monkeypatch):
    with CannedLLMServer([(401, {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error"}})]) as srv:
        with pytest.raises(OfflineError, match=r"refused the API key \(HTTP 401\)") as exc:
            generate_rows(CHUNKS, cfg(srv), api_key=SECRET)
        assert SECRET not in str(exc.value)
    with CannedLLMServer([(404, {"error": {"message": "The model `canned` does not exist"}})]) as srv:
        with pytest.raises(ConfigError, match="404.*does not exist.*Check the model name"):
            generate_rows(CHUNKS, cfg(srv))
    with pytest.raises(OfflineError, match=r"Cannot reach the openai endpoint http://127.0.0.1:\d+/v1 .*Start the server"):
        generate_rows(CHUNKS, SynthConfig(base_url=f"http://127.0.0.1:{free_port()}/v1", model="m", timeout_s=5))
    bad = (400, {"error": {"message": "max_tokens is too large"}})
    with CannedLLMServer([bad, pairs_json(("Q", "A")), bad, bad, bad]) as srv:
        r = generate_rows(CHUNKS[:2], cfg(srv))  # one chunk fails, the run goes on
        assert [(f.chunk_id, f.reason) for f in r.failures] == [("c1", "request failed: HTTP 400: Error code: 400 - max_tokens is too large")]
        assert [x["chunk_id"] for x in r.rows] == ["c2"]
        with pytest.raises(OfflineError, match="failed 3 requests in a row.*max_tokens is too large"):
            generate_rows(CHUNKS, cfg(srv))


def test_anthropic_messages_api(monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="ANTHROPIC_API_KEY"):
        generate_rows(CHUNKS, SynthConfig(provider="anthropic", base_url="", model="claude"))
    with CannedLLMServer(["Here are the pairs:\n" + pairs_json(("Is cash OK?", "Yes."))]) as srv:
        c = SynthConfig(provider="anthropic", base_url=srv.root, model="claude-test", n_target=1, language="en",
                         extra_body='{"temperature": 0.2}')
        r = generate_rows(CHUNKS[2:], c, api_key=SECRET)
    req = srv.requests[0]
    assert req["path"] == "/v1/messages"
    # older SDKs send x-api-key, anthropic 2.x a bearer token
    assert SECRET in (req["headers"].get("x-api-key"), req["headers"].get("authorization", "").removeprefix("Bearer "))
    assert req["body"]["model"] == "claude-test" and req["body"]["temperature"] == 0.2 and req["body"]["max_tokens"] == 1024
    assert [(x["instruction"], x["output"], x["chunk_id"]) for x in r.rows] == [("Is cash OK?", "Yes.", "c3")]


# --- against transformers serve with the packaged SmolLM2 ----------------------------------------


@pytest.fixture(scope="module")
def transformers_serve(smollm2_dir):
    """`transformers serve` on 127.0.0.1 (offline, one thread), the model folder as the model id."""
    port = free_port()
    exe = Path(sys.executable).parent / "transformers"
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    log = open(Path(smollm2_dir).parent / f"serve-{port}.log", "w")
    proc = subprocess.Popen([str(exe), "serve", str(smollm2_dir), "--host", "127.0.0.1", "--port", str(port)],
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_http(f"http://127.0.0.1:{port}/health", 120)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.mark.slow
def test_end_to_end_with_transformers_serve(transformers_serve, smollm2_dir, workspace):
    """The real path with a real (tiny) model: requests, parsing, retries, and a clear outcome either way.

    SmolLM2-135M rarely writes valid JSON; it sometimes writes "Question: ... Answer: ...", which the
    parser accepts. Either rows come out, each tied to its chunk, or the failure says why.
    """
    c = SynthConfig(base_url=transformers_serve, model=str(smollm2_dir), language="en", n_target=4, pairs_per_chunk=2,
                    max_tokens=40, retries=1, temperature=0.0)
    chunks = [SourceChunk("pay", "The shop accepts cash and cards. 50,000 won notes are fine.", "payment.md"),
              SourceChunk("ice", "Ice cream is in the freezer in aisle 2.", "map.md")]
    t0 = time.time()
    r = generate_rows(chunks, c)
    assert r.chunks_used == 2 and 2 <= r.requests <= 4 and not r.cancelled
    # every chunk either produced rows tied to it, or is listed with both attempts and the model's reply
    produced = {x["chunk_id"] for x in r.rows}
    failed = {f.chunk_id for f in r.failures}
    assert produced | failed == {"pay", "ice"} and not produced & failed
    assert all(f.attempts == 2 and f.reason and f.last_reply for f in r.failures)
    assert all(x["instruction"] and x["output"] and x["source"] in ("payment.md", "map.md") for x in r.rows)
    assert time.time() - t0 < 240
