"""Slack's AI-app features through the real Bolt app over HTTP: the agent DM and assistant pane (suggested prompts,
titles, thread context), statuses while working, and streamed answers with their fallbacks."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from fake_slack import Failure, FakeSlack
from slack_harness import (
    ALICE,
    CHANNEL,
    DM,
    ScriptedAsk,
    SlackHarness,
    checked_answer,
    context_texts,
    direct_message,
    headline,
    markdown_texts,
)

from bot.models import Answer
from bot.slack.render import PLACEHOLDER, neutral_markdown
from ingest.models import SearchFilters

pytestmark = pytest.mark.network

HEADLINES = [headline(1, "Jack Dorsey calls Ilhan Omar"), headline(2, "Harbour bridge reopens")]
STATUSES = ("Searching 171 articles…", "Writing the answer…", "Checking citations…")
SENTENCES = [
    ("Dorsey called Omar after the tweet [1]. ", True),
    ("He had secretly promised to resign [2]. ", False),  # the check removes it: it must never be shown
    ("They spoke about the threats against her [2].", True),
]


def streamed(question: str) -> Answer:
    return checked_answer(question, SENTENCES)


def llm_harness(fake: FakeSlack, tmp_path: Path, **ask: Any) -> SlackHarness:
    return SlackHarness(fake, tmp_path / "home", ScriptedAsk(streamed, statuses=STATUSES, **ask), answerer="llm")


def statuses_set(fake: FakeSlack, channel: str, thread_ts: str) -> list[str]:
    """The statuses Byline set on a thread ("" clears), in order."""
    calls = fake.calls_to("assistant.threads.setStatus")
    return [c.args["status"] for c in calls if (c.args["channel_id"], c.args["thread_ts"]) == (channel, thread_ts)]


def cleared(fake: FakeSlack, channel: str, thread_ts: str) -> bool:
    return statuses_set(fake, channel, thread_ts)[-1:] == [""]


def calls_in_order(fake: FakeSlack) -> list[str]:
    return [c.method for c in fake.calls if c.method not in ("auth.test", "webhook")]


# -- the agent DM and the assistant pane ---------------------------------------------------------------


def thread_started(channel: str, thread_ts: str, context: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "type": "assistant_thread_started",
        "assistant_thread": {
            "user_id": ALICE,
            "context": context or {},
            "channel_id": channel,
            "thread_ts": thread_ts,
        },
        "event_ts": thread_ts,
    }


def test_a_pane_thread_starts_with_prompts_about_the_latest_stories(fake: FakeSlack, tmp_path: Path) -> None:
    ask = ScriptedAsk(headlines=HEADLINES)
    with SlackHarness(fake, tmp_path / "home", ask) as harness:
        root = fake.add_message(DM, "New chat", user=ALICE, subtype="assistant_app_thread")
        assert harness.send_event(thread_started(DM, root)).status_code == 200
        [offered] = fake.wait_for(lambda: fake.thread(DM, root).prompts)
    assert offered["title"] == "Ask about the latest stories"
    assert offered["prompts"] == [
        {
            "title": "Jack Dorsey calls Ilhan Omar",
            "message": "What do the articles say about “Jack Dorsey calls Ilhan Omar”?",
        },
        {"title": "Harbour bridge reopens", "message": "What do the articles say about “Harbour bridge reopens”?"},
    ]
    assert fake.calls_to("chat.postMessage") == []  # no greeting message: the prompts are the welcome


def test_opening_the_agent_dm_sets_prompts_for_the_whole_dm(tmp_path: Path) -> None:
    """Under agent_view prompts go to the DM without a thread_ts (with one, Slack silently drops the call)."""
    with (
        FakeSlack(experience="agent") as fake,
        SlackHarness(fake, tmp_path / "home", ScriptedAsk(headlines=HEADLINES)) as harness,
    ):
        opened = {"type": "app_home_opened", "user": ALICE, "channel": DM, "tab": "messages", "event_ts": "1.1"}
        assert harness.send_event(opened).status_code == 200
        [offered] = fake.wait_for(lambda: fake.thread(DM, None).prompts)
        assert harness.send_event({**opened, "tab": "home"}).status_code == 200  # the Home tab: nothing to do
        with SlackHarness(fake, tmp_path / "empty") as empty:  # nothing indexed: nothing worth suggesting
            assert empty.send_event(opened).status_code == 200
            time.sleep(0.4)  # to show that nothing more happens
    assert [p["title"] for p in offered["prompts"]] == ["Jack Dorsey calls Ilhan Omar", "Harbour bridge reopens"]
    assert len(fake.calls_to("assistant.threads.setSuggestedPrompts")) == 1 and fake.ignored == []


def test_a_pane_question_is_answered_in_its_thread_titled_by_the_first_question(
    fake: FakeSlack, tmp_path: Path
) -> None:
    filters = {CHANNEL: {"sources": ["The Hill"]}}
    with SlackHarness(fake, tmp_path / "home", channel_filters=filters) as harness:
        root = fake.add_message(DM, "New chat", user=ALICE, subtype="assistant_app_thread")
        harness.send_event(thread_started(DM, root, {"channel_id": CHANNEL, "team_id": "T0TEAM"}))
        fake.wait_for(lambda: harness.catalog.fetch("SELECT 1 FROM slack_thread_contexts"))
        for n, question in enumerate(["Why did Dorsey call Omar?", "And what did Trump tweet?"]):
            ts = fake.add_message(DM, question, user=ALICE, thread_ts=root)
            harness.send_event(direct_message(question, ts, thread_ts=root, parent_user_id=ALICE))
            fake.wait_for(lambda n=n: len(harness.catalog.fetch("SELECT 1 FROM slack_answers")) == n + 1)
    posts = fake.calls_to("chat.postMessage")
    assert [p.args["thread_ts"] for p in posts] == [root, root]
    assert fake.thread(DM, root).titles == ["Why did Dorsey call Omar?"]  # set once, from the first question
    # The user was looking at #news when they opened the pane: the pane searches the way #news does.
    assert [c.filters for c in harness.ask.calls] == [SearchFilters(sources=("The Hill",))] * 2
    assert [c.question for c in harness.ask.calls[1].history] == ["Why did Dorsey call Omar?"]


# -- statuses ------------------------------------------------------------------------------------------


def test_a_status_shows_before_the_answer_and_is_cleared_after(fake: FakeSlack, tmp_path: Path) -> None:
    with SlackHarness(fake, tmp_path / "home", ScriptedAsk(statuses=STATUSES)) as harness:
        ts, _ = harness.ask_in_channel("why did Dorsey call Omar?")
        fake.wait_for(lambda: cleared(fake, CHANNEL, ts))
    assert statuses_set(fake, CHANNEL, ts) == [PLACEHOLDER, *STATUSES, ""]
    assert fake.thread(CHANNEL, ts).status == ""
    order = calls_in_order(fake)
    assert order.index("assistant.threads.setStatus") < order.index("chat.postMessage")
    assert order[-1] == "assistant.threads.setStatus"  # the clearing, after the answer
    assert all(c.args["thread_ts"] == ts for c in fake.calls_to("assistant.threads.setStatus"))


# -- streamed answers ----------------------------------------------------------------------------------


def the_stream(fake: FakeSlack) -> Any:
    [stream] = fake.wait_for(lambda: [s for s in fake.streams.values() if s.state != "streaming"])
    return stream


def test_a_model_answer_streams_only_checked_text_and_ends_with_sources(fake: FakeSlack, tmp_path: Path) -> None:
    with llm_harness(fake, tmp_path) as harness:
        ts, _ = harness.ask_in_channel("why did Dorsey call Omar?")
        stream = the_stream(fake)
        fake.wait_for(lambda: cleared(fake, CHANNEL, ts))
        recorded = fake.wait_for(lambda: harness.catalog.fetch("SELECT ts, answer FROM slack_answers"))
    answer = streamed("q")
    assert stream.thread_ts == ts and stream.state == "stopped"
    assert (
        stream.text
        == answer.text
        == "Dorsey called Omar after the tweet [1]. They spoke about the threats against her [2]."
    )
    assert "secretly promised" not in fake.shown()  # removed by the check: never reached Slack
    assert [c.args["chunks"][0]["text"] for c in fake.calls_to("chat.startStream")] == [SENTENCES[0][0]]
    assert len(fake.calls_to("chat.appendStream")) == 1  # each checked sentence as it comes
    start = fake.calls_to("chat.startStream")[0].args
    assert (start["recipient_team_id"], start["recipient_user_id"]) == ("T0TEAM", ALICE)
    blocks = stream.blocks
    assert [b["type"] for b in blocks] == ["divider", "context", "context", "context_actions"]
    assert context_texts(blocks)[0].startswith("*[1]* <https://thehill.com/story-1")
    assert fake.calls_to("chat.postMessage") == [] and fake.calls_to("chat.update") == []
    # the statuses up to the first sentence, then nothing until the stream is done
    assert statuses_set(fake, CHANNEL, ts) == [PLACEHOLDER, *STATUSES, ""]
    assert [tuple(r) for r in recorded] == [(stream.ts, answer.text)]


def test_a_stream_that_cannot_start_falls_back_to_posting_the_answer(fake: FakeSlack, tmp_path: Path) -> None:
    fake.fail_next("chat.startStream", Failure(error="method_not_supported_for_channel_type"))
    with llm_harness(fake, tmp_path) as harness:
        harness.ask_in_channel("why did Dorsey call Omar?")
        posted = fake.wait_calls("chat.postMessage")[0].args
    assert markdown_texts(posted["blocks"]) == [streamed("q").text]
    assert posted["blocks"][-1]["type"] == "context_actions"
    assert fake.calls_to("chat.appendStream") == [] and fake.streams == {}
    assert "secretly promised" not in fake.shown()


def test_a_stream_broken_mid_way_is_finished_with_the_rest(fake: FakeSlack, tmp_path: Path) -> None:
    # The client retries a 5xx once: two failures make the append fail for good.
    fake.fail_next("chat.appendStream", Failure(status=503, error="service_unavailable"), times=2)
    with llm_harness(fake, tmp_path) as harness:
        harness.ask_in_channel("why did Dorsey call Omar?")
        stream = the_stream(fake)
    assert stream.text == streamed("q").text  # the sentence that failed came with stopStream
    assert stream.blocks is not None and stream.blocks[-1]["type"] == "context_actions"
    assert fake.calls_to("chat.stopStream")[0].args["markdown_text"] == SENTENCES[2][0]


def test_an_expired_stream_is_replaced_by_the_whole_answer(fake: FakeSlack, tmp_path: Path) -> None:
    def expire(piece: int) -> None:
        if piece == 0:
            [(channel, ts)] = fake.streams
            fake.end_stream(channel, ts)  # as Slack does about five minutes after the start

    with llm_harness(fake, tmp_path, after_piece=expire) as harness:
        harness.ask_in_channel("why did Dorsey call Omar?")
        update = fake.wait_calls("chat.update")[0].args
    [stream] = fake.streams.values()
    assert update["ts"] == stream.ts
    assert markdown_texts(update["blocks"]) == [streamed("q").text]
    assert fake.messages[CHANNEL][-1]["blocks"][-1]["type"] == "context_actions"
    assert "secretly promised" not in fake.shown()


def test_a_stream_the_reader_stopped_is_left_as_it_is(fake: FakeSlack, tmp_path: Path) -> None:
    def stop(piece: int) -> None:
        if piece == 0:
            [(channel, ts)] = fake.streams
            fake.end_stream(channel, ts, "stopped_by_user")

    with llm_harness(fake, tmp_path, after_piece=stop) as harness:
        ts, _ = harness.ask_in_channel("why did Dorsey call Omar?")
        fake.wait_for(lambda: harness.catalog.fetch("SELECT 1 FROM slack_answers"))
    [stream] = fake.streams.values()
    assert stream.text == SENTENCES[0][0]
    assert fake.calls_to("chat.update") == [] and fake.calls_to("chat.postMessage") == []
    assert fake.calls_to("chat.stopStream") == [] and fake.thread(CHANNEL, ts).status == ""


def test_a_streamed_answer_cannot_ping_anyone(fake: FakeSlack, tmp_path: Path) -> None:
    sentences = [("Tell <!channel> and <@U0BOB> [1]. ", True), ("Also @here and <!subteam^S1|@desk> [1].", True)]
    ask = ScriptedAsk(lambda q: checked_answer(q, sentences))
    with SlackHarness(fake, tmp_path / "home", ask, answerer="llm") as harness:
        harness.ask_in_channel("who should know?")
        stream = the_stream(fake)
    shown = fake.shown()
    for mention in ("<!channel>", "<@U0BOB>", "@here", "<!subteam"):
        assert mention not in shown
    assert stream.text == neutral_markdown("".join(text for text, _ in sentences))


def test_an_extractive_answer_with_the_llm_answerer_is_posted_whole(fake: FakeSlack, tmp_path: Path) -> None:
    """The model failed and the extractive answer stands in: nothing was streamed, it is posted whole."""
    with SlackHarness(fake, tmp_path / "home", ScriptedAsk(), answerer="llm") as harness:
        harness.ask_in_channel("why did Dorsey call Omar?")
        posted = fake.wait_calls("chat.postMessage")[0].args
    assert harness.ask.calls[0].streamed  # offered a stream
    assert fake.streams == {} and markdown_texts(posted["blocks"]) == []
    assert "Dorsey called Omar" in posted["text"]


def test_a_failure_after_streaming_began_ends_the_stream_with_an_apology(fake: FakeSlack, tmp_path: Path) -> None:
    def crash(piece: int) -> None:
        raise RuntimeError("the model connection dropped")

    with llm_harness(fake, tmp_path, after_piece=crash) as harness:
        ts, _ = harness.ask_in_channel("why did Dorsey call Omar?")
        stream = the_stream(fake)
        fake.wait_for(lambda: cleared(fake, CHANNEL, ts))
        assert harness.catalog.fetch("SELECT COUNT(*) FROM slack_answers")[0][0] == 0
    assert stream.text == SENTENCES[0][0]
    assert "something went wrong" in str(stream.blocks)


def test_events_of_the_pane_reach_bolts_assistant(fake: FakeSlack, tmp_path: Path) -> None:
    """A context change is saved by Bolt's default listener into Byline's catalog-backed store."""
    with SlackHarness(fake, tmp_path / "home") as harness:
        changed = {**thread_started(DM, "1700000000.000001", {"channel_id": "C0OTHER"})}
        changed["type"] = "assistant_thread_context_changed"
        assert harness.send_event(changed).status_code == 200
        saved = fake.wait_for(
            lambda: harness.catalog.fetch("SELECT channel, thread_ts, context FROM slack_thread_contexts")
        )
    assert [tuple(r)[:2] for r in saved] == [(DM, "1700000000.000001")] and "C0OTHER" in saved[0][2]
