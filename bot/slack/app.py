"""The Slack front end: what Byline answers, and who may ask.

Byline answers: a message that mentions it (in a channel it is in, or in a thread); any message in its DM or in a
thread there (the agent pane: Bolt's `Assistant` routes those, see bot/slack/assistant.py); a reply in a channel
thread where it has taken a question before, when the reply mentions nobody (a reply that mentions someone is
people talking); `/ask`; and the "Find sources" message shortcut, which checks a message as a claim.

Slack is acknowledged at once (Bolt acks events before their listeners run; `/ask`, clicks and the shortcut ack
in their own functions). The listeners admit a question (once per message, channel allowlist, per-user rate) and
hand it to the worker pool (bot/slack/answers.py), which shows the answer in the thread (bot/slack/reply.py).
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from slack_bolt import App, BoltResponse
from slack_bolt.context.respond import Respond
from slack_sdk import WebClient

from bot.settings import Settings
from bot.slack.answers import Answering, Answers
from bot.slack.assistant import Pane, build_assistant, thread_title
from bot.slack.client import make_web_client
from bot.slack.feedback import FeedbackStore
from bot.slack.guards import Deduplicator, UserRateLimiter, WorkerPool
from bot.slack.render import (
    BUSY_MESSAGE,
    ERROR_MESSAGE,
    FEEDBACK_ACTION,
    PLACEHOLDER,
    RESTARTING_MESSAGE,
    USAGE_MESSAGE,
    VOTE_DOWN,
    VOTE_UP,
    notice_message,
)
from bot.slack.reply import Question, ThreadReply
from bot.slack.text import mentions_someone, parse_channel_filters, question_text
from bot.slack.threads import CatalogThreadContextStore, ThreadStore
from bot.slack.web import SlackWeb
from ingest.storage.catalog import Catalog, CatalogError

log = logging.getLogger(__name__)

ASK_COMMAND = "/ask"
FIND_SOURCES = "byline_find_sources"
# The handlers this module registers; the manifest test checks the Slack app manifests against these.
EVENTS = ("app_mention", "message.im", "message.channels", "message.groups", "app_home_opened")
# Sent only to apps in the legacy assistant experience (`assistant_view`); handled, not in the manifests.
ASSISTANT_VIEW_EVENTS = ("assistant_thread_started", "assistant_thread_context_changed")
COMMANDS = (ASK_COMMAND,)
SHORTCUTS = (FIND_SOURCES,)
ACTIONS = (FEEDBACK_ACTION, VOTE_UP, VOTE_DOWN)
SCOPES = (
    "app_mentions:read",
    "chat:write",
    "im:history",
    "commands",
    "channels:history",
    "groups:history",
    "assistant:write",
)

# Bolt runs listeners (admitting a question: a few catalog writes and a status) in these threads.
LISTENER_THREADS = 16
NOT_HERE_MESSAGE = "I only answer questions in the channels I've been set up for. Try a direct message."
NOTHING_TO_CHECK = "That message has no text to look up."
THANKS_MESSAGE = "Thanks for the feedback!"
VOTE_FAILED_MESSAGE = "Sorry, I couldn't record that vote. Please try again later."
# A person's own new message (not an edit, a deletion, a bot's); a reply also sent to the channel counts.
_ASKING_SUBTYPES = (None, "thread_broadcast", "file_share")


def rate_limited_message(seconds: int) -> str:
    return f"You've asked quite a few questions in the last minute. Please wait about {seconds} seconds and ask again."


def _is_dm(channel: str) -> bool:
    return channel.startswith("D")


def _is_user_dm(event: Mapping[str, Any]) -> bool:
    """A person's own top-level message in a DM with the bot (messages in DM threads go to the Assistant)."""
    return event.get("channel_type") == "im" and not event.get("subtype") and not event.get("bot_id")


