"""Shared fixtures: every test gets its own BYLINE_HOME; the real embedding model is loaded once per session."""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from typer.testing import CliRunner

from bot.app import Byline
from bot.settings import Settings, load_settings
from ingest.embedding import Embedder

if TYPE_CHECKING:
    from fake_slack import FakeSlack
    from slack_harness import SlackHarness

# The throwaway PostgreSQL server fixtures (postgres_server, postgres_url), and running tests on both catalogs.
pytest_plugins = ["postgres_server", "catalog_backends"]

REPO = Path(__file__).resolve().parent.parent
SEEDS = REPO / "seeds"
SEED_ARTICLE = SEEDS / "the-hill-dorsey-omar.txt"
SEED_JSONL = SEEDS / "wikinews-2019-sample.jsonl"
# The shared development data sits beside the checkout (here and in CI).
SHARED_DATA = REPO.parent / "shared" / "data"

_FOREIGN = (
    "SLACK_BOT_TOKEN",
    "SLACK_APP_TOKEN",
    "SLACK_SIGNING_SECRET",
    "SLACK_API_URL",
    "OPENAI_API_KEY",
    "ANTHROPIC_API_KEY",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "http_proxy",
    "https_proxy",
    "ALL_PROXY",
    "all_proxy",
)


@pytest.fixture(scope="session", autouse=True)
def ctrl_c_interrupts() -> Iterator[None]:
    """Ctrl-C raises KeyboardInterrupt here and in the processes the tests start, as at a terminal, even when the
    suite runs as a background job (whose shell ignores SIGINT, which children inherit)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh data dir per test; no user settings, tokens or proxies leak in."""
    for name in list(os.environ):
        if name.startswith("BYLINE_") or name in _FOREIGN:
            monkeypatch.delenv(name, raising=False)
    home = tmp_path / "byline-home"
    monkeypatch.setenv("BYLINE_HOME", str(home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    return home


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    """The real bundled model, loaded once for the whole run."""
    model = Embedder(Settings(home=Path("/nonexistent")).embedding)
    model.embed(["warm up"])
    return model


@pytest.fixture
def settings(isolated_env: Path) -> Settings:
    return load_settings()


@pytest.fixture
def byline(settings: Settings, embedder: Embedder) -> Byline:
    """A Byline on a fresh home that shares the session's model."""
    return Byline(settings, embedder=embedder)


@pytest.fixture(scope="session")
def seeded_home(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Path:
    """A home with all seed articles ingested once per session; copy it before writing to it."""
    home = tmp_path_factory.mktemp("seeded") / "home"
    instance = Byline(Settings(home=home), embedder=embedder)
    report = instance.ingest([str(SEEDS)])
    assert not report.failed and report.added == 38
    instance.catalog.close()
    return home


def byline_over_copy(prepared: Path, target: Path, monkeypatch: pytest.MonkeyPatch, embedder: Embedder) -> Byline:
    """A Byline over a private copy of a prepared home (made `BYLINE_HOME`), sharing the session's model."""
    import shutil

    shutil.copytree(prepared, target)
    monkeypatch.setenv("BYLINE_HOME", str(target))
    return Byline(load_settings(), embedder=embedder)


@pytest.fixture
def seeded(seeded_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, embedder: Embedder) -> Byline:
    """A Byline over a private copy of the seeded index."""
    return byline_over_copy(seeded_home, tmp_path / "seeded-home", monkeypatch, embedder)


@pytest.fixture
def cli_runner(embedder: Embedder, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    """typer's runner for the `byline` app, every Byline it builds sharing the session's loaded model."""
    from bot.cli import common

    monkeypatch.setattr(common, "open_byline", lambda settings: Byline(settings, embedder=embedder))
    return CliRunner()


def eval_outputs(out: Path) -> list[str]:
    """`byline eval` options writing every output (result JSON, predictions, report) under `out`."""
    return [
        "--json",
        str(out / "result.json"),
        "--predictions",
        str(out / "predictions.jsonl"),
        "--report",
        str(out / "report"),
    ]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def no_network_beyond_loopback(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fail any connection to a non-loopback address."""
    real_connect = socket.socket.connect

    def guarded(self: socket.socket, address: object) -> object:
        host = address[0] if isinstance(address, tuple) else ""
        if isinstance(address, tuple) and host not in ("127.0.0.1", "::1", "localhost"):
            raise OSError(f"test tried to reach {host}")
        return real_connect(self, address)  # type: ignore[arg-type]

    monkeypatch.setattr(socket.socket, "connect", guarded)
    yield


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    """The fake Slack Web API, on 127.0.0.1, for the Slack tests."""
    from fake_slack import FakeSlack

    with FakeSlack() as slack:
        yield slack


@pytest.fixture
def harness(fake: FakeSlack, tmp_path: Path) -> Iterator[SlackHarness]:
    """`byline slack --http` running against `fake`, on a home of its own."""
    from slack_harness import SlackHarness

    with SlackHarness(fake, tmp_path / "home") as running:
        yield running
