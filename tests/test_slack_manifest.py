"""The Slack app manifests in the repo match what the code registers: the agent view, events, /ask, the
shortcut, buttons, scopes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from fake_slack import BOT_TOKEN, BOT_USER_ID, FakeSlack
from slack_bolt import App, BoltRequest
from slack_harness import ALICE, CHANNEL, ScriptedAsk, event_body

from bot.settings import Settings, SlackSettings
from bot.slack.app import ACTIONS, ASSISTANT_VIEW_EVENTS, COMMANDS, EVENTS, SCOPES, SHORTCUTS, create_slack_app
from bot.slack.render import FEEDBACK_ACTION
from bot.slack.serve import EVENTS_PATH
from ingest.storage.sqlite import SQLiteCatalog

REPO = Path(__file__).resolve().parent.parent
MANIFESTS = {"socket": REPO / "slack" / "manifest.socket.yaml", "http": REPO / "slack" / "manifest.http.yaml"}


def load(mode: str) -> dict[str, Any]:
    manifest: dict[str, Any] = yaml.safe_load(MANIFESTS[mode].read_text())
    return manifest


@pytest.mark.parametrize("mode", ["socket", "http"])
def test_manifest_declares_what_the_code_handles(mode: str) -> None:
    manifest = load(mode)
    features, settings = manifest["features"], manifest["settings"]
    assert set(settings["event_subscriptions"]["bot_events"]) == set(EVENTS)
    assert {c["command"] for c in features["slash_commands"]} == set(COMMANDS)
    assert {(s["type"], s["callback_id"]) for s in features["shortcuts"]} == {("message", c) for c in SHORTCUTS}
    assert set(manifest["oauth_config"]["scopes"]["bot"]) == set(SCOPES)
    # The agent experience: its DM opens with app_home_opened, handled; the legacy assistant view is not set.
    assert features["agent_view"]["agent_description"] and "assistant_view" not in features
    assert "app_home_opened" in EVENTS
    assert settings["interactivity"]["is_enabled"] is True
    assert features["app_home"]["messages_tab_enabled"] is True
    assert features["app_home"]["messages_tab_read_only_enabled"] is False
    assert settings["socket_mode_enabled"] is (mode == "socket")
    urls = [
        settings["event_subscriptions"].get("request_url"),
        settings["interactivity"].get("request_url"),
        *(c.get("url") for c in features["slash_commands"]),
    ]
    if mode == "http":
        assert all(url and url.endswith(EVENTS_PATH) for url in urls)
    else:
        assert urls == [None, None, None]


@pytest.fixture
def app(tmp_path: Path) -> Any:
    with FakeSlack() as fake:
        settings = Settings(home=tmp_path, slack=SlackSettings(bot_token=BOT_TOKEN, api_url=fake.api_url))
        catalog = SQLiteCatalog(tmp_path / "catalog.sqlite")
        slack = create_slack_app(settings, ScriptedAsk(), catalog)
        yield slack.app, fake
        slack.drain(10)
        catalog.close()


def dispatch(app: App, body: dict[str, Any]) -> int:
    status: int = app.dispatch(BoltRequest(body=body, mode="socket_mode")).status
    return status


def event_of(subscription: str) -> dict[str, Any]:
    """A delivery of a bot event subscription, from another bot so that the handler has nothing to do."""
    kind, _, channel_type = subscription.partition(".")
    event = {
        "type": kind,
        "user": "U0OTHERBOT",
        "bot_id": "B0OTHER",
        "text": f"<@{BOT_USER_ID}> hi",
        "ts": "1700000000.000100",
        "thread_ts": "1700000000.000001",
        "channel": "D0ALICE" if channel_type == "im" else CHANNEL,
        "tab": "home",
        "assistant_thread": {"user_id": "U0OTHERBOT", "channel_id": "D0ALICE", "thread_ts": "1700000000.000001"},
    }
    if channel_type:
        event["channel_type"] = {"channels": "channel", "groups": "group"}.get(channel_type, channel_type)
    return event_body(event)


@pytest.mark.network
def test_every_manifest_subscription_reaches_a_handler(app: Any) -> None:
    bolt, fake = app
    manifest = load("socket")
    for subscription in [*manifest["settings"]["event_subscriptions"]["bot_events"], *ASSISTANT_VIEW_EVENTS]:
        assert dispatch(bolt, event_of(subscription)) == 200, subscription
    for command in manifest["features"]["slash_commands"]:
        body = {
            "command": command["command"],
            "text": "",
            "user_id": ALICE,
            "channel_id": CHANNEL,
            "trigger_id": "t-1",
            "response_url": fake.webhook_url(),
        }
        assert dispatch(bolt, body) == 200, command["command"]
    for action_id in ACTIONS:
        kind = "feedback_buttons" if action_id == FEEDBACK_ACTION else "button"
        payload = {
            "type": "block_actions",
            "user": {"id": ALICE},
            "response_url": fake.webhook_url(),
            "actions": [{"type": kind, "action_id": action_id, "value": "up:a1", "block_id": "b"}],
        }
        assert dispatch(bolt, payload) == 200, action_id
    for shortcut in manifest["features"]["shortcuts"]:
        payload = {
            "type": "message_action",
            "callback_id": shortcut["callback_id"],
            "trigger_id": "t-3",
            "user": {"id": ALICE},
            "channel": {"id": CHANNEL},
            "message": {"type": "message", "user": ALICE, "ts": "1700000000.000200", "text": ""},
            "response_url": fake.webhook_url(),
        }
        assert dispatch(bolt, payload) == 200, shortcut["callback_id"]
    # and the check can fail: what the manifest does not subscribe to has no handler
    assert dispatch(bolt, event_body({"type": "reaction_added", "user": ALICE, "reaction": "eyes"})) == 404
    other = {"command": "/other", "text": "x", "user_id": ALICE, "channel_id": CHANNEL, "trigger_id": "t-2"}
    assert dispatch(bolt, other) == 404
    unknown = {"type": "message_action", "callback_id": "other", "trigger_id": "t-4", "user": {"id": ALICE}}
    assert dispatch(bolt, unknown) == 404
