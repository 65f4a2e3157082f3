"""The Slack front end: mentions, DMs and `/ask` answered in threads, with sources and 👍/👎 buttons.

Slack is acknowledged at once (Bolt auto-acks events; `/ask` acks in its own function and answers in a lazy
listener); the answering happens in a bounded worker pool. Every answer starts as a "Searching the articles…"
placeholder that is always replaced: by the answer, the refusal, or a short error.
"""

from __future__ import annotations

import logging
import re
import secrets
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from slack_bolt import App, BoltResponse
from slack_bolt.context.respond import Respond
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.models import Answer, Turn
from bot.settings import Settings
from bot.slack.client import describe_error, error_code, make_web_client
from bot.slack.feedback import FeedbackStore, PostedAnswer
from bot.slack.guards import Deduplicator, UserRateLimiter, WorkerPool
from bot.slack.render import (
    BUSY_MESSAGE,
    ERROR_MESSAGE,
    PLACEHOLDER,
    USAGE_MESSAGE,
    VOTE_DOWN,
    VOTE_UP,
    answer_message,
    answer_text_from_blocks,
    notice_message,
)
from ingest.models import SearchFilters

log = logging.getLogger(__name__)

AskFn = Callable[[str, SearchFilters | None, Sequence[Turn]], Answer]

ASK_COMMAND = "/ask"
# The handlers this module registers; the manifest test checks the Slack app manifests against these.
EVENTS = ("app_mention", "message.im")
COMMANDS = (ASK_COMMAND,)
ACTIONS = (VOTE_UP, VOTE_DOWN)
SCOPES = ("app_mentions:read", "chat:write", "im:history", "commands")
# Reading a channel thread for follow-up questions; without them a follow-up is answered without history.
THREAD_SCOPES = ("channels:history", "groups:history", "mpim:history")

# Questions that may wait for a free worker beyond those being answered.
BACKLOG_PER_WORKER = 8
NOT_HERE_MESSAGE = "I only answer questions in the channels I've been set up for. Try a direct message."
THANKS_MESSAGE = "Thanks for the feedback!"
VOTE_FAILED_MESSAGE = "Sorry, I couldn't record that vote. Please try again later."
# Web API failures: Slack's answer (SlackApiError, after the client's bounded retries) or no answer at all.
_WEB_ERRORS = (SlackApiError, OSError)
# When a finished answer cannot be shown as it is, the message is re-tried in a plainer form.
_TOO_BIG = {"msg_too_long", "msg_blocks_too_long", "invalid_blocks"}
# After these, posting a fresh message instead of the failed edit would fail the same way.
_NOWHERE_TO_POST = {
    "not_in_channel",
    "channel_not_found",
    "is_archived",
    "restricted_action",
    "invalid_auth",
    "account_inactive",
    "token_revoked",
    "missing_scope",
    "connection_failed",
}


@dataclass(frozen=True, slots=True)
class Question:
    """A question someone asked: its cleaned text, who asked where, and the thread the answer goes in."""

    text: str
    user: str
    channel: str
    ts: str
    thread_ts: str
    in_thread: bool


def rate_limited_message(seconds: int) -> str:
    return f"You've asked quite a few questions in the last minute. Please wait about {seconds} seconds and ask again."


_USER = re.compile(r"<@([UW][A-Z0-9]+)(?:\|([^>]*))?>")
_CHANNEL = re.compile(r"<#([CG][A-Z0-9]+)(?:\|([^>]*))?>")
_SPECIAL = re.compile(r"<!(\w+)(?:\^[^|>]*)?(?:\|([^>]*))?>")
_LINKED = re.compile(r"<([^<>|]+)(?:\|([^<>]*))?>")


def question_text(text: str, bot_user_id: str | None) -> str:
    """A message's text as a question: the bot's mention removed, Slack markup turned back into words."""

    def user(m: re.Match[str]) -> str:
        return "" if m.group(1) == bot_user_id else "@" + (m.group(2) or m.group(1))

    text = _USER.sub(user, text)
    text = _CHANNEL.sub(lambda m: "#" + (m.group(2) or m.group(1)), text)
    text = _SPECIAL.sub(lambda m: "@" + (m.group(2) or m.group(1)), text)
    text = _LINKED.sub(lambda m: (m.group(2) or m.group(1)).removeprefix("mailto:"), text)
    text = text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    return " ".join(text.split())


