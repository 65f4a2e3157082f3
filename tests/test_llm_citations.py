"""Citation checking on real seed text with the real embedding model: parse, drop, renumber, verify, quote."""

from __future__ import annotations

import pytest
from seed_passages import article_text, passages

from bot.answering.citations import UNVERIFIED, check_citations, cited_numbers, is_refusal, split_answer
from bot.answering.context import Source, number_sources
from bot.answering.support import SupportChecker
from bot.models import CANNOT_ANSWER
from bot.settings import LLMSettings
from ingest.embedding import Embedder

pytestmark = pytest.mark.slow


@pytest.fixture
def checker(embedder: Embedder) -> SupportChecker:
    defaults = LLMSettings()
    return SupportChecker(embedder, defaults.min_support, defaults.max_new_words)


@pytest.fixture
def two_sources() -> list[Source]:
    """Source 1: the Magnitogorsk collapse; source 2: the Notre Dame fire."""
    return number_sources(passages("magnitogorsk", slice(0, 3)) + passages("notre"))


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("1", [1]),
        ("1, 2", [1, 2]),
        ("2,1,2", [2, 1]),
        ("1-3", [1, 2, 3]),
        ("3–1", [1, 2, 3]),
        ("2; 4", [2, 4]),
        ("Source 2", [2]),
        ("0", []),
        ("7", []),
        ("2-999999999", [2, 3, 4]),
    ],
)
def test_marker_bodies_parse_to_valid_numbers_only(body: str, expected: list[int]) -> None:
    assert cited_numbers(body, n_sources=4) == expected


def test_markers_after_a_full_stop_stay_with_their_sentence() -> None:
    raw = "The roof burned. [2] Rescuers found 39 dead.[1] Putin flew in [1, 2]. No marker here"
    sentences = split_answer(raw, n_sources=2)
    assert [s.cited for s in sentences] == [[2], [1], [1, 2], []]
    assert sentences[0].text == "The roof burned. [2]"
    assert sentences[1].claim == "Rescuers found 39 dead."


def test_a_good_answer_is_renumbered_by_first_use_and_quotes_are_exact(
    two_sources: list[Source], checker: SupportChecker
) -> None:
    raw = (
        "The roof and spire of Notre Dame cathedral in Paris caught fire and collapsed [2]. "
        "In Magnitogorsk, a suspected gas leak caused an explosion that brought down a ten-storey "
        "apartment building [1]."
    )
    checked = check_citations(raw, two_sources, checker)
    assert checked.text == (
        "The roof and spire of Notre Dame cathedral in Paris caught fire and collapsed [1]. "
        "In Magnitogorsk, a suspected gas leak caused an explosion that brought down a ten-storey "
        "apartment building [2]."
    )
    assert [c.n for c in checked.citations] == [1, 2]
    assert [c.title.split()[0] for c in checked.citations] == ["Notre", "Magnitogorsk"]
    texts = {"Notre": article_text("notre"), "Magnitogorsk": article_text("magnitogorsk")}
    for citation in checked.citations:
        assert texts[citation.title.split()[0]][citation.start : citation.end] == citation.quote
    assert "gas leak" in checked.citations[1].quote
    assert checked.sentences == [
        {"text": checked.text.split(" In ")[0], "citations": [1], "supported": True},
        {"text": "In " + checked.text.split(" In ")[1], "citations": [2], "supported": True},
    ]
    assert not checked.refused and checked.supported == 2


def test_out_of_range_and_duplicate_markers_are_dropped(two_sources: list[Source], checker: SupportChecker) -> None:
    raw = (
        "Over 400 firefighters fought the blaze at Notre Dame [2][2] [7]. "
        "The two bell towers of the cathedral were saved [2, 2][0]."
    )
    checked = check_citations(raw, two_sources, checker)
    assert checked.text == (
        "Over 400 firefighters fought the blaze at Notre Dame [1]. The two bell towers of the cathedral were saved [1]."
    )
    assert len({c.n for c in checked.citations}) == 1
    assert all(c.title.startswith("Notre Dame") for c in checked.citations)


def test_a_claim_cited_to_the_wrong_article_loses_that_citation(
    two_sources: list[Source], checker: SupportChecker
) -> None:
    raw = "A suspected gas leak led to the explosion in Magnitogorsk [1][2]."
    checked = check_citations(raw, two_sources, checker)
    assert checked.text == "A suspected gas leak led to the explosion in Magnitogorsk [1]."
    assert [c.title.split()[0] for c in checked.citations] == ["Magnitogorsk"]


@pytest.mark.parametrize(
    "claim",
    [
        # on topic, but the cause, the place and the people are the model's, not the article's
        "The Notre Dame fire was started by an electrician's blowtorch left on the scaffolding by a contractor",
        # a figure the article never gives
        "The fire at Notre Dame was fought by 650 firefighters",
    ],
)
def test_an_on_topic_claim_the_article_does_not_make_is_unsupported(
    claim: str, two_sources: list[Source], checker: SupportChecker
) -> None:
    checked = check_citations(f"{claim} [2].", two_sources, checker)
    assert checked.supported == 0 and checked.citations == [] and checked.text == ""
    assert checked.sentences == [{"text": f"{claim}.", "citations": [], "supported": False}]


def test_unsupported_sentences_are_removed_or_marked_as_configured(
    two_sources: list[Source], checker: SupportChecker
) -> None:
    raw = "Over 400 firefighters fought the blaze [2]. Here is a summary of the news. The spire collapsed [2]."
    removed = check_citations(raw, two_sources, checker, "remove")
    assert removed.text == "Over 400 firefighters fought the blaze [1]. The spire collapsed [1]."
    marked = check_citations(raw, two_sources, checker, "mark")
    assert marked.text == (
        f"Over 400 firefighters fought the blaze [1]. Here is a summary of the news. {UNVERIFIED} "
        "The spire collapsed [1]."
    )
    for checked in (removed, marked):
        assert [s["supported"] for s in checked.sentences] == [True, False, True]


def test_the_cannot_answer_sentence_is_recognised(two_sources: list[Source], checker: SupportChecker) -> None:
    assert is_refusal(CANNOT_ANSWER)
    assert is_refusal("I could not find that in the ingested articles")
    assert is_refusal(f"“{CANNOT_ANSWER.replace(chr(39), '’')}”")
    assert not is_refusal("I found that in the articles.")
    checked = check_citations(CANNOT_ANSWER, two_sources, checker)
    assert checked.refused and checked.citations == []


def test_a_refusal_next_to_a_supported_claim_is_not_a_refusal(
    two_sources: list[Source], checker: SupportChecker
) -> None:
    raw = f"The two bell towers were saved [2]. {CANNOT_ANSWER}"
    checked = check_citations(raw, two_sources, checker)
    assert not checked.refused and checked.supported == 1
    assert checked.text == f"The two bell towers were saved [1]. {CANNOT_ANSWER}"
