"""A local stand-in for Text Generation Inference on 127.0.0.1, implementing its documented routes:
``POST /`` and ``/generate`` (text_generation, also streamed; prompt log-probabilities with
``decoder_input_details``), ``POST /v1/chat/completions`` (Messages API, also streamed), ``POST /tokenize``,
``POST /chat_tokenize``, ``GET /health`` and ``GET /info``. It answers with fixed text, so tests can check
what reaches the caller. ``mode`` switches it to failing (503), slow, without the Messages API, or an old
TGI without ``/chat_tokenize``.

Its tokenizer is deterministic and simple so tests can recompute what it says: a token is a run of
non-space characters with the whitespace after it (byte offsets, as TGI gives them), and each token's
log-probability is ``fake_logprob(token)``."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ANSWER = "Keep the vectors in Postgres [1]."
_TOKEN = re.compile(rb"\S+\s*|\s+")


def fake_tokens(text: str) -> list[dict[str, Any]]:
    """TGI's ``/tokenize`` answer for ``text`` from this server: ids, texts and byte offsets."""
    return [
        {"id": i, "text": m.group().decode(), "start": m.start(), "stop": m.end()}
        for i, m in enumerate(_TOKEN.finditer(text.encode()))
    ]


def fake_logprob(token: str) -> float:
    """The log-probability this server gives an input token after the first: longer tokens are less likely."""
    return -0.1 * len(token.encode())


def fake_chat_template(messages: list[dict[str, str]]) -> str:
    """ChatML with the generation prompt, as the served model's template would render it."""
    turns = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
    return turns + "<|im_start|>assistant\n"


class FakeTGI:
    def __init__(self) -> None:
        self.mode = "ok"  # ok | down | slow | no-messages-api | no-chat-tokenize
        # How generations end, in TGI's words (eos_token | length | stop_sequence).
        self.finish_reason = "eos_token"
        # TGI 3 returns prompt log-probabilities only when started with --enable-prefill-logprobs.
        self.prefill_logprobs = True
        # Answer this many generation requests with 429 first, with this Retry-After header when set.
        self.busy = 0
        self.retry_after: str | None = None
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.url = ""
        # The text it answers with; tests may compute it from the request body (e.g. JSON instructions).
        self.reply: Callable[[dict[str, Any]], str] = lambda body: ANSWER


def _handler(tgi: FakeTGI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def _json(self, status: int, body: object, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        def _sse(self, events: list[object]) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Connection", "close")
            self.end_headers()
            for event in events:
                payload = event if isinstance(event, str) else json.dumps(event)
                self.wfile.write(f"data: {payload}\n\n".encode())
                self.wfile.flush()
            self.close_connection = True

        def _tokenize(self, body: dict[str, Any]) -> None:
            if self.path == "/tokenize":
                self._json(200, fake_tokens(body["inputs"]))
            elif tgi.mode == "no-chat-tokenize":
                self._json(404, {"error": "not found"})
            else:
                templated = fake_chat_template(body["messages"])
                self._json(200, {"tokenize_response": fake_tokens(templated), "templated_text": templated})

        def do_GET(self) -> None:
            if self.path == "/health":
                self._json(200 if tgi.mode != "down" else 503, {})
            elif self.path == "/info":
                self._json(200, {"model_id": "twin/fake", "max_total_tokens": 4096})
            else:
                self._json(404, {"error": "not found"})

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            tgi.requests.append((self.path, body))
            retry_after = {"Retry-After": tgi.retry_after} if tgi.retry_after else {}
            if tgi.busy > 0:
                tgi.busy -= 1
                self._json(429, {"error": "too many requests", "error_type": "overloaded"}, retry_after)
                return
            if tgi.mode == "down":
                self._json(503, {"error": "model overloaded", "error_type": "overloaded"}, retry_after)
                return
            if tgi.mode == "slow":
                time.sleep(1.5)
            if self.path in {"/tokenize", "/chat_tokenize"}:
                self._tokenize(body)
                return
            answer = tgi.reply(body)
            words = answer.split(" ")
            # The Messages API says "stop" where TGI's own routes say "eos_token".
            chat_finish = "stop" if tgi.finish_reason == "eos_token" else tgi.finish_reason
            if self.path == "/v1/chat/completions":
                if tgi.mode == "no-messages-api":
                    self._json(404, {"error": "not found"})
                    return
                if body.get("stream"):
                    chunks: list[object] = [
                        {
                            "id": "x",
                            "object": "chat.completion.chunk",
                            "created": 0,
                            "model": "twin/fake",
                            "system_fingerprint": "fake",
                            "choices": [
                                {
                                    "index": 0,
                                    "delta": {"role": "assistant", "content": w + (" " if i < len(words) - 1 else "")},
                                    "logprobs": None,
                                    "finish_reason": None,
                                }
                            ],
                        }
                        for i, w in enumerate(words)
                    ]
                    self._sse([*chunks, "[DONE]"])
                    return
                self._json(
                    200,
                    {
                        "id": "x",
                        "object": "chat.completion",
                        "created": 0,
                        "model": "twin/fake",
                        "system_fingerprint": "fake",
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": answer},
                                "logprobs": None,
                                "finish_reason": chat_finish,
                            }
                        ],
                        "usage": {
                            "prompt_tokens": 42,
                            "completion_tokens": len(words),
                            "total_tokens": 42 + len(words),
                        },
                    },
                )
            elif self.path in {"/", "/generate", "/generate_stream"}:
                if body.get("stream") or self.path == "/generate_stream":
                    self._sse(
                        [
                            {
                                "index": i,
                                "token": {"id": i, "text": w + " ", "logprob": -0.1, "special": False},
                                "generated_text": answer if i == len(words) - 1 else None,
                                "details": None,
                            }
                            for i, w in enumerate(words)
                        ]
                    )
                    return
                prefill = []
                if body.get("parameters", {}).get("decoder_input_details") and tgi.prefill_logprobs:
                    prefill = [
                        {"id": t["id"], "text": t["text"], "logprob": fake_logprob(t["text"]) if i else None}
                        for i, t in enumerate(fake_tokens(body["inputs"]))
                    ]
                self._json(
                    200,
                    {
                        "generated_text": answer,
                        "details": {
                            "finish_reason": tgi.finish_reason,
                            "generated_tokens": len(words),
                            "seed": None,
                            "prefill": prefill,
                            "tokens": [],
                        },
                    },
                )
            else:
                self._json(404, {"error": "not found"})

    return Handler


@contextmanager
def serve_tgi() -> Iterator[FakeTGI]:
    tgi = FakeTGI()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(tgi))
    server.daemon_threads = True
    tgi.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield tgi
    finally:
        server.shutdown()
        server.server_close()
