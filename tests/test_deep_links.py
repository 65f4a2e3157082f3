"""Deep links: every citation of a web article carries `link`, its URL with a text fragment that scrolls a browser to
the quote; files keep their path. Extractive and LLM answers, `--json`, the terminal and Slack all show it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from urllib.parse import unquote

import pytest
from conftest import SEED_ARTICLE
from fake_openai import FakeOpenAI, completion
from seed_passages import passages
from typer.testing import CliRunner

from bot.answering.extractive import ExtractiveAnswerer
from bot.answering.llm_answerer import build_llm_answerer
from bot.app import Byline
from bot.cli.main import build_app
from bot.models import Answer, Citation, Passage
from bot.render import render_answer
from bot.settings import Settings
from bot.slack.render import answer_message
from ingest.embedding import Embedder
from ingest.links import deep_link


def fragment_terms(link: str) -> list[str]:
    """The decoded terms of a link's text directive (a prefix keeps its trailing `-`)."""
    return [unquote(term) for term in link.split("#:~:text=", 1)[1].split(",")]


def assert_links_to_quote(citation: Citation) -> None:
    assert citation.url and citation.link
    assert citation.link.startswith(citation.url + "#:~:text=")
    terms = [t for t in fragment_terms(citation.link) if not t.endswith("-")]
    quote = " ".join(citation.quote.split())
    assert quote.startswith(terms[0]) and quote.endswith(terms[-1])


# -- the link ---------------------------------------------------------------------------------------------


def test_only_web_urls_get_a_deep_link() -> None:
    assert deep_link("https://example.org/a", "the storm") == "https://example.org/a#:~:text=the%20storm"
    assert deep_link("HTTP://example.org/a", "the storm") is not None
    for url in ("file:///tmp/a.txt", "/tmp/a.txt", "ftp://example.org/a", "urn:isbn:123"):
        assert deep_link(url, "the storm") is None
    assert deep_link("https://example.org/a", " \n ") is None


def test_a_prefix_only_when_the_quote_opening_occurs_earlier() -> None:
    url = "https://example.org/a"
    long_quote = "the council said no to the new bridge over the river on Tuesday"  # a range: 4 words, then the end
    before = "In March the council said no to a ferry. Later, "
    terms = fragment_terms(deep_link(url, long_quote, before=before) or "")
    # its opening words occur earlier, where a browser would start the highlight: the prefix picks the right one
    assert terms == ["to a ferry. Later,-", "the council said no", "the river on Tuesday"]
    assert fragment_terms(deep_link(url, long_quote, before="In March, ") or "")[0] == "the council said no"
    # a short quote is one term, the whole quote: only a match of all of it is ambiguous
    assert fragment_terms(deep_link(url, "the council said no more", before=before) or "") == [
        "the council said no more"
    ]
    # a match that starts before the quote and runs into it counts as earlier too
    assert fragment_terms(deep_link(url, "ha ha", before="he laughed, ha") or "") == ["he laughed, ha-", "ha ha"]
    assert fragment_terms(deep_link(url, "ha ha", before="he laughed") or "") == ["ha ha"]


def web_passage(text: str, start: int = 100, url: str | None = "https://news.example/storm") -> Passage:
    return Passage(
        chunk_id="a:0",
        article_id="a",
        text=text,
        start=start,
        end=start + len(text),
        title="Storm",
        url=url,
        path=None if url else "/news/storm.txt",
    )


def test_citations_carry_the_link_in_json() -> None:
    text = (
        "The storm surge flooded the cellars first. "
        "The storm surge flooded the harbour at noon and left boats stranded on the quay."
    )
    passage = web_passage(text)
    quote_start = text.index("The storm surge flooded the harbour")
    citation = Citation.of(
        1, passage, quote=text[quote_start:], start=100 + quote_start, end=100 + len(text), score=0.9
    )
    assert_links_to_quote(citation)
    # the quote's opening words open the passage too: the prefix picks the right match
    assert citation.link is not None and fragment_terms(citation.link)[0] == "flooded the cellars first.-"
    assert citation.to_dict()["link"] == citation.link

    filed = Citation.of(1, web_passage(text, url=None), quote=text[:24], start=100, end=124, score=0.9)
    assert filed.link is None and filed.to_dict()["link"] is None and filed.path == "/news/storm.txt"


def test_terminal_and_slack_show_the_link() -> None:
    (passage,) = passages("notre", slice(0, 1))
    quote = passage.text.split(". ")[0] + "."
    web = Citation.of(1, passage, quote=quote, start=passage.start, end=passage.start + len(quote), score=0.9)
    bus = web_passage("Buses replace the ferry.", url=None)
    filed = Citation.of(2, bus, quote="Buses", start=100, end=105, score=1)
    answer = Answer("What burned?", f"{quote} [1] Buses [2]", refused=False, citations=[web, filed])
    assert web.link is not None
    shown = render_answer(answer, width=1000)
    assert f"[1] {web.title} · Wikinews · 2019-04-16 · {web.link}" in shown
    assert shown.rstrip().endswith("“Buses”") and "· /news/storm.txt" in shown
    blocks = json.dumps(answer_message(answer, "answer-1")["blocks"])
    assert f"<{web.link}|" in blocks


# -- answers ----------------------------------------------------------------------------------------------


def test_extractive_answers_link_web_articles_and_keep_file_paths(seeded: Byline, cli_runner: CliRunner) -> None:
    web = seeded.ask("What collapsed in Magnitogorsk?")
    assert not web.refused and web.citations
    for citation in web.citations:
        assert_links_to_quote(citation)

    filed = seeded.ask("Why did Jack Dorsey call Ilhan Omar?")
    hill = [c for c in filed.citations if c.path and c.path.endswith(SEED_ARTICLE.name)]
    assert hill and all(c.link is None and c.url is None for c in hill)

    result = cli_runner.invoke(build_app(), ["ask", "What collapsed in Magnitogorsk?", "--json"])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)["citations"]
    assert shown and all(c["link"].startswith(c["url"] + "#:~:text=") for c in shown)
    printed = cli_runner.invoke(build_app(), ["ask", "What collapsed in Magnitogorsk?"])
    assert shown[0]["link"] in printed.stdout


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


@pytest.mark.slow
@pytest.mark.network
def test_llm_answers_carry_links_too(server: FakeOpenAI, embedder: Embedder) -> None:
    settings = Settings(answerer="llm", llm={"base_url": server.base_url, "retry_backoff": 0.01, "timeout": 5.0})
    answerer = build_llm_answerer(settings, embedder=embedder, fallback=ExtractiveAnswerer(embedder, settings.answer))
    server.add(
        completion(
            "The roof and spire of Notre Dame cathedral in Paris caught fire and collapsed [2]. In Magnitogorsk, a "
            "suspected gas leak caused an explosion that brought down a ten-storey apartment building [1]."
        )
    )
    ranked = passages("magnitogorsk", slice(0, 2)) + passages("notre", slice(0, 2))
    answer = answerer.answer("What collapsed?", "What collapsed?", ranked)
    assert not answer.refused and answer.notice is None and len(answer.citations) == 2
    for citation in answer.citations:
        assert_links_to_quote(citation)
