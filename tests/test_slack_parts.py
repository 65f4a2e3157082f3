"""The Slack bot's parts on their own: rendering, question cleaning, thread history, guards, feedback storage."""

from __future__ import annotations

import threading
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from fake_slack import BOT_TOKEN, BOT_USER_ID, Failure, FakeSlack, block_kit_error
from slack_harness import make_answer, refusal
from slack_sdk.errors import SlackApiError

from bot.models import Answer, Turn
from bot.settings import SlackSettings
from bot.slack.app import parse_channel_filters, question_text, turns_from_thread
from bot.slack.client import SlackStartupError, api_url, check_startup, make_web_client, verify_bot_token
from bot.slack.feedback import FeedbackStore, PostedAnswer
from bot.slack.guards import Deduplicator, UserRateLimiter, WorkerPool
from bot.slack.render import (
    FALLBACK_CHARS,
    MAX_BLOCKS,
    SECTION_CHARS,
    answer_message,
    answer_text_from_blocks,
    split_mrkdwn,
    to_mrkdwn,
)
from ingest.storage.sqlite import SQLiteCatalog


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# -- rendering ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("markdown", "mrkdwn"),
    [
        ("**bold** and __also bold__", "*bold* and *also bold*"),
        ("*italic* and _italic_", "_italic_ and _italic_"),
        ("~~gone~~", "~gone~"),
        ("see [the story](https://x.com/a?b=1&c=2)", "see <https://x.com/a?b=1&amp;c=2|the story>"),
        ("[a | b](https://x.com/p|q)", "<https://x.com/p%7Cq|a / b>"),
        ("## Background\n- one\n* two", "*Background*\n• one\n• two"),
        ("`**literal**` stays", "`**literal**` stays"),
        ("2 * 3 * 4 < 30 & 5 > 1", "2 * 3 * 4 &lt; 30 &amp; 5 &gt; 1"),
    ],
)
def test_markdown_becomes_mrkdwn(markdown: str, mrkdwn: str) -> None:
    assert to_mrkdwn(markdown) == mrkdwn


def test_answer_text_cannot_ping_or_inject_markup() -> None:
    text = "Hey <!channel> and <@U123ABC>, read <https://evil.example|this> @here & @everyone [1]."
    message = answer_message(make_answer("q", text), "a1")
    rendered = "\n".join(str(b) for b in message["blocks"]) + message["text"]
    assert "<!channel>" not in rendered and "<@U123ABC>" not in rendered and "<https://evil" not in rendered
    assert "&lt;!channel&gt;" in message["blocks"][0]["text"]["text"]
    assert "@here" not in rendered and "@everyone" not in rendered  # a word joiner sits after the @


def test_oversize_answer_fits_block_kit_limits() -> None:
    answer = make_answer("q", ("A sentence about the budget vote [1]. " * 40 + "\n\n") * 200, sources=25)
    message = answer_message(answer, "a" * 32)
    blocks = message["blocks"]
    assert len(blocks) <= MAX_BLOCKS
    assert all(len(b["text"]["text"]) <= SECTION_CHARS for b in blocks if b["type"] == "section")
    assert block_kit_error(blocks, max_total_chars=13_000) is None
    contexts = [e["text"] for b in blocks if b["type"] == "context" for e in b["elements"]]
    assert "_(answer truncated)_" in contexts and "…and 15 more sources" in contexts
    assert sum(c.startswith("*[") for c in contexts) == 10
    assert len(message["text"]) <= FALLBACK_CHARS


def test_split_never_breaks_a_link_or_an_entity() -> None:
    text = to_mrkdwn(" ".join(f"[a long link label number {i}](https://x.com/{i}) &amp; more" for i in range(300)))
    pieces = split_mrkdwn(text, 500)
    assert len(pieces) > 10 and all(len(p) <= 500 for p in pieces)
    for piece in pieces:
        assert piece.count("<") == piece.count(">")
        assert not piece.endswith(("&", "&am", "&amp")) and not piece.startswith(("amp;", ";"))
    unbroken = "x" * 1200
    assert split_mrkdwn(unbroken, 500) == ["x" * 500, "x" * 500, "x" * 200]


def test_the_short_answer_is_bold_above_the_answer_and_not_read_back_as_it() -> None:
    answer = make_answer("How deep is the wreck?", "It lies at a depth of over 1400 feet [1].")
    answer.short_answer = "over 1400 *feet* <deep>"
    message = answer_message(answer, "a1")
    short = next(b for b in message["blocks"] if b.get("block_id") == "byline-short-answer")
    assert short["text"]["text"] == "*over 1400 ∗feet∗ &lt;deep&gt;*"
    first_answer = next(i for i, b in enumerate(message["blocks"]) if b.get("block_id") == "byline-answer-0")
    assert message["blocks"].index(short) == first_answer - 1
    assert message["text"].startswith("*over 1400 ∗feet∗ &lt;deep&gt;*\nIt lies at a depth")
    assert answer_text_from_blocks(message) == "It lies at a depth of over 1400 feet [1]."
    answer.short_answer = None
    assert all(b.get("block_id") != "byline-short-answer" for b in answer_message(answer, "a1")["blocks"])


