"""A fake Slack Web API (and Socket Mode WebSocket) on 127.0.0.1, for testing with the real slack_sdk clients.

`FakeSlack` answers the Web API methods the bot uses the way Slack does (HTTP 200 with `{"ok": false, "error"}`
for API errors, 429 with `Retry-After` for rate limits), keeps the messages it was sent so `conversations.replies`
can return a thread, enforces the Block Kit limits, records every call, and can be scripted to fail.
`/webhook/...` stands in for a slash command's or a button click's `response_url`.
`FakeSocketMode` is the WebSocket end of Socket Mode: it says hello, pushes envelopes and records the acks.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from loopback import LoopbackServer

BOT_TOKEN = "xoxb-test-token"
APP_TOKEN = "xapp-1-test-token"
TEAM_ID = "T0TEAM"
BOT_USER_ID = "U0BYLINE"
BOT_ID = "B0BYLINE"

MAX_BLOCKS = 50
MAX_SECTION_TEXT = 3000
MAX_CONTEXT_ELEMENTS = 10
MAX_ACTION_ELEMENTS = 25
MAX_BUTTON_TEXT = 75
MAX_BUTTON_VALUE = 2000
MAX_ID = 255
MAX_MESSAGE_TEXT = 40_000
KNOWN_BLOCKS = {"section", "context", "divider", "actions", "header", "rich_text", "markdown", "image"}


@dataclass
class Call:
    """One request the fake received: the API method (or `webhook`), its arguments and bearer token."""

    method: str
    args: dict[str, Any]
    token: str | None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Failure:
    """A scripted failure for the next calls to `method`: an HTTP status, or `ok: false` with `error`."""

    status: int = 200
    error: str | None = None
    retry_after: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def block_kit_error(blocks: Any, max_total_chars: int | None) -> str | None:
    """Why Slack would reject these blocks (`invalid_blocks`, `msg_blocks_too_long`), or None."""
    if not isinstance(blocks, list) or len(blocks) > MAX_BLOCKS:
        return "invalid_blocks"
    total = 0
    for block in blocks:
        if not isinstance(block, dict) or block.get("type") not in KNOWN_BLOCKS:
            return "invalid_blocks"
        if len(block.get("block_id", "")) > MAX_ID:
            return "invalid_blocks"
        texts: list[Any] = []
        if block["type"] == "section":
            texts.append(block.get("text"))
        elif block["type"] == "context":
            elements = block.get("elements") or []
            if not elements or len(elements) > MAX_CONTEXT_ELEMENTS:
                return "invalid_blocks"
            texts += elements
        elif block["type"] == "actions":
            elements = block.get("elements") or []
            if not elements or len(elements) > MAX_ACTION_ELEMENTS:
                return "invalid_blocks"
            for button in elements:
                label = (button.get("text") or {}).get("text", "")
                if (
                    button.get("type") != "button"
                    or not label
                    or len(label) > MAX_BUTTON_TEXT
                    or len(button.get("value", "")) > MAX_BUTTON_VALUE
                    or not button.get("action_id")
                    or len(button["action_id"]) > MAX_ID
                ):
                    return "invalid_blocks"
        for text in texts:
            if not isinstance(text, dict) or text.get("type") not in ("mrkdwn", "plain_text"):
                return "invalid_blocks"
            body = text.get("text")
            if not isinstance(body, str) or not body or len(body) > MAX_SECTION_TEXT:
                return "invalid_blocks"
            total += len(body)
    if max_total_chars is not None and total > max_total_chars:
        return "msg_blocks_too_long"
    return None


class FakeSlack:
    """Start with `with FakeSlack() as slack:`; point `WebClient(base_url=slack.api_url)` at it."""

    def __init__(self, *, max_total_chars: int | None = 13_000) -> None:
        self.calls: list[Call] = []
        self.messages: dict[str, list[dict[str, Any]]] = {}
        self.failures: dict[str, list[Failure]] = {}
        self.max_total_chars = max_total_chars
        self.bot_token = BOT_TOKEN
        self.wss_url: str | None = None
        self._ts = 1_700_000_000.0
        self._lock = threading.Lock()
        self._server = LoopbackServer(self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        return self._server.base_url

    @property
    def api_url(self) -> str:
        return self.url + "/api/"

    def webhook_url(self, name: str = "response") -> str:
        return f"{self.url}/webhook/{name}"

    def __enter__(self) -> FakeSlack:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    # -- scripting and inspection ----------------------------------------------------------------------

    def fail_next(self, method: str, failure: Failure, times: int = 1) -> None:
        with self._lock:
            self.failures.setdefault(method, []).extend([failure] * times)

    def add_message(
        self, channel: str, text: str, *, user: str = "U0ALICE", thread_ts: str | None = None, **fields: Any
    ) -> str:
        """Put a message in a conversation, as if someone had posted it; returns its ts."""
        with self._lock:
            return self._store(channel, {"text": text, "user": user, "thread_ts": thread_ts, **fields})

    def calls_to(self, method: str) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.method == method]

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 30.0) -> Any:
        """Poll until `predicate()` is truthy (the bot works in background threads); returns its value."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if value := predicate():
                return value
            time.sleep(0.02)
        raise AssertionError(f"timed out waiting; calls so far: {[c.method for c in self.calls]}")

    def wait_calls(self, method: str, count: int = 1, timeout: float = 30.0) -> list[Call]:
        found: list[Call] = self.wait_for(
            lambda: len(self.calls_to(method)) >= count and self.calls_to(method), timeout
        )
        return found

    # -- the API ---------------------------------------------------------------------------------------

    def _store(self, channel: str, message: dict[str, Any]) -> str:
        self._ts += 1
        ts = f"{self._ts:.6f}"
        message = {k: v for k, v in message.items() if v is not None}
        self.messages.setdefault(channel, []).append({"type": "message", "ts": ts, **message})
        return ts

    def _find(self, channel: str, ts: str) -> dict[str, Any] | None:
        return next((m for m in self.messages.get(channel, []) if m["ts"] == ts), None)

    def _check_message(self, args: dict[str, Any]) -> str | None:
        blocks = args.get("blocks")
        if isinstance(blocks, str):
            blocks = json.loads(blocks)
            args["blocks"] = blocks
        if blocks is not None and (problem := block_kit_error(blocks, self.max_total_chars)):
            return problem
        if len(args.get("text") or "") > MAX_MESSAGE_TEXT:
            return "msg_too_long"
        if not args.get("text") and not blocks:
            return "no_text"
        return None

    def _answer(self, method: str, args: dict[str, Any], token: str | None) -> tuple[int, dict[str, Any]]:
        if method == "apps.connections.open":
            if not (token or "").startswith("xapp-"):
                return 200, {"ok": False, "error": "not_allowed_token_type"}
            return 200, {"ok": True, "url": self.wss_url}
        if token != self.bot_token:
            return 200, {"ok": False, "error": "invalid_auth"}
        if method == "auth.test":
            return 200, {
                "ok": True,
                "url": "https://fake.slack.com/",
                "team": "Fake",
                "user": "byline",
                "team_id": TEAM_ID,
                "user_id": BOT_USER_ID,
                "bot_id": BOT_ID,
            }
        channel = str(args.get("channel", ""))
        if method in ("chat.postMessage", "chat.update", "chat.postEphemeral") and (
            problem := self._check_message(args)
        ):
            return 200, {"ok": False, "error": problem}
        if method == "chat.postMessage":
            fields = {k: args.get(k) for k in ("text", "blocks", "thread_ts", "metadata")}
            ts = self._store(channel, {**fields, "user": BOT_USER_ID, "bot_id": BOT_ID})
            return 200, {"ok": True, "channel": channel, "ts": ts, "message": self._find(channel, ts)}
        if method == "chat.update":
            message = self._find(channel, str(args.get("ts")))
            if message is None:
                return 200, {"ok": False, "error": "message_not_found"}
            message["text"] = args.get("text")
            message.pop("blocks", None)
            if args.get("blocks") is not None:
                message["blocks"] = args["blocks"]
            return 200, {"ok": True, "channel": channel, "ts": message["ts"], "text": message["text"]}
        if method == "chat.postEphemeral":
            self._ts += 1
            return 200, {"ok": True, "message_ts": f"{self._ts:.6f}"}
        if method == "conversations.replies":
            root = str(args.get("ts"))
            thread = [m for m in self.messages.get(channel, []) if root in (m["ts"], m.get("thread_ts"))]
            if not thread:
                return 200, {"ok": False, "error": "thread_not_found"}
            return 200, {"ok": True, "messages": thread, "has_more": False}
        if method == "reactions.add":
            return 200, {"ok": True}
        return 200, {"ok": False, "error": "unknown_method"}

    def _handle(self, path: str, raw: bytes, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        parts = urlsplit(path)
        args: dict[str, Any] = dict(parse_qsl(parts.query))
        if raw:
            if headers.get("content-type", "").startswith("application/json"):
                args.update(json.loads(raw))
            else:
                args.update(parse_qsl(raw.decode()))
        auth = headers.get("authorization", "")
        token = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else args.get("token")
        if parts.path.startswith("/webhook/"):
            method = "webhook"
        elif parts.path.startswith("/api/"):
            method = parts.path.removeprefix("/api/")
        else:
            return 404, {}, b"not found"
        with self._lock:
            self.calls.append(Call(method, args, token, headers))
            scripted = self.failures.get(method)
            failure = scripted.pop(0) if scripted else None
            if failure is not None:
                extra = {"Retry-After": str(failure.retry_after)} if failure.retry_after is not None else {}
                body = {"ok": False, "error": failure.error or "ratelimited", **failure.extra}
                return failure.status, extra, json.dumps(body).encode()
            if method == "webhook":
                return 200, {}, b"ok"
            status, body = self._answer(method, args, token)
        return status, {}, json.dumps(body).encode()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                status, extra, body = fake._handle(self.path, raw, headers)
                self.send_response(status)
                content_type = "text/plain" if body == b"ok" else "application/json; charset=utf-8"
                self.send_header("Content-Type", content_type)
                for name, value in extra.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = _serve
            do_POST = _serve

        return Handler


class FakeSocketMode:
    """The WebSocket end of Socket Mode (aiohttp, its own loop in a thread).

    Set `FakeSlack.wss_url = fake.url` so `apps.connections.open` hands it out; `send(envelope)` pushes an
    envelope to the connected client and `acks` collects the `envelope_id`s the client acknowledged.
    """

    def __init__(self) -> None:
        self.acks: list[dict[str, Any]] = []
        self.connections = 0
        self._sockets: list[Any] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: Any = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/link"

    def __enter__(self) -> FakeSocketMode:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(30)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def send(self, envelope: dict[str, Any]) -> None:
        async def push() -> None:
            for ws in list(self._sockets):
                await ws.send_str(json.dumps(envelope))

        asyncio.run_coroutine_threadsafe(push(), self._loop).result(30)

    async def _start(self) -> None:
        from aiohttp import web

        app = web.Application()
        app.router.add_get("/link", self._link)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def _stop(self) -> None:
        for ws in list(self._sockets):
            await ws.close()
        await self._runner.cleanup()

    async def _link(self, request: Any) -> Any:
        from aiohttp import WSMsgType, web

        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.connections += 1
        self._sockets.append(ws)
        await ws.send_str(json.dumps({"type": "hello", "num_connections": 1, "debug_info": {}}))
        async for message in ws:
            if message.type == WSMsgType.TEXT:
                self.acks.append(json.loads(message.data))
        self._sockets.remove(ws)
        return ws
