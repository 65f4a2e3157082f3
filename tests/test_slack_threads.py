"""Entry points beyond mentions and DMs, through the real Bolt app over HTTP: follow-ups in channel threads without
a mention, the "Find sources" message shortcut, and requests that are not Slack's."""

from __future__ import annotations

import json
import threading
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from fake_slack import BOT_USER_ID, TEAM_ID, Failure, FakeSlack
from slack_harness import (
    ALICE,
    BOB,
    CHANNEL,
    ScriptedAsk,
    SlackHarness,
    answer_id_of,
    make_answer,
    mention,
    refusal,
    section_texts,
)

from bot.slack.app import FIND_SOURCES
from bot.slack.render import NOTHING_BEARS, SOURCES_HEADING

pytestmark = pytest.mark.network


def nothing_more_happens() -> None:
    """The only sleep here: to show that something did *not* happen."""
    time.sleep(0.4)


def channel_message(text: str, ts: str, *, thread_ts: str | None, user: str = ALICE, **extra: Any) -> dict[str, Any]:
    """A `message.channels` event: a person's message in a public channel."""
    event = {
        "type": "message",
        "channel_type": "channel",
        "user": user,
        "text": text,
        "ts": ts,
        "channel": CHANNEL,
        "event_ts": ts,
        "team": TEAM_ID,
        "client_msg_id": str(uuid.uuid4()),
        **extra,
    }
    if thread_ts:
        event["thread_ts"] = thread_ts
    return event


def answered_thread(harness: SlackHarness, fake: FakeSlack) -> str:
    """A thread where Byline has answered a mention; returns its ts."""
    root, _ = harness.ask_in_channel("why did Dorsey call Omar?")
    fake.wait_for(lambda: harness.catalog.fetch("SELECT 1 FROM slack_answers"))
    return root


# -- follow-ups without a mention ----------------------------------------------------------------------


def test_a_reply_in_a_thread_byline_answered_is_a_follow_up(harness: SlackHarness, fake: FakeSlack) -> None:
    root = answered_thread(harness, fake)
    ts = fake.add_message(CHANNEL, "and what did Trump tweet?", thread_ts=root)
    assert harness.send_event(channel_message("and what did Trump tweet?", ts, thread_ts=root)).status_code == 200

    follow_up = fake.wait_calls("chat.postMessage", 2)[1]
    assert follow_up.args["thread_ts"] == root
    assert harness.ask.calls[1].question == "and what did Trump tweet?"
    assert [t.question for t in harness.ask.calls[1].history] == ["why did Dorsey call Omar?"]
    broadcast = fake.add_message(CHANNEL, "and Omar's reply?", thread_ts=root)
    harness.send_event(channel_message("and Omar's reply?", broadcast, thread_ts=root, subtype="thread_broadcast"))
    fake.wait_calls("chat.postMessage", 3)  # a reply also sent to the channel is a follow-up too


@pytest.mark.parametrize(
    ("case", "text", "extra"),
    [
        ("mentions a person", "<@U0BOB> what do you think?", {}),
        ("mentions everyone here", "<!here> read this", {}),
        ("a top-level message", "lunch?", {"top_level": True}),
        ("another bot", "beep", {"bot_id": "B0OTHER"}),
        ("an edit", "edited", {"subtype": "message_changed"}),
        ("a thread Byline is not in", "and then?", {"other_thread": True}),
    ],
)
def test_replies_that_are_not_follow_ups_are_left_alone(
    harness: SlackHarness, fake: FakeSlack, case: str, text: str, extra: dict[str, Any]
) -> None:
    root = answered_thread(harness, fake)
    thread_ts: str | None = root
    if extra.pop("top_level", False):
        thread_ts = None
    if extra.pop("other_thread", False):
        thread_ts = fake.add_message(CHANNEL, "people talking", user=BOB)
    ts = fake.add_message(CHANNEL, text, user=BOB, thread_ts=thread_ts)
    assert harness.send_event(channel_message(text, ts, thread_ts=thread_ts, user=BOB, **extra)).status_code == 200
    nothing_more_happens()
    assert len(harness.ask.calls) == 1, case
    assert len(fake.calls_to("chat.postMessage")) == 1 and fake.calls_to("chat.postEphemeral") == []


