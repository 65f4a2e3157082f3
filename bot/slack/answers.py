"""The work behind the Slack listeners, done in the bot's worker pool: answering a question in its thread,
answering `/ask` through its response_url, and finding the passages that bear on a claim ("Find sources")."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from slack_bolt.context.respond import Respond

from bot.models import Answer, Turn
from bot.slack.feedback import FeedbackStore, PostedAnswer
from bot.slack.render import ERROR_MESSAGE, answer_message, notice_message, sources_message
from bot.slack.reply import Question, ThreadReply
from ingest.models import SearchFilters
from ingest.storage.catalog import Headline

log = logging.getLogger(__name__)

TextCallback = Callable[[str], None]


class Answering(Protocol):
    """What the Slack bot needs of Byline (the facade, adapted by the CLI; a scripted stand-in in tests)."""

    def ask(
        self,
        question: str,
        filters: SearchFilters | None,
        history: Sequence[Turn],
        *,
        on_text: TextCallback | None = None,
        on_status: TextCallback | None = None,
    ) -> Answer:
        """The answer; `on_text` gets its checked text as it grows, `on_status` short lines on the progress."""
        ...

    def recent_articles(self, n: int) -> Sequence[Headline]:
        """The `n` indexed articles published last, newest first."""
        ...


class Answers:
    """Answers questions for the listeners, shows them and records them for votes and follow-ups."""

    def __init__(
        self, answering: Answering, feedback: FeedbackStore, *, history_turns: int, stream: bool, visibility: str
    ) -> None:
        self.answering = answering
        self.feedback = feedback
        self.history_turns = history_turns
        self.stream = stream
        self.visibility = visibility

    def in_thread(self, question: Question, reply: ThreadReply) -> None:
        """Answer in the question's thread: statuses, the answer streamed (a model's) or posted whole."""
        answer_id = uuid.uuid4().hex
        try:
            history = self._history(question) if question.in_thread else []
            answer = self.answering.ask(
                question.text,
                question.filters,
                history,
                on_text=reply.text if self.stream else None,
                on_status=reply.status,
            )
        except Exception:
            log.exception("answering a question from %s in %s failed", question.user, question.channel)
            reply.fail(ERROR_MESSAGE)
            return
        ts = reply.finish(answer, answer_id)
        if ts is not None:
            self._remember(answer, PostedAnswer(answer_id, question.channel, ts, question.thread_ts, question.user))

    def _history(self, question: Question) -> list[Turn]:
        if not self.history_turns:
            return []
        try:
            turns = self.feedback.turns(question.channel, question.thread_ts, before_ts=question.ts)
        except Exception:
            log.exception("reading the earlier turns of %s %s failed", question.channel, question.thread_ts)
            return []
        return turns[-self.history_turns :]

    def command(self, question: Question, respond: Respond) -> None:
        """Answer `/ask` through its response_url (which cannot stream), with 👍/👎 buttons."""
        answer_id = uuid.uuid4().hex
        answer: Answer | None = None
        message = notice_message(ERROR_MESSAGE)
        try:
            answer = self.answering.ask(question.text, question.filters, ())
            message = answer_message(answer, answer_id, question=question.text, buttons=True)
        except Exception:
            log.exception("answering /ask from %s in %s failed", question.user, question.channel)
        finally:
            delivered = self.respond(respond, message, self.visibility, replace_original=True)
        if answer is not None and delivered:
            self._remember(answer, PostedAnswer(answer_id, question.channel, None, None, question.user))

    def claim(self, claim: Question, reply: ThreadReply | None, respond: Respond) -> None:
        """The passages bearing on a claim, in the claim's thread; when Byline cannot post there, shown to the
        person who asked, through the shortcut's response_url."""
        answer_id = uuid.uuid4().hex
        try:
            answer = self.answering.ask(
                claim.text, claim.filters, (), on_status=reply.status if reply is not None else None
            )
        except Exception:
            log.exception("finding sources for %s in %s failed", claim.user, claim.channel)
            if reply is None or reply.show(notice_message(ERROR_MESSAGE)) is None:
                self.respond(respond, notice_message(ERROR_MESSAGE), "ephemeral")
            return
        message = sources_message(answer, answer_id)
        ts = reply.show(message) if reply is not None else None
        if ts is None and not self.respond(respond, message, "ephemeral"):
            return
        self._remember(answer, PostedAnswer(answer_id, claim.channel, ts, claim.thread_ts if ts else None, claim.user))

    @staticmethod
    def respond(respond: Respond, message: dict[str, Any], visibility: str, *, replace_original: bool = False) -> bool:
        try:
            result = respond(replace_original=replace_original, response_type=visibility, **message)
        except OSError as e:
            log.error("response_url unreachable: %s", e)
            return False
        if result.status_code != 200:
            log.error("response_url answered %s: %s", result.status_code, str(result.body)[:200])
            return False
        return True

    def _remember(self, answer: Answer, posted: PostedAnswer) -> None:
        try:
            self.feedback.record_answer(answer, posted)
        except Exception:
            # The answer is already shown; only its votes will lack the question and answer text.
            log.exception("recording answer %s failed", posted.answer_id)
