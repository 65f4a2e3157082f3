"""The Slack bot's parts on their own: rendering, question cleaning, thread history, guards, feedback storage."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import date

import pytest
from fake_slack import BOT_TOKEN, BOT_USER_ID, Failure, FakeSlack, block_kit_error
from slack_harness import headline, make_answer, refusal, sentence_pieces
from slack_sdk.errors import SlackApiError

from bot.models import Answer, Turn
from bot.settings import SlackSettings
from bot.slack.assistant import suggested_prompts
from bot.slack.client import SlackStartupError, api_url, check_startup, make_web_client, verify_bot_token
from bot.slack.feedback import FeedbackStore, PostedAnswer
from bot.slack.guards import Deduplicator, UserRateLimiter, WorkerPool
from bot.slack.render import (
    ANSWER_CHARS,
    FALLBACK_CHARS,
    MAX_BLOCKS,
    SECTION_CHARS,
    answer_message,
    neutral_markdown,
    split_mrkdwn,
    to_mrkdwn,
)
from bot.slack.text import mentions_someone, parse_channel_filters, question_text
from ingest.storage.catalog import Catalog


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


def test_the_short_answer_is_bold_above_an_extractive_answer() -> None:
    answer = make_answer("How deep is the wreck?", "It lies at a depth of over 1400 feet [1].")
    answer.short_answer = "over 1400 *feet* <deep>"
    message = answer_message(answer, "a1")
    sections = [b["text"]["text"] for b in message["blocks"] if b["type"] == "section"]
    assert sections[:2] == ["*over 1400 ∗feet∗ &lt;deep&gt;*", "It lies at a depth of over 1400 feet [1]."]
    assert message["text"].startswith("*over 1400 ∗feet∗ &lt;deep&gt;*\nIt lies at a depth")
    answer.short_answer = None
    assert [b["text"]["text"] for b in answer_message(answer, "a1")["blocks"] if b["type"] == "section"] == [
        "It lies at a depth of over 1400 feet [1]."
    ]


def test_a_written_answer_is_one_markdown_block_that_cannot_ping() -> None:
    text = "**Omar** spoke to <!channel> and <@U123ABC> in <#C0GEN> [1]. Then @here & @everyone left [1]."
    message = answer_message(make_answer("q", text, written=True), "a1")
    [body] = [b["text"] for b in message["blocks"] if b["type"] == "markdown"]
    assert body.startswith("**Omar** spoke")  # Markdown stays Markdown
    rendered = str(message["blocks"]) + message["text"]
    for mention in ("<!channel>", "<@U123ABC>", "<#C0GEN>", "@here", "@everyone"):
        assert mention not in rendered
    assert "&lt;!channel&gt;" in message["text"]  # the notification text is mrkdwn: escaped
    assert message["blocks"][-1]["type"] == "context_actions"
    extractive = answer_message(make_answer("q", "A *quoted* sentence [1]."), "a2")
    assert not [b for b in extractive["blocks"] if b["type"] == "markdown"]  # article text: escaped sections


def test_neutral_markdown_of_a_longer_text_starts_with_that_of_the_shorter() -> None:
    """What makes streaming safe: pieces neutralised one after another agree with the whole."""
    text = "Before <!here> and <@U1|a> then @channel, @every one <#C2> and < ! plain [1]. End."
    whole = neutral_markdown(text)
    for cut in range(len(text) + 1):
        assert whole.startswith(neutral_markdown(text[:cut]))


def test_an_overlong_written_answer_is_cut_at_a_sentence() -> None:
    answer = make_answer("q", "The council voted on the budget again [1]. " * 400, written=True)
    blocks = answer_message(answer, "a1")["blocks"]
    [body] = [b["text"] for b in blocks if b["type"] == "markdown"]
    assert len(body) <= ANSWER_CHARS and body.endswith("[1].")
    assert block_kit_error(blocks, max_total_chars=13_000) is None


# -- reading Slack messages ----------------------------------------------------------------------------


def test_question_text_drops_the_mention_and_slack_markup() -> None:
    raw = (
        f"<@{BOT_USER_ID}>   what did <@U0BOB|bob> say in <#C0GEN|general> about "
        "<https://x.com/a|this story> &amp; <!here>? 3 &lt; 4"
    )
    assert question_text(raw, BOT_USER_ID) == "what did @bob say in #general about this story & @here? 3 < 4"
    assert question_text(f"<@{BOT_USER_ID}>", BOT_USER_ID) == ""


def test_a_message_that_mentions_anyone_is_told_apart() -> None:
    assert not mentions_someone("and who scored? see <https://x.com|this> in <#C0GEN|general>")
    for text in (f"<@{BOT_USER_ID}> and?", "ask <@U0BOB|bob>", "<!here> look", "<!subteam^S0ED|@desk> ok"):
        assert mentions_someone(text), text


def test_suggested_prompts_ask_about_the_latest_distinct_stories() -> None:
    headlines = [
        headline(1, "Jack Dorsey calls Ilhan Omar"),
        headline(2, "Jack  Dorsey calls Ilhan Omar"),  # the same story again
        headline(3, "A" * 200),
        headline(4, "Bridge reopens"),
        headline(5, "Orchestra names conductor"),
        headline(6, "Sixth story"),
    ]
    prompts = suggested_prompts(headlines)
    assert len(prompts) == 4 and [p["title"] for p in prompts][::3] == [
        "Jack Dorsey calls Ilhan Omar",
        "Orchestra names conductor",
    ]
    assert prompts[0]["message"] == "What do the articles say about “Jack Dorsey calls Ilhan Omar”?"
    assert len(prompts[1]["title"]) <= 60 and prompts[1]["title"].endswith("…")
    assert suggested_prompts([]) == []


def test_sentence_pieces_join_back_to_the_text() -> None:
    for text in ("One [1]. Two [2][3]. Three", "No full stop", "Done. [4] Next? Yes [1]."):
        assert "".join(sentence_pieces(text)) == text


def test_turns_of_a_thread_come_from_the_answers_shown_there(open_catalog: Callable[[], Catalog]) -> None:
    store = FeedbackStore(open_catalog())
    store.record_answer(make_answer("first?", "First answer [1]."), PostedAnswer("a1", "C1", "10.000002", "10.0", "U1"))
    store.record_answer(make_answer("second?", "Second [1]."), PostedAnswer("a2", "C1", "9.900000", "9.0", "U1"))
    store.record_answer(make_answer("fourth?", "Fourth."), PostedAnswer("a4", "C1", "100.000009", "10.0", "U1"))
    store.record_answer(make_answer("later?", "Later."), PostedAnswer("a5", "C1", "100.000011", "10.0", "U1"))
    store.record_answer(make_answer("/ask?", "Asked."), PostedAnswer("a6", "C1", None, None, "U1"))
    assert store.turns("C1", "10.0", before_ts="100.000010") == [
        Turn("first?", "First answer [1]."),
        Turn("fourth?", "Fourth."),
    ]
    assert store.turns("C2", "10.0", before_ts="200.0") == []


def test_channel_filters_are_checked() -> None:
    parsed = parse_channel_filters({"C1": {"sources": "The Hill", "until": date(2019, 12, 31)}})
    assert parsed["C1"].sources == ("The Hill",) and parsed["C1"].until == date(2019, 12, 31)
    with pytest.raises(ValueError, match=r"channel_filters\[C2\].*unknown key.*'outlet'"):
        parse_channel_filters({"C2": {"outlet": ["x"]}})
    with pytest.raises(ValueError, match=r"channel_filters\[C3\]\.since: 'last week'"):
        parse_channel_filters({"C3": {"since": "last week"}})


# -- guards ------------------------------------------------------------------------------------------------


def test_deduplicator_lets_exactly_one_of_simultaneous_duplicates_through(
    open_catalog: Callable[[], Catalog],
) -> None:
    """Sixteen deliveries at once, each through its own catalog (its own connection): as from several bot
    processes sharing the catalog, on one machine (SQLite) or several (PostgreSQL)."""
    open_catalog()  # migrated once
    catalogs = [open_catalog() for _ in range(16)]
    start = threading.Barrier(16)
    results: list[bool] = []

    def deliver(catalog: Catalog) -> None:
        start.wait()
        results.append(Deduplicator(catalog).first_time(["event:Ev1", "ts:C1:1.0"]))

    threads = [threading.Thread(target=deliver, args=(catalog,)) for catalog in catalogs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * 15 + [True]
    restarted = open_catalog()  # a new process after a restart still knows the message
    assert Deduplicator(restarted).first_time(["event:Ev2", "ts:C1:1.0"]) is False


def test_deduplicator_forgets_after_its_ttl(open_catalog: Callable[[], Catalog]) -> None:
    clock = FakeClock()
    catalog = open_catalog()
    dedupe = Deduplicator(catalog, ttl=60, clock=clock)
    assert dedupe.first_time(["k"]) and not dedupe.first_time(["k"])
    clock.now += 61
    assert dedupe.first_time(["k"])
    assert catalog.fetch("SELECT COUNT(*) FROM slack_deliveries")[0][0] == 1  # expired rows go


def test_rate_limiter_counts_a_sliding_minute_per_user(open_catalog: Callable[[], Catalog]) -> None:
    clock = FakeClock()
    catalog = open_catalog()
    limiter = UserRateLimiter(catalog, per_minute=2, clock=clock)
    assert limiter.wait_seconds("alice") == 0
    clock.now += 10
    assert limiter.wait_seconds("alice") == 0
    assert limiter.wait_seconds("alice") == 50
    assert limiter.wait_seconds("bob") == 0
    clock.now += 50
    assert limiter.wait_seconds("alice") == 0
    assert catalog.fetch("SELECT MIN(asked_at), COUNT(*) FROM slack_questions_asked")[0] == (1010.0, 3)  # 1000 went


def test_rate_limit_holds_across_processes_sharing_a_catalog(open_catalog: Callable[[], Catalog]) -> None:
    """Eight catalogs (as from several bot processes, on one machine or several) ask for one user at once:
    exactly `per_minute` get through, and a restarted process still counts them."""
    open_catalog()  # migrated once
    catalogs = [open_catalog() for _ in range(8)]
    start = threading.Barrier(8)
    waits: list[int] = []

    def ask(catalog: Catalog) -> None:
        limiter = UserRateLimiter(catalog, per_minute=3)
        start.wait()
        waits.append(limiter.wait_seconds("alice"))

    threads = [threading.Thread(target=ask, args=(catalog,)) for catalog in catalogs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert waits.count(0) == 3 and all(0 < w <= 60 for w in waits if w)
    assert UserRateLimiter(open_catalog(), per_minute=3).wait_seconds("alice") > 0


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
    assert pool.submit(job)  # room again once they are done
    assert pool.drain(30) and ran.acquire(timeout=30)
    assert not pool.submit(job)  # drained: nothing new is taken


def test_a_drain_past_its_deadline_tells_the_queued_jobs() -> None:
    pool = WorkerPool(workers=1, backlog=2)
    release = threading.Event()
    cancelled: list[str] = []
    assert pool.submit(lambda: release.wait(30), on_cancel=lambda: cancelled.append("running"))
    assert pool.submit(lambda: None, on_cancel=lambda: cancelled.append("queued"))
    assert pool.drain(0.2) is False
    assert cancelled == ["queued"]  # the job under way goes on; the queued one was told
    release.set()


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


def test_votes_are_replaced_per_user_and_downvotes_export(open_catalog: Callable[[], Catalog]) -> None:
    catalog = open_catalog()
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