def turns_from_thread(messages: Sequence[Mapping[str, Any]], bot_user_id: str | None, before_ts: str) -> list[Turn]:
    """Earlier question/answer pairs of a thread: each Byline answer paired with the message it answered."""
    turns: list[Turn] = []
    question: str | None = None
    for message in sorted(messages, key=lambda m: float(m.get("ts", 0))):
        if float(message.get("ts", 0)) >= float(before_ts):
            break
        if message.get("user") == bot_user_id or message.get("bot_id"):
            answer = answer_text_from_blocks(message) if message.get("user") == bot_user_id else None
            if answer and question:
                turns.append(Turn(question=question, answer=answer))
            question = None  # a placeholder, error or other bot's message: the question went unanswered
        elif text := question_text(str(message.get("text", "")), bot_user_id):
            question = text
    return turns


def parse_channel_filters(raw: Mapping[str, Mapping[str, Any]]) -> dict[str, SearchFilters]:
    """`settings.slack.channel_filters` as SearchFilters; a bad entry raises ValueError naming channel and key."""

    def day(channel: str, key: str, value: Any) -> date | None:
        if value is None or isinstance(value, date):
            return value
        try:
            return date.fromisoformat(str(value))
        except ValueError:
            raise ValueError(f"slack.channel_filters[{channel}].{key}: {value!r} is not a YYYY-MM-DD date") from None

    filters: dict[str, SearchFilters] = {}
    for channel, spec in raw.items():
        unknown = set(spec) - {"sources", "since", "until"}
        if unknown:
            raise ValueError(
                f"slack.channel_filters[{channel}]: unknown key(s) {sorted(unknown)}; expected sources, since, until"
            )
        sources = spec.get("sources") or ()
        filters[channel] = SearchFilters(
            sources=(sources,) if isinstance(sources, str) else tuple(str(s) for s in sources),
            since=day(channel, "since", spec.get("since")),
            until=day(channel, "until", spec.get("until")),
        )
    return filters


def _is_dm(channel: str) -> bool:
    return channel.startswith("D")


def _is_user_dm(event: Mapping[str, Any]) -> bool:
    """A person's own message in a DM with the bot (not an edit, a deletion, or another bot)."""
    return event.get("channel_type") == "im" and not event.get("subtype") and not event.get("bot_id")


