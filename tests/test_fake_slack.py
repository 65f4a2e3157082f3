"""The fake Slack Web API takes what slack_sdk's own methods send for the AI-app features, and nothing else.

Every call here goes through the real WebClient (its methods, its `chat_stream()` helper, Bolt's SetStatus /
SetSuggestedPrompts / SetTitle / SayStream utilities), so the fake is held to the SDK's request shapes; the
malformed calls are built by hand with `api_call` or plain dicts, the way buggy bot code would send them.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from fake_slack import (
    BOT_TOKEN,
    BOT_USER_ID,
    FORM,
    JSON,
    MAX_MARKDOWN_TEXT,
    TEAM_ID,
    Failure,
    FakeSlack,
)
from slack_bolt.context.say_stream import SayStream
from slack_bolt.context.set_status import SetStatus
from slack_bolt.context.set_suggested_prompts import SetSuggestedPrompts
from slack_bolt.context.set_title import SetTitle
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackRequestError
from slack_sdk.models.blocks import (
    ContextActionsBlock,
    FeedbackButtonObject,
    FeedbackButtonsElement,
    MarkdownBlock,
    SectionBlock,
)
from slack_sdk.models.messages.chunk import MarkdownTextChunk, TaskUpdateChunk

from bot.settings import SlackSettings
from bot.slack.client import make_web_client

pytestmark = pytest.mark.network

DM = "D0ALICE"
CHANNEL = "C0NEWS"
ALICE = "U0ALICE"


@pytest.fixture
def client(fake: FakeSlack) -> WebClient:
    return WebClient(token=BOT_TOKEN, base_url=fake.api_url)


def error_of(call: Any) -> str:
    """Slack's error code for a call that must fail."""
    with pytest.raises(SlackApiError) as failed:
        call()
    return str(failed.value.response["error"])


def feedback(value: str = "a1", **change: Any) -> dict[str, Any]:
    """A context_actions block with feedback buttons, as a dict (the SDK's model classes would refuse bad ones)."""
    element: dict[str, Any] = {
        "type": "feedback_buttons",
        "action_id": "byline_feedback",
        "positive_button": {"text": {"type": "plain_text", "text": "Helpful"}, "value": f"up:{value}"},
        "negative_button": {"text": {"type": "plain_text", "text": "Not helpful"}, "value": f"down:{value}"},
    }
    element.update(change)
    return {"type": "context_actions", "elements": [element]}


# -- assistant.threads.* ---------------------------------------------------------------------------------


def test_assistant_thread_methods_take_what_the_sdk_sends(fake: FakeSlack, client: WebClient) -> None:
    root = fake.add_message(DM, "New chat", user=ALICE)
    client.assistant_threads_setSuggestedPrompts(
        channel_id=DM, thread_ts=root, title="Try", prompts=[{"title": "Budget", "message": "What passed?"}]
    )
    client.assistant_threads_setStatus(
        channel_id=DM, thread_ts=root, status="Searching 171 articles…", loading_messages=["Reading…"]
    )
    client.assistant_threads_setTitle(channel_id=DM, thread_ts=root, title="What passed?")

    encodings = {c.method: c.encoding for c in fake.calls}
    assert encodings == {
        "assistant.threads.setSuggestedPrompts": JSON,
        "assistant.threads.setStatus": JSON,
        "assistant.threads.setTitle": FORM,
    }
    thread = fake.thread(DM, root)
    assert thread.status == "Searching 171 articles…" and thread.loading_messages == [["Reading…"]]
    assert thread.titles == ["What passed?"]
    assert thread.prompts == [{"title": "Try", "prompts": [{"title": "Budget", "message": "What passed?"}]}]


def test_bolt_assistant_utilities_are_accepted(fake: FakeSlack, client: WebClient) -> None:
    root = fake.add_message(DM, "New chat", user=ALICE)
    SetSuggestedPrompts(client, DM, root)(["Who won?", {"title": "Budget", "message": "What passed?"}], title="Ask")
    SetStatus(client, DM, root)("is searching…")
    SetTitle(client, DM, root)("Who won?")
    SetStatus(client, DM, root)("")
    thread = fake.thread(DM, root)
    assert thread.prompts[0]["prompts"][0] == {"title": "Who won?", "message": "Who won?"}
    assert thread.statuses == ["is searching…", ""] and thread.status == ""
    assert thread.titles == ["Who won?"]


def _status(**args: Any) -> dict[str, Any]:
    return {"json": {"channel_id": DM, "thread_ts": "ROOT", "status": "x", **args}}


