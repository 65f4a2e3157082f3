"""Byline's question answering as one LangChain Runnable: condense | retrieve | answer.

`chain.invoke("Why did Dorsey call Omar?")` returns the cited `Answer`; a dict carries a conversation, search
options and who hears as the answer is made: {"question", "history", "filters", "k", "on_text", "on_status"}.
`on_text` gets the answer's text as sentences pass the citation check (never text that is later withdrawn);
`on_status` gets short lines ("Searching 171 articles…"). With the LLM answerer the answer step is itself a chain
(prompt | model | checked citations). `Byline.ask`, the CLI and the Slack bot all run through this chain, so a
LangChain user composing it gets the code path that is tested.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypedDict

from bot.answering.answerer import Answerer, StatusCallback, TextCallback
from bot.models import Answer, Passage, Turn
from ingest.models import SearchFilters

if TYPE_CHECKING:
    from langchain_core.runnables import Runnable

    from bot.retrieval.retriever import BylineRetriever


class Question(TypedDict, total=False):
    """A question with its context; only `question` is required."""

    question: str
    history: Sequence[Turn]
    filters: SearchFilters | None
    k: int | None
    on_text: TextCallback | None
    on_status: StatusCallback | None


@dataclass(slots=True)
class Retrieved:
    """A question after search: as asked, as searched, the passages found, and when each stage ended."""

    question: str
    query: str
    passages: list[Passage]
    on_text: TextCallback | None
    on_status: StatusCallback | None
    asked_at: float  # time.monotonic(): the model's time for the question runs from here
    started: float
    retrieved: float = field(default_factory=time.perf_counter)


def searching(articles: int) -> str:
    return f"Searching {articles:,} article{'' if articles == 1 else 's'}…"


def build_chain(retriever: BylineRetriever, answerer: Answerer) -> Runnable[str | Question, Answer]:
    from langchain_core.runnables import RunnableLambda

    def retrieve(asked: str | Question) -> Retrieved:
        request: Question = {"question": asked} if isinstance(asked, str) else asked
        started, asked_at = time.perf_counter(), time.monotonic()
        question = request["question"].strip()
        on_status = request.get("on_status")
        if on_status is not None:
            on_status(searching(retriever.store.article_count()))
        query = answerer.condense(question, request.get("history", ()), asked_at=asked_at)
        passages = retriever.search(query, k=request.get("k"), filters=request.get("filters"))
        return Retrieved(question, query, passages, request.get("on_text"), on_status, asked_at, started)

    def answer(found: Retrieved) -> Answer:
        result = answerer.answer(
            found.question,
            found.query,
            found.passages,
            on_text=found.on_text,
            on_status=found.on_status,
            asked_at=found.asked_at,
        )
        done = time.perf_counter()
        # Keep the answerer's own finer timings (an LLM's generate/check) beside the stages measured here.
        result.timings_ms.update(
            retrieve=(found.retrieved - found.started) * 1000,
            answer=(done - found.retrieved) * 1000,
            total=(done - found.started) * 1000,
        )
        return result

    return RunnableLambda(retrieve, name="retrieve") | RunnableLambda(answer, name="answer")
