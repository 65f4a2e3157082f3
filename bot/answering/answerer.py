"""What every answerer provides; the facade condenses a follow-up once and hands both forms to `answer`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from bot.models import Answer, Passage, Turn

# Receives the answer's text as it grows: only text that passed the citation check, never withdrawn.
TextCallback = Callable[[str], None]
# Receives short lines on what is being done: "Searching 171 articles…", "Writing the answer…".
StatusCallback = Callable[[str], None]


class Answerer(Protocol):
    def condense(self, question: str, history: Sequence[Turn], *, asked_at: float | None = None) -> str:
        """A standalone version of `question` for retrieval, given the conversation so far.

        `asked_at` (`time.monotonic()` when the question came) starts the time a model may take for the
        question, condensing and answering together.
        """
        ...

    def answer(
        self,
        question: str,
        query: str,
        passages: list[Passage],
        *,
        on_text: TextCallback | None = None,
        on_status: StatusCallback | None = None,
        asked_at: float | None = None,
    ) -> Answer:
        """Answer `question` (asked as `query` once condensed) from `passages`.

        An answerer that streams hands checked text to `on_text` as it passes: all of it together is exactly the
        final answer's text, and nothing handed on is withdrawn. One that does not stream (extractive) never
        calls it: the caller shows the returned Answer.
        """
        ...