def _title(encoding: str = "params", **args: Any) -> dict[str, Any]:
    return {encoding: {"channel_id": DM, "thread_ts": "ROOT", "title": "x", **args}}


def _prompts(prompts: Any) -> dict[str, Any]:
    return {"json": {"channel_id": DM, "prompts": prompts}}


@pytest.mark.parametrize(
    ("method", "request_", "error"),
    [
        # the encoding the SDK does not use for the method
        ("assistant.threads.setStatus", {"params": _status()["json"]}, "invalid_arguments"),
        ("assistant.threads.setTitle", _title("json"), "invalid_arguments"),
        # a field name from another method, a missing or empty required field
        (
            "assistant.threads.setStatus",
            {"json": {"channel": DM, "thread_ts": "ROOT", "status": "x"}},
            "invalid_arguments",
        ),
        ("assistant.threads.setStatus", {"json": {"channel_id": DM, "thread_ts": "ROOT"}}, "invalid_arguments"),
        ("assistant.threads.setTitle", _title(title=""), "invalid_arguments"),
        ("assistant.threads.setSuggestedPrompts", {"json": {"channel_id": DM}}, "invalid_arguments"),
        # the limits
        (
            "assistant.threads.setSuggestedPrompts",
            _prompts([{"title": f"q{i}", "message": "m"} for i in range(5)]),
            "invalid_arguments",
        ),
        ("assistant.threads.setSuggestedPrompts", _prompts([{"title": "q"}]), "invalid_arguments"),
        ("assistant.threads.setStatus", _status(loading_messages=["m"] * 11), "invalid_arguments"),
        # a thread that is not there, or a reply's ts instead of its thread's
        ("assistant.threads.setStatus", _status(thread_ts="1.000000"), "invalid_thread_ts"),
        ("assistant.threads.setTitle", _title(thread_ts="REPLY"), "invalid_thread_ts"),
    ],
)
def test_malformed_assistant_calls_are_refused(
    fake: FakeSlack, client: WebClient, method: str, request_: dict[str, dict[str, Any]], error: str
) -> None:
    root = fake.add_message(DM, "New chat", user=ALICE)
    reply = fake.add_message(DM, "a reply", user=ALICE, thread_ts=root)
    names = {"ROOT": root, "REPLY": reply}
    sent: dict[str, Any] = {
        how: {k: names.get(v, v) if isinstance(v, str) else v for k, v in body.items()}
        for how, body in request_.items()
    }
    assert error_of(lambda: client.api_call(method, **sent)) == error
    thread = fake.thread(DM, root)
    assert not (thread.statuses or thread.titles or thread.prompts)


def test_a_reply_in_the_thread_clears_its_status(fake: FakeSlack, client: WebClient) -> None:
    question = fake.add_message(CHANNEL, "<@U0BYLINE> who won?", user=ALICE)
    client.assistant_threads_setStatus(channel_id=CHANNEL, thread_ts=question, status="Searching…")
    client.chat_postMessage(channel=CHANNEL, text="elsewhere")  # not in the thread: the status stays
    assert fake.thread(CHANNEL, question).status == "Searching…"
    client.chat_postMessage(channel=CHANNEL, thread_ts=question, text="The answer [1].")
    thread = fake.thread(CHANNEL, question)
    assert thread.status == "" and thread.cleared_by_reply == 1


def test_agent_experience_ignores_prompts_aimed_at_a_thread() -> None:
    with FakeSlack(experience="agent") as fake:
        agent = WebClient(token=BOT_TOKEN, base_url=fake.api_url)
        root = fake.add_message(DM, "hi", user=ALICE)
        agent.assistant_threads_setSuggestedPrompts(
            channel_id=DM, thread_ts=root, prompts=[{"title": "a", "message": "b"}]
        )
        assert fake.thread(DM, root).prompts == [] and len(fake.ignored) == 1
        agent.assistant_threads_setSuggestedPrompts(channel_id=DM, prompts=[{"title": "a", "message": "b"}])
        assert fake.thread(DM, None).prompts == [{"title": None, "prompts": [{"title": "a", "message": "b"}]}]


# -- chat.*Stream --------------------------------------------------------------------------------------


