"""Load test of `byline slack --http`: signed Slack events at a given concurrency, against the real command in its
own process (tests/slack_child.py: a scripted answerer that answers at once) talking to the fake Slack Web API in
a third process. Run `.venv/bin/python tests/bench_slack.py` (options: --help).

Reports the acknowledgement latency (Slack gives up on a request after 3 s and retries it), how many questions
were answered, answered twice, turned away as busy, or lost, and the HTTP errors. Part of the events are sent a
second time as Slack's retries (same event id, X-Slack-Retry-Num), which must not be answered again. Targets:
every ack under 3 s, p99 under 300 ms, none lost, none answered twice.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TESTS = Path(__file__).resolve().parent
sys.path[:0] = [str(TESTS), str(TESTS.parent)]

SECRET = "bench-signing-secret"
CHANNEL = "C0NEWS"


def run_fake(out: Path, events: int) -> None:
    """The fake Slack in this process: posts the events' messages (so statuses find their thread), writes the
    API URL and their ts, then keeps writing what the bot posted, per thread, until it is killed."""
    from fake_slack import FakeSlack

    with FakeSlack() as fake:
        # The standard library's server queues 5 connections; the bot opens up to ~20 at once.
        fake._server.socket.listen(1024)
        stamps = [fake.add_message(CHANNEL, f"question {n}?", user=f"U{n:06d}") for n in range(events)]
        write_json(out / "start.json", {"api_url": fake.api_url, "stamps": stamps})
        while True:
            posted: dict[str, list[str]] = {}
            for call in fake.calls_to("chat.postMessage"):
                posted.setdefault(str(call.args.get("thread_ts")), []).append(str(call.args.get("text", "")))
            write_json(out / "posted.json", posted)
            time.sleep(0.2)


def write_json(path: Path, value: Any) -> None:
    temp = path.with_suffix(".tmp")
    temp.write_text(json.dumps(value))
    temp.replace(path)


def signed_request(body: bytes, retry: int) -> bytes:
    from slack_sdk.signature import SignatureVerifier

    stamp = str(int(time.time()))
    headers = {
        "Host": "127.0.0.1",
        "Content-Type": "application/json",
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": SignatureVerifier(SECRET).generate_signature(timestamp=stamp, body=body) or "",
        "Content-Length": str(len(body)),
    }
    if retry:
        headers |= {"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"}
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return f"POST /slack/events HTTP/1.1\r\n{head}\r\n".encode() + body


async def fire(port: int, requests: list[bytes], concurrency: int) -> tuple[list[float], list[str]]:
    """`concurrency` keep-alive connections, each sending its next request when the last is answered. Requests
    are signed beforehand and spoken over raw sockets, so that the client's own cost is not what is measured."""
    queue = list(reversed(requests))
    latencies: list[float] = []
    errors: list[str] = []

    async def connection() -> None:
        reader: asyncio.StreamReader | None = None
        writer: asyncio.StreamWriter | None = None
        while queue:
            request = queue.pop()
            started = time.perf_counter()
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                assert reader is not None
                writer.write(request)
                head = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)).decode("latin-1").split("\r\n")
                fields = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in head[1:] if line)}
                await reader.readexactly(int(fields.get("content-length", "0")))
                status = head[0].split(" ", 2)[1] if head[0].startswith("HTTP/") else f"unreadable {head[0]!r}"
                if status != "200":
                    errors.append(f"HTTP {status}")
                if fields.get("connection", "").lower() == "close":
                    writer.close()
                    writer = None
            except (OSError, asyncio.IncompleteReadError, TimeoutError) as e:
                errors.append(type(e).__name__)
                if writer is not None:
                    writer.close()
                writer = None
            latencies.append(time.perf_counter() - started)
        if writer is not None:
            writer.close()

    await asyncio.gather(*(connection() for _ in range(concurrency)))
    return latencies, errors


