"""The LLM answerer: a chat model writes from numbered sources, code checks every citation it makes.

The reply streams from the model and each sentence is checked as soon as it is complete, so checked text can be
shown while the model still writes; the model's own words are never shown unchecked. Whatever goes wrong with
the model (timeouts, rate limits, empty or unusable replies) the person asking gets the extractive answer with a
one-line notice, never a traceback; if checked sentences were already shown, they stand, with a notice that the
answer may be incomplete. `llm.timeout` bounds the model's time for a whole question.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from langchain_core.runnables import Runnable, RunnableConfig, RunnableGenerator, RunnableLambda

from bot.answering.answerer import Answerer, StatusCallback, TextCallback
from bot.answering.citations import CitationCheck
from bot.answering.context import Source, fit_sources, neutralise, one_line
from bot.answering.llm import ChatClient, LLMError
from bot.answering.support import SupportChecker
from bot.models import CANNOT_ANSWER, Answer, Passage, Turn
from bot.settings import Settings
from prompts import render_prompt

if TYPE_CHECKING:
    from ingest.embedding import Embedder

# Earlier answers are cut to this many characters in the condensation prompt: the subject is near the start.
_HISTORY_ANSWER_CHARS = 600
CLOSEST_PASSAGES = "Closest passages in the articles (quoted, not an answer):"
WRITING = "Writing the answer…"
CHECKING = "Checking citations…"


def build_llm_answerer(settings: Settings, *, embedder: Embedder, fallback: Answerer) -> LLMAnswerer:
    """The answerer for `answerer = "llm"`; raises ConfigError at once when the model cannot be set up."""
    return LLMAnswerer(settings, ChatClient(settings.llm), embedder, fallback)


@dataclass(frozen=True, slots=True)
class AnswerRequest:
    """What the answer chain is given: the question as asked, as searched (condensed), and what was found."""

    question: str
    query: str
    passages: list[Passage]
    on_status: StatusCallback | None = None
    deadline: float | None = None  # time.monotonic() by which the model must have replied; None: the timeout from now


@dataclass(slots=True)
class Draft:
    """An answer on its way through the chain: the prompt's sources and messages, and when the model is due."""

    request: AnswerRequest
    sources: list[Source]
    messages: list[Any]
    deadline: float
    started: float = field(default_factory=time.perf_counter)

    def status(self, line: str) -> None:
        if self.request.on_status is not None:
            self.request.on_status(line)


@dataclass(slots=True)
class ReplyPiece:
    """A piece of the model's reply as it streams, with the draft it answers. Pieces add up to the whole reply,
    which is what the model step's `invoke` returns."""

    draft: Draft
    text: str = ""
    problem: str | None = None  # why the reply stopped short: set on the last piece

    def __add__(self, other: ReplyPiece) -> ReplyPiece:
        return ReplyPiece(self.draft, self.text + other.text, other.problem or self.problem)