class SlackBot:
    """The listeners and the work behind them; `register(app)` wires them into a Bolt App."""

    def __init__(self, settings: Settings, ask: AskFn, feedback: FeedbackStore, client: WebClient) -> None:
        slack = settings.slack
        self.ask = ask
        self.feedback = feedback
        self.client = client
        self.history_turns = settings.llm.history_turns
        self.allowed_channels = frozenset(slack.channels)
        self.channel_filters = parse_channel_filters(slack.channel_filters)
        self.visibility = "in_channel" if slack.ask_visibility == "channel" else "ephemeral"
        self.dedupe = Deduplicator(feedback.catalog)
        self.limiter = UserRateLimiter(slack.user_rate_per_minute)
        self.pool = WorkerPool(slack.workers, slack.workers * BACKLOG_PER_WORKER)
        self.bot_user_id: str | None = None

    def register(self, app: App) -> None:
        app.event("app_mention")(self.on_mention)
        app.event("message", matchers=[_is_user_dm])(self.on_direct_message)
        # Other message events (edits, the bot's own updates, channel chatter) are acknowledged and dropped,
        # so Slack does not see a 404 and retry them.
        app.event("message")(self.ignore)
        app.command(ASK_COMMAND, middleware=[self.admit_command])(ack=self.ack_command, lazy=[self.answer_command])
        app.action(re.compile(f"^({VOTE_UP}|{VOTE_DOWN})$"))(self.on_vote)

    # -- events ----------------------------------------------------------------------------------------

    def on_mention(self, event: dict[str, Any], body: dict[str, Any], context: dict[str, Any]) -> None:
        self._take(event, body, context, direct=False)

    def on_direct_message(self, event: dict[str, Any], body: dict[str, Any], context: dict[str, Any]) -> None:
        self._take(event, body, context, direct=True)

    def ignore(self) -> None:
        """Acknowledged and dropped."""

    def _take(self, event: dict[str, Any], body: dict[str, Any], context: Mapping[str, Any], *, direct: bool) -> None:
        self.bot_user_id = context.get("bot_user_id") or self.bot_user_id
        user, channel, ts = event.get("user"), event.get("channel"), event.get("ts")
        if event.get("bot_id") or event.get("subtype") or not (user and channel and ts):
            return
        keys = [f"ts:{channel}:{ts}", f"event:{body.get('event_id')}" if body.get("event_id") else ""]
        if event.get("client_msg_id"):
            keys.append(f"msg:{event['client_msg_id']}")
        if not self.dedupe.first_time(keys):
            log.info("duplicate delivery of %s in %s (event %s) ignored", ts, channel, body.get("event_id"))
            return
        thread_ts = event.get("thread_ts") or ts
        if not direct and not self._allowed(channel):
            self._post_ephemeral(channel, user, thread_ts, NOT_HERE_MESSAGE)
            return
        text = question_text(str(event.get("text", "")), self.bot_user_id)
        if not text:
            self._post(channel, thread_ts, notice_message(USAGE_MESSAGE))
            return
        if wait := self.limiter.wait_seconds(user):
            self._post_ephemeral(channel, user, thread_ts, rate_limited_message(wait))
            return
        question = Question(text, user, channel, ts, thread_ts, in_thread="thread_ts" in event)
        placeholder = self._post(channel, thread_ts, notice_message(PLACEHOLDER))
        if placeholder is None:
            return
        if not self.pool.submit(lambda: self._answer_in_thread(question, placeholder)):
            self._deliver(question, placeholder, notice_message(BUSY_MESSAGE))

    def _answer_in_thread(self, question: Question, placeholder: str) -> None:
        answer_id = uuid.uuid4().hex
        answer: Answer | None = None
        message = notice_message(ERROR_MESSAGE)
        try:
            history = self._history(question) if question.in_thread else ()
            answer = self.ask(question.text, self.channel_filters.get(question.channel), history)
            message = answer_message(answer, answer_id)
        except Exception:
            log.exception("answering a question from %s in %s failed", question.user, question.channel)
        finally:
            ts = self._deliver(question, placeholder, message)
        if answer is not None and ts is not None:
            self._remember(answer, PostedAnswer(answer_id, question.channel, ts, question.thread_ts, question.user))

    def _history(self, question: Question) -> list[Turn]:
        if not self.history_turns:
            return []
        try:
            reply = self.client.conversations_replies(channel=question.channel, ts=question.thread_ts, limit=200)
        except _WEB_ERRORS as e:
            log.warning(
                "conversations.replies channel=%s ts=%s: %s; answering without the thread's history",
                question.channel,
                question.thread_ts,
                describe_error(e),
            )
            return []
        turns = turns_from_thread(reply.get("messages") or [], self.bot_user_id, before_ts=question.ts)
        return turns[-self.history_turns :]

    # -- /ask ------------------------------------------------------------------------------------------

    def admit_command(self, body: dict[str, Any], next_: Callable[[], None]) -> BoltResponse | None:
        """Answer at once, without running the listener, when the command is a repeat, empty, not allowed
        here, or over the user's rate; otherwise pass it on."""
        if not self.dedupe.first_time([f"trigger:{body.get('trigger_id')}"] if body.get("trigger_id") else []):
            return BoltResponse(status=200, body="")
        channel, text = str(body.get("channel_id", "")), str(body.get("text", "")).strip()
        refusal = None
        if not text:
            refusal = USAGE_MESSAGE
        elif not _is_dm(channel) and not self._allowed(channel):
            refusal = NOT_HERE_MESSAGE
        elif wait := self.limiter.wait_seconds(str(body.get("user_id"))):
            refusal = rate_limited_message(wait)
        if refusal:
            return BoltResponse(status=200, body={"response_type": "ephemeral", "text": refusal})
        next_()
        return None

    def ack_command(self, ack: Callable[..., None]) -> None:
        ack(response_type=self.visibility, text=PLACEHOLDER)

    def answer_command(self, body: dict[str, Any], respond: Respond) -> None:
        channel = str(body.get("channel_id", ""))
        question = Question(
            question_text(str(body.get("text", "")), None),
            str(body.get("user_id", "")),
            channel,
            "",
            "",
            in_thread=False,
        )
        if not self.pool.submit(lambda: self._answer_command(question, respond)):
            self._respond(respond, notice_message(BUSY_MESSAGE))

    def _answer_command(self, question: Question, respond: Respond) -> None:
        answer_id = uuid.uuid4().hex
        answer: Answer | None = None
        message = notice_message(ERROR_MESSAGE)
        try:
            answer = self.ask(question.text, self.channel_filters.get(question.channel), ())
            message = answer_message(answer, answer_id, question=question.text)
        except Exception:
            log.exception("answering /ask from %s in %s failed", question.user, question.channel)
        finally:
            delivered = self._respond(respond, message)
        if answer is not None and delivered:
            self._remember(answer, PostedAnswer(answer_id, question.channel, None, None, question.user))

    def _respond(self, respond: Respond, message: dict[str, Any]) -> bool:
        try:
            result = respond(replace_original=True, response_type=self.visibility, **message)
        except OSError as e:
            log.error("response_url unreachable: %s", e)
            return False
        if result.status_code != 200:
            log.error("response_url answered %s: %s", result.status_code, str(result.body)[:200])
            return False
        return True

    # -- feedback --------------------------------------------------------------------------------------

    def on_vote(self, ack: Callable[[], None], body: dict[str, Any], action: dict[str, Any], respond: Respond) -> None:
        ack()
        vote = 1 if action.get("action_id") == VOTE_UP else -1
        user = str((body.get("user") or {}).get("id", ""))
        channel = (body.get("channel") or {}).get("id")
        message_ts = (body.get("container") or {}).get("message_ts")
        try:
            self.feedback.record_vote(str(action.get("value", "")), user, vote, channel=channel, message_ts=message_ts)
        except Exception:
            log.exception("storing a vote from %s on %s failed", user, action.get("value"))
            text = VOTE_FAILED_MESSAGE
        else:
            text = THANKS_MESSAGE
        try:
            respond(text=text, response_type="ephemeral", replace_original=False)
        except OSError as e:
            log.warning("could not confirm a vote to %s: %s", user, e)

    def _remember(self, answer: Answer, posted: PostedAnswer) -> None:
        try:
            self.feedback.record_answer(answer, posted)
        except Exception:
            # The answer is already shown; only its votes will lack the question and answer text.
            log.exception("recording answer %s failed", posted.answer_id)

    # -- the Web API, with errors logged in context ----------------------------------------------------

    def _allowed(self, channel: str) -> bool:
        return not self.allowed_channels or channel in self.allowed_channels

    def _post(self, channel: str, thread_ts: str, message: dict[str, Any]) -> str | None:
        try:
            reply = self.client.chat_postMessage(channel=channel, thread_ts=thread_ts, **message)
        except _WEB_ERRORS as e:
            log.error("chat.postMessage channel=%s thread_ts=%s: %s", channel, thread_ts, describe_error(e))
            return None
        return str(reply["ts"])

    def _post_ephemeral(self, channel: str, user: str, thread_ts: str, text: str) -> None:
        try:
            self.client.chat_postEphemeral(channel=channel, user=user, thread_ts=thread_ts, text=text)
        except _WEB_ERRORS as e:
            log.error("chat.postEphemeral channel=%s user=%s: %s", channel, user, describe_error(e))

    def _update(self, channel: str, ts: str, message: dict[str, Any]) -> str | None:
        """chat.update; None when it worked, else Slack's error code (logged)."""
        try:
            self.client.chat_update(channel=channel, ts=ts, **message)
        except _WEB_ERRORS as e:
            log.error("chat.update channel=%s ts=%s: %s", channel, ts, describe_error(e))
            return error_code(e)
        return None

    def _deliver(self, question: Question, placeholder: str, message: dict[str, Any]) -> str | None:
        """Replace the placeholder with `message`; if Slack refuses, fall back to a plainer or a new message.

        Returns the ts of the message now showing the answer, or None when nothing could be shown."""
        channel = question.channel
        error = self._update(channel, placeholder, message)
        if error is None:
            return placeholder
        if error in _NOWHERE_TO_POST:
            return None
        if error in _TOO_BIG:
            # The answer's plain-text fallback fits in one section; buttons are dropped with the blocks.
            if self._update(channel, placeholder, notice_message(message["text"])) is None:
                return placeholder
            message = notice_message(ERROR_MESSAGE)
        # The placeholder cannot be edited (deleted, too old, rate limits outlasted): answer in a new message.
        return self._post(channel, question.thread_ts, message)


def create_slack_app(
    settings: Settings, ask: AskFn, feedback_store: FeedbackStore, client: WebClient | None = None
) -> App:
    """A Bolt App answering with `ask`; `client` defaults to one for `settings.slack` (bot token, api_url).

    Building it calls auth.test once (Bolt verifies the token). In Socket Mode no signing secret is needed;
    without one, HTTP requests are all refused (a random secret nobody knows)."""
    client = client or make_web_client(settings.slack)
    secret = settings.slack.signing_secret
    app = App(
        client=client,
        signing_secret=secret.get_secret_value() if secret else secrets.token_hex(32),
        name="byline",
        logger=logging.getLogger("bot.slack.bolt"),
    )
    SlackBot(settings, ask, feedback_store, client).register(app)
    return app
