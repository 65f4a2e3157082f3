"""What every answerer provides; the facade condenses a follow-up once and hands both forms to `answer`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from bot.models import Answer, Passage, Turn

TokenCallback = Callable[[str], None]


class Answerer(Protocol):
    def condense(self, question: str, history: Sequence[Turn]) -> str:
        """A standalone version of `question` for retrieval, given the conversation so far."""
        ...

    def answer(
        self, question: str, query: str, passages: list[Passage], on_token: TokenCallback | None = None
    ) -> Answer:
        """Answer `question` (asked as `query` once condensed) from `passages`; tokens go to `on_token`."""
        ...