def start(
    events: int, workers: int, queue: int, work: Path
) -> tuple[subprocess.Popen[bytes], subprocess.Popen[str], int, dict[str, Any]]:
    fake = subprocess.Popen([sys.executable, __file__, "--fake", str(work), "--events", str(events)])
    deadline = time.monotonic() + 60
    while not (work / "start.json").exists():
        if time.monotonic() > deadline or fake.poll() is not None:
            raise SystemExit("the fake Slack did not start")
        time.sleep(0.05)
    started = json.loads((work / "start.json").read_text())
    from test_slack_cli import free_port

    port = free_port()
    env = {
        **os.environ,
        "SLACK_BOT_TOKEN": "xoxb-test-token",
        "SLACK_SIGNING_SECRET": SECRET,
        "SLACK_API_URL": started["api_url"],
        "BYLINE_HOME": str(work / "home"),
        "BYLINE_SLACK_WORKERS": str(workers),
        "BYLINE_SLACK_QUEUE": str(queue),
        "BYLINE_SLACK_USER_RATE_PER_MINUTE": "1000",
        "PYTHONPATH": os.pathsep.join([str(TESTS), str(TESTS.parent)]),
    }
    command = [sys.executable, str(TESTS / "slack_child.py"), "0", "slack", "--http", "--host", "127.0.0.1"]
    server = subprocess.Popen(
        [*command, "--port", str(port)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    import httpx

    with httpx.Client(trust_env=False) as http:
        while True:
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit(f"byline slack did not start: {server.communicate()[0] if server.poll() else ''}")
            try:
                if http.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
    return fake, server, port, started


def bench(events: int, concurrency: int, retries: int, workers: int, queue: int) -> None:
    from slack_harness import event_body, mention

    from bot.slack.render import BUSY_MESSAGE

    with tempfile.TemporaryDirectory(prefix="bench-slack-") as temp:
        work = Path(temp)
        fake, server, port, started = start(events, workers, queue, work)
        try:
            stamps: list[str] = started["stamps"]
            bodies = [
                json.dumps(event_body(mention(f"question {n}?", ts, user=f"U{n:06d}"), f"EvBENCH{n:06d}")).encode()
                for n, ts in enumerate(stamps)
            ]
            # Slack's retries of some events, sent after all the first deliveries.
            requests = [signed_request(b, 0) for b in bodies] + [signed_request(b, 1) for b in bodies[:retries]]
            load = os.getloadavg()[0]
            began = time.perf_counter()
            latencies, errors = asyncio.run(fire(port, requests, concurrency))
            sent_in = time.perf_counter() - began

            def tally() -> dict[str, list[str]]:
                try:
                    posted: dict[str, list[str]] = json.loads((work / "posted.json").read_text())
                except (OSError, ValueError):
                    return {}
                return posted

            deadline = time.monotonic() + 120
            while sum(map(len, tally().values())) < events and time.monotonic() < deadline:
                time.sleep(0.2)
            time.sleep(1.0)  # anything answered twice would show by now
            posted = tally()
            server.send_signal(signal.SIGTERM)
            code = server.wait(timeout=120)
        finally:
            for process in (server, fake):
                if process.poll() is None:
                    process.kill()
            fake.wait(10)
    answered = sum(1 for texts in posted.values() if any("Dorsey called Omar" in t for t in texts))
    twice = sum(1 for texts in posted.values() if sum("Dorsey called Omar" in t for t in texts) > 1)
    busy = sum(1 for texts in posted.values() if BUSY_MESSAGE in texts)
    q = statistics.quantiles(latencies, n=100)
    print(
        f"{events} events + {retries} retried deliveries at concurrency {concurrency}; slack.workers {workers}, "
        f"slack.queue {queue}"
    )
    print(f"sent in {sent_in:.2f}s ({len(requests) / sent_in:.0f} requests/s); load average before {load:.1f}")
    print(f"ack latency ms: p50 {q[49] * 1000:.1f}  p99 {q[98] * 1000:.1f}  max {max(latencies) * 1000:.1f}")
    print(f"acks over 3 s: {sum(t >= 3 for t in latencies)}; HTTP errors: {len(errors)} {sorted(set(errors))}")
    print(f"answered {answered}, answered twice {twice}, turned away busy {busy}, lost {events - answered - busy}")
    print(f"exit code after SIGTERM: {code}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--retries", type=int, default=50, help="events delivered a second time, as Slack retries")
    parser.add_argument("--workers", type=int, default=4, help="slack.workers (the default is 4)")
    parser.add_argument("--queue", type=int, default=32, help="slack.queue (the default is 32)")
    parser.add_argument("--fake", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.fake:
        run_fake(args.fake, args.events)
    else:
        bench(args.events, args.concurrency, args.retries, args.workers, args.queue)


if __name__ == "__main__":
    main()
