"""The Slack app in HTTP mode: real signed requests over HTTP, the real WebClient against a fake Slack."""

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from fake_slack import BOT_ID, BOT_TOKEN, BOT_USER_ID, Failure, FakeSlack
from slack_harness import (
    ALICE,
    BOB,
    CHANNEL,
    DM,
    SIGNING_SECRET,
    ScriptedAsk,
    SlackHarness,
    answer_id_of,
    context_texts,
    direct_message,
    make_answer,
    mention,
    refusal,
    section_texts,
)

from bot.models import CANNOT_ANSWER, Turn
from bot.slack.render import (
    BUSY_MESSAGE,
    ERROR_MESSAGE,
    FEEDBACK_ACTION,
    PLACEHOLDER,
    SECTION_CHARS,
    USAGE_MESSAGE,
    VOTE_DOWN,
    VOTE_UP,
    to_mrkdwn,
)
from ingest.models import SearchFilters

pytestmark = pytest.mark.network


def posted_blocks(fake: FakeSlack, count: int = 1) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = fake.wait_calls("chat.postMessage", count)[count - 1].args["blocks"]
    return blocks


def nothing_more_happens() -> None:
    """The only sleep in these tests: to show that something did *not* happen."""
    time.sleep(0.4)


def test_mention_gets_a_threaded_answer_with_sources(harness: SlackHarness, fake: FakeSlack) -> None:
    ts, response = harness.ask_in_channel("why did Dorsey call Omar?")
    assert response.status_code == 200

    answer = fake.wait_calls("chat.postMessage")[0]
    blocks = answer.args["blocks"]
    assert answer.args["channel"] == CHANNEL and answer.args["thread_ts"] == ts
    assert "Dorsey called Omar" in answer.args["text"]
    assert section_texts(blocks) == ["Dorsey called Omar to discuss the threats [1]."]
    assert context_texts(blocks)[0] == (
        "*[1]* <https://thehill.com/story-1?a=1&amp;b=2|Dorsey &amp; Omar &lt;talk&gt; part 1> · The Hill · "
        "2019-04-23\n“Quote number 1.”"
    )
    assert blocks[-1]["type"] == "context_actions"
    assert blocks[-1]["elements"][0]["type"] == "feedback_buttons"
    assert blocks[-1]["elements"][0]["action_id"] == FEEDBACK_ACTION
    # While it worked, the thread showed a status instead of a placeholder message; it is cleared at the end.
    assert fake.wait_for(lambda: fake.thread(CHANNEL, ts).statuses[-1:] == [""])
    assert fake.thread(CHANNEL, ts).statuses[:2] == [PLACEHOLDER, "Searching 171 articles…"]
    assert fake.calls_to("chat.update") == []
    assert harness.ask.calls[0].question == "why did Dorsey call Omar?"
    assert harness.ask.calls[0].filters is None and harness.ask.calls[0].history == []
    assert harness.ask.calls[0].streamed is False  # the extractive answerer: posted whole
    # The answer is recorded once it is shown, so the record may follow the post by a moment.
    stored = fake.wait_for(lambda: harness.catalog.fetch("SELECT question, channel, ts FROM slack_answers"))
    assert [tuple(row) for row in stored] == [("why did Dorsey call Omar?", CHANNEL, fake.messages[CHANNEL][-1]["ts"])]


def test_direct_message_is_answered_in_the_dm(harness: SlackHarness, fake: FakeSlack) -> None:
    ts = fake.add_message(DM, "what did Omar say?")
    assert harness.send_event(direct_message("what did Omar say?", ts)).status_code == 200

    posted = fake.wait_calls("chat.postMessage")[0]
    assert posted.args["channel"] == DM and posted.args["thread_ts"] == ts
    assert harness.ask.calls[0].question == "what did Omar say?"


@pytest.mark.parametrize(
    "extra",
    [
        {"subtype": "message_changed"},
        {"subtype": "bot_message", "bot_id": "B0OTHER"},
        {"bot_id": "B0OTHER"},
        {"user": BOT_USER_ID, "bot_id": BOT_ID},
    ],
    ids=["edit", "bot-message", "other-bot", "itself"],
)
def test_edits_and_bots_are_ignored(harness: SlackHarness, fake: FakeSlack, extra: dict[str, Any]) -> None:
    event = direct_message("what did Omar say?", "1700000100.000001", **extra)
    assert harness.send_event(event).status_code == 200
    nothing_more_happens()
    assert [c.method for c in fake.calls if c.method != "auth.test"] == []
    assert harness.ask.calls == []