def _is_channel_thread_reply(event: Mapping[str, Any]) -> bool:
    """A person's reply in a channel thread that mentions nobody (Byline's own mentions come as app_mention).
    Cheap on purpose: Slack sends every message of the channels Byline is in, and this runs before the ack."""
    return (
        event.get("channel_type") in ("channel", "group")
        and event.get("thread_ts") not in (None, event.get("ts"))
        and not event.get("bot_id")
        and event.get("subtype") in _ASKING_SUBTYPES
        and not mentions_someone(str(event.get("text", "")))
    )


class SlackBot:
    """The listeners; `register(app)` wires them into a Bolt App."""

    def __init__(self, settings: Settings, answering: Answering, catalog: Catalog, web: SlackWeb) -> None:
        slack = settings.slack
        self.web = web
        self.feedback = FeedbackStore(catalog)
        self.threads = ThreadStore(catalog)
        self.pane = Pane(web, answering.recent_articles, CatalogThreadContextStore(catalog))
        self.allowed_channels = frozenset(slack.channels)
        self.channel_filters = parse_channel_filters(slack.channel_filters)
        self.dedupe = Deduplicator(catalog)
        self.limiter = UserRateLimiter(catalog, slack.user_rate_per_minute)
        self.pool = WorkerPool(slack.workers, slack.queue)
        self.answers = Answers(
            answering,
            self.feedback,
            history_turns=settings.llm.history_turns,
            stream=settings.answerer == "llm",
            visibility="in_channel" if slack.ask_visibility == "channel" else "ephemeral",
        )
        self.bot_user_id: str | None = None

    def register(self, app: App) -> None:
        app.assistant(build_assistant(self.pane, self.on_pane_message, logging.getLogger("bot.slack.bolt")))
        app.event("app_mention")(self.on_mention)
        app.event("app_home_opened")(self.pane.on_home_opened)
        app.event("message", matchers=[_is_user_dm])(self.on_direct_message)
        app.event("message", matchers=[_is_channel_thread_reply])(self.on_thread_reply)
        # Other message events (edits, the bot's own posts, channel chatter) are acknowledged and dropped, so
        # Slack does not see a 404 and retry them.
        app.event("message")(self.ignore)
        app.command(ASK_COMMAND, middleware=[self.admit_command])(ack=self.ack_command, lazy=[self.answer_command])
        app.action(FEEDBACK_ACTION)(self.on_feedback)
        app.action(re.compile(f"^({VOTE_UP}|{VOTE_DOWN})$"))(self.on_vote)
        app.message_shortcut(FIND_SOURCES)(self.on_find_sources)

    # -- questions in conversations --------------------------------------------------------------------

    def on_mention(self, event: dict[str, Any], body: dict[str, Any], context: dict[str, Any]) -> None:
        self._take(event, body, context, direct=False)

    def on_direct_message(self, event: dict[str, Any], body: dict[str, Any], context: dict[str, Any]) -> None:
        self._take(event, body, context, direct=True)

    def on_pane_message(self, event: dict[str, Any], body: dict[str, Any], context: dict[str, Any]) -> None:
        """A message in a DM thread: the pane searches the way the channel the user is looking at does."""
        viewed = self.pane.viewed_channel(str(event.get("channel")), str(event.get("thread_ts")))
        self._take(event, body, context, direct=True, filters_of=viewed)

    def on_thread_reply(self, event: dict[str, Any], body: dict[str, Any], context: dict[str, Any]) -> None:
        """A reply without mentions in a channel thread: a follow-up only where Byline has taken questions (and
        the channel is allowed: unlike a mention, nobody asked Byline by name, so a refusal would be noise)."""
        channel = str(event.get("channel"))
        if self._allowed(channel) and self.threads.knows(channel, str(event.get("thread_ts"))):
            self._take(event, body, context, direct=False)

    def ignore(self) -> None:
        """Acknowledged and dropped."""

    def _take(
        self,
        event: dict[str, Any],
        body: dict[str, Any],
        context: Mapping[str, Any],
        *,
        direct: bool,
        filters_of: str | None = None,
    ) -> None:
        self.bot_user_id = context.get("bot_user_id") or self.bot_user_id
        user, channel, ts = event.get("user"), event.get("channel"), event.get("ts")
        if event.get("bot_id") or event.get("subtype") not in _ASKING_SUBTYPES or not (user and channel and ts):
            return
        # The same message can come as app_mention and as message, and again as Slack's retries: one answer.
        keys = [f"ts:{channel}:{ts}", f"event:{body.get('event_id')}" if body.get("event_id") else ""]
        if event.get("client_msg_id"):
            keys.append(f"msg:{event['client_msg_id']}")
        thread_ts = event.get("thread_ts") or ts
        try:
            if not self.dedupe.first_time(keys):
                log.info("duplicate delivery of %s in %s (event %s) ignored", ts, channel, body.get("event_id"))
                return
            wait = self.limiter.wait_seconds(user)
        except CatalogError as exc:
            # The catalog (shared by every bot process) does not answer: say so rather than stay silent. Without
            # it a delivery cannot be checked, so a retry of this one may be told twice.
            log.error("cannot take the question of %s in %s: %s", user, channel, exc)
            self.web.post(channel, thread_ts, notice_message(ERROR_MESSAGE))
            return
        if not direct and not self._allowed(channel):
            self.web.post_ephemeral(channel, user, thread_ts, NOT_HERE_MESSAGE)
            return
        text = question_text(str(event.get("text", "")), self.bot_user_id)
        if not text:
            self.web.post(channel, thread_ts, notice_message(USAGE_MESSAGE))
            return
        if wait:
            self.web.post_ephemeral(channel, user, thread_ts, rate_limited_message(wait))
            return
        team = body.get("team_id") or event.get("team")
        filters = self.channel_filters.get(filters_of or channel)
        question = Question(text, user, channel, ts, thread_ts, "thread_ts" in event, team, filters)
        self._start(question, title=direct)

    def _start(self, question: Question, *, title: bool) -> None:
        reply = ThreadReply(self.web, question, stream=self.answers.stream)
        if not reply.begin():
            return  # nowhere to show an answer, so none is worked out
        if self.threads.join(question.channel, question.thread_ts) and title:
            self.web.set_title(question.channel, question.thread_ts, thread_title(question.text))
        if not self.pool.submit(
            lambda: self.answers.in_thread(question, reply), on_cancel=lambda: reply.fail(RESTARTING_MESSAGE)
        ):
            reply.fail(BUSY_MESSAGE)

    # -- "Find sources" --------------------------------------------------------------------------------

    def on_find_sources(self, ack: Callable[[], None], body: dict[str, Any], respond: Respond) -> None:
        """The message shortcut: the message's text as a claim, answered in that message's thread."""
        ack()
        if not self.dedupe.first_time([f"trigger:{body.get('trigger_id')}"] if body.get("trigger_id") else []):
            return
        user = str((body.get("user") or {}).get("id", ""))
        channel = str((body.get("channel") or {}).get("id", ""))
        message = body.get("message") or {}
        text = question_text(str(message.get("text", "")), self.bot_user_id)
        refusal = None
        if not _is_dm(channel) and not self._allowed(channel):
            refusal = NOT_HERE_MESSAGE
        elif not text:
            refusal = NOTHING_TO_CHECK
        elif wait := self.limiter.wait_seconds(user):
            refusal = rate_limited_message(wait)
        if refusal:
            self.answers.respond(respond, {"text": refusal}, "ephemeral")
            return
        ts = str(message.get("ts") or body.get("message_ts") or "")
        thread_ts = str(message.get("thread_ts") or ts)
        team = (body.get("team") or {}).get("id")
        claim = Question(text, user, channel, ts, thread_ts, False, team, self.channel_filters.get(channel))
        reply = ThreadReply(self.web, claim, stream=False)
        # Where Byline cannot write, the sources go to the person who asked, privately.
        in_thread = reply.begin()
        if not self.pool.submit(lambda: self.answers.claim(claim, reply if in_thread else None, respond)):
            self.answers.respond(respond, {"text": BUSY_MESSAGE}, "ephemeral")
            if in_thread:
                reply.fail(BUSY_MESSAGE)

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
        ack(response_type=self.answers.visibility, text=PLACEHOLDER)

    def answer_command(self, body: dict[str, Any], respond: Respond) -> None:
        channel = str(body.get("channel_id", ""))
        text = question_text(str(body.get("text", "")), None)
        user = str(body.get("user_id", ""))
        question = Question(text, user, channel, "", "", False, None, self.channel_filters.get(channel))
        if not self.pool.submit(lambda: self.answers.command(question, respond)):
            self.answers.respond(respond, notice_message(BUSY_MESSAGE), self.answers.visibility, replace_original=True)

    # -- feedback --------------------------------------------------------------------------------------

    def on_feedback(
        self, ack: Callable[[], None], body: dict[str, Any], action: dict[str, Any], respond: Respond
    ) -> None:
        """Slack's feedback buttons: the value is "up:<answer id>" or "down:<answer id>"."""
        ack()
        vote, _, answer_id = str(action.get("value", "")).partition(":")
        self._vote(body, answer_id, 1 if vote == "up" else -1, respond)

    def on_vote(self, ack: Callable[[], None], body: dict[str, Any], action: dict[str, Any], respond: Respond) -> None:
        """The 👍/👎 buttons (answers to /ask, and messages posted before the feedback buttons)."""
        ack()
        self._vote(body, str(action.get("value", "")), 1 if action.get("action_id") == VOTE_UP else -1, respond)

    def _vote(self, body: dict[str, Any], answer_id: str, vote: int, respond: Respond) -> None:
        user = str((body.get("user") or {}).get("id", ""))
        channel = (body.get("channel") or {}).get("id")
        message_ts = (body.get("container") or {}).get("message_ts")
        try:
            self.feedback.record_vote(answer_id, user, vote, channel=channel, message_ts=message_ts)
        except Exception:
            log.exception("storing a vote from %s on %s failed", user, answer_id)
            text = VOTE_FAILED_MESSAGE
        else:
            text = THANKS_MESSAGE
        try:
            respond(text=text, response_type="ephemeral", replace_original=False)
        except OSError as e:
            log.warning("could not confirm a vote to %s: %s", user, e)

    def _allowed(self, channel: str) -> bool:
        return not self.allowed_channels or channel in self.allowed_channels


