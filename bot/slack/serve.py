"""Running the Slack app: Socket Mode (an outbound WebSocket) or HTTP (Slack POSTs to /slack/events)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from socketserver import ThreadingMixIn
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from slack_bolt import App
from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_bolt.adapter.wsgi import SlackRequestHandler

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIEnvironment

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
HEALTH_PATH = "/healthz"


def socket_mode_handler(app: App, app_token: str) -> SocketModeHandler:
    """The Socket Mode connection for `app`; it opens through `app.client`, so SLACK_API_URL applies."""
    return SocketModeHandler(app, app_token)


def run_socket_mode(app: App, app_token: str) -> None:
    """Connect and serve until interrupted (slack_sdk reconnects by itself when the socket drops)."""
    socket_mode_handler(app, app_token).start()  # type: ignore[no-untyped-call]


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)


def wsgi_app(app: App) -> Any:
    """A WSGI application: Slack's events, commands and actions all POST to /slack/events; GET /healthz."""
    slack = SlackRequestHandler(app, path=EVENTS_PATH)

    def serve(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") == "GET" and environ.get("PATH_INFO") == HEALTH_PATH:
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"ok"]
        return slack(environ, start_response)

    return serve


def make_http_server(app: App, port: int, host: str = "0.0.0.0") -> WSGIServer:
    """A threaded HTTP server for `app` (port 0 picks a free port); call `serve_forever()` on it."""
    return make_server(host, port, wsgi_app(app), server_class=_ThreadingWSGIServer, handler_class=_QuietHandler)


def run_http(app: App, port: int, host: str = "0.0.0.0") -> None:
    """Serve the Events API on http://host:port/slack/events until interrupted (put TLS in front of it)."""
    server = make_http_server(app, port, host)
    log.info("listening on http://%s:%s%s", host, server.server_port, EVENTS_PATH)
    try:
        server.serve_forever()
    finally:
        server.server_close()
