"""One answer on its way into a Slack thread.

While the answer is worked out the thread shows a status ("Searching 171 articles…"), set with
assistant.threads.setStatus and cleared at the end; where Slack refuses a status (an older workspace, a missing
scope) a placeholder message stands in and the answer replaces it, as before statuses existed. A model's answer
is streamed (chat.startStream/appendStream/stopStream through `WebClient.chat_stream`) as its checked text
arrives: the answerer hands over only text that has passed the citation check, so nothing shown is ever taken
back. The stream ends with the sources and the feedback buttons. Each failure falls back one step: a stream that
cannot start → the answer posted whole; one broken mid-way → stopped with the rest of the answer, else the
message replaced by the whole answer, else the answer posted afresh.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any, Literal

from slack_sdk.web.chat_stream import ChatStream

from bot.models import Answer
from bot.slack.client import describe_error, error_code
from bot.slack.render import (
    ANSWER_CHARS,
    PLACEHOLDER,
    answer_message,
    answer_tail,
    neutral_markdown,
    notice_message,
)
from bot.slack.web import WEB_ERRORS, SlackWeb
from ingest.models import SearchFilters

log = logging.getLogger(__name__)

StreamState = Literal["none", "streaming", "broken", "stopped_by_user", "full"]


@dataclass(frozen=True, slots=True)
class Question:
    """A question someone asked: its cleaned text, who asked where (`team` for streaming to them), the thread
    the answer goes in, and the search filters of where it was asked."""

    text: str
    user: str
    channel: str
    ts: str
    thread_ts: str
    in_thread: bool
    team: str | None = None
    filters: SearchFilters | None = None


class ThreadReply:
    """Status, streamed text and the finished answer for one question; `status` and `text` are the answerer's
    `on_status` and `on_text`. Once `finish` or `fail` has begun, later calls of those are ignored."""

    def __init__(self, web: SlackWeb, question: Question, *, stream: bool) -> None:
        self.web = web
        self.question = question
        self.stream_allowed = stream
        self.placeholder: str | None = None
        self.has_status = False
        self.streamed = ""  # the answer text Slack has taken into the stream
        self._sent = ""  # the same, as sent (neutralised)
        self._stream: ChatStream | None = None
        self._state: StreamState = "none"
        self._last_status = ""
        self._done = False
        self._lock = threading.RLock()

    def begin(self) -> bool:
        """Show that the question is being worked on: a status, else a placeholder message. False when neither
        could be shown (the bot cannot write here), so that there is no point in answering."""
        q = self.question
        if self.web.set_status(q.channel, q.thread_ts, PLACEHOLDER):
            self.has_status, self._last_status = True, PLACEHOLDER
            return True
        self.placeholder = self.web.post(q.channel, q.thread_ts, notice_message(PLACEHOLDER))
        return self.placeholder is not None

    def status(self, line: str) -> None:
        """A new status line; skipped once the answer has started to show (Slack drops a status then)."""
        with self._lock:
            if self._done or not self.has_status or self._stream is not None or line == self._last_status:
                return
            self._last_status = line
            self.web.set_status(self.question.channel, self.question.thread_ts, line)

    def text(self, piece: str) -> None:
        """More of the answer's checked text: into the stream, which the first piece starts."""
        with self._lock:
            if self._done or not self.stream_allowed or self.placeholder is not None:
                return
            if self._state not in ("none", "streaming"):
                return
            delta = neutral_markdown(piece)
            if len(self._sent) + len(delta) > ANSWER_CHARS:
                self._state = "full"  # the rest goes into the finished message instead
                return
            if delta:
                self._append(delta)
            if self._state in ("none", "streaming"):
                self._state = "streaming"
                self.streamed, self._sent = self.streamed + piece, self._sent + delta

    def _append(self, delta: str) -> None:
        q = self.question
        try:
            if self._stream is None:
                # buffer_size=1: every piece is sent at once, and Byline knows exactly what Slack has taken.
                self._stream = self.web.client.chat_stream(
                    channel=q.channel,
                    thread_ts=q.thread_ts,
                    recipient_team_id=q.team,
                    recipient_user_id=q.user,
                    buffer_size=1,
                )
            self._stream.append(markdown_text=delta)
        except WEB_ERRORS as e:
            started = self._stream is not None and self._stream.ts is not None
            log.warning(
                "%s channel=%s thread_ts=%s: %s",
                "chat.appendStream" if started else "chat.startStream",
                q.channel,
                q.thread_ts,
                describe_error(e),
            )
            self._state = "stopped_by_user" if error_code(e) == "stopped_by_user" else "broken"

    def finish(self, answer: Answer, answer_id: str) -> str | None:
        """Show the finished answer; the ts of the message showing it, or None when nothing could be shown."""
        with self._lock:
            self._done = True
            try:
                if self._stream is not None and self._stream.ts is not None:
                    return self._finish_stream(answer, answer_id)
                return self._show(answer_message(answer, answer_id))
            finally:
                self._clear_status()

    def show(self, message: dict[str, Any]) -> str | None:
        """Show a finished message that is not streamed (the sources found for a claim)."""
        with self._lock:
            self._done = True
            try:
                return self._show(message)
            finally:
                self._clear_status()

    def fail(self, text: str) -> None:
        """Tell the asker that no answer is coming (an error, every worker busy, a restart)."""
        with self._lock:
            self._done = True
            try:
                if self._stream is not None and (ts := self._stream.ts) is not None:
                    if not self._stop(ts, "", [notice_message(text)["blocks"][0]]):
                        self.web.post(self.question.channel, self.question.thread_ts, notice_message(text))
                    return
                self._show(notice_message(text))
            finally:
                self._clear_status()

    def _show(self, message: dict[str, Any]) -> str | None:
        q = self.question
        if self.placeholder is not None:
            return self.web.replace(q.channel, q.thread_ts, self.placeholder, message)
        return self.web.post_answer(q.channel, q.thread_ts, message)

    def _finish_stream(self, answer: Answer, answer_id: str) -> str | None:
        q = self.question
        ts = self._stream.ts if self._stream is not None else None
        assert ts is not None
        if self._state == "stopped_by_user":
            return ts  # the reader stopped it: what they have seen stays as it is
        whole = neutral_markdown(answer.text)
        fits = whole.startswith(self._sent) and len(whole) <= ANSWER_CHARS
        tail = answer_tail(answer, answer_id, truncated=False)
        if fits and self._stop(ts, whole[len(self._sent) :], tail):
            return ts
        if not fits:
            # The final answer is not the streamed text carried on (the answerer fell back, or it is too long
            # for one message): end the stream and show the answer in its place.
            self._stop(ts, "", None)
        return self.web.replace(q.channel, q.thread_ts, ts, answer_message(answer, answer_id))

    def _stop(self, ts: str, rest: str, blocks: list[dict[str, Any]] | None) -> bool:
        """End the stream with `rest` of the text and `blocks`; whether Slack took it."""
        q = self.question
        try:
            if self._state == "streaming" and self._stream is not None:
                self._stream.stop(markdown_text=rest or None, blocks=blocks)
            else:
                # After a failed append the SDK's stream still holds that text in its buffer and would send it
                # again; Byline's own record of what Slack took is what counts here.
                self.web.client.chat_stopStream(channel=q.channel, ts=ts, markdown_text=rest or None, blocks=blocks)
        except WEB_ERRORS as e:
            log.warning("chat.stopStream channel=%s ts=%s: %s", q.channel, ts, describe_error(e))
            return False
        return True

    def _clear_status(self) -> None:
        if self.has_status:
            self.web.set_status(self.question.channel, self.question.thread_ts, "")
            self.has_status = False
