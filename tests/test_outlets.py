"""The outlet of an article from its URL: the registrable domain by the bundled Public Suffix List, offline,
renamed through a settings mapping."""

from __future__ import annotations

import socket

import pytest

from ingest.outlets import Outlets


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the public suffix list must not be fetched")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)


@pytest.mark.parametrize(
    ("url", "domain"),
    [
        ("https://www.thehill.com/homenews/house/438-dorsey", "thehill.com"),
        ("https://thehill.com/", "thehill.com"),
        ("https://news.bbc.co.uk/2/hi/uk_news/1.stm", "bbc.co.uk"),
        ("https://edition.CNN.com/2019/04/16/politics", "cnn.com"),
        ("https://harbourgazette.blogspot.com/2024/03/storm.html", "harbourgazette.blogspot.com"),
        ("https://www.abc.net.au:443/news/x", "abc.net.au"),
        ("http://127.0.0.1:8123/news/storm.html", None),
        ("http://[::1]/news", None),
        ("http://localhost/news", None),
        ("/local/path.html", None),
        ("not a url", None),
    ],
)
def test_registrable_domain_offline(no_network: None, url: str, domain: str | None) -> None:
    assert Outlets().domain(url) == domain


def test_a_mapping_names_the_outlet(no_network: None) -> None:
    outlets = Outlets({"thehill.com": "The Hill", "news.bbc.co.uk": "BBC News", "WWW.BBC.co.uk": "BBC"})
    assert outlets.name("https://www.thehill.com/homenews/x") == "The Hill"
    assert outlets.name("https://news.bbc.co.uk/2/hi/x") == "BBC News"  # the most specific host first
    assert outlets.name("https://www.bbc.co.uk/news/x") == "BBC"
    assert outlets.name("https://edition.cnn.com/x") == "cnn.com"  # not mapped: the domain itself
    assert outlets.name("http://127.0.0.1:8123/x") is None
