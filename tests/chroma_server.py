"""A real `chroma run` server on 127.0.0.1 for tests, and a token-checking proxy in front of one.

`chroma run` (Chroma 1.x) has no authentication of its own: a deployment puts it behind a proxy that checks a
token. `TokenProxy` is such a proxy, enough for tests: it answers 401 unless the request carries the token in the
header it was told to check, and passes everything else on to the server.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
from conftest import free_port

CHROMA = Path(sys.executable).with_name("chroma")


def start_chroma(path: Path) -> tuple[subprocess.Popen[bytes], str]:
    """A Chroma server on a free loopback port, answering its heartbeat."""
    port = free_port()
    log = (path.parent / f"chroma-{port}.log").open("wb")
    server = subprocess.Popen(
        [str(CHROMA), "run", "--path", str(path), "--host", "127.0.0.1", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"chroma run exited with {server.returncode}; see {log.name}")
        try:
            if httpx.get(f"{url}/api/v2/heartbeat", timeout=1).status_code == 200:
                return server, url
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    server.kill()
    raise RuntimeError("chroma run did not answer within 60 s")


def stop(server: subprocess.Popen[bytes]) -> None:
    server.terminate()
    try:
        server.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


@contextmanager
def running_chroma(path: Path) -> Iterator[str]:
    server, url = start_chroma(path)
    try:
        yield url
    finally:
        stop(server)


# Paths a Chroma server with token auth answers without one (chromadb's default chroma_server_auth_ignore_paths).
OPEN_PATHS = ("/api/v2/heartbeat", "/api/v2/version")


class TokenProxy:
    """Passes requests carrying `header: expected` (and those to OPEN_PATHS) on to `upstream`; anything else gets
    401."""

    def __init__(self, upstream: str, header: str, expected: str) -> None:
        self.upstream, self.header, self.expected = upstream, header, expected
        self.refused = 0
        self._client = httpx.Client(base_url=upstream, timeout=60)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> TokenProxy:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._client.close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # quiet
                pass

            def _forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.headers.get(proxy.header) != proxy.expected and self.path not in OPEN_PATHS:
                    proxy.refused += 1
                    self._reply(401, b'{"error": "Unauthorized", "message": "missing or wrong token"}', {})
                    return
                passed = {k: v for k, v in self.headers.items() if k.lower() in ("content-type", "accept")}
                answer = proxy._client.request(self.command, self.path, content=body, headers=passed)
                self._reply(answer.status_code, answer.content, {"Content-Type": answer.headers.get("content-type")})

            def _reply(self, status: int, body: bytes, headers: dict[str, str | None]) -> None:
                self.send_response(status)
                for name, value in {"Content-Type": "application/json", **headers}.items():
                    if value:
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _forward

        return Handler
