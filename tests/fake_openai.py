"""A tiny OpenAI-compatible chat server for tests: real HTTP on 127.0.0.1, scripted replies and faults.

    with FakeOpenAI(reply="hello", latency_s=0.2, statuses=[429, 500]) as server:
        make_lm("openai/fake", api_base=server.url)  # first two calls fail, then "hello"

``reply`` is a string or ``fn(request_json) -> str``; ``statuses`` is consumed one per request (then 200);
``garbage=True`` answers 200 with a body that is not JSON. Every request body is kept in ``requests``,
its headers in ``headers``.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable


class FakeOpenAI:
    def __init__(
        self,
        reply: str | Callable[[dict], str] = "ok",
        *,
        latency_s: float = 0.0,
        statuses: list[int] | tuple[int, ...] = (),
        garbage: bool = False,
    ):
        self.reply = reply
        self.latency_s = latency_s
        self.statuses = list(statuses)
        self.garbage = garbage
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> "FakeOpenAI":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _next_status(self) -> int:
        with self._lock:
            return self.statuses.pop(0) if self.statuses else 200

    def _completion(self, body: dict) -> dict:
        text = self.reply(body) if callable(self.reply) else self.reply
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in body.get("messages", []))
        completion_tokens = len(text.split())
        return {
            "id": f"chatcmpl-fake-{len(self.requests)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "fake"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def _send(self, status: int, payload: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                with fake._lock:
                    fake.requests.append(body)
                    fake.headers.append(dict(self.headers))
                if fake.latency_s:
                    time.sleep(fake.latency_s)
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    return self._send(404, json.dumps({"error": {"message": f"no route {self.path}"}}).encode())
                status = fake._next_status()
                if status != 200:
                    error = {"error": {"message": f"injected HTTP {status}", "type": "fake_error", "code": status}}
                    return self._send(status, json.dumps(error).encode())
                if fake.garbage:
                    return self._send(200, b"<html>this is not json")
                return self._send(200, json.dumps(fake._completion(body)).encode())

        return Handler
