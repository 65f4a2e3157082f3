"""Running the Slack app: Socket Mode (an outbound WebSocket) or HTTP (Slack POSTs to /slack/events).

HTTP is served by uvicorn. The ASGI application is written here, in a few lines, rather than taken from Bolt's
adapter, because Bolt's sync ASGI adapter runs `App.dispatch` on the event loop: one slow acknowledgement (a
middleware waiting for the catalog's write lock) would stall every connection. Here each dispatch runs in a
thread, and a gate turns requests away with 503 while the process drains.

Shutting down, either way: the first SIGTERM (or Ctrl-C) stops taking work: HTTP answers new requests with 503 and
Retry-After (Slack retries the event later, and the catalog's dedupe answers it once, whichever process gets it),
Socket Mode closes its connection (Slack re-sends what was not acknowledged). Requests in flight finish, then
Bolt's listeners, then the answers queued and under way; then the process exits. A second signal exits at once.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from types import FrameType
from typing import Any

import uvicorn
from slack_bolt import App
from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_bolt.request import BoltRequest
from slack_bolt.request.internals import build_normalized_headers, extract_content_type, parse_body

from bot.slack.app import SlackApp
from bot.stopping import StopFlag

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
HEALTH_PATH = "/healthz"
DISPATCH_THREADS = 16
# Pending connections the kernel queues for the server; a small backlog (the standard library's is 5) drops
# connections under bursts, and clients wait seconds to retry.
BACKLOG = 2048
RETRY_AFTER_SECONDS = 5

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


def socket_mode_handler(app: App, app_token: str) -> SocketModeHandler:
    """The Socket Mode connection for `app`; it opens through `app.client`, so SLACK_API_URL applies."""
    return SocketModeHandler(app, app_token)


def run_socket_mode(slack: SlackApp, app_token: str, drain_seconds: float) -> bool:
    """Connect and serve until SIGTERM or Ctrl-C (slack_sdk reconnects by itself when the socket drops); then
    disconnect and drain. Returns whether everything taken was finished."""
    stop = StopFlag()

    def on_signal(sig: int, frame: FrameType | None) -> None:
        stop.set()
        signal.signal(sig, signal.SIG_DFL)  # a second signal ends the process at once

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    handler = socket_mode_handler(slack.app, app_token)
    try:
        handler.connect()  # type: ignore[no-untyped-call]
        stop.wait()
    finally:
        handler.close()  # type: ignore[no-untyped-call]
        for sig, old in previous.items():
            signal.signal(sig, old)
    return _finish(slack, drain_seconds, time.monotonic())


def _finish(slack: SlackApp, seconds: float, started: float) -> bool:
    """Drain `slack` by `started + seconds`, and log how it went."""
    drained = slack.drain(max(0.0, started + seconds - time.monotonic()))
    if drained:
        log.info("drained in %.2fs", time.monotonic() - started)
    else:
        log.warning("answers still under way after %.0fs; those not started were told to ask again", seconds)
    return drained


class Gate:
    """Counts HTTP requests in flight; once closed, new requests are turned away."""

    def __init__(self) -> None:
        self.closed = False
        self._inflight = 0
        self._idle = threading.Condition()

    def enter(self) -> bool:
        with self._idle:
            if self.closed:
                return False
            self._inflight += 1
            return True

    def leave(self) -> None:
        with self._idle:
            self._inflight -= 1
            self._idle.notify_all()

    def close(self) -> None:
        with self._idle:
            self.closed = True

    def wait_idle(self, timeout: float) -> bool:
        with self._idle:
            return self._idle.wait_for(lambda: self._inflight == 0, timeout)


def slack_asgi(app: App, gate: Gate, executor: ThreadPoolExecutor) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    """Slack's events, commands, actions and shortcuts, all POSTed to /slack/events; GET /healthz."""

    async def respond(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None) -> None:
        # With its length given, the response is not sent chunked.
        headers = [
            *(h for h in headers or [] if h[0].lower() != b"content-length"),
            (b"content-length", b"%d" % len(body)),
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def asgi(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        method, path = scope.get("method"), scope.get("path")
        if method == "GET" and path == HEALTH_PATH:
            await respond(send, 503 if gate.closed else 200, b"draining" if gate.closed else b"ok")
        elif path != EVENTS_PATH:
            await respond(send, 404, b"not found")
        elif method != "POST":
            await respond(send, 405, b"method not allowed", [(b"allow", b"POST")])
        elif not gate.enter():
            await respond(send, 503, b"shutting down", [(b"retry-after", str(RETRY_AFTER_SECONDS).encode())])
        else:
            try:
                status, body, headers = await _dispatch(app, executor, scope, receive)
                await respond(send, status, body, headers)
            finally:
                gate.leave()

    return asgi


async def _dispatch(
    app: App, executor: ThreadPoolExecutor, scope: Scope, receive: Receive
) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    raw = b""
    while True:
        message = await receive()
        raw += message.get("body", b"")
        if not message.get("more_body"):
            break
    grouped: dict[str, list[str]] = {}
    for name, value in scope["headers"]:
        grouped.setdefault(name.decode("latin-1"), []).append(value.decode("latin-1"))
    headers: dict[str, str | Sequence[str]] = dict(grouped)
    try:
        body = raw.decode()
        readable = isinstance(parse_body(body, extract_content_type(build_normalized_headers(headers))), dict)
    except ValueError:  # not UTF-8, or JSON that does not parse
        readable = False
    if not readable:
        return 400, b"invalid request body", []
    request = BoltRequest(body=body, query=scope["query_string"].decode("latin-1"), headers=headers)
    response = await asyncio.get_running_loop().run_in_executor(executor, app.dispatch, request)
    out = [(k.encode("latin-1"), v.encode("latin-1")) for k, values in response.headers.items() for v in values]
    return response.status, response.body.encode(), out


class _DrainingServer(uvicorn.Server):
    """uvicorn, except that the first SIGTERM/SIGINT starts a drain (which ends the server when done) instead of
    stopping at once; a second one is uvicorn's own quick exit."""

    def __init__(self, config: uvicorn.Config, on_first_signal: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_first_signal = on_first_signal
        self._signalled = False
        self._loop: asyncio.AbstractEventLoop | None = None

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._signalled:
            super().handle_exit(sig, frame)
            return
        self._signalled = True
        # The drain takes locks (the gate's, a new thread's), which a signal handler must not: the main thread
        # may hold them where the signal lands. It starts on the event loop instead.
        assert self._loop is not None, "signals are captured only while serving"
        self._loop.call_soon_threadsafe(self._on_first_signal)


class HttpServer:
    """The Slack app over HTTP on host:port (port 0: any free one; see `port`), served by uvicorn."""

    def __init__(self, slack: SlackApp, host: str, port: int, *, drain_seconds: float) -> None:
        self.slack = slack
        self.drain_seconds = drain_seconds
        self.gate = Gate()
        self.drained: bool | None = None  # once a drain has ended: whether everything taken was finished
        self._dispatch = ThreadPoolExecutor(max_workers=DISPATCH_THREADS, thread_name_prefix="bolt-dispatch")
        self._socket = socket.create_server((host, port), backlog=BACKLOG)
        config = uvicorn.Config(
            slack_asgi(slack.app, self.gate, self._dispatch),
            log_level="warning",
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=5,
        )
        self._server = _DrainingServer(config, self.start_drain)

    @property
    def started(self) -> bool:
        return bool(self._server.started)

    @property
    def port(self) -> int:
        port: int = self._socket.getsockname()[1]
        return port

    def serve(self) -> bool:
        """Serve until drained after a signal (or `stop()`); returns whether everything taken was finished."""
        try:
            self._server.run(sockets=[self._socket])
        finally:
            self._dispatch.shutdown(wait=True)
            self._socket.close()
        return bool(self.drained)

    def start_drain(self) -> None:
        """Turn new requests away and finish what was taken, in the background; the server then ends."""
        self.gate.close()
        log.info("shutting down: finishing the requests and answers under way; new requests get 503")
        threading.Thread(target=self._drain, name="drain", daemon=True).start()

    def _drain(self) -> None:
        started = time.monotonic()
        self.gate.wait_idle(self.drain_seconds)
        self.drained = _finish(self.slack, self.drain_seconds, started)
        self._server.should_exit = True

    def stop(self) -> None:
        """End serving without draining (tests)."""
        self._server.should_exit = True
