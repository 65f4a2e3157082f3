"""`llm.timeout` bounds a whole question, retries and condensing included, against servers that hang or trickle."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest
from fake_openai import FakeOpenAI, Reply
from seed_passages import passages

from bot.answering.extractive import ExtractiveAnswerer
from bot.answering.llm_answerer import build_llm_answerer
from bot.app import Byline
from bot.models import Turn
from bot.settings import Settings
from ingest.embedding import Embedder

pytestmark = [pytest.mark.slow, pytest.mark.network]

QUESTION = "What caused the explosion in Magnitogorsk?"


@pytest.fixture
def silent_url() -> Iterator[str]:
    """A server that accepts connections (the kernel completes them) and never reads or answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/v1"


def llm_byline(seeded: Byline, base_url: str, timeout: float) -> Byline:
    """An LLM-answering Byline over the seeded index, its parts built (only the model's time is measured)."""
    settings = seeded.settings.model_copy(update={"answerer": "llm"})
    settings.llm = settings.llm.model_copy(update={"base_url": base_url, "timeout": timeout, "retry_backoff": 0.01})
    byline = Byline(settings, embedder=seeded.embedder, store=seeded.store)
    byline.answerer  # noqa: B018 - imports the provider client
    byline.retriever.search(QUESTION)
    return byline


@pytest.mark.parametrize("retries", [0, 2])
def test_a_server_that_never_answers_costs_the_timeout_then_the_extractive_answer(
    seeded: Byline, silent_url: str, retries: int
) -> None:
    byline = llm_byline(seeded, silent_url, timeout=1.5)
    byline.settings.llm.retries = retries
    started = time.monotonic()
    answer = byline.ask(QUESTION)
    elapsed = time.monotonic() - started
    assert 1.5 <= elapsed < 3.5
    assert (
        answer.notice
        == "The language model failed (no complete reply within 1.5 s). Showing the extractive answer instead."
    )
    alone = seeded.ask(QUESTION)
    assert (answer.text, answer.refused) == (alone.text, alone.refused)


def test_condensing_and_answering_share_one_timeout(seeded: Byline, silent_url: str) -> None:
    byline = llm_byline(seeded, silent_url, timeout=1.5)
    history = [Turn("What collapsed in Magnitogorsk?", "An apartment building collapsed [1].")]
    started = time.monotonic()
    answer = byline.ask("What caused it?", history=history)
    assert time.monotonic() - started < 3.5  # not one timeout for the follow-up and another for the answer
    assert answer.notice and "no complete reply within 1.5 s" in answer.notice


def test_a_server_that_trickles_without_finishing_a_sentence_is_cut_off(
    embedder: Embedder,
) -> None:
    with FakeOpenAI() as server:
        settings = Settings(answerer="llm", llm={"base_url": server.base_url, "timeout": 1.5})
        answerer = build_llm_answerer(
            settings, embedder=embedder, fallback=ExtractiveAnswerer(embedder, settings.answer)
        )
        server.add(Reply(content="Well, " + "um, " * 2000, chunk_chars=4, interval=0.05))
        shown: list[str] = []
        started = time.monotonic()
        answer = answerer.answer(QUESTION, QUESTION, passages("magnitogorsk", slice(0, 2)), on_text=shown.append)
        elapsed = time.monotonic() - started
    assert elapsed < 3.5 and shown == []
    assert (
        answer.notice
        == "The language model failed (no complete reply within 1.5 s). Showing the extractive answer instead."
    )