def test_the_answer_can_be_read_back_from_its_blocks() -> None:
    answer = make_answer("q", "Omar & Dorsey <spoke> [1].")
    assert answer_text_from_blocks(answer_message(answer, "a1")) == "Omar & Dorsey <spoke> [1]."
    assert answer_text_from_blocks({"text": "Searching the articles…"}) is None


# -- reading Slack messages ----------------------------------------------------------------------------


def test_question_text_drops_the_mention_and_slack_markup() -> None:
    raw = (
        f"<@{BOT_USER_ID}>   what did <@U0BOB|bob> say in <#C0GEN|general> about "
        "<https://x.com/a|this story> &amp; <!here>? 3 &lt; 4"
    )
    assert question_text(raw, BOT_USER_ID) == "what did @bob say in #general about this story & @here? 3 < 4"
    assert question_text(f"<@{BOT_USER_ID}>", BOT_USER_ID) == ""


def test_turns_pair_each_answer_with_its_question() -> None:
    def bot(ts: str, answer: str | None) -> dict[str, Any]:
        blocks = answer_message(make_answer("q", answer), "id")["blocks"] if answer else []
        return {"ts": ts, "user": BOT_USER_ID, "bot_id": "B0BYLINE", "text": "x", "blocks": blocks}

    thread: list[dict[str, Any]] = [
        {"ts": "1.000001", "user": "U0ALICE", "text": f"<@{BOT_USER_ID}> first?"},
        bot("1.000002", "First answer [1]."),
        {"ts": "1.000003", "user": "U0BOB", "text": "side remark"},
        {"ts": "1.000004", "user": "U0ALICE", "text": f"<@{BOT_USER_ID}> second?"},
        bot("1.000005", None),  # an error message: the question went unanswered
        {"ts": "1.000006", "user": "U0ALICE", "text": f"<@{BOT_USER_ID}> third?"},
        {"ts": "1.000007", "bot_id": "B0OTHER", "text": "another bot"},
        {"ts": "1.000008", "user": "U0ALICE", "text": f"<@{BOT_USER_ID}> fourth?"},
        bot("1.000009", "Fourth answer."),
        {"ts": "1.000010", "user": "U0ALICE", "text": f"<@{BOT_USER_ID}> now?"},
        bot("1.000011", None),  # this question's own placeholder
    ]
    assert turns_from_thread(list(reversed(thread)), BOT_USER_ID, before_ts="1.000010") == [
        Turn("first?", "First answer [1]."),
        Turn("fourth?", "Fourth answer."),
    ]


def test_channel_filters_are_checked() -> None:
    parsed = parse_channel_filters({"C1": {"sources": "The Hill", "until": date(2019, 12, 31)}})
    assert parsed["C1"].sources == ("The Hill",) and parsed["C1"].until == date(2019, 12, 31)
    with pytest.raises(ValueError, match=r"channel_filters\[C2\].*unknown key.*'outlet'"):
        parse_channel_filters({"C2": {"outlet": ["x"]}})
    with pytest.raises(ValueError, match=r"channel_filters\[C3\]\.since: 'last week'"):
        parse_channel_filters({"C3": {"since": "last week"}})


# -- guards ------------------------------------------------------------------------------------------------


