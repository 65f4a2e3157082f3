"""`byline ask` and `byline chat` with BYLINE_ANSWERER=llm: the real index, CLI and langchain client, a fake model."""

from __future__ import annotations

import json
import os
import pty
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from fake_openai import FakeOpenAI, Reply, completion, message_text
from seed_passages import article_text, seed_articles
from typer.testing import CliRunner

from bot.app import Byline
from bot.cli.main import build_app
from bot.models import CANNOT_ANSWER
from bot.settings import Settings
from ingest.embedding import Embedder

app = build_app()

pytestmark = [pytest.mark.slow, pytest.mark.network]

# What the fake model says, keyed by a word of the source title it cites.
CLAIMS = {
    "Notre Dame": "Over 400 firefighters fought the fire at Notre Dame cathedral",
    "Magnitogorsk": "A suspected gas leak led to the explosion that brought down the Magnitogorsk building",
}


def reading_model(request: dict[str, Any]) -> Reply:
    """A stand-in model that reads its sources: condenses follow-ups, cites the source it draws on."""
    user = message_text(request, "user")
    if "Standalone question:" in user:
        return completion("How many firefighters fought the fire at Notre Dame cathedral in Paris?")
    titles = dict(re.findall(r'<source n="(\d+)">\ntitle: ([^\n]*)', user))
    for n, title in titles.items():
        for key, claim in CLAIMS.items():
            if key in title and key.split()[0] in user.split("Question:")[-1]:
                return completion(f"{claim} [{n}].")
    return completion(CANNOT_ANSWER)


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(responder=reading_model) as fake:
        yield fake