@pytest.mark.parametrize("first", ["message", "app_mention"])
def test_a_follow_up_that_also_comes_as_a_mention_is_answered_once(
    harness: SlackHarness, fake: FakeSlack, first: str
) -> None:
    """Slack sends a thread reply that mentions Byline twice: as message.channels and as app_mention (with
    different event ids). Both at once, in either order: one answer."""
    root = answered_thread(harness, fake)
    ts = fake.add_message(CHANNEL, f"<@{BOT_USER_ID}> and then?", thread_ts=root)
    as_mention = mention("and then?", ts, thread_ts=root)
    as_message = channel_message(f"<@{BOT_USER_ID}> and then?", ts, thread_ts=root)
    as_message["client_msg_id"] = as_mention["client_msg_id"]
    # and the same reply without the mention (as if Slack had sent a mention-free text with the same ts)
    bare = channel_message("and then?", ts, thread_ts=root)
    events = [as_message, bare, as_mention] if first == "message" else [as_mention, as_message, bare]
    start = threading.Barrier(len(events))

    def deliver(event: dict[str, Any]) -> None:
        start.wait()
        assert harness.send_event(event).status_code == 200

    threads = [threading.Thread(target=deliver, args=(event,)) for event in events]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    fake.wait_calls("chat.postMessage", 2)
    nothing_more_happens()
    assert len(fake.calls_to("chat.postMessage")) == 2 and len(harness.ask.calls) == 2


def test_a_follow_up_in_a_channel_not_allowed_is_left_alone(fake: FakeSlack, tmp_path: Path) -> None:
    with SlackHarness(fake, tmp_path / "home", channels=["C0OTHER"]) as harness:
        root = fake.add_message(CHANNEL, "hello")
        harness.slack.bot.threads.join(CHANNEL, root)  # say Byline had answered there before the allowlist
        ts = fake.add_message(CHANNEL, "and then?", thread_ts=root)
        harness.send_event(channel_message("and then?", ts, thread_ts=root))
        nothing_more_happens()
    assert harness.ask.calls == [] and [c.method for c in fake.calls if c.method != "auth.test"] == []


# -- "Find sources" ------------------------------------------------------------------------------------


def find_sources(
    harness: SlackHarness, text: str, ts: str, *, thread_ts: str | None = None, channel: str = CHANNEL
) -> httpx.Response:
    """The message shortcut, as Slack POSTs it (a form with a JSON `payload`)."""
    message: dict[str, Any] = {"type": "message", "user": ALICE, "ts": ts, "text": text}
    if thread_ts:
        message["thread_ts"] = thread_ts
    payload = {
        "type": "message_action",
        "callback_id": FIND_SOURCES,
        "trigger_id": f"trigger-{uuid.uuid4().hex}",
        "action_ts": str(time.time()),
        "team": {"id": TEAM_ID, "domain": "news"},
        "user": {"id": BOB, "name": "bob"},
        "channel": {"id": channel, "name": "news"},
        "message_ts": ts,
        "message": message,
        "response_url": harness.fake.webhook_url("shortcut"),
    }
    return harness.post(urlencode({"payload": json.dumps(payload)}).encode(), "application/x-www-form-urlencoded")


