"""End to end: the Slack app over HTTP answering from the seed articles with the real Byline facade."""

from __future__ import annotations

from pathlib import Path

import pytest
from fake_slack import FakeSlack
from slack_harness import CHANNEL, SlackHarness, context_texts, section_texts

from bot.app import Byline
from bot.cli.slack import NO_ARTICLES, BylineAnswers
from bot.models import CANNOT_ANSWER
from bot.settings import Settings
from ingest.embedding import Embedder

pytestmark = [pytest.mark.slow, pytest.mark.network]

SEED_ARTICLE = Path(__file__).resolve().parent.parent / "seeds" / "the-hill-dorsey-omar.txt"


def facade(home: Path, embedder: Embedder, sources: list[Path] | None = None) -> BylineAnswers:
    byline = Byline(Settings(home=home), embedder=embedder)  # share the session's loaded model
    if sources:
        assert not byline.ingest([str(s) for s in sources]).failed
    return BylineAnswers(byline)


def test_seed_article_answered_and_refused_in_slack(embedder: Embedder, tmp_path: Path) -> None:
    home = tmp_path / "home"
    ask = facade(home, embedder, [SEED_ARTICLE])
    with FakeSlack() as fake, SlackHarness(fake, home, ask=ask) as harness:
        harness.ask_in_channel("Which newspaper first reported Jack Dorsey's phone call with Ilhan Omar?")
        answered = fake.wait_calls("chat.postMessage", timeout=60)[0].args
        harness.ask_in_channel("What is the boiling point of tungsten in kelvin?")
        refused = fake.wait_calls("chat.postMessage", 2, timeout=60)[1].args

    assert "Washington Post" in " ".join(section_texts(answered["blocks"]))
    sources = [t for t in context_texts(answered["blocks"]) if t.startswith("*[")]
    assert sources and any("Dorsey" in s for s in sources)
    assert section_texts(refused["blocks"]) == [CANNOT_ANSWER]
    assert refused["channel"] == CHANNEL and fake.messages[CHANNEL][-1]["text"] == CANNOT_ANSWER


def test_an_empty_index_is_explained_not_silent(embedder: Embedder, tmp_path: Path) -> None:
    home = tmp_path / "home"
    with FakeSlack() as fake, SlackHarness(fake, home, ask=facade(home, embedder)) as harness:
        harness.ask_in_channel("why did Dorsey call Omar?")
        update = fake.wait_calls("chat.postMessage", timeout=60)[0].args
    assert section_texts(update["blocks"]) == [CANNOT_ANSWER]
    assert NO_ARTICLES in context_texts(update["blocks"])