@pytest.fixture(scope="module")
def small_home(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Path:
    """An index of four seed articles (two the fake model cites, two to retrieve past), built once."""
    folder = tmp_path_factory.mktemp("llm-cli")
    articles = folder / "articles.jsonl"
    articles.write_text(
        "".join(json.dumps(seed_articles()[key]) + "\n" for key in ("notre", "magnitogorsk", "eliud", "nancy"))
    )
    byline = Byline(Settings(home=folder / "home"), embedder=embedder)
    report = byline.ingest([str(articles)])
    assert report.added == 4 and not report.failed
    byline.catalog.close()
    return folder / "home"


@pytest.fixture
def runner(
    small_home: Path, tmp_path: Path, cli_runner: CliRunner, server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> CliRunner:
    home = tmp_path / "home"
    shutil.copytree(small_home, home)
    monkeypatch.setenv("BYLINE_HOME", str(home))
    monkeypatch.setenv("BYLINE_ANSWERER", "llm")
    monkeypatch.setenv("BYLINE_LLM_PROVIDER", "openai")
    monkeypatch.setenv("BYLINE_LLM_BASE_URL", server.base_url)
    monkeypatch.setenv("BYLINE_LLM_RETRY_BACKOFF", "0.01")
    return cli_runner


def test_ask_json_gives_a_checked_llm_answer(runner: CliRunner, server: FakeOpenAI) -> None:
    result = runner.invoke(app, ["ask", "--json", "How many firefighters fought the Notre Dame fire?"])
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert answer["answer"] == f"{CLAIMS['Notre Dame']} [1]."
    assert not answer["refused"] and "notice" not in answer
    assert answer["sentences"] == [{"text": answer["answer"], "citations": [1], "supported": True}]
    (citation,) = answer["citations"]
    assert citation["n"] == 1 and citation["title"] == "Notre Dame in Paris catches fire"
    assert article_text("notre")[citation["start"] : citation["end"]] == citation["quote"]
    assert "400 firefighters" in citation["quote"]


def test_ask_streams_checked_sentences_then_the_sources(runner: CliRunner, server: FakeOpenAI) -> None:
    result = runner.invoke(app, ["ask", "--stream", "What led to the Magnitogorsk explosion?"])
    assert result.exit_code == 0, result.output
    text, sources = result.stdout.split("\n\nSources:\n")
    assert text == f"{CLAIMS['Magnitogorsk']} [1]."
    assert sources.startswith("[1] Magnitogorsk apartment building collapses")
    assert server.requests[0]["stream"] is True


def inventing_model(request: dict[str, Any]) -> Reply:
    """Says one true thing about Magnitogorsk, then invents a figure and a culprit, both cited."""
    user = message_text(request, "user")
    (n,) = re.findall(r'<source n="(\d+)">\ntitle: Magnitogorsk', user)
    return Reply(
        content=f"{CLAIMS['Magnitogorsk']} [{n}]. The blast killed 212 people and was ordered by a Ukrainian "
        f"general [{n}]. {CLAIMS['Magnitogorsk']}, officials said [{n}].",
        chunk_chars=3,
    )


@pytest.mark.parametrize("stream", ["--stream", "--no-stream"])
def test_an_invented_sentence_never_reaches_the_screen(runner: CliRunner, server: FakeOpenAI, stream: str) -> None:
    server.responder = inventing_model
    result = runner.invoke(app, ["ask", stream, "What led to the Magnitogorsk explosion?"])
    assert result.exit_code == 0, result.output
    assert "212" not in result.output and "Ukrainian" not in result.output
    text, sources = result.stdout.split("\n\nSources:\n")
    assert " ".join(text.split()) == f"{CLAIMS['Magnitogorsk']} [1]. {CLAIMS['Magnitogorsk']}, officials said [1]."
    assert max(len(line) for line in text.splitlines()) <= 100  # wrapped as the whole answer would be
    assert sources.startswith("[1] Magnitogorsk apartment building collapses")
    result = runner.invoke(app, ["ask", "--json", "What led to the Magnitogorsk explosion?"])
    assert [s["supported"] for s in json.loads(result.stdout)["sentences"]] == [True, False, True]


def test_chat_condenses_a_follow_up_before_retrieval(runner: CliRunner, server: FakeOpenAI) -> None:
    result = runner.invoke(
        app, ["chat", "--json"], input="What caught fire at Notre Dame in Paris?\nHow many fought it?\nexit\n"
    )
    assert result.exit_code == 0, result.output
    first, second = (json.loads(line) for line in result.stdout.splitlines())
    assert first["question"] == "What caught fire at Notre Dame in Paris?"
    assert second["question"] == "How many fought it?"
    assert second["answer"] == f"{CLAIMS['Notre Dame']} [1]." and not second["refused"]
    # answer, condense (with the first turn as history), answer
    assert len(server.requests) == 3
    condense = message_text(server.requests[1], "user")
    assert "User: What caught fire at Notre Dame in Paris?" in condense
    assert "New question: How many fought it?" in condense
    assert "Question: How many firefighters fought the fire at Notre Dame cathedral in Paris?" in message_text(
        server.requests[2], "user"
    )


def test_an_unreachable_model_falls_back_with_a_notice(runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("BYLINE_LLM_BASE_URL", f"http://127.0.0.1:{port}/v1")
    monkeypatch.setenv("BYLINE_LLM_RETRIES", "1")
    result = runner.invoke(app, ["ask", "What led to the Magnitogorsk explosion?"])
    assert result.exit_code == 0, result.output
    assert "The language model failed (could not connect after 2 attempts)." in result.stdout
    assert "Traceback" not in result.output
    result = runner.invoke(app, ["ask", "--json", "What led to the Magnitogorsk explosion?"])
    answer = json.loads(result.stdout)
    assert answer["notice"].endswith("Showing the extractive answer instead.") and "sentences" not in answer


@pytest.mark.parametrize("command", [["ask", "Anything?"], ["chat"]])
def test_llm_without_key_or_server_is_a_one_line_startup_error(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    monkeypatch.delenv("BYLINE_LLM_BASE_URL")
    result = runner.invoke(app, command, input="Anything?\n")
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        "error: BYLINE_ANSWERER=llm with provider openai needs OPENAI_API_KEY (or BYLINE_LLM_API_KEY), "
        "or BYLINE_LLM_BASE_URL for an OpenAI-compatible server"
    ]
    assert result.stdout == ""


def test_on_a_terminal_a_status_line_shows_then_only_checked_sentences(runner: CliRunner, server: FakeOpenAI) -> None:
    """The real `byline` in a pseudo-terminal: everything it draws is read, spinner frames and all."""
    server.responder = lambda request: replace(inventing_model(request), interval=0.02)
    main, child = pty.openpty()
    byline = Path(sys.executable).with_name("byline")
    process = subprocess.Popen(
        [str(byline), "ask", "What led to the Magnitogorsk explosion?"],
        stdin=subprocess.DEVNULL,
        stdout=child,
        stderr=child,
    )
    os.close(child)
    screen = b""
    while chunk := _read(main):
        screen += chunk
    os.close(main)
    assert process.wait(timeout=60) == 0
    text = screen.decode()
    assert "Searching 4 articles…" in text and "Writing the answer…" in text
    assert "212" not in text and "Ukrainian" not in text
    assert f"{CLAIMS['Magnitogorsk']} [1]." in text and "Sources:" in text


def _read(fd: int) -> bytes:
    """What the terminal got next; b"" once the program has closed it."""
    try:
        return os.read(fd, 4096)
    except OSError:  # EIO: every writer has closed the terminal
        return b""
