"""Outlets named at ingest: an article with a URL and no source of its own gets its registrable domain
(`thehill.com`), or the name `ingest.site_names` maps it to ("The Hill"), for every kind of source: files with a
`url` in their front matter, JSON records, web pages. `stats` and citations show it instead of "(unknown)"."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner
from web_site import STORM, Resource, Site, SiteServer, article_html

from bot.app import Byline
from bot.cli.main import build_app
from bot.settings import Settings, load_settings
from ingest.config import WebSettings
from ingest.embedding import Embedder
from ingest.loaders import LoadFailure, make_article
from ingest.outlets import Outlets

SITE_NAMES = '{"thehill.com": "The Hill", "news.bbc.co.uk": "BBC News"}'
BODY = "The council approved the new harbour wall on Tuesday after a storm flooded forty homes on Quay Street."


def test_site_names_come_from_env_or_toml_and_bad_hosts_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BYLINE_INGEST_SITE_NAMES", SITE_NAMES)
    assert load_settings().ingest.site_names == {"thehill.com": "The Hill", "news.bbc.co.uk": "BBC News"}
    monkeypatch.delenv("BYLINE_INGEST_SITE_NAMES")
    config = tmp_path / "byline.toml"
    config.write_text('[ingest]\nsite_names = { "thehill.com" = "The Hill" }\n')
    assert load_settings(config).ingest.site_names == {"thehill.com": "The Hill"}
    assert Settings().ingest.site_names == {}
    for bad in ({"https://thehill.com/": "The Hill"}, {"thehill": "The Hill"}, {"thehill.com": " "}):
        with pytest.raises(ValidationError, match=r"host name such as thehill\.com"):
            Settings(ingest={"site_names": bad})


def test_fill_names_only_articles_without_a_source() -> None:
    outlets = Outlets({"thehill.com": "The Hill"})
    hill = make_article(title="Call", text=BODY, url="https://www.thehill.com/homenews/438")
    assert outlets.fill(hill).source == "The Hill" and hill.source is None  # a new article, not changed in place
    bbc = make_article(title="Wall", text=BODY, url="https://news.bbc.co.uk/1/hi/wall.stm")
    assert outlets.fill(bbc).source == "bbc.co.uk"
    own = make_article(title="Wall", text=BODY, url="https://www.thehill.com/x", source="Hill Reporter")
    assert outlets.fill(own) is own
    local = make_article(title="Wall", text=BODY, url="http://127.0.0.1:8000/x")
    file = make_article(title="Wall", text=BODY, path="/news/wall.txt")
    assert outlets.fill(local) is local and outlets.fill(file) is file
    failure = LoadFailure("x.json", "malformed JSON")
    assert list(outlets.fill_all([hill, failure])) == [outlets.fill(hill), failure]


@pytest.fixture
def named(isolated_env: Path, embedder: Embedder, monkeypatch: pytest.MonkeyPatch) -> Byline:
    """A Byline whose settings map thehill.com and news.bbc.co.uk to names, through the environment."""
    monkeypatch.setenv("BYLINE_INGEST_SITE_NAMES", SITE_NAMES)
    return Byline(load_settings(), embedder=embedder)


def test_files_and_records_get_their_outlet_at_ingest(named: Byline, tmp_path: Path, embedder: Embedder) -> None:
    folder = tmp_path / "articles"
    folder.mkdir()
    (folder / "wall.md").write_text(
        f"---\nurl: https://www.thehill.com/homenews/wall\ndate: 2019-04-16\n---\n# Harbour wall approved\n\n{BODY}\n"
    )
    records = [
        {"title": "Ferry cancelled", "url": "https://www.theguardian.com/uk/ferry", "text": "The ferry is cancelled."},
        {"title": "Bridge shut", "url": "https://news.bbc.co.uk/1/hi/bridge.stm", "text": "The bridge is shut."},
        {"title": "Museum opens", "url": "https://thehill.com/museum", "source": "Hill Gazette", "text": "It opens."},
        {"title": "No link", "text": "A record with neither a URL nor a source."},
    ]
    (folder / "news.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    report = named.ingest([str(folder)])
    assert report.added == 5 and not report.failed
    sources = named.stats()["sources"]
    assert sources == {
        "The Hill": 1,
        "theguardian.com": 1,
        "BBC News": 1,
        "Hill Gazette": 1,
        "(unknown)": 1,
    }
    answer = named.ask("When was the harbour wall approved?")
    assert answer.citations and answer.citations[0].source == "The Hill"

    # the outlet goes into the article's version: ingesting again with the same names changes nothing
    assert named.ingest([str(folder)]).unchanged == 5


def test_stats_shows_the_outlet(named: Byline, tmp_path: Path, cli_runner: CliRunner) -> None:
    article = tmp_path / "wall.txt"
    article.write_text(f"---\nurl: https://thehill.com/homenews/wall\n---\nHarbour wall approved\n\n{BODY}\n")
    assert cli_runner.invoke(build_app(), ["ingest", str(article)]).exit_code == 0
    shown = cli_runner.invoke(build_app(), ["stats"]).stdout
    assert "sources: The Hill (1)" in shown and "(unknown)" not in shown


@pytest.fixture
def site() -> Iterator[Site]:
    with SiteServer() as served:
        yield served


@pytest.mark.network
@pytest.mark.slow
def test_a_web_page_that_names_no_site_gets_the_outlet_of_its_canonical_url(named: Byline, site: Site) -> None:
    named.settings.web = WebSettings(delay=0.0, backoff=0.01, timeout=2.0, retries=0)
    page = article_html(
        path="/homenews/storm-surge",
        headline="Storm surge floods lower harbour",
        author="Maria Keane",
        published="2024-03-05T08:30:00+00:00",
        paragraphs=STORM,
        json_ld=False,
        open_graph=False,
        canonical="https://www.thehill.com/homenews/storm-surge",
    )
    site.pages["/homenews/storm-surge"] = Resource(page.encode())
    report = named.ingest([site.url("/homenews/storm-surge")])
    assert report.added == 1 and not report.failed
    assert named.stats()["sources"] == {"The Hill": 1}
    # the version remembered for the page is the named one: the next ingest is one 304 and changes nothing
    again = named.ingest([site.url("/homenews/storm-surge")])
    assert again.unchanged == 1 and again.added == again.updated == 0
    assert site.hits_for("/homenews/storm-surge")[-1].status == 304
