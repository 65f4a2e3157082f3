"""End to end: the Slack app over HTTP answering from the seed articles with the real Byline facade."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from fake_openai import FakeOpenAI, Reply, message_text
from fake_slack import FakeSlack
from seed_passages import seed_articles
from slack_harness import CHANNEL, SlackHarness, context_texts, section_texts

from bot.app import Byline
from bot.cli.slack import NO_ARTICLES, BylineAnswers
from bot.models import CANNOT_ANSWER
from bot.settings import Settings
from bot.slack.render import PLACEHOLDER
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


CLAIM = "A suspected gas leak led to the explosion that brought down the Magnitogorsk building"
INVENTED = "The blast killed 212 people and was ordered by a Ukrainian general"


def inventing_model(request: dict[str, Any]) -> Reply:
    """Says a true thing about Magnitogorsk, invents a figure and a culprit, then the true thing again: all
    cited to the source on Magnitogorsk, streamed three characters at a time."""
    (n,) = re.findall(r'<source n="(\d+)">\ntitle: Magnitogorsk', message_text(request, "user"))
    return Reply(content=f"{CLAIM} [{n}]. {INVENTED} [{n}]. {CLAIM}, officials said [{n}].", chunk_chars=3)


def statuses(fake: FakeSlack) -> list[str]:
    return [c.args["status"] for c in fake.calls_to("assistant.threads.setStatus")]


def test_a_model_answer_streams_into_slack_without_the_sentence_the_check_removes(
    embedder: Embedder, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    articles = tmp_path / "articles.jsonl"
    articles.write_text("".join(json.dumps(seed_articles()[key]) + "\n" for key in ("notre", "magnitogorsk")))
    with FakeOpenAI(responder=inventing_model) as model, FakeSlack() as fake:
        llm = {"provider": "openai", "base_url": model.base_url, "api_key": "sk-test", "retry_backoff": 0.01}
        byline = Byline(Settings(home=home, answerer="llm", llm=llm), embedder=embedder)
        assert byline.ingest([str(articles)]).added == 2
        with SlackHarness(fake, home, ask=BylineAnswers(byline), answerer="llm") as harness:
            ts, _ = harness.ask_in_channel("What led to the Magnitogorsk explosion?")
            [stream] = fake.wait_for(lambda: [s for s in fake.streams.values() if s.state == "stopped"], timeout=60)
            fake.wait_for(lambda: statuses(fake)[-1:] == [""])
    assert model.requests[0]["stream"] is True
    assert "212" not in fake.shown() and "Ukrainian" not in fake.shown()  # removed by the check: never shown
    assert stream.thread_ts == ts and stream.text == f"{CLAIM} [1]. {CLAIM}, officials said [1]."
    assert len(fake.calls_to("chat.appendStream")) == 1  # the second checked sentence, as it came
    [source] = [line for line in context_texts(stream.blocks or []) if line.startswith("*[1]* ")]
    assert "Magnitogorsk" in source
    # Statuses until the first checked sentence shows; cleared once the answer is finished.
    assert statuses(fake) == [PLACEHOLDER, "Searching 2 articles…", "Writing the answer…", ""]
    assert fake.calls_to("chat.postMessage") == []