def test_deduplicator_lets_exactly_one_of_simultaneous_duplicates_through(tmp_path: Path) -> None:
    """Sixteen deliveries at once, each through its own connection to one catalog: as from several bot
    processes sharing a home (SQLite locks per connection, so threads stand in for processes here)."""
    path = tmp_path / "catalog.sqlite"
    SQLiteCatalog(path).close()  # migrated once
    catalogs = [SQLiteCatalog(path) for _ in range(16)]
    start = threading.Barrier(16)
    results: list[bool] = []

    def deliver(catalog: SQLiteCatalog) -> None:
        start.wait()
        results.append(Deduplicator(catalog).first_time(["event:Ev1", "ts:C1:1.0"]))

    threads = [threading.Thread(target=deliver, args=(catalog,)) for catalog in catalogs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * 15 + [True]
    restarted = SQLiteCatalog(path)  # a new process after a restart still knows the message
    assert Deduplicator(restarted).first_time(["event:Ev2", "ts:C1:1.0"]) is False


def test_deduplicator_forgets_after_its_ttl(tmp_path: Path) -> None:
    clock = FakeClock()
    catalog = SQLiteCatalog(tmp_path / "catalog.sqlite")
    dedupe = Deduplicator(catalog, ttl=60, clock=clock)
    assert dedupe.first_time(["k"]) and not dedupe.first_time(["k"])
    clock.now += 61
    assert dedupe.first_time(["k"])
    assert catalog.fetch("SELECT COUNT(*) FROM slack_deliveries")[0][0] == 1  # expired rows go


def test_rate_limiter_counts_a_sliding_minute_per_user() -> None:
    clock = FakeClock()
    limiter = UserRateLimiter(per_minute=2, clock=clock)
    assert limiter.wait_seconds("alice") == 0
    clock.now += 10
    assert limiter.wait_seconds("alice") == 0
    assert limiter.wait_seconds("alice") == 50
    assert limiter.wait_seconds("bob") == 0
    clock.now += 50
    assert limiter.wait_seconds("alice") == 0


def test_worker_pool_turns_work_away_when_full() -> None:
    pool = WorkerPool(workers=1, backlog=1)
    release, ran = threading.Event(), threading.Semaphore(0)

    def job() -> None:
        release.wait(30)
        ran.release()

    assert pool.submit(job) and pool.submit(job)
    assert not pool.submit(job)
    release.set()
    assert ran.acquire(timeout=30) and ran.acquire(timeout=30)
    pool.shutdown()


# -- the Web API client --------------------------------------------------------------------------------


def test_client_base_url_and_startup_checks() -> None:
    assert api_url(SlackSettings(api_url="http://127.0.0.1:9/api")) == "http://127.0.0.1:9/api/"
    assert api_url(SlackSettings()) == "https://slack.com/api/"
    with pytest.raises(SlackStartupError, match="SLACK_BOT_TOKEN"):
        check_startup(SlackSettings(), http=False)
    with pytest.raises(SlackStartupError, match="SLACK_APP_TOKEN"):
        check_startup(SlackSettings(bot_token="xoxb-1"), http=False)
    with pytest.raises(SlackStartupError, match="SLACK_SIGNING_SECRET"):
        check_startup(SlackSettings(bot_token="xoxb-1", app_token="xapp-1"), http=True)


@pytest.mark.network
def test_retry_after_is_honoured_only_up_to_a_bound() -> None:
    with FakeSlack() as fake:
        client = make_web_client(SlackSettings(bot_token=BOT_TOKEN, api_url=fake.api_url))
        fake.fail_next("chat.postMessage", Failure(status=429, retry_after=0))
        assert client.chat_postMessage(channel="C1", text="hi")["ok"]
        assert len(fake.calls_to("chat.postMessage")) == 2
        fake.fail_next("chat.postMessage", Failure(status=429, retry_after=3600))
        with pytest.raises(SlackApiError) as error:
            client.chat_postMessage(channel="C1", text="hi")
        assert error.value.response.status_code == 429 and len(fake.calls_to("chat.postMessage")) == 3
        fake.bot_token = "xoxb-another"
        with pytest.raises(SlackStartupError, match=r"invalid_auth"):
            verify_bot_token(client)


@pytest.mark.network
def test_unreachable_api_is_a_startup_error() -> None:
    with FakeSlack() as fake:
        url = fake.api_url
    client = make_web_client(SlackSettings(bot_token=BOT_TOKEN, api_url=url))
    client.retry_handlers = []
    with pytest.raises(SlackStartupError, match="could not reach the Slack Web API"):
        verify_bot_token(client)


# -- feedback ------------------------------------------------------------------------------------------------


def test_votes_are_replaced_per_user_and_downvotes_export(tmp_path: Path) -> None:
    catalog = SQLiteCatalog(tmp_path / "catalog.sqlite")
    store = FeedbackStore(catalog)
    answered: Answer = make_answer("why?")
    store.record_answer(answered, PostedAnswer("a1", "C1", "1.1", "1.0", "U1"))
    store.record_answer(refusal("what is the capital of the moon?"), PostedAnswer("a2", "C1", "2.1", "2.0", "U1"))
    store.record_answer(make_answer("liked?"), PostedAnswer("a3", "C1", "3.1", "3.0", "U1"))
    store.record_vote("a1", "U2", -1, channel="C1", message_ts="1.1")
    store.record_vote("a1", "U2", 1, channel="C1", message_ts="1.1")  # changed their mind
    store.record_vote("a2", "U2", -1, channel="C1", message_ts="2.1")
    store.record_vote("a3", "U3", 1, channel="C1", message_ts="3.1")
    store.record_vote("never-recorded", "U3", -1, channel="C1", message_ts="9.9")
    with pytest.raises(ValueError, match="vote must be -1 or 1"):
        store.record_vote("a1", "U2", 0, channel=None, message_ts=None)

    assert store.votes("a1") == {"U2": 1}
    [record] = list(store.downvoted())
    assert record["id"] == "slack-a2" and record["question"] == "what is the capital of the moon?"
    assert record["answerable"] is True and record["answers"] == [] and record["evidence"] == []
    assert record["notes"].startswith("Slack: 1 👎, 0 👍 (channel C1, ts 2.1). Byline refused")
    catalog.close()
