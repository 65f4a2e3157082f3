"""A scripted OpenAI-compatible chat-completions server on 127.0.0.1, for testing with the real client.

Each POST /v1/chat/completions takes the next `Reply` from the script (or asks `responder`), answers as
OpenAI does (JSON, or server-sent events when the request says `"stream": true`) and records the request body.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from loopback import LoopbackServer


@dataclass
class Reply:
    """One scripted response: a completion (`content`), an HTTP error (`status`), a delay, or raw bytes."""

    content: str | None = None
    status: int = 200
    error: str = "scripted error"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    raw: bytes | None = None
    # Stream in pieces of this many characters (a real server sends a few characters per event), this many
    # seconds apart (a slow model; a long reply at a long interval is a server that trickles).
    chunk_chars: int = 7
    interval: float = 0.0


def completion(content: str) -> Reply:
    return Reply(content=content)


def error(status: int, message: str = "scripted error", **headers: str) -> Reply:
    return Reply(status=status, error=message, headers=headers)


class FakeOpenAI:
    """Start with `with FakeOpenAI() as server:`; `server.base_url` ends in /v1."""

    def __init__(
        self, script: Iterable[Reply] = (), responder: Callable[[dict[str, Any]], Reply] | None = None
    ) -> None:
        self.script: deque[Reply] = deque(script)
        self.responder = responder
        self.requests: list[dict[str, Any]] = []
        self.events_sent = 0  # server-sent events written, over all streamed replies
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._server = LoopbackServer(self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"{self._server.base_url}/v1"

    def add(self, *replies: Reply) -> None:
        with self._lock:
            self.script.extend(replies)

    def __enter__(self) -> FakeOpenAI:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._closing.set()  # wakes handlers sleeping out a scripted delay
        self._server.shutdown()
        self._server.server_close()

    def _next(self, body: dict[str, Any]) -> Reply:
        with self._lock:
            self.requests.append(body)
            if self.script:
                return self.script.popleft()
        if self.responder is not None:
            return self.responder(body)
        return error(500, "the test scripted no reply for this request")

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet test output
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                if self.path.rstrip("/") != "/v1/chat/completions":
                    self._json(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})
                    return
                body = json.loads(raw)
                reply = server._next(body)
                if reply.delay and server._closing.wait(reply.delay):
                    return
                if reply.raw is not None:
                    self._send(reply.status, reply.raw, "application/json", reply.headers)
                elif reply.status != 200:
                    payload = {"error": {"message": reply.error, "type": "scripted", "code": reply.status}}
                    self._json(reply.status, payload, reply.headers)
                elif body.get("stream"):
                    self._stream(body, reply)
                else:
                    self._json(200, _completion(body, reply.content or ""))

            def _stream(self, body: dict[str, Any], reply: Reply) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.send_header("Connection", "close")
                self.end_headers()
                text = reply.content or ""
                pieces = [text[i : i + reply.chunk_chars] for i in range(0, len(text), reply.chunk_chars)]
                events = [_chunk(body, {"role": "assistant", "content": ""}, None)]
                events += [_chunk(body, {"content": piece}, None) for piece in pieces]
                events.append(_chunk(body, {}, "stop"))
                for event in events:
                    if reply.interval and server._closing.wait(reply.interval):
                        return
                    self.wfile.write(b"data: " + json.dumps(event).encode() + b"\n\n")
                    self.wfile.flush()
                    server.events_sent += 1
                self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()
                self.close_connection = True

            def _json(self, status: int, payload: dict[str, Any], headers: Any = None) -> None:
                body = json.dumps(payload).encode()
                self._send(status, body, "application/json", headers or {})

            def _send(self, status: int, data: bytes, kind: str, headers: dict[str, str]) -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

        return Handler


def _completion(body: dict[str, Any], content: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "fake"),
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }


def _chunk(body: dict[str, Any], delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": body.get("model", "fake"),
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def message_text(request: dict[str, Any], role: str) -> str:
    """All text the request carried in messages of `role`."""
    parts = []
    for message in request.get("messages", []):
        if message.get("role") == role:
            content = message.get("content")
            if isinstance(content, list):
                content = "".join(block.get("text", "") for block in content if isinstance(block, dict))
            parts.append(content or "")
    return "\n".join(parts)