class LLMAnswerer:
    def __init__(self, settings: Settings, client: ChatClient, embedder: Embedder, fallback: Answerer) -> None:
        self.settings = settings
        self.client = client
        self.fallback = fallback
        llm = settings.llm
        self.checker = SupportChecker(embedder, llm.min_support, llm.max_new_words, llm.min_relevance)

    def condense(self, question: str, history: Sequence[Turn], *, asked_at: float | None = None) -> str:
        """A standalone question for retrieval, written by the model from the last few turns."""
        turns = tuple(history)[-self.settings.llm.history_turns :] if self.settings.llm.history_turns else ()
        if not turns:
            return question
        prompt = render_prompt("condense", history=format_history(turns), question=defuse_question(question))
        try:
            standalone = _first_line(self.client.complete([_human(prompt)], self._deadline(asked_at)))
        except LLMError:
            standalone = ""
        # A rambling or empty rewrite is worse for retrieval than the plain heuristic.
        if not standalone or len(standalone) > 4 * len(question) + 300:
            standalone = self.fallback.condense(question, turns)
        return standalone

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
        """The checked answer; `on_text` gets its text as sentences pass the check (see `CitationCheck`)."""
        if not passages:
            return self._extractive(question, query, passages)
        request = AnswerRequest(question, query, passages, on_status, self._deadline(asked_at))
        answer: Answer | None = None
        for item in self.chain.stream(request):
            if isinstance(item, Answer):
                answer = item
            elif on_text is not None:
                on_text(item)
        assert answer is not None, "the answer chain ends with the Answer"
        return answer

    @cached_property
    def chain(self) -> Runnable[AnswerRequest, str | Answer]:
        """The answer as a LangChain Runnable: the sources prompt | the chat model | the citation check.

        `invoke` returns the checked `Answer`. `stream` yields the answer's text as each sentence passes the
        check (markers renumbered as in the final answer, never text that is later withdrawn), then the Answer.
        """
        return (
            RunnableLambda(self._prompt, name="prompt")
            | RunnableLambda(self._generate, name="model")
            | CheckedStep(self._checked, name="checked_citations")
        )

    def _deadline(self, asked_at: float | None) -> float:
        return self.client.deadline() if asked_at is None else asked_at + self.settings.llm.timeout

    def _prompt(self, request: AnswerRequest) -> Draft:
        sources, context = fit_sources(request.passages, self.settings.llm.context_tokens, self.client.count_tokens)
        question = defuse_question(request.query)
        messages = [
            _system(render_prompt("answer_system", cannot_answer=CANNOT_ANSWER)),
            _human(render_prompt("answer_user", sources=context, question=question, cannot_answer=CANNOT_ANSWER)),
        ]
        deadline = self.client.deadline() if request.deadline is None else request.deadline
        return Draft(request, sources, messages, deadline)

    def _generate(self, draft: Draft) -> Iterator[ReplyPiece]:
        """The model's reply, streamed; a failure ends it with a piece that says what went wrong."""
        draft.status(WRITING)
        yield ReplyPiece(draft)  # the check downstream needs the draft even when no text comes
        try:
            for text in self.client.stream(draft.messages, draft.deadline):
                yield ReplyPiece(draft, text)
        except LLMError as exc:
            yield ReplyPiece(draft, problem=str(exc))

    def _checked(self, pieces: Iterator[ReplyPiece]) -> Iterator[str | Answer]:
        """Checked text as each sentence of the reply passes, then the Answer."""
        draft: Draft | None = None
        check: CitationCheck | None = None
        problem: str | None = None
        first_text: float | None = None
        for piece in pieces:
            if draft is None or check is None:
                draft = piece.draft
                check = CitationCheck(
                    draft.sources, self.checker, self.settings.answer.unsupported, draft.request.query
                )
            problem = piece.problem or problem
            for text in check.feed(piece.text):
                first_text = first_text or time.perf_counter()
                yield text
        assert draft is not None and check is not None, "the model step always yields its draft"
        generated = time.perf_counter()
        if problem is None and check.reply.strip():
            draft.status(CHECKING)
            for text in check.finish():
                first_text = first_text or time.perf_counter()
                yield text
        timings = {"generate": (generated - draft.started) * 1000, "check": (time.perf_counter() - generated) * 1000}
        if first_text is not None:
            timings["first_text"] = (first_text - draft.started) * 1000
        yield self._answer(draft, check, problem, timings)

    def _answer(self, draft: Draft, check: CitationCheck, problem: str | None, timings: dict[str, float]) -> Answer:
        request = draft.request
        question, query, passages = request.question, request.query, request.passages
        checked = check.result()
        if problem and checked.text:  # what was shown stands; the rest of the reply never came
            notice = f"The language model stopped before the end ({problem}); the answer may be incomplete."
            return Answer(
                question, checked.text, False, checked.citations, passages, timings, checked.sentences, notice
            )
        if problem:
            return self._extractive(question, query, passages, f"The language model failed ({problem}).")
        if not check.reply.strip():
            return self._extractive(question, query, passages, "The language model sent an empty reply.")
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


class CheckedStep(RunnableGenerator[ReplyPiece, "str | Answer"]):
    """The citation check as a chain step that streams: checked text, then the Answer, which `invoke` returns
    alone (so a chain invoked through it, and a step composed after it, get the Answer)."""

    def invoke(self, input: ReplyPiece, config: RunnableConfig | None = None, **kwargs: Any) -> Answer:
        answers = [item for item in self.stream(input, config, **kwargs) if isinstance(item, Answer)]
        return answers[-1]


def format_history(turns: Sequence[Turn]) -> str:
    """The turns for the condensation prompt; answers quote articles, so delimiters in them are defused."""
    lines = []
    for turn in turns:
        answer = " ".join(turn.answer.split())
        if len(answer) > _HISTORY_ANSWER_CHARS:
            answer = answer[:_HISTORY_ANSWER_CHARS].rsplit(" ", 1)[0] + " …"
        lines += [f"User: {' '.join(turn.question.split())}", f"Assistant: {answer}"]
    return neutralise("\n".join(lines))


def defuse_question(text: str) -> str:
    """The question as it goes into a prompt: one line, anything shaped like our delimiters defused, as for
    article text (a question could otherwise close a block and pose as sources or instructions)."""
    return neutralise(one_line(text))


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
