"""`byline slack` in a process of its own, stopped with SIGTERM while it answers: the answer is finished, new
requests get 503 meanwhile (HTTP) or the connection is closed (Socket Mode), and the process exits 0."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from fake_slack import APP_TOKEN, BOT_TOKEN, FakeSlack, FakeSocketMode
from slack_harness import CHANNEL, event_body, mention
from slack_sdk.signature import SignatureVerifier
from test_slack_cli import free_port, wait_until_serving

pytestmark = pytest.mark.network

TESTS = Path(__file__).resolve().parent
SECRET = "s3cret"


class Served:
    """`byline slack --http` answering every question in `answer_seconds`, against the fake Slack."""

    def __init__(self, fake: FakeSlack, home: Path, answer_seconds: float, *, socket_mode: bool = False) -> None:
        self.fake = fake
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_SIGNING_SECRET": SECRET,
            "SLACK_API_URL": fake.api_url,
            "BYLINE_HOME": str(home),
            "PYTHONPATH": os.pathsep.join([str(TESTS), str(TESTS.parent)]),
        }
        args = ["slack", "--http", "--host", "127.0.0.1", "--port", str(self.port)]
        if socket_mode:
            env["SLACK_APP_TOKEN"] = APP_TOKEN
            args = ["slack"]
        self.process = subprocess.Popen(
            [sys.executable, str(TESTS / "slack_child.py"), str(answer_seconds), *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.http = httpx.Client(trust_env=False, timeout=20)

    def ask(self, text: str) -> httpx.Response:
        ts = self.fake.add_message(CHANNEL, text)
        body = json.dumps(event_body(mention(text, ts))).encode()
        stamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "X-Slack-Request-Timestamp": stamp,
            "X-Slack-Signature": SignatureVerifier(SECRET).generate_signature(timestamp=stamp, body=body) or "",
        }
        return self.http.post(self.url + "/slack/events", content=body, headers=headers)

    def close(self) -> str:
        if self.process.poll() is None:
            self.process.kill()
        output = self.process.communicate(timeout=30)[0]
        self.http.close()
        return output


def test_sigterm_during_an_answer_finishes_it_and_turns_new_requests_away(fake: FakeSlack, tmp_path: Path) -> None:
    served = Served(fake, tmp_path / "home", answer_seconds=2.0)
    try:
        wait_until_serving(served.http, served.url + "/healthz", served.process)
        assert served.ask("why did Dorsey call Omar?").status_code == 200
        fake.wait_calls("assistant.threads.setStatus")  # the answer is being worked on
        served.process.send_signal(signal.SIGTERM)
        turned_away = fake.wait_for(lambda: (r := served.ask("a question after SIGTERM")).status_code == 503 and r)
        health = served.http.get(served.url + "/healthz")
        code = served.process.wait(timeout=60)
        answers = [c.args["text"] for c in fake.calls_to("chat.postMessage")]
    finally:
        output = served.close()
    assert turned_away.headers["retry-after"] == "5"
    assert (health.status_code, health.text) == (503, "draining")
    assert code == 0, output
    assert len(answers) == 1 and "Dorsey called Omar" in answers[0]  # finished, though the process was stopping
    assert [c.args["status"] for c in fake.calls_to("assistant.threads.setStatus")][-1] == ""
    assert "shutting down" in output and "drained in" in output and output.rstrip().endswith("stopped")


def test_a_second_sigterm_exits_at_once(fake: FakeSlack, tmp_path: Path) -> None:
    served = Served(fake, tmp_path / "home", answer_seconds=30.0)
    try:
        wait_until_serving(served.http, served.url + "/healthz", served.process)
        served.ask("a question that takes long")
        fake.wait_calls("assistant.threads.setStatus")
        served.process.send_signal(signal.SIGTERM)
        fake.wait_for(lambda: served.ask("later").status_code == 503)
        started = time.monotonic()
        served.process.send_signal(signal.SIGTERM)
        served.process.wait(timeout=60)
        took = time.monotonic() - started
    finally:
        served.close()
    assert took < 30  # did not wait for the answer under way


def test_sigterm_in_socket_mode_finishes_the_answer_and_disconnects(fake: FakeSlack, tmp_path: Path) -> None:
    with FakeSocketMode() as socket:
        fake.wss_url = socket.url
        served = Served(fake, tmp_path / "home", answer_seconds=2.0, socket_mode=True)
        try:
            fake.wait_for(lambda: socket.connections, timeout=60)
            ts = fake.add_message(CHANNEL, "why did Dorsey call Omar?")
            envelope = {
                "envelope_id": "env-1",
                "type": "events_api",
                "payload": event_body(mention("why did Dorsey call Omar?", ts)),
                "accepts_response_payload": False,
            }
            socket.send(envelope)
            fake.wait_calls("assistant.threads.setStatus")
            served.process.send_signal(signal.SIGTERM)
            code = served.process.wait(timeout=60)
        finally:
            output = served.close()
    assert code == 0, output
    assert [a["envelope_id"] for a in socket.acks] == ["env-1"]
    [answer] = fake.calls_to("chat.postMessage")
    assert "Dorsey called Omar" in answer.args["text"]
    assert "drained in" in output and output.rstrip().endswith("stopped")
