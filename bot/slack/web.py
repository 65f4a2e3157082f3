"""The Slack Web API calls the bot makes. A failure is logged in context (never the token) and handed back as a
value, so that the caller picks the fallback; nothing here raises for Slack's sake."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackClientError

from bot.slack.client import describe_error, error_code
from bot.slack.render import ERROR_MESSAGE, notice_message

log = logging.getLogger(__name__)

# Web API failures: Slack's answer (after the client's bounded retries), a refused request, or no answer at all.
WEB_ERRORS = (SlackClientError, OSError)
# When a finished answer cannot be shown as it is, the message is tried again in a plainer form.
TOO_BIG = frozenset({"msg_too_long", "msg_blocks_too_long", "invalid_blocks"})
# After these, posting a fresh message instead of a failed edit would fail the same way.
NOWHERE_TO_POST = frozenset(
    {
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
)


class SlackWeb:
    """The bot's Web API calls through one WebClient (bounded retries, `settings.slack.api_url`)."""

    def __init__(self, client: WebClient) -> None:
        self.client = client

    def post(self, channel: str, thread_ts: str | None, message: dict[str, Any]) -> str | None:
        """chat.postMessage; the new message's ts, or None (logged)."""
        try:
            reply = self.client.chat_postMessage(channel=channel, thread_ts=thread_ts, **message)
        except WEB_ERRORS as e:
            log.error("chat.postMessage channel=%s thread_ts=%s: %s", channel, thread_ts, describe_error(e))
            return None
        return str(reply["ts"])

    def post_answer(self, channel: str, thread_ts: str, message: dict[str, Any]) -> str | None:
        """Post a finished answer; when Slack finds it too big, its plain-text fallback alone (no blocks)."""
        try:
            reply = self.client.chat_postMessage(channel=channel, thread_ts=thread_ts, **message)
        except WEB_ERRORS as e:
            log.error("chat.postMessage channel=%s thread_ts=%s: %s", channel, thread_ts, describe_error(e))
            if error_code(e) not in TOO_BIG:
                return None
            return self.post(channel, thread_ts, notice_message(message["text"]))
        return str(reply["ts"])

    def post_ephemeral(self, channel: str, user: str, thread_ts: str | None, text: str) -> None:
        try:
            self.client.chat_postEphemeral(channel=channel, user=user, thread_ts=thread_ts, text=text)
        except WEB_ERRORS as e:
            log.error("chat.postEphemeral channel=%s user=%s: %s", channel, user, describe_error(e))

    def update(self, channel: str, ts: str, message: dict[str, Any]) -> str | None:
        """chat.update; None when it worked, else Slack's error code (logged)."""
        try:
            self.client.chat_update(channel=channel, ts=ts, **message)
        except WEB_ERRORS as e:
            log.error("chat.update channel=%s ts=%s: %s", channel, ts, describe_error(e))
            return error_code(e)
        return None

    def replace(self, channel: str, thread_ts: str, ts: str, message: dict[str, Any]) -> str | None:
        """Show `message` in place of message `ts`; if Slack refuses, a plainer form or a new message in the
        thread. Returns the ts of the message now showing it, or None when nothing could be shown."""
        error = self.update(channel, ts, message)
        if error is None:
            return ts
        if error in NOWHERE_TO_POST:
            return None
        if error in TOO_BIG:
            # The answer's plain-text fallback fits in one section; buttons are dropped with the blocks.
            if self.update(channel, ts, notice_message(message["text"])) is None:
                return ts
            message = notice_message(ERROR_MESSAGE)
        # The message cannot be edited (deleted, still streaming, rate limits outlasted): answer in a new one.
        return self.post(channel, thread_ts, message)

    def set_status(self, channel: str, thread_ts: str, status: str) -> bool:
        """assistant.threads.setStatus ("" clears it); whether Slack took it."""
        try:
            self.client.assistant_threads_setStatus(channel_id=channel, thread_ts=thread_ts, status=status)
        except WEB_ERRORS as e:
            log.warning(
                "assistant.threads.setStatus channel=%s thread_ts=%s: %s", channel, thread_ts, describe_error(e)
            )
            return False
        return True

    def set_title(self, channel: str, thread_ts: str, title: str) -> None:
        try:
            self.client.assistant_threads_setTitle(channel_id=channel, thread_ts=thread_ts, title=title)
        except WEB_ERRORS as e:
            log.warning("assistant.threads.setTitle channel=%s thread_ts=%s: %s", channel, thread_ts, describe_error(e))

    def set_prompts(
        self, channel: str, prompts: Sequence[dict[str, str]], *, title: str, thread_ts: str | None = None
    ) -> None:
        """Suggested prompts: for a pane thread (`thread_ts`, the assistant experience) or the whole DM (agent)."""
        try:
            self.client.assistant_threads_setSuggestedPrompts(
                channel_id=channel, prompts=list(prompts), title=title, thread_ts=thread_ts
            )
        except WEB_ERRORS as e:
            log.warning("assistant.threads.setSuggestedPrompts channel=%s: %s", channel, describe_error(e))
