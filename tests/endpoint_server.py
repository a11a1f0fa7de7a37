"""A real OpenAI-compatible HTTP server on 127.0.0.1 that replies with queued contents: the local stand-in for the
endpoints the judge, dataset generation and the endpoint answer source talk to."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class CannedServer:
    """An OpenAI-compatible /v1/chat/completions on 127.0.0.1 that replies with queued contents (or raw bodies)."""

    def __init__(self, replies: list[str | bytes]) -> None:
        self.replies = list(replies)
        self.requests: list[dict] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                owner.requests.append(body)
                reply = owner.replies.pop(0) if owner.replies else "no more replies"
                if body.get("stream"):  # server-sent events, one word per event, then usage
                    self.send_response(200)
                    self.send_header("Content-Type", "text/event-stream")
                    self.end_headers()
                    base = {"id": "x", "object": "chat.completion.chunk", "created": 0, "model": body["model"]}
                    words = reply.split(" ")
                    for i, word in enumerate(words):
                        delta = {"content": word + (" " if i < len(words) - 1 else "")}
                        event = {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
                        self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
                    end = {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
                    usage = {**base, "choices": [], "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}}
                    self.wfile.write(f"data: {json.dumps(end)}\n\ndata: {json.dumps(usage)}\n\ndata: [DONE]\n\n".encode())
                    return
                if isinstance(reply, bytes):  # a raw, broken body
                    data = reply
                else:
                    data = json.dumps({
                        "id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                        "choices": [{"index": 0, "message": {"role": "assistant", "content": reply}, "finish_reason": "stop"}],
                        "usage": {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14},
                    }).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "CannedServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
