"""Checked streaming: only text that passed the citation check reaches `on_text`, as the model writes, and all of
it together is the final answer; nothing sent is withdrawn. A scripted OpenAI-compatible server streams (SSE)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from fake_openai import FakeOpenAI, Reply, completion, error, message_text
from seed_passages import passages

from bot.answering.extractive import ExtractiveAnswerer
from bot.answering.llm_answerer import CHECKING, WRITING, AnswerRequest, LLMAnswerer, build_llm_answerer
from bot.app import Byline
from bot.models import CANNOT_ANSWER, Answer, Passage
from bot.settings import Settings
from ingest.embedding import Embedder

pytestmark = [pytest.mark.slow, pytest.mark.network]

TRUE_1 = "The roof and spire of Notre Dame cathedral in Paris caught fire and collapsed [2]."
TRUE_2 = "In Magnitogorsk, a suspected gas leak caused an explosion that brought down an apartment building [1]."
INVENTED = "The fire killed 212 people and was started by a Ukrainian saboteur [2]."
QUESTION = "What collapsed in Paris and in Magnitogorsk?"


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


def answerer_for(
    server: FakeOpenAI, embedder: Embedder, timeout: float = 10.0, unsupported: str = "remove"
) -> LLMAnswerer:
    llm = {"base_url": server.base_url, "retry_backoff": 0.01, "timeout": timeout}
    settings = Settings(answerer="llm", llm=llm, answer={"unsupported": unsupported})
    return build_llm_answerer(settings, embedder=embedder, fallback=ExtractiveAnswerer(embedder, settings.answer))


@pytest.fixture
def answerer(server: FakeOpenAI, embedder: Embedder) -> LLMAnswerer:
    return answerer_for(server, embedder)


@pytest.fixture
def ranked() -> list[Passage]:
    """Source 1: Magnitogorsk; source 2: Notre Dame."""
    return passages("magnitogorsk", slice(0, 2)) + passages("notre", slice(0, 2))


def streamed(answerer: LLMAnswerer, ranked: list[Passage], question: str = QUESTION) -> tuple[list[str], Answer]:
    shown: list[str] = []
    answer = answerer.answer(question, question, ranked, on_text=shown.append)
    return shown, answer


REPLIES = [
    f"{TRUE_1} {TRUE_2}",
    f"{TRUE_1} {INVENTED} {TRUE_2}",
    f"{INVENTED} {TRUE_1}",
    # markers after the full stop, a range, a paragraph break, a sentence with no marker
    TRUE_1.replace(" [2].", ". [2]") + "\n\n" + TRUE_2.replace("[1]", "[1-2]") + " That is all.",
    f"{CANNOT_ANSWER} {TRUE_2}",
    TRUE_1.replace(" [2].", ".[2]") + " " + TRUE_2,
]


@pytest.mark.parametrize("chunk_chars", [1, 4, 9, 400])
@pytest.mark.parametrize("reply", REPLIES)
def test_what_streams_is_exactly_the_answer_and_the_same_as_checking_the_whole_reply(
    server: FakeOpenAI, answerer: LLMAnswerer, ranked: list[Passage], reply: str, chunk_chars: int
) -> None:
    server.add(Reply(content=reply, chunk_chars=chunk_chars), completion(reply))
    shown, answer = streamed(answerer, ranked)
    assert "".join(shown) == answer.text and not answer.refused
    assert "212" not in answer.text and "Ukrainian" not in answer.text
    whole = answerer.chain.invoke(AnswerRequest(QUESTION, QUESTION, ranked))
    assert isinstance(whole, Answer)
    assert (whole.text, whole.sentences) == (answer.text, answer.sentences)
    assert [c.to_dict() for c in whole.citations] == [c.to_dict() for c in answer.citations]


def test_sentences_are_sent_while_the_model_is_still_writing(
    server: FakeOpenAI, answerer: LLMAnswerer, ranked: list[Passage]
) -> None:
    reply = f"{TRUE_1} {INVENTED} {TRUE_2}"
    server.add(Reply(content=reply, chunk_chars=4, interval=0.04))
    events = len(reply) // 4 + 3  # role, text pieces, stop
    seen: list[tuple[str, int]] = []
    answer = answerer.answer(QUESTION, QUESTION, ranked, on_text=lambda text: seen.append((text, server.events_sent)))
    (first, sent_then), (second, _) = seen
    assert first == TRUE_1.replace("[2]", "[1]") and second == " " + TRUE_2.replace("[1]", "[2]")
    assert sent_then < events - 10  # the first sentence was out well before the model had finished
    assert answer.text == first + second and answer.timings_ms["first_text"] < answer.timings_ms["generate"]


@pytest.mark.parametrize(
    "reply",
    [CANNOT_ANSWER, INVENTED, f"{INVENTED} {CANNOT_ANSWER}", "Notre Dame burned, as everyone knows."],
)
def test_nothing_is_sent_when_the_answer_is_a_refusal(
    server: FakeOpenAI, answerer: LLMAnswerer, ranked: list[Passage], reply: str
) -> None:
    server.add(Reply(content=reply, chunk_chars=3))
    shown, answer = streamed(answerer, ranked)
    assert shown == [] and answer.refused


@pytest.mark.parametrize("problem", [error(401), Reply(raw=b'{"choices": '), completion("  ")])
def test_nothing_is_sent_when_the_model_fails_and_the_fallback_answers(
    server: FakeOpenAI, answerer: LLMAnswerer, ranked: list[Passage], problem: Reply
) -> None:
    server.add(problem)
    shown, answer = streamed(answerer, ranked, "What caused the explosion in Magnitogorsk?")
    assert shown == [] and answer.notice and answer.notice.endswith("Showing the extractive answer instead.")


def test_marked_sentences_wait_for_a_supported_one(
    server: FakeOpenAI, embedder: Embedder, ranked: list[Passage]
) -> None:
    answerer = answerer_for(server, embedder, unsupported="mark")
    server.add(Reply(content=f"{INVENTED} {TRUE_1}", chunk_chars=5))
    shown, answer = streamed(answerer, ranked)
    assert shown == [
        "The fire killed 212 people and was started by a Ukrainian saboteur. [unverified]",
        " " + TRUE_1.replace("[2]", "[1]"),
    ]
    assert "".join(shown) == answer.text
    server.add(Reply(content=INVENTED, chunk_chars=5))
    shown, answer = streamed(answerer, ranked)
    assert shown == [] and answer.refused  # only a marked sentence: the whole answer is replaced


def test_a_reply_cut_short_by_the_timeout_keeps_what_was_shown(
    server: FakeOpenAI, embedder: Embedder, ranked: list[Passage]
) -> None:
    answerer = answerer_for(server, embedder, timeout=2.0)
    # The first sentence arrives in well under a second, then the server trickles on for a minute.
    trickle = f"{TRUE_1} {TRUE_2} " + "And so on, " * 200
    server.add(Reply(content=trickle, chunk_chars=20, interval=0.05))
    shown, answer = streamed(answerer, ranked)
    assert shown and "".join(shown) == answer.text and not answer.refused
    assert answer.notice == (
        "The language model stopped before the end (no complete reply within 2 s); the answer may be incomplete."
    )
    assert answer.timings_ms["generate"] < 3500


def test_the_answer_chain_streams_checked_text_to_langchain(
    server: FakeOpenAI, answerer: LLMAnswerer, ranked: list[Passage]
) -> None:
    server.add(Reply(content=f"{TRUE_1} {INVENTED} {TRUE_2}", chunk_chars=6))
    *texts, answer = answerer.chain.stream(AnswerRequest(QUESTION, QUESTION, ranked))
    assert isinstance(answer, Answer) and all(isinstance(t, str) for t in texts)
    assert "".join(texts) == answer.text and len(texts) == 2


def test_status_lines_follow_the_work(server: FakeOpenAI, seeded: Byline) -> None:
    statuses: list[str] = []
    question = "Why did Jack Dorsey call Ilhan Omar?"
    seeded.ask(question, on_status=statuses.append)
    assert statuses == ["Searching 38 articles…"]  # the extractive answerer has nothing more to say
    llm = Byline(seeded.settings.model_copy(update={"answerer": "llm"}), embedder=seeded.embedder, store=seeded.store)
    llm.settings.llm.base_url = server.base_url
    server.add(completion(CANNOT_ANSWER))
    statuses.clear()
    llm.ask(question, on_status=statuses.append)
    assert statuses == ["Searching 38 articles…", WRITING, CHECKING]


def dorsey_model(request: dict[str, Any]) -> Reply:
    """Cites the Hill article for one true sentence and one invented one."""
    (n,) = re.findall(r'<source n="(\d+)">\ntitle: Jack Dorsey', message_text(request, "user"))
    return completion(
        f"Jack Dorsey called Ilhan Omar to defend keeping up a tweet from President Trump [{n}]. "
        f"Omar later won the 2019 Nobel Peace Prize [{n}]."
    )


def test_ask_hands_checked_text_through_the_facade(server: FakeOpenAI, seeded: Byline) -> None:
    seeded.settings.answerer = "llm"
    seeded.settings.llm.base_url = server.base_url
    server.responder = dorsey_model
    shown: list[str] = []
    answer = seeded.ask("Why did Jack Dorsey call Ilhan Omar?", on_text=shown.append)
    assert (
        shown == [answer.text]
        and answer.text.startswith("Jack Dorsey called Ilhan Omar")
        and "Nobel" not in answer.text
    )