def test_other_events_are_acknowledged_and_dropped(harness: SlackHarness, fake: FakeSlack) -> None:
    channel_chatter = {
        "type": "message",
        "channel_type": "channel",
        "user": ALICE,
        "text": "hi",
        "ts": "1700000100.000002",
        "channel": CHANNEL,
    }
    assert harness.send_event(channel_chatter).status_code == 200
    challenge = harness.post(
        json.dumps({"type": "url_verification", "challenge": "c-123"}).encode(), "application/json"
    )
    assert challenge.status_code == 200 and challenge.json() == {"challenge": "c-123"}
    nothing_more_happens()
    assert harness.ask.calls == []


def test_ask_command_acks_at_once_and_answers_through_the_response_url(fake: FakeSlack, tmp_path: Path) -> None:
    release = threading.Event()

    def slow(question: str) -> Any:
        release.wait(30)  # the ack must come back while the answer is still being worked out
        return make_answer(question)

    with SlackHarness(fake, tmp_path / "home", ask=ScriptedAsk(slow)) as harness:
        response = harness.send_command("why did Dorsey call Omar?")
        assert response.status_code == 200
        assert response.json() == {"response_type": "ephemeral", "text": PLACEHOLDER}
        assert fake.calls_to("webhook") == []
        release.set()
        webhook = fake.wait_calls("webhook")[0]
    assert webhook.args["replace_original"] is True and webhook.args["response_type"] == "ephemeral"
    assert section_texts(webhook.args["blocks"]) == ["Dorsey called Omar to discuss the threats [1]."]
    assert context_texts(webhook.args["blocks"])[0] == "*Q:* why did Dorsey call Omar?"


def test_ask_command_visible_to_the_channel_when_configured(fake: FakeSlack, tmp_path: Path) -> None:
    with SlackHarness(fake, tmp_path / "home", ask_visibility="channel") as harness:
        assert harness.send_command("why?").json()["response_type"] == "in_channel"
        webhook = fake.wait_calls("webhook")[0]
    assert webhook.args["response_type"] == "in_channel"


def test_ask_command_without_a_question_explains_itself(harness: SlackHarness, fake: FakeSlack) -> None:
    response = harness.send_command("   ")
    assert response.json() == {"response_type": "ephemeral", "text": USAGE_MESSAGE}
    nothing_more_happens()
    assert harness.ask.calls == [] and fake.calls_to("webhook") == []


def test_follow_up_in_a_thread_carries_the_earlier_turns(harness: SlackHarness, fake: FakeSlack) -> None:
    root, _ = harness.ask_in_channel("why did Dorsey call Omar?")
    fake.wait_for(lambda: harness.catalog.fetch("SELECT 1 FROM slack_answers"))
    fake.add_message(CHANNEL, "unrelated chatter in the thread", user=BOB, thread_ts=root)
    harness.ask_in_channel("and what did Trump tweet?", thread_ts=root)

    fake.wait_calls("chat.postMessage", 2)
    assert [c.args["thread_ts"] for c in fake.calls_to("chat.postMessage")] == [root, root]
    follow_up = harness.ask.calls[1]
    assert follow_up.question == "and what did Trump tweet?"
    assert follow_up.history == [
        Turn(question="why did Dorsey call Omar?", answer="Dorsey called Omar to discuss the threats [1].")
    ]


