"""The real Byline Slack app behind its real HTTP server, talking to the fake Slack Web API.

`SlackHarness` builds it from settings (the Web API URL pointed at `FakeSlack`), serves it on 127.0.0.1:0 and
sends it requests signed the way Slack signs them. `ScriptedAsk` stands in for the answerer where the test is
about Slack, not about answering.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
from fake_slack import BOT_TOKEN, BOT_USER_ID, TEAM_ID, FakeSlack
from slack_bolt import App
from slack_sdk.signature import SignatureVerifier

from bot.models import CANNOT_ANSWER, Answer, Citation, Turn
from bot.settings import Settings, SlackSettings
from bot.slack.app import create_slack_app
from bot.slack.feedback import FeedbackStore
from bot.slack.serve import make_http_server
from ingest.models import SearchFilters
from ingest.storage.sqlite import SQLiteCatalog

SIGNING_SECRET = "test-signing-secret-0123456789"
CHANNEL = "C0NEWS"
DM = "D0ALICE"
ALICE = "U0ALICE"
BOB = "U0BOB"


def make_answer(
    question: str, text: str = "Dorsey called Omar to discuss the threats [1].", sources: int = 1
) -> Answer:
    citations = [
        Citation(
            n=n,
            article_id=f"a{n}",
            title=f"Dorsey & Omar <talk> part {n}",
            quote=f"Quote number {n}.",
            start=0,
            end=14,
            score=0.9,
            url=f"https://thehill.com/story-{n}?a=1&b=2",
            source="The Hill",
            published_at=datetime(2019, 4, 23, 12, 0),
        )
        for n in range(1, sources + 1)
    ]
    return Answer(question=question, text=text, refused=False, citations=citations)


def refusal(question: str) -> Answer:
    return Answer(question=question, text=CANNOT_ANSWER, refused=True)


@dataclass
class AskCall:
    question: str
    filters: SearchFilters | None
    history: list[Turn]


@dataclass
class ScriptedAsk:
    """An answerer: records each call and answers with `reply(question)` (which may raise or block)."""

    reply: Callable[[str], Answer] = make_answer
    calls: list[AskCall] = field(default_factory=list)

    def __call__(self, question: str, filters: SearchFilters | None, history: Sequence[Turn]) -> Answer:
        self.calls.append(AskCall(question, filters, list(history)))
        return self.reply(question)


def event_body(event: dict[str, Any], event_id: str | None = None) -> dict[str, Any]:
    return {
        "token": "legacy-verification-token",
        "team_id": TEAM_ID,
        "api_app_id": "A0BYLINE",
        "type": "event_callback",
        "event_id": event_id or f"Ev{uuid.uuid4().hex[:10].upper()}",
        "event_time": int(time.time()),
        "event": event,
        "authorizations": [{"team_id": TEAM_ID, "user_id": BOT_USER_ID, "is_bot": True}],
    }


def mention(
    text: str, ts: str, *, channel: str = CHANNEL, user: str = ALICE, thread_ts: str | None = None
) -> dict[str, Any]:
    event = {
        "type": "app_mention",
        "user": user,
        "text": f"<@{BOT_USER_ID}> {text}",
        "ts": ts,
        "channel": channel,
        "event_ts": ts,
        "client_msg_id": str(uuid.uuid4()),
    }
    if thread_ts:
        event["thread_ts"] = thread_ts
    return event


def direct_message(text: str, ts: str, *, channel: str = DM, user: str = ALICE, **extra: Any) -> dict[str, Any]:
    return {
        "type": "message",
        "channel_type": "im",
        "user": user,
        "text": text,
        "ts": ts,
        "channel": channel,
        "event_ts": ts,
        "client_msg_id": str(uuid.uuid4()),
        **extra,
    }


class SlackHarness:
    """Fake Slack + the Byline Slack app served over HTTP; use as a context manager."""

    def __init__(self, fake: FakeSlack, home: Path, ask: ScriptedAsk | None = None, **slack: Any) -> None:
        self.fake = fake
        self.ask = ask or ScriptedAsk()
        self.settings = Settings(
            home=home,
            slack=SlackSettings(bot_token=BOT_TOKEN, signing_secret=SIGNING_SECRET, api_url=fake.api_url, **slack),
        )
        self.catalog = SQLiteCatalog(home / "catalog.sqlite")
        self.feedback = FeedbackStore(self.catalog)
        self.app: App = create_slack_app(self.settings, self.ask, self.feedback)
        self.server = make_http_server(self.app, 0, "127.0.0.1")
        self.url = f"http://127.0.0.1:{self.server.server_port}/slack/events"
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.http = httpx.Client(timeout=20, trust_env=False)

    def __enter__(self) -> SlackHarness:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.http.close()
        self.catalog.close()

    def post(
        self,
        raw: bytes,
        content_type: str,
        *,
        timestamp: int | None = None,
        secret: str = SIGNING_SECRET,
        headers: dict[str, str] | None = None,
        sign: bool = True,
    ) -> httpx.Response:
        ts = str(int(time.time()) if timestamp is None else timestamp)
        sent = {"Content-Type": content_type, **(headers or {})}
        if sign:
            sent["X-Slack-Request-Timestamp"] = ts
            sent["X-Slack-Signature"] = SignatureVerifier(secret).generate_signature(timestamp=ts, body=raw) or ""
        return self.http.post(self.url, content=raw, headers=sent)

    def send_event(self, event: dict[str, Any], event_id: str | None = None, **kwargs: Any) -> httpx.Response:
        return self.post(json.dumps(event_body(event, event_id)).encode(), "application/json", **kwargs)

    def send_command(self, text: str, *, channel: str = CHANNEL, user: str = ALICE, **kwargs: Any) -> httpx.Response:
        form = {
            "token": "legacy-verification-token",
            "team_id": TEAM_ID,
            "channel_id": channel,
            "channel_name": "news",
            "user_id": user,
            "user_name": "alice",
            "command": "/ask",
            "text": text,
            "api_app_id": "A0BYLINE",
            "response_url": self.fake.webhook_url("command"),
            "trigger_id": f"trigger-{uuid.uuid4().hex}",
        }
        return self.post(urlencode(form).encode(), "application/x-www-form-urlencoded", **kwargs)

    def send_click(
        self,
        action_id: str,
        answer_id: str,
        *,
        user: str = BOB,
        channel: str = CHANNEL,
        message_ts: str = "1700000001.000000",
    ) -> httpx.Response:
        payload = {
            "type": "block_actions",
            "user": {"id": user, "username": "bob", "team_id": TEAM_ID},
            "api_app_id": "A0BYLINE",
            "team": {"id": TEAM_ID},
            "trigger_id": f"trigger-{uuid.uuid4().hex}",
            "container": {"type": "message", "message_ts": message_ts, "channel_id": channel},
            "channel": {"id": channel, "name": "news"},
            "response_url": self.fake.webhook_url("click"),
            "actions": [
                {
                    "type": "button",
                    "action_id": action_id,
                    "block_id": f"byline-feedback:{answer_id}",
                    "value": answer_id,
                    "action_ts": str(time.time()),
                }
            ],
        }
        form = urlencode({"payload": json.dumps(payload)}).encode()
        return self.post(form, "application/x-www-form-urlencoded")

    def ask_in_channel(self, text: str, **kwargs: Any) -> tuple[str, httpx.Response]:
        """A person posts a mention (so the fake knows the message) and Slack delivers the event."""
        ts = self.fake.add_message(
            kwargs.get("channel", CHANNEL),
            f"<@{BOT_USER_ID}> {text}",
            user=kwargs.get("user", ALICE),
            thread_ts=kwargs.get("thread_ts"),
        )
        return ts, self.send_event(mention(text, ts, **kwargs))


def section_texts(blocks: list[dict[str, Any]]) -> list[str]:
    return [b["text"]["text"] for b in blocks if b["type"] == "section"]


def context_texts(blocks: list[dict[str, Any]]) -> list[str]:
    return [e["text"] for b in blocks if b["type"] == "context" for e in b["elements"]]


def answer_id_of(blocks: list[dict[str, Any]]) -> str:
    return str(next(b["elements"][0]["value"] for b in blocks if b["type"] == "actions"))