def test_chat_stream_is_started_appended_and_stopped_with_feedback(fake: FakeSlack, client: WebClient) -> None:
    question = fake.add_message(CHANNEL, "<@U0BYLINE> who won?", user=ALICE)
    stream = client.chat_stream(
        channel=CHANNEL, thread_ts=question, recipient_team_id=TEAM_ID, recipient_user_id=ALICE, buffer_size=20
    )
    assert stream.append(markdown_text="Spain won ") is None  # buffered: nothing sent yet
    assert fake.calls_to("chat.startStream") == []
    stream.append(markdown_text="the final [1]. ")
    stream.append(markdown_text="It was close, said the BBC [2].")
    blocks = [
        MarkdownBlock(text="**Sources**\n1. [El País](https://elpais.com/a)\n2. [BBC](https://bbc.co.uk/b)"),
        ContextActionsBlock(
            elements=[
                FeedbackButtonsElement(
                    action_id="byline_feedback",
                    positive_button=FeedbackButtonObject(text="Helpful", value="up:a1"),
                    negative_button=FeedbackButtonObject(text="Not helpful", value="down:a1"),
                )
            ]
        ),
    ]
    stream.stop(blocks=blocks, metadata={"event_type": "byline_answer", "event_payload": {"answer_id": "a1"}})

    start, append, stop = (fake.calls_to(m)[0] for m in ("chat.startStream", "chat.appendStream", "chat.stopStream"))
    assert all(c.encoding == JSON for c in (start, append, stop))
    assert start.args["chunks"] == [{"type": "markdown_text", "text": "Spain won the final [1]. "}]
    assert start.args["recipient_user_id"] == ALICE and start.args["thread_ts"] == question
    assert stop.args["chunks"] == [] and stop.args["ts"] == append.args["ts"] == stream.ts
    streamed = fake.streams[(CHANNEL, str(stream.ts))]
    assert streamed.state == "stopped" and streamed.text == "Spain won the final [1]. It was close, said the BBC [2]."
    message = fake.messages[CHANNEL][-1]
    assert message["thread_ts"] == question and message["text"] == streamed.text
    assert [b["type"] for b in message["blocks"]] == ["markdown", "context_actions"]
    assert message["metadata"]["event_payload"] == {"answer_id": "a1"}


def test_say_stream_and_a_stop_without_appends_are_accepted(fake: FakeSlack, client: WebClient) -> None:
    question = fake.add_message(CHANNEL, "who won?", user=ALICE)
    stream = SayStream(
        client=client, channel=CHANNEL, recipient_team_id=TEAM_ID, recipient_user_id=ALICE, thread_ts=question
    )()
    stream.stop(
        markdown_text="Nothing in the articles.", chunks=[TaskUpdateChunk(id="t1", title="Search", status="complete")]
    )
    [start] = fake.calls_to("chat.startStream")
    assert "chunks" not in start.args  # stop() opens the stream empty, then sends everything with the stop
    assert fake.streams[(CHANNEL, str(stream.ts))].text == "Nothing in the articles."


def test_a_stopped_stream_takes_nothing_more(fake: FakeSlack, client: WebClient) -> None:
    question = fake.add_message(DM, "who won?", user=ALICE)
    stream = client.chat_stream(channel=DM, thread_ts=question, buffer_size=1)
    stream.append(markdown_text="Spain.")
    stream.stop()
    with pytest.raises(SlackRequestError):
        stream.append(markdown_text="More.")  # the SDK itself refuses
    ts = str(stream.ts)
    assert error_of(lambda: client.chat_appendStream(channel=DM, ts=ts, markdown_text="More.")) == (
        "message_not_in_streaming_state"
    )
    assert error_of(lambda: client.chat_stopStream(channel=DM, ts=ts)) == "message_not_in_streaming_state"
    assert error_of(lambda: client.chat_appendStream(channel=DM, ts="9.000000", markdown_text="x")) == (
        "message_not_found"
    )
    assert fake.streams[(DM, ts)].text == "Spain."