@pytest.mark.parametrize(
    "tamper",
    ["wrong-secret", "stale", "future", "unsigned", "changed-body"],
)
def test_unverifiable_requests_get_401_and_run_nothing(harness: SlackHarness, fake: FakeSlack, tamper: str) -> None:
    ts = fake.add_message(CHANNEL, "question")
    raw = json.dumps(
        {"type": "event_callback", "event_id": "Ev401", "team_id": "T0TEAM", "event": mention("why?", ts)}
    ).encode()
    now = int(time.time())
    if tamper == "wrong-secret":
        response = harness.post(raw, "application/json", secret="not-the-secret")
    elif tamper == "stale":
        response = harness.post(raw, "application/json", timestamp=now - 6 * 60)
    elif tamper == "future":
        response = harness.post(raw, "application/json", timestamp=now + 6 * 60)
    elif tamper == "unsigned":
        response = harness.post(raw, "application/json", sign=False)
    else:
        signed = harness.post(b"{}", "application/json").request.headers
        response = harness.http.post(
            harness.url,
            content=raw,
            headers={
                "Content-Type": "application/json",
                "X-Slack-Request-Timestamp": signed["X-Slack-Request-Timestamp"],
                "X-Slack-Signature": signed["X-Slack-Signature"],
            },
        )
    assert response.status_code == 401
    nothing_more_happens()
    assert [c.method for c in fake.calls if c.method != "auth.test"] == []
    assert harness.ask.calls == []


def test_a_retried_event_is_answered_once(harness: SlackHarness, fake: FakeSlack) -> None:
    ts = fake.add_message(CHANNEL, "why?")
    event = mention("why?", ts)
    assert harness.send_event(event, "EvSAME").status_code == 200
    for attempt in (1, 2, 3):
        retry = {"X-Slack-Retry-Num": str(attempt), "X-Slack-Retry-Reason": "http_timeout"}
        assert harness.send_event(event, "EvSAME", headers=retry).status_code == 200
    fake.wait_calls("chat.postMessage")
    nothing_more_happens()
    assert len(fake.calls_to("chat.postMessage")) == 1 and len(harness.ask.calls) == 1


