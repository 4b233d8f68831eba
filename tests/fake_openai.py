"""A tiny OpenAI-compatible chat server for tests and benches: real HTTP on 127.0.0.1, scripted replies and faults.

    with FakeOpenAI(reply="hello", latency_s=0.2, statuses=[429, 500]) as server:
        make_lm("openai/fake", api_base=server.url)  # first two calls fail, then "hello"

``reply`` is a string or ``fn(request_json) -> str``; ``syneg_reply`` answers SyNeg's prompts (generate,
critique, revise, domain) with valid JSON, deterministically per request content; a ``reply`` that raises
``HTTPFault(status)`` answers that HTTP error (a request that always fails). ``statuses`` is consumed
one per request (then 200); ``garbage=True`` answers 200 with a body that is not JSON. ``rates`` injects
faults at random with a seeded RNG, one draw per request: ``{"429": .1, "500": .05, "garbage": .05,
"non_json": .05, "truncated": .05}`` (``non_json``: a valid completion whose assistant text is prose;
``truncated``: the reply cut in half). ``injected`` counts what was served. Every request body is kept in
``requests``, its headers in ``headers``.

As a separate process (for kill -9 tests and benches; prints ``PORT <n>`` then serves until killed)::

    python tests/fake_openai.py --port 0 --latency 0.2 --rates 429=0.1,500=0.05 --seed 0
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

FAULTS = ("429", "500", "garbage", "non_json", "truncated")
_FIELD = re.compile(r"\[\[ ## (\w+) ## \]\]\n(.*?)(?=\n\n\[\[ ## |\n\nRespond with|\Z)", re.S)
# Words unrelated to any query, so a negative neither restates the query nor copies the positive.
_WORDS = ("harbour lantern copper meadow violin glacier orchard basalt falcon tapestry quarry lagoon ember saddle "
          "pewter thistle canyon marble willow beacon cobalt juniper harvest compass timber velvet prairie "
          "summit anchor mosaic").split()


class HTTPFault(Exception):
    """Raised by a ``reply`` function: answer this request with HTTP ``status``."""

    def __init__(self, status: int, message: str = "injected by reply"):
        super().__init__(message)
        self.status = status


def _step(messages: list[dict]) -> str:
    """Which SyNeg predictor sent the prompt, from the output fields its system message asks for."""
    system = str(messages[0].get("content", "")) if messages else ""
    outputs = system.split("Your output fields are:")[-1].split("All interactions")[0]
    for name, marker in (("critique", "`answers_query`"), ("revise", "`revised`"), ("domain", "`domain`")):
        if marker in outputs:
            return name
    return "generate"


def passage(seed_text: str, words: int = 24) -> str:
    """A deterministic filler passage, different for each ``seed_text``."""
    rng = random.Random(hashlib.sha256(seed_text.encode()).hexdigest())
    body = " ".join(rng.choice(_WORDS) for _ in range(words))
    return f"{body.capitalize()} ({hashlib.sha256(seed_text.encode()).hexdigest()[:8]})."


def syneg_reply(body: dict) -> str:
    """A well-behaved LLM for the SyNeg program: valid JSON with the fields each prompt asks for."""
    messages = body.get("messages", [])
    fields = dict(_FIELD.findall(str(messages[-1].get("content", "")))) if messages else {}
    kind = _step(messages)
    if kind == "domain":
        return json.dumps({"domain": "test domain"})
    if kind == "critique":
        return json.dumps({"answers_query": False, "on_topic": True, "copies_positive": False, "issues": "none"})
    if kind == "revise":
        return json.dumps({"revised": fields.get("negative", "")})
    seed = fields.get("query", "") + "|" + fields.get("attributes", "")
    return json.dumps({"reasoning": "swaps the subject", "negative": passage(seed)})


class FakeOpenAI:
    def __init__(
        self,
        reply: str | Callable[[dict], str] = "ok",
        *,
        latency_s: float = 0.0,
        statuses: list[int] | tuple[int, ...] = (),
        garbage: bool = False,
        rates: dict[str, float] | None = None,
        seed: int = 0,
        port: int = 0,
    ):
        self.reply = reply
        self.latency_s = latency_s
        self.statuses = list(statuses)
        self.garbage = garbage
        self.rates = dict(rates or {})
        unknown = set(self.rates) - set(FAULTS)
        if unknown or sum(self.rates.values()) > 1:
            raise ValueError(f"rates: unknown faults {sorted(unknown)} or total above 1: {self.rates}")
        self.injected: Counter = Counter()
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
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

    def _next_fault(self) -> str:
        """This request's outcome: a scripted status first, then a seeded draw over ``rates``."""
        with self._lock:
            if self.statuses:
                status = self.statuses.pop(0)
                if status != 200:
                    return str(status)
            if self.garbage:
                return "garbage"
            draw, edge = self._rng.random(), 0.0
            for fault in FAULTS:
                edge += self.rates.get(fault, 0.0)
                if draw < edge:
                    return fault
            return "ok"

    def _completion(self, body: dict, fault: str) -> dict:
        text = self.reply(body) if callable(self.reply) else self.reply
        if fault == "non_json":
            text = "Sure! Here is a hard negative passage about the topic you asked for."
        elif fault == "truncated":
            text = text[: len(text) // 2]
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
            protocol_version = "HTTP/1.1"  # keep-alive, as real servers: no new connection per call

            def log_message(self, *args):  # keep test output clean
                pass

            def _send(self, status: int, payload: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self):
                """``/stats``: what was served (for a server in another process)."""
                with fake._lock:
                    stats = {"requests": len(fake.requests), "injected": dict(fake.injected)}
                self._send(200, json.dumps(stats).encode())

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                with fake._lock:
                    fake.requests.append(body)
                    fake.headers.append(dict(self.headers))
                if fake.latency_s:
                    time.sleep(fake.latency_s)
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    return self._send(404, json.dumps({"error": {"message": f"no route {self.path}"}}).encode())
                fault = fake._next_fault()
                try:
                    payload = None if fault.isdigit() or fault == "garbage" else fake._completion(body, fault)
                except HTTPFault as err:
                    fault = str(err.status)
                with fake._lock:
                    fake.injected[fault] += 1
                if fault.isdigit():
                    status = int(fault)
                    error = {"error": {"message": f"injected HTTP {status}", "type": "fake_error", "code": status}}
                    return self._send(status, json.dumps(error).encode())
                if fault == "garbage":
                    return self._send(200, b"<html>this is not json")
                return self._send(200, json.dumps(payload).encode())

        return Handler


def _parse_rates(text: str) -> dict[str, float]:
    return {k: float(v) for k, v in (pair.split("=") for pair in text.split(",") if pair)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve a fake OpenAI chat API that answers SyNeg's prompts.")
    parser.add_argument("--port", type=int, default=0, help="0: any free port (printed as 'PORT <n>').")
    parser.add_argument("--latency", type=float, default=0.0, help="Seconds each request sleeps.")
    parser.add_argument("--rates", type=_parse_rates, default={}, help=f"e.g. 429=0.1,500=0.05 (faults: {', '.join(FAULTS)})")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    server = FakeOpenAI(syneg_reply, latency_s=args.latency, rates=args.rates, seed=args.seed, port=args.port)
    print(f"PORT {server.port}", flush=True)
    server._server.serve_forever()


if __name__ == "__main__":
    main(sys.argv[1:])
