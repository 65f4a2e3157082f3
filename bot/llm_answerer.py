"""The LLM answerer: a chat model writes from numbered sources, code checks every citation it makes.

Whatever goes wrong with the model (timeouts, rate limits, empty or unusable replies) the person asking gets
the extractive answer with a one-line notice, never a traceback.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from bot.citations import SupportChecker, check_citations
from bot.context import fit_sources, neutralise
from bot.llm import ChatClient, LLMError
from bot.models import CANNOT_ANSWER, Answer, Passage, Turn
from bot.settings import Settings
from prompts import render_prompt

if TYPE_CHECKING:
    from ingest.embedding import Embedder

# Earlier answers are cut to this many characters in the condensation prompt: the subject is near the start.
_HISTORY_ANSWER_CHARS = 600
_CONDENSED_CACHE = 64
CLOSEST_PASSAGES = "Closest passages in the articles (quoted, not an answer):"


class FallbackAnswerer(Protocol):
    def condense(self, question: str, history: Sequence[Turn]) -> str: ...

    def answer(
        self,
        question: str,
        passages: list[Passage],
        history: Sequence[Turn] = (),
        on_token: Callable[[str], None] | None = None,
    ) -> Answer: ...


def build_llm_answerer(settings: Settings, *, embedder: Embedder, fallback: FallbackAnswerer) -> LLMAnswerer:
    """The answerer for `answerer = "llm"`; raises ConfigError at once when the model cannot be set up."""
    return LLMAnswerer(settings, ChatClient(settings.llm), embedder, fallback)


class LLMAnswerer:
    def __init__(self, settings: Settings, client: ChatClient, embedder: Embedder, fallback: FallbackAnswerer) -> None:
        self.settings = settings
        self.client = client
        self.fallback = fallback
        self.checker = SupportChecker(embedder, settings.llm.min_support, settings.llm.max_new_words)
        # The facade condenses before retrieval, then hands the original question to answer(): remember.
        self._condensed: OrderedDict[tuple[str, tuple[Turn, ...]], str] = OrderedDict()
        self._lock = threading.Lock()

    def condense(self, question: str, history: Sequence[Turn]) -> str:
        """A standalone question for retrieval, written by the model from the last few turns."""
        turns = tuple(history)[-self.settings.llm.history_turns :] if self.settings.llm.history_turns else ()
        if not turns:
            return question
        key = (question, turns)
        with self._lock:
            if key in self._condensed:
                return self._condensed[key]
        prompt = render_prompt("condense", history=format_history(turns), question=question)
        try:
            standalone = _first_line(self.client.complete([_human(prompt)]))
        except LLMError:
            standalone = ""
        # A rambling or empty rewrite is worse for retrieval than the plain heuristic.
        if not standalone or len(standalone) > 4 * len(question) + 300:
            standalone = self.fallback.condense(question, turns)
        with self._lock:
            self._condensed[key] = standalone
            while len(self._condensed) > _CONDENSED_CACHE:
                self._condensed.popitem(last=False)
        return standalone

    def answer(
        self,
        question: str,
        passages: list[Passage],
        history: Sequence[Turn] = (),
        on_token: Callable[[str], None] | None = None,
    ) -> Answer:
        query = self.condense(question, history)
        if not passages:
            return self._extractive(question, query, passages)
        started = time.perf_counter()
        sources, context = fit_sources(passages, self.settings.llm.context_tokens, self.client.count_tokens)
        messages = [
            _system(render_prompt("answer_system", cannot_answer=CANNOT_ANSWER)),
            _human(render_prompt("answer_user", sources=context, question=query, cannot_answer=CANNOT_ANSWER)),
        ]
        try:
            raw = self.client.complete(messages, on_token)
        except LLMError as exc:
            return self._extractive(question, query, passages, f"The language model failed ({exc}).")
        if not raw.strip():
            return self._extractive(question, query, passages, "The language model sent an empty reply.")
        generated = time.perf_counter()
        checked = check_citations(raw, sources, self.checker, self.settings.answer.unsupported, query)
        timings = {
            "generate": (generated - started) * 1000,
            "check": (time.perf_counter() - generated) * 1000,
        }
        if checked.refused:
            return Answer(question, CANNOT_ANSWER, True, [], passages, timings, checked.sentences)
        if not checked.supported:
            return self._unsupported(question, query, passages, checked.sentences, timings)
        return Answer(question, checked.text, False, checked.citations, passages, timings, checked.sentences)

    def _extractive(self, question: str, query: str, passages: list[Passage], problem: str | None = None) -> Answer:
        answer = self.fallback.answer(query, passages)
        answer.question = question
        if problem:
            answer.notice = f"{problem} Showing the extractive answer instead."
        return answer

    def _unsupported(
        self,
        question: str,
        query: str,
        passages: list[Passage],
        sentences: list[dict[str, object]],
        timings: dict[str, float],
    ) -> Answer:
        """No citation of the model's held up: refuse, and show the closest passages, labelled as such."""
        closest = self.fallback.answer(query, passages)
        text = CANNOT_ANSWER
        if not closest.refused:
            text += f"\n\n{CLOSEST_PASSAGES}\n{closest.text}"
        notice = "The model's answer cited nothing the articles support, so it is not shown."
        return Answer(question, text, True, closest.citations, passages, timings, list(sentences), notice=notice)


def format_history(turns: Sequence[Turn]) -> str:
    """The turns for the condensation prompt; answers quote articles, so delimiters in them are defused."""
    lines = []
    for turn in turns:
        answer = " ".join(turn.answer.split())
        if len(answer) > _HISTORY_ANSWER_CHARS:
            answer = answer[:_HISTORY_ANSWER_CHARS].rsplit(" ", 1)[0] + " …"
        lines += [f"User: {' '.join(turn.question.split())}", f"Assistant: {answer}"]
    return neutralise("\n".join(lines))


def _first_line(text: str) -> str:
    for line in text.splitlines():
        line = line.strip().removeprefix("Standalone question:").strip().strip("\"'“”")
        if line:
            return line
    return ""


def _system(text: str) -> Any:
    from langchain_core.messages import SystemMessage

    return SystemMessage(text)


def _human(text: str) -> Any:
    from langchain_core.messages import HumanMessage

    return HumanMessage(text)