def test_find_sources_replies_in_the_messages_thread_with_cited_passages(fake: FakeSlack, tmp_path: Path) -> None:
    claim = "Dorsey <https://x.com/a|called> Omar after the tweet"
    ask = ScriptedAsk(lambda q: make_answer(q, "Dorsey called Omar [1]. Twitter said so [2].", sources=2))
    with SlackHarness(fake, tmp_path / "home", ask) as harness:
        ts = fake.add_message(CHANNEL, claim, user=ALICE)
        assert find_sources(harness, claim, ts).status_code == 200
        reply = fake.wait_calls("chat.postMessage")[0].args
        fake.wait_for(lambda: fake.thread(CHANNEL, ts).statuses[-1:] == [""])
        recorded = fake.wait_for(lambda: harness.catalog.fetch("SELECT question, thread_ts FROM slack_answers"))
        assert not harness.catalog.fetch("SELECT 1 FROM slack_threads")  # replies there are not follow-ups
    assert harness.ask.calls[0].question == "Dorsey called Omar after the tweet"  # the message's words
    assert reply["thread_ts"] == ts
    sections = section_texts(reply["blocks"])
    assert sections[0] == SOURCES_HEADING
    assert [s.split(" ", 1)[0] for s in sections[1:]] == ["*[1]*", "*[2]*"]
    assert all("“Quote number" in s for s in sections[1:])  # each passage quoted, and cited
    assert answer_id_of(reply["blocks"])
    assert [tuple(r) for r in recorded] == [("Dorsey called Omar after the tweet", ts)]


def test_find_sources_in_a_thread_and_with_nothing_that_bears_on_it(fake: FakeSlack, tmp_path: Path) -> None:
    with SlackHarness(fake, tmp_path / "home", ScriptedAsk(refusal)) as harness:
        root = fake.add_message(CHANNEL, "what happened?")
        ts = fake.add_message(CHANNEL, "The moon is made of cheese", thread_ts=root)
        find_sources(harness, "The moon is made of cheese", ts, thread_ts=root)
        reply = fake.wait_calls("chat.postMessage")[0].args
    assert reply["thread_ts"] == root and reply["text"] == NOTHING_BEARS


def test_find_sources_where_byline_cannot_post_answers_the_clicker_privately(
    harness: SlackHarness, fake: FakeSlack
) -> None:
    fake.fail_next("assistant.threads.setStatus", Failure(error="channel_not_found"))
    fake.fail_next("chat.postMessage", Failure(error="not_in_channel"))
    ts = fake.add_message(CHANNEL, "Dorsey called Omar")
    find_sources(harness, "Dorsey called Omar", ts)
    private = fake.wait_calls("webhook")[0].args
    assert private["response_type"] == "ephemeral" and private["text"].startswith("What the ingested articles say")
    assert len(fake.calls_to("chat.postMessage")) == 1  # the placeholder attempt, refused


def test_find_sources_refusals_are_private(fake: FakeSlack, tmp_path: Path) -> None:
    with SlackHarness(fake, tmp_path / "home", channels=["C0OTHER"], user_rate_per_minute=1) as harness:
        find_sources(harness, "a claim", "1700000000.000100")
        not_here = fake.wait_calls("webhook")[0].args
        find_sources(harness, "   ", "1700000000.000200", channel="C0OTHER")
        empty = fake.wait_calls("webhook", 2)[1].args
    assert not_here["text"].startswith("I only answer") and not_here["response_type"] == "ephemeral"
    assert empty["text"] == "That message has no text to look up."
    assert harness.ask.calls == []


# -- requests that are not Slack's ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b'{"type": "event_callback", "event": {', "application/json"),
        (b"[1, 2, 3]", "application/json"),
        (b'"just a string"', "application/json"),
        (b"\xff\xfe not utf-8", "application/json"),
        (b"payload=%7Bbroken", "application/x-www-form-urlencoded"),
    ],
    ids=["truncated-json", "json-list", "json-string", "not-utf8", "broken-payload"],
)
def test_malformed_bodies_get_400_not_500(
    harness: SlackHarness, fake: FakeSlack, caplog: pytest.LogCaptureFixture, body: bytes, content_type: str
) -> None:
    # Signed as Slack signs (Slack's signature needs text: the body that is not UTF-8 goes unsigned).
    response = harness.post(body, content_type, sign=body.isascii())
    assert response.status_code == 400 and response.text == "invalid request body"
    assert "Traceback" not in caplog.text


def test_other_paths_and_methods(harness: SlackHarness) -> None:
    base = harness.url.removesuffix("/slack/events")
    assert harness.http.get(base + "/healthz").text == "ok"
    assert harness.http.get(harness.url).status_code == 405
    assert harness.http.post(base + "/elsewhere", content=b"{}").status_code == 404