def test_concurrent_duplicates_are_answered_once(harness: SlackHarness, fake: FakeSlack) -> None:
    ts = fake.add_message(CHANNEL, "why?")
    event = mention("why?", ts)
    start = threading.Barrier(4)
    statuses: list[int] = []

    def deliver(i: int) -> None:
        start.wait()
        headers = {"X-Slack-Retry-Num": str(i), "X-Slack-Retry-Reason": "http_timeout"} if i else {}
        statuses.append(harness.send_event(event, "EvRACE", headers=headers).status_code)

    threads = [threading.Thread(target=deliver, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [200] * 4
    fake.wait_calls("chat.postMessage")
    nothing_more_happens()
    assert len(fake.calls_to("chat.postMessage")) == 1 and len(harness.ask.calls) == 1


def test_rate_limited_post_is_retried_after_retry_after(harness: SlackHarness, fake: FakeSlack) -> None:
    fake.fail_next("chat.postMessage", Failure(status=429, error="ratelimited", retry_after=1))
    harness.ask_in_channel("why?")
    posts = fake.wait_calls("chat.postMessage", 2)
    assert len(posts) == 2
    assert section_texts(posts[1].args["blocks"]) == ["Dorsey called Omar to discuss the threats [1]."]
    assert fake.messages[CHANNEL][-1]["blocks"] == posts[1].args["blocks"]


def test_long_answer_is_split_into_sections_within_limits(fake: FakeSlack, tmp_path: Path) -> None:
    sentence = "The **council** voted on the <budget> & the mayor's plan again [1]. "
    long_text = "\n\n".join(sentence * 12 for _ in range(8))  # ~6,500 characters in 8 paragraphs
    ask = ScriptedAsk(lambda q: make_answer(q, long_text, sources=3))
    with SlackHarness(fake, tmp_path / "home", ask=ask) as harness:
        harness.ask_in_channel("what happened at the council?")
        blocks = posted_blocks(fake)
    sections = section_texts(blocks)
    assert len(sections) >= 3 and all(len(s) <= SECTION_CHARS for s in sections)
    assert " ".join(" ".join(sections).split()) == " ".join(to_mrkdwn(long_text).split())
    assert "*council*" in sections[0] and "&lt;budget&gt; &amp;" in sections[0]
    assert fake.messages[CHANNEL][-1]["blocks"] == blocks  # the fake (Slack's limits) accepted it


def test_feedback_click_is_stored_and_exported(harness: SlackHarness, fake: FakeSlack) -> None:
    harness.ask_in_channel("why did Dorsey call Omar?")
    posted = fake.wait_calls("chat.postMessage")[0]
    answer_id = answer_id_of(posted.args["blocks"])
    ts = fake.wait_for(lambda: harness.catalog.fetch("SELECT ts FROM slack_answers"))[0][0]

    assert harness.send_feedback("down", answer_id, user=BOB, message_ts=ts).status_code == 200
    assert harness.send_feedback("up", answer_id, user=ALICE).status_code == 200
    thanks = fake.wait_calls("webhook", 2)
    assert {c.args["text"] for c in thanks} == {"Thanks for the feedback!"}
    assert all(c.args["response_type"] == "ephemeral" for c in thanks)
    assert harness.feedback.votes(answer_id) == {ALICE: 1, BOB: -1}

    [record] = list(harness.feedback.downvoted())
    assert record["question"] == "why did Dorsey call Omar?" and record["answerable"] is None
    assert record["notes"] == (
        "Slack: 1 👎, 1 👍 (channel C0NEWS, ts " + ts + "). Byline answered: Dorsey called Omar "
        "to discuss the threats [1]. Sources: [1] Dorsey & Omar <talk> part 1 <https://thehill.com/story-1?a=1&b=2>"
    )


def test_votes_on_the_older_buttons_still_count(harness: SlackHarness, fake: FakeSlack) -> None:
    """Answers posted before the feedback buttons (and /ask answers) carry 👍/👎 buttons."""
    assert harness.send_click(VOTE_DOWN, "old-answer", user=BOB).status_code == 200
    assert harness.send_click(VOTE_UP, "old-answer", user=ALICE).status_code == 200
    fake.wait_calls("webhook", 2)
    assert harness.feedback.votes("old-answer") == {ALICE: 1, BOB: -1}


def test_unanswerable_question_gets_the_refusal(fake: FakeSlack, tmp_path: Path) -> None:
    with SlackHarness(fake, tmp_path / "home", ask=ScriptedAsk(refusal)) as harness:
        harness.ask_in_channel("what is the capital of the moon?")
        blocks = posted_blocks(fake)
    assert section_texts(blocks) == [CANNOT_ANSWER]
    assert blocks[-1]["type"] == "context_actions"  # a refusal can be voted down too: it may become a test question


def test_a_failing_answerer_replaces_the_placeholder_with_an_apology(
    fake: FakeSlack, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(question: str) -> Any:
        raise RuntimeError("the index is on fire")

    with SlackHarness(fake, tmp_path / "home", ask=ScriptedAsk(broken)) as harness:
        ts, _ = harness.ask_in_channel("why?")
        posted = fake.wait_calls("chat.postMessage")[0]
        fake.wait_for(lambda: fake.thread(CHANNEL, ts).status == "" and fake.thread(CHANNEL, ts).statuses)
    assert posted.args["text"] == ERROR_MESSAGE
    assert "the index is on fire" in caplog.text  # logged with its traceback, not shown to the user
    assert "the index is on fire" not in fake.shown()


def test_per_user_rate_limit_gets_a_polite_reply(fake: FakeSlack, tmp_path: Path) -> None:
    with SlackHarness(fake, tmp_path / "home", user_rate_per_minute=2) as harness:
        for question in ("one?", "two?", "three?"):
            harness.ask_in_channel(question)
        ephemeral = fake.wait_calls("chat.postEphemeral")[0]
        harness.ask_in_channel("bob's question?", user=BOB)  # another user is not held back
        fake.wait_calls("chat.postMessage", 3)
        command = harness.send_command("four?")
    assert ephemeral.args["user"] == ALICE and "Please wait about" in ephemeral.args["text"]
    assert "Please wait about" in command.json()["text"]
    asked = [c.question for c in harness.ask.calls]
    # Slack's deliveries are handled concurrently: any two of Alice's three get through, and Bob's.
    assert len(asked) == 3 and "bob's question?" in asked


def test_channel_allowlist_and_per_channel_filters(fake: FakeSlack, tmp_path: Path) -> None:
    filters = {CHANNEL: {"sources": ["The Hill"], "since": "2019-01-01"}}
    with SlackHarness(fake, tmp_path / "home", channels=[CHANNEL], channel_filters=filters) as harness:
        harness.ask_in_channel("why?", channel="C0ELSEWHERE")
        refused = fake.wait_calls("chat.postEphemeral")[0]
        harness.ask_in_channel("why?")
        fake.wait_calls("chat.postMessage")
        assert harness.send_command("why?", channel="C0ELSEWHERE").json()["text"].startswith("I only answer")
    assert refused.args["channel"] == "C0ELSEWHERE"
    [call] = harness.ask.calls
    assert call.filters == SearchFilters(sources=("The Hill",), since=date(2019, 1, 1))


def test_web_api_errors_are_logged_with_context_and_never_the_token(
    harness: SlackHarness, fake: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fake.fail_next("assistant.threads.setStatus", Failure(error="not_in_channel"))
    fake.fail_next("chat.postMessage", Failure(error="not_in_channel"))
    harness.ask_in_channel("why?")
    fake.wait_calls("chat.postMessage")
    nothing_more_happens()
    assert harness.ask.calls == []  # nowhere to show an answer, so none is worked out
    assert "chat.postMessage channel=C0NEWS" in caplog.text and "error=not_in_channel" in caplog.text

    fake.fail_next("chat.postMessage", Failure(error="msg_too_long"))
    harness.ask_in_channel("second?")
    plain = fake.wait_calls("chat.postMessage", 3)[2]
    assert section_texts(plain.args["blocks"]) == [plain.args["text"]]  # the plain fallback, no buttons
    assert "Dorsey called Omar" in plain.args["text"]
    assert BOT_TOKEN not in caplog.text and SIGNING_SECRET not in caplog.text


def test_without_statuses_a_placeholder_is_posted_and_replaced(
    harness: SlackHarness, fake: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    """Where Slack refuses a status (an older workspace, a missing scope), the answer replaces a placeholder;
    when that cannot be edited, it comes plainer, or as a new message in the thread."""
    fake.fail_next("assistant.threads.setStatus", Failure(error="missing_scope"), times=4)
    harness.ask_in_channel("why?")
    placeholder = fake.wait_calls("chat.postMessage")[0]
    update = fake.wait_calls("chat.update")[0]
    assert placeholder.args["text"] == PLACEHOLDER
    assert update.args["ts"] == fake.messages[CHANNEL][-1]["ts"]  # the placeholder itself, now the answer
    assert section_texts(update.args["blocks"]) == ["Dorsey called Omar to discuss the threats [1]."]

    fake.fail_next("chat.update", Failure(error="msg_too_long"))
    harness.ask_in_channel("second?")
    plain = fake.wait_calls("chat.update", 3)[2]
    assert section_texts(plain.args["blocks"]) == [plain.args["text"]]  # the plain fallback, no buttons

    fake.fail_next("chat.update", Failure(error="message_not_found"))
    harness.ask_in_channel("third?")
    fresh = fake.wait_calls("chat.postMessage", 4)[3]  # a new message in the thread instead of the edit
    assert "Dorsey called Omar" in fresh.args["text"]

    fake.fail_next("chat.update", Failure(status=500, error="internal_error"), times=2)
    harness.ask_in_channel("fourth?")
    fake.wait_calls("chat.postMessage", 6)
    assert len(fake.calls_to("chat.update")) == 6  # one update, one retry on 500, then a fresh message
    assert "error=missing_scope" in caplog.text


def test_when_every_worker_is_busy_the_asker_is_told(fake: FakeSlack, tmp_path: Path) -> None:
    release = threading.Event()

    def stuck(question: str) -> Any:
        release.wait(30)
        return make_answer(question)

    # one worker and a queue of 8 take nine questions; the tenth is turned away at once
    ask = ScriptedAsk(stuck)
    with SlackHarness(fake, tmp_path / "home", ask=ask, workers=1, queue=8, user_rate_per_minute=100) as harness:
        for i in range(10):
            harness.ask_in_channel(f"question {i}?")
        busy = fake.wait_calls("chat.postMessage")[0]
        release.set()
        fake.wait_calls("chat.postMessage", 10)
    assert busy.args["text"] == BUSY_MESSAGE
    texts = [c.args["text"] for c in fake.calls_to("chat.postMessage")]
    assert texts.count(BUSY_MESSAGE) == 1 and len(harness.ask.calls) == 9