@dataclass
class SlackApp:
    """The Bolt App, and what to drain before the process ends: Bolt's listener threads (an event is acked
    before its listener runs) and the bot's worker pool."""

    app: App
    bot: SlackBot
    listeners: ThreadPoolExecutor

    def drain(self, timeout: float) -> bool:
        """Finish what was taken within `timeout` seconds: listeners first (they queue answers), then answers
        queued and under way. Answers not started by then are told to ask again. True when all finished."""
        deadline = time.monotonic() + timeout
        self.listeners.shutdown(wait=True)
        return self.bot.pool.drain(max(0.0, deadline - time.monotonic()))


def create_slack_app(
    settings: Settings, answering: Answering, catalog: Catalog, client: WebClient | None = None
) -> SlackApp:
    """The Bolt App answering through `answering`; `client` defaults to one for `settings.slack` (bot token,
    api_url). Building it calls auth.test once (Bolt verifies the token). In Socket Mode no signing secret is
    needed; without one, HTTP requests are all refused (a random secret nobody knows)."""
    client = client or make_web_client(settings.slack)
    secret = settings.slack.signing_secret
    listeners = ThreadPoolExecutor(max_workers=LISTENER_THREADS, thread_name_prefix="bolt-listener")
    app = App(
        client=client,
        signing_secret=secret.get_secret_value() if secret else secrets.token_hex(32),
        name="byline",
        logger=logging.getLogger("bot.slack.bolt"),
        listener_executor=listeners,
    )
    bot = SlackBot(settings, answering, catalog, SlackWeb(client))
    bot.register(app)
    return SlackApp(app, bot, listeners)
