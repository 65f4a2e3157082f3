"""The LLM answerer: a chat model writes from numbered sources, code checks every citation it makes.

Whatever goes wrong with the model (timeouts, rate limits, empty or unusable replies) the person asking gets
the extractive answer with a one-line notice, never a traceback.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from bot.answering.answerer import Answerer, TokenCallback
from bot.answering.citations import SupportChecker, check_citations
from bot.answering.context import Source, fit_sources, neutralise
from bot.answering.llm import ChatClient, LLMError
from bot.models import CANNOT_ANSWER, Answer, Passage, Turn
from bot.settings import Settings
from prompts import render_prompt

if TYPE_CHECKING:
    from langchain_core.runnables import Runnable

    from ingest.embedding import Embedder

# Earlier answers are cut to this many characters in the condensation prompt: the subject is near the start.
_HISTORY_ANSWER_CHARS = 600
CLOSEST_PASSAGES = "Closest passages in the articles (quoted, not an answer):"


def build_llm_answerer(settings: Settings, *, embedder: Embedder, fallback: Answerer) -> LLMAnswerer:
    """The answerer for `answerer = "llm"`; raises ConfigError at once when the model cannot be set up."""
    return LLMAnswerer(settings, ChatClient(settings.llm), embedder, fallback)


@dataclass(frozen=True, slots=True)
class AnswerRequest:
    """What the answer chain is given: the question as asked, as searched (condensed), and what was found."""

    question: str
    query: str
    passages: list[Passage]
    on_token: TokenCallback | None = None


@dataclass(slots=True)
class Draft:
    """An answer on its way through the chain: the prompt's sources and messages, then the model's reply."""

    request: AnswerRequest
    sources: list[Source]
    messages: list[Any]
    started: float = field(default_factory=time.perf_counter)
    raw: str = ""
    problem: str | None = None  # why the model gave nothing usable
    generated: float = 0.0


class LLMAnswerer:
    def __init__(self, settings: Settings, client: ChatClient, embedder: Embedder, fallback: Answerer) -> None:
        self.settings = settings
        self.client = client
        self.fallback = fallback
        self.checker = SupportChecker(embedder, settings.llm.min_support, settings.llm.max_new_words)

    def condense(self, question: str, history: Sequence[Turn]) -> str:
        """A standalone question for retrieval, written by the model from the last few turns."""
        turns = tuple(history)[-self.settings.llm.history_turns :] if self.settings.llm.history_turns else ()
        if not turns:
            return question
        prompt = render_prompt("condense", history=format_history(turns), question=question)
        try:
            standalone = _first_line(self.client.complete([_human(prompt)]))
        except LLMError:
            standalone = ""
        # A rambling or empty rewrite is worse for retrieval than the plain heuristic.
        if not standalone or len(standalone) > 4 * len(question) + 300:
            standalone = self.fallback.condense(question, turns)
        return standalone

    def answer(
        self, question: str, query: str, passages: list[Passage], on_token: TokenCallback | None = None
    ) -> Answer:
        if not passages:
            return self._extractive(question, query, passages)
        return self.chain.invoke(AnswerRequest(question, query, passages, on_token))

    @cached_property
    def chain(self) -> Runnable[AnswerRequest, Answer]:
        """The answer as a LangChain Runnable: the sources prompt | the chat model | the citation check."""
        from langchain_core.runnables import RunnableLambda

        return (
            RunnableLambda(self._prompt, name="prompt")
            | RunnableLambda(self._generate, name="model")
            | RunnableLambda(self._checked, name="checked_citations")
        )

    def _prompt(self, request: AnswerRequest) -> Draft:
        sources, context = fit_sources(request.passages, self.settings.llm.context_tokens, self.client.count_tokens)
        messages = [
            _system(render_prompt("answer_system", cannot_answer=CANNOT_ANSWER)),
            _human(render_prompt("answer_user", sources=context, question=request.query, cannot_answer=CANNOT_ANSWER)),
        ]
        return Draft(request, sources, messages)

    def _generate(self, draft: Draft) -> Draft:
        try:
            draft.raw = self.client.complete(draft.messages, draft.request.on_token)
        except LLMError as exc:
            draft.problem = f"The language model failed ({exc})."
        else:
            if not draft.raw.strip():
                draft.problem = "The language model sent an empty reply."
        draft.generated = time.perf_counter()
        return draft

    def _checked(self, draft: Draft) -> Answer:
        request = draft.request
        question, query, passages = request.question, request.query, request.passages
        if draft.problem:
            return self._extractive(question, query, passages, draft.problem)
        checked = check_citations(draft.raw, draft.sources, self.checker, self.settings.answer.unsupported, query)
        timings = {
            "generate": (draft.generated - draft.started) * 1000,
            "check": (time.perf_counter() - draft.generated) * 1000,
        }
        if checked.refused:
            return Answer(question, CANNOT_ANSWER, True, [], passages, timings, checked.sentences)
        if not checked.supported:
            return self._unsupported(question, query, passages, checked.sentences, timings)
        return Answer(question, checked.text, False, checked.citations, passages, timings, checked.sentences)

    def _extractive(self, question: str, query: str, passages: list[Passage], problem: str | None = None) -> Answer:
        answer = self.fallback.answer(question, query, passages)
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
        closest = self.fallback.answer(question, query, passages)
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