def test_stream_rules(fake: FakeSlack, client: WebClient) -> None:
    question = fake.add_message(CHANNEL, "who won?", user=ALICE)
    reply = fake.add_message(CHANNEL, "me too", user="U0BOB", thread_ts=question)
    # a channel needs the recipient; a DM does not
    assert error_of(lambda: client.chat_startStream(channel=CHANNEL, thread_ts=question)) == (
        "missing_recipient_team_id"
    )
    assert error_of(
        lambda: client.chat_startStream(channel=CHANNEL, thread_ts=question, recipient_team_id=TEAM_ID)
    ) == ("missing_recipient_user_id")
    recipient: dict[str, Any] = {"recipient_team_id": TEAM_ID, "recipient_user_id": ALICE}
    assert error_of(lambda: client.chat_startStream(channel=CHANNEL, thread_ts=reply, **recipient)) == (
        "invalid_thread_ts"
    )
    assert error_of(lambda: client.api_call("chat.startStream", json={"channel": CHANNEL, **recipient})) == (
        "invalid_arguments"
    )
    too_long = "x" * (MAX_MARKDOWN_TEXT + 1)
    assert (
        error_of(
            lambda: client.chat_startStream(channel=CHANNEL, thread_ts=question, markdown_text=too_long, **recipient)
        )
        == "msg_too_long"
    )
    ts = client.chat_startStream(channel=CHANNEL, thread_ts=question, **recipient)["ts"]
    assert (
        error_of(lambda: client.chat_appendStream(channel=CHANNEL, ts=ts, chunks=[MarkdownTextChunk(text=too_long)]))
        == "msg_too_long"
    )
    assert error_of(lambda: client.chat_appendStream(channel=CHANNEL, ts=ts, chunks=[{"type": "sparkle"}])) == (
        "invalid_chunks"
    )
    assert error_of(lambda: client.chat_appendStream(channel=CHANNEL, ts=ts)) == "no_text"
    assert error_of(lambda: client.chat_appendStream(channel="C0OTHER", ts=ts, markdown_text="x")) == (
        "message_not_found"
    )
    # while it streams, the message cannot be edited
    assert error_of(lambda: client.chat_update(channel=CHANNEL, ts=ts, text="edit")) == "streaming_state_conflict"
    client.chat_appendStream(channel=CHANNEL, ts=ts, markdown_text="ok")
    client.chat_stopStream(channel=CHANNEL, ts=ts)
    client.chat_update(channel=CHANNEL, ts=ts, text="edited after the stream")


@pytest.mark.parametrize(
    ("blocks", "error"),
    [
        ([{"type": "divider"}] * 51, "msg_blocks_too_many"),
        ([{"type": "markdown", "text": "x" * (MAX_MARKDOWN_TEXT + 1)}], "invalid_blocks"),
        ([{"type": "markdown", "text": "x" * 7000}, {"type": "markdown", "text": "y" * 5001}], "msg_blocks_too_long"),
        ([{"type": "markdown", "text": ""}], "invalid_blocks"),
        ([{"type": "context_actions", "elements": feedback()["elements"] * 6}], "invalid_blocks"),
        ([{"type": "context_actions", "elements": []}], "invalid_blocks"),
        ([feedback(action_id="x" * 256)], "invalid_blocks"),
        ([feedback(negative_button=None)], "invalid_blocks"),
        (
            [feedback(positive_button={"text": {"type": "plain_text", "text": "y" * 76}, "value": "up"})],
            "invalid_blocks",
        ),
        ([feedback(positive_button={"text": {"type": "mrkdwn", "text": "*up*"}, "value": "up"})], "invalid_blocks"),
        (
            [feedback(positive_button={"text": {"type": "plain_text", "text": "up"}, "value": "v" * 2001})],
            "invalid_blocks",
        ),
        ([feedback(positive_button={"text": {"type": "plain_text", "text": "up"}})], "invalid_blocks"),
        (
            [
                {
                    "type": "context_actions",
                    "elements": [{"type": "button", "text": {"type": "plain_text", "text": "b"}}],
                }
            ],
            "invalid_blocks",
        ),
        ([{"type": "context_actions", "elements": feedback()["elements"] * 2}], "invalid_blocks"),  # same action_id
        ("not a list", "invalid_blocks_format"),
    ],
)
def test_stop_stream_blocks_within_limits(fake: FakeSlack, client: WebClient, blocks: Any, error: str) -> None:
    question = fake.add_message(DM, "who won?", user=ALICE)
    ts = client.chat_startStream(channel=DM, thread_ts=question, markdown_text="Spain [1].")["ts"]
    assert (
        error_of(lambda: client.api_call("chat.stopStream", json={"channel": DM, "ts": ts, "blocks": blocks})) == error
    )
    assert fake.streams[(DM, ts)].state == "streaming"  # a refused stop leaves the stream open
    fitting = [{"type": "markdown", "text": "x" * 7000}, {"type": "markdown", "text": "y" * 5000}, feedback()]
    client.chat_stopStream(channel=DM, ts=ts, blocks=fitting + [{"type": "divider"}] * 47)


def test_streams_end_on_their_own(fake: FakeSlack, client: WebClient) -> None:
    question = fake.add_message(DM, "who won?", user=ALICE)
    first = client.chat_startStream(channel=DM, thread_ts=question, markdown_text="a")["ts"]
    second = client.chat_startStream(channel=DM, thread_ts=question, markdown_text="b")["ts"]
    fake.end_stream(DM, first)
    fake.end_stream(DM, second, "stopped_by_user")
    assert error_of(lambda: client.chat_appendStream(channel=DM, ts=first, markdown_text="x")) == (
        "message_not_in_streaming_state"
    )
    assert error_of(lambda: client.chat_appendStream(channel=DM, ts=second, markdown_text="x")) == "stopped_by_user"
    client.chat_update(channel=DM, ts=first, text="finished by an edit instead")
    with FakeSlack(stream_lifetime=0.2) as short:
        brief = WebClient(token=BOT_TOKEN, base_url=short.api_url)
        root = short.add_message(DM, "who won?", user=ALICE)
        ts = brief.chat_startStream(channel=DM, thread_ts=root, markdown_text="a")["ts"]
        time.sleep(0.3)
        assert error_of(lambda: brief.chat_appendStream(channel=DM, ts=ts, markdown_text="b")) == (
            "message_not_in_streaming_state"
        )


