"""The real Byline Slack app behind its real HTTP server, talking to the fake Slack Web API.

`SlackHarness` builds it from settings (the Web API URL pointed at `FakeSlack`), serves it on 127.0.0.1:0 and
sends it requests signed the way Slack signs them. `ScriptedAsk` stands in for Byline where the test is about
Slack, not about answering: it calls `on_status` and `on_text` the way `Byline.ask` does.
"""

from __future__ import annotations

import json
import re
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
from slack_sdk.signature import SignatureVerifier

from bot.models import CANNOT_ANSWER, Answer, Citation, Turn
from bot.settings import Settings, SlackSettings
from bot.slack.app import SlackApp, create_slack_app
from bot.slack.render import FEEDBACK_ACTION
from bot.slack.serve import HttpServer
from ingest.models import SearchFilters
from ingest.storage.catalog import Catalog, Headline
from ingest.storage.sqlite import SQLiteCatalog

SIGNING_SECRET = "test-signing-secret-0123456789"
CHANNEL = "C0NEWS"
DM = "D0ALICE"
ALICE = "U0ALICE"
BOB = "U0BOB"


def make_answer(
    question: str,
    text: str = "Dorsey called Omar to discuss the threats [1].",
    sources: int = 1,
    *,
    written: bool = False,
) -> Answer:
    """An answer citing `sources` articles; `written`: a model's checked answer, one entry per sentence."""
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
    sentences = [{"text": s, "citations": [1], "supported": True} for s in sentence_pieces(text)] if written else []
    return Answer(question=question, text=text, refused=False, citations=citations, sentences=sentences)


def sentence_pieces(text: str) -> list[str]:
    """`text` cut after each sentence, its markers and the space that follows: the pieces join back to `text`."""
    pieces = re.findall(r"[^.!?]*[.!?]+(?:\s*\[\d+\])*\s*", text)
    rest = text[len("".join(pieces)) :]
    return [*pieces, rest] if rest else pieces


def checked_answer(question: str, sentences: Sequence[tuple[str, bool]], sources: int = 2) -> Answer:
    """A model's answer after the citation check: `(sentence, supported)` pairs; the unsupported are removed."""
    answer = make_answer(question, "".join(text for text, supported in sentences if supported), sources)
    answer.sentences = [{"text": text, "citations": [1], "supported": supported} for text, supported in sentences]
    return answer


def refusal(question: str) -> Answer:
    return Answer(question=question, text=CANNOT_ANSWER, refused=True)


def headline(n: int, title: str) -> Headline:
    return Headline(article_id=f"h{n}", title=title, source="The Hill", published_at=f"2019-05-0{n}T00:00:00")


@dataclass
class AskCall:
    question: str
    filters: SearchFilters | None
    history: list[Turn]
    streamed: bool


@dataclass
class ScriptedAsk:
    """Byline for the Slack bot: records each question and answers with `reply(question)` (which may raise or
    block). Like `Byline.ask`, it reports `statuses` first, then hands a written answer's sentences to `on_text`
    one by one (only the supported ones, as they pass the check), calling `after_piece(i)` after the i-th;
    `recent_articles` lists `headlines`."""

    reply: Callable[[str], Answer] = make_answer
    statuses: Sequence[str] = ("Searching 171 articles…",)
    headlines: Sequence[Headline] = ()
    after_piece: Callable[[int], None] | None = None
    calls: list[AskCall] = field(default_factory=list)

    def ask(
        self,
        question: str,
        filters: SearchFilters | None,
        history: Sequence[Turn],
        *,
        on_text: Callable[[str], None] | None = None,
        on_status: Callable[[str], None] | None = None,
    ) -> Answer:
        self.calls.append(AskCall(question, filters, list(history), on_text is not None))
        for status in self.statuses:
            if on_status is not None:
                on_status(status)
        answer = self.reply(question)
        if on_text is not None and answer.sentences and not answer.refused:
            for i, sentence in enumerate(s for s in answer.sentences if s["supported"]):
                on_text(sentence["text"])
                if self.after_piece is not None:
                    self.after_piece(i)
        return answer

    def recent_articles(self, n: int) -> list[Headline]:
        return list(self.headlines[:n])


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

    def __init__(
        self,
        fake: FakeSlack,
        home: Path,
        ask: ScriptedAsk | None = None,
        *,
        answerer: str = "extractive",
        catalog: Catalog | None = None,
        **slack: Any,
    ) -> None:
        self.fake = fake
        self.ask = ask or ScriptedAsk()
        self.settings = Settings(
            home=home,
            answerer=answerer,
            slack=SlackSettings(bot_token=BOT_TOKEN, signing_secret=SIGNING_SECRET, api_url=fake.api_url, **slack),
        )
        self.catalog = catalog or SQLiteCatalog(home / "catalog.sqlite")
        self.slack: SlackApp = create_slack_app(self.settings, self.ask, self.catalog)
        self.feedback = self.slack.bot.feedback
        self.server = HttpServer(self.slack, "127.0.0.1", 0, drain_seconds=10)
        self.url = f"http://127.0.0.1:{self.server.port}/slack/events"
        self._thread = threading.Thread(target=self.server.serve, daemon=True)
        self.http = httpx.Client(timeout=20, trust_env=False)

    def __enter__(self) -> SlackHarness:
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop()
        self._thread.join(30)
        self.slack.drain(10)
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
        """A click on a 👍/👎 button (the value is the answer id)."""
        action = {"type": "button", "action_id": action_id, "value": answer_id}
        return self.send_action(action, answer_id, user=user, channel=channel, message_ts=message_ts)

    def send_feedback(
        self, vote: str, answer_id: str, *, user: str = BOB, channel: str = CHANNEL, message_ts: str = "1.0"
    ) -> httpx.Response:
        """A click on Slack's feedback buttons, as a block_actions payload carries it ("up" or "down")."""
        label = "Helpful" if vote == "up" else "Not helpful"
        action = {
            "type": "feedback_buttons",
            "action_id": FEEDBACK_ACTION,
            "value": f"{vote}:{answer_id}",
            "text": {"type": "plain_text", "text": label},
        }
        return self.send_action(action, answer_id, user=user, channel=channel, message_ts=message_ts)

    def send_action(
        self, action: dict[str, Any], answer_id: str, *, user: str, channel: str, message_ts: str
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
            "actions": [{**action, "block_id": f"byline-feedback:{answer_id}", "action_ts": str(time.time())}],
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
    """The answer id the feedback buttons (or the 👍/👎 buttons) of a message carry."""
    for block in blocks:
        if block["type"] == "context_actions":
            return str(block["elements"][0]["positive_button"]["value"]).removeprefix("up:")
        if block["type"] == "actions":
            return str(block["elements"][0]["value"])
    raise AssertionError(f"no feedback buttons in {blocks}")


def markdown_texts(blocks: list[dict[str, Any]]) -> list[str]:
    return [b["text"] for b in blocks if b["type"] == "markdown"]
