"""`byline slack` start-up errors and a real run in HTTP mode; `byline feedback export`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import typer
from fake_slack import APP_TOKEN, BOT_TOKEN, FakeSlack
from slack_harness import make_answer, refusal
from slack_sdk.signature import SignatureVerifier
from typer.testing import CliRunner

from bot.settings import Settings
from bot.slack.feedback import FeedbackStore, PostedAnswer
from evals.datasets import DatasetError, load_questions
from ingest.storage.sqlite import SQLiteCatalog

REPO = Path(__file__).resolve().parent.parent


def cli() -> typer.Typer:
    from bot.cli.main import build_app

    return build_app()


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (["slack"], {}, "SLACK_BOT_TOKEN is not set"),
        (["slack"], {"SLACK_BOT_TOKEN": BOT_TOKEN}, "Socket Mode needs SLACK_APP_TOKEN"),
        (["slack", "--http"], {"SLACK_BOT_TOKEN": BOT_TOKEN}, "HTTP mode needs SLACK_SIGNING_SECRET"),
    ],
    ids=["no-bot-token", "no-app-token", "no-signing-secret"],
)
def test_missing_tokens_are_a_clear_error(args: list[str], env: dict[str, str], expected: str) -> None:
    result = CliRunner().invoke(cli(), args, env=env)
    assert result.exit_code == 2
    assert expected in result.output and "Traceback" not in result.output


@pytest.mark.network
def test_a_rejected_token_is_a_clear_error(fake: FakeSlack) -> None:
    env = {"SLACK_BOT_TOKEN": "xoxb-revoked-123", "SLACK_APP_TOKEN": APP_TOKEN, "SLACK_API_URL": fake.api_url}
    result = CliRunner().invoke(cli(), ["slack"], env=env)
    assert result.exit_code == 2
    assert "Slack rejected the bot token at auth.test (invalid_auth)" in result.output
    assert "xoxb-revoked-123" not in result.output and "Traceback" not in result.output


def test_feedback_export_writes_the_downvoted_answers(settings: Settings, tmp_path: Path) -> None:
    catalog = SQLiteCatalog(settings.home / "catalog.sqlite")
    store = FeedbackStore(catalog)
    store.record_answer(make_answer("why did Dorsey call Omar?"), PostedAnswer("a1", "C1", "1.1", "1.0", "U1"))
    store.record_answer(refusal("who won the 2019 Tour?"), PostedAnswer("a2", "C1", "2.1", "2.0", "U1"))
    store.record_vote("a1", "U2", 1, channel="C1", message_ts="1.1")
    store.record_vote("a2", "U2", -1, channel="C1", message_ts="2.1")
    catalog.close()

    target = tmp_path / "out" / "feedback.jsonl"
    result = CliRunner().invoke(cli(), ["feedback", "export", "--output", str(target)])
    assert result.exit_code == 0, result.output
    assert "wrote 1 question(s)" in result.output
    [record] = [json.loads(line) for line in target.read_text().splitlines()]
    assert {k: record[k] for k in ("id", "question", "answerable", "answers", "evidence")} == {
        "id": "slack-a2",
        "question": "who won the 2019 Tour?",
        "answerable": True,
        "answers": [],
        "evidence": [],
    }
    to_stdout = CliRunner().invoke(cli(), ["feedback", "export"])
    assert [json.loads(line)["id"] for line in to_stdout.stdout.splitlines()] == ["slack-a2"]

    # The eval loader takes the record's shape and asks only for what a person has to add.
    with pytest.raises(DatasetError) as problems:
        load_questions(target)
    assert [p.split(": ", 1)[1] for p in problems.value.problems] == [
        "an answerable question needs at least one answer and one evidence quote"
    ]
    record.update(answers=["Egan Bernal"], evidence=[{"url": "https://x.example/tour", "quote": "Bernal won"}])
    target.write_text(json.dumps(record) + "\n")
    assert [q.id for q in load_questions(target)] == ["slack-a2"]


@pytest.mark.network
def test_byline_slack_http_serves_signed_requests(fake: FakeSlack, tmp_path: Path) -> None:
    """The whole command in its own process: settings from the environment, auth.test, the HTTP server."""
    with httpx.Client(trust_env=False) as http:
        port = free_port()
        env = {
            **os.environ,
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_SIGNING_SECRET": "s3cret",
            "SLACK_API_URL": fake.api_url,
            "BYLINE_HOME": str(tmp_path / "home"),
        }
        process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from bot.cli.main import main; main()",
                "slack",
                "--http",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            env=env,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            wait_until_serving(http, url + "/healthz", process)
            body = json.dumps({"type": "url_verification", "challenge": "ch-42"}).encode()
            ts = str(int(time.time()))
            signature = SignatureVerifier("s3cret").generate_signature(timestamp=ts, body=body) or ""
            headers = {
                "Content-Type": "application/json",
                "X-Slack-Request-Timestamp": ts,
                "X-Slack-Signature": signature,
            }
            assert http.post(url + "/slack/events", content=body, headers=headers).json() == {"challenge": "ch-42"}
            forged = {**headers, "X-Slack-Signature": "v0=" + "0" * 64}
            assert http.post(url + "/slack/events", content=body, headers=forged).status_code == 401
        finally:
            process.terminate()
            output = process.communicate(timeout=20)[0]
    assert len(fake.calls_to("auth.test")) >= 1
    assert "Byline is answering in Slack as @byline in Fake" in output
    assert "No articles have been ingested yet" in output  # a warning, not a failure
    assert BOT_TOKEN not in output and "s3cret" not in output


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_until_serving(http: httpx.Client, url: str, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"byline slack exited: {process.communicate()[0]}")
        try:
            if http.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError("byline slack did not start serving within 60 s")
