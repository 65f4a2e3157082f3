"""The Slack app in Socket Mode: slack_sdk's own client on a local WebSocket, envelopes acked, duplicates dropped."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fake_slack import APP_TOKEN, BOT_TOKEN, FakeSlack, FakeSocketMode
from slack_harness import ALICE, CHANNEL, ScriptedAsk, event_body, mention, section_texts

from bot.settings import Settings, SlackSettings
from bot.slack.app import create_slack_app
from bot.slack.render import PLACEHOLDER
from bot.slack.serve import socket_mode_handler
from ingest.storage.sqlite import SQLiteCatalog

pytestmark = [pytest.mark.network, pytest.mark.timeout(60)]


class SocketModeRun:
    def __init__(self, fake: FakeSlack, socket: FakeSocketMode, ask: ScriptedAsk) -> None:
        self.fake, self.socket, self.ask = fake, socket, ask


@pytest.fixture
def run(tmp_path: Path) -> Iterator[SocketModeRun]:
    with FakeSlack() as fake, FakeSocketMode() as socket:
        fake.wss_url = socket.url
        # No signing secret: Socket Mode needs none.
        settings = Settings(
            home=tmp_path, slack=SlackSettings(bot_token=BOT_TOKEN, app_token=APP_TOKEN, api_url=fake.api_url)
        )
        catalog = SQLiteCatalog(tmp_path / "catalog.sqlite")
        ask = ScriptedAsk()
        slack = create_slack_app(settings, ask, catalog)
        handler = socket_mode_handler(slack.app, APP_TOKEN)
        handler.connect()  # type: ignore[no-untyped-call]
        try:
            fake.wait_for(lambda: socket.connections)
            yield SocketModeRun(fake, socket, ask)
        finally:
            handler.close()  # type: ignore[no-untyped-call]
            slack.drain(10)
            catalog.close()


def envelope(envelope_id: str, kind: str, payload: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "envelope_id": envelope_id,
        "type": kind,
        "payload": payload,
        "accepts_response_payload": kind != "events_api",
        **extra,
    }


def test_connects_with_the_app_token(run: SocketModeRun) -> None:
    [opened] = run.fake.calls_to("apps.connections.open")
    assert opened.token == APP_TOKEN


def test_duplicate_envelopes_are_both_acked_and_answered_once(run: SocketModeRun) -> None:
    ts = run.fake.add_message(CHANNEL, "why did Dorsey call Omar?")
    body = event_body(mention("why did Dorsey call Omar?", ts), "EvSOCKET")
    run.socket.send(envelope("env-1", "events_api", body, retry_attempt=0, retry_reason=""))
    run.socket.send(envelope("env-2", "events_api", body, retry_attempt=1, retry_reason="timeout"))

    run.fake.wait_for(lambda: {a.get("envelope_id") for a in run.socket.acks} >= {"env-1", "env-2"})
    posted = run.fake.wait_calls("chat.postMessage")[0]
    assert section_texts(posted.args["blocks"]) == ["Dorsey called Omar to discuss the threats [1]."]
    assert posted.args["thread_ts"] == ts
    time.sleep(0.4)  # the duplicate's listener runs after its ack: give a second answer time to show up
    assert len(run.fake.calls_to("chat.postMessage")) == 1 and len(run.ask.calls) == 1


def test_slash_command_ack_payload_travels_back_over_the_socket(run: SocketModeRun) -> None:
    command = {
        "command": "/ask",
        "text": "why?",
        "user_id": ALICE,
        "channel_id": CHANNEL,
        "team_id": "T0TEAM",
        "response_url": run.fake.webhook_url("command"),
        "trigger_id": "trigger-socket-1",
    }
    run.socket.send(envelope("env-cmd", "slash_commands", command))
    ack = run.fake.wait_for(lambda: next((a for a in run.socket.acks if a.get("envelope_id") == "env-cmd"), None))
    assert ack["payload"] == {"response_type": "ephemeral", "text": PLACEHOLDER}
    webhook = run.fake.wait_calls("webhook")[0]
    assert webhook.args["replace_original"] is True
    assert run.ask.calls[0].question == "why?"