# -- scripted failures ---------------------------------------------------------------------------------


def test_scripted_failures_for_fallback_paths(fake: FakeSlack) -> None:
    client = make_web_client(SlackSettings(bot_token=BOT_TOKEN, api_url=fake.api_url))  # Byline's, with retries
    question = fake.add_message(DM, "who won?", user=ALICE)

    fake.fail_next("chat.startStream", Failure(error="method_not_supported_for_channel_type"))
    stream = client.chat_stream(channel=DM, thread_ts=question, buffer_size=1)
    assert error_of(lambda: stream.append(markdown_text="Spain.")) == "method_not_supported_for_channel_type"
    assert fake.streams == {}

    fake.fail_next("chat.startStream", Failure(status=503, error="service_unavailable"))  # retried once: fine
    ok = client.chat_stream(channel=DM, thread_ts=question, buffer_size=1)
    ok.append(markdown_text="Spain.")
    assert len(fake.calls_to("chat.startStream")) == 3 and len(fake.streams) == 1

    fake.fail_next("chat.startStream", Failure(status=500, error="internal_error"), times=2)  # retry fails too
    assert error_of(lambda: client.chat_startStream(channel=DM, thread_ts=question)) == "internal_error"

    fake.fail_next("chat.appendStream", Failure(error="message_not_in_streaming_state"), after=1)
    broken = client.chat_stream(channel=DM, thread_ts=question, buffer_size=1)
    broken.append(markdown_text="One.")  # startStream
    broken.append(markdown_text="Two.")  # the append let through
    assert error_of(lambda: broken.append(markdown_text="Three.")) == "message_not_in_streaming_state"
    assert fake.streams[(DM, str(broken.ts))].text == "One.Two."


# -- message blocks --------------------------------------------------------------------------------------


def test_post_message_checks_markdown_and_context_actions(fake: FakeSlack, client: WebClient) -> None:
    answer: list[Any] = [
        MarkdownBlock(text="**Spain** won [1].", block_id="byline-answer-0"),
        SectionBlock(text="src"),
        feedback(),
    ]
    ts = client.chat_postMessage(
        channel=CHANNEL,
        text="Spain won [1].",
        blocks=answer,
        metadata={"event_type": "byline_answer", "event_payload": {"answer_id": "a1"}},
    )["ts"]
    stored = fake.messages[CHANNEL][-1]
    assert stored["ts"] == ts and "block_id" not in stored["blocks"][0]  # Slack keeps no markdown block_id
    assert error_of(
        lambda: client.chat_update(channel=CHANNEL, ts=ts, text="t", blocks=[feedback(negative_button=None)])
    ) == ("invalid_blocks")
    assert (
        error_of(
            lambda: client.chat_update(
                channel=CHANNEL, ts=ts, text="t", blocks=[{"type": "markdown", "text": "x" * 12_001}]
            )
        )
        == "invalid_blocks"
    )
    assert error_of(lambda: client.chat_postMessage(channel=CHANNEL, text="t", markdown_text="**t**")) == (
        "markdown_text_conflict"
    )
    client.chat_postMessage(channel=CHANNEL, markdown_text="**Spain** won.")

    replies = client.conversations_replies(channel=CHANNEL, ts=ts)["messages"]
    assert "metadata" not in replies[0]
    replies = client.conversations_replies(channel=CHANNEL, ts=ts, include_all_metadata=True)["messages"]
    assert replies[0]["metadata"]["event_payload"] == {"answer_id": "a1"}


def test_shown_keeps_what_was_later_replaced(fake: FakeSlack, client: WebClient) -> None:
    ts = client.chat_postMessage(channel=CHANNEL, text="Searching the articles…")["ts"]
    client.chat_update(channel=CHANNEL, ts=ts, text="Spain won [1].")
    assert "Searching the articles…" in fake.shown(CHANNEL) and "Spain won" in fake.shown()
    assert fake.shown("C0OTHER") == ""
    assert BOT_USER_ID not in fake.shown()
