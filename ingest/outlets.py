"""The outlet of an article from its URL, when the page names no site: the registrable domain (`thehill.com`
from `https://www.thehill.com/...`), by the Public Suffix List, or the name a settings mapping gives it.

The list is the snapshot bundled with `publicsuffixlist` (updated with each release of that package); nothing
is fetched at run time. Ingest names the outlet of every article that has a URL and no source of its own (files
with a `url` in their front matter, JSON records, web pages), with the mapping from `ingest.site_names`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import replace
from functools import cached_property
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from ingest.loaders import LoadResult
from ingest.models import Article

if TYPE_CHECKING:
    from publicsuffixlist import PublicSuffixList


class Outlets:
    """Outlet names for URLs: `names` maps a host or registrable domain (`thehill.com`) to a name ("The Hill");
    a domain it does not name is its own outlet."""

    def __init__(self, names: Mapping[str, str] | None = None) -> None:
        self.names = {host.strip().lower().removeprefix("www."): name for host, name in (names or {}).items()}

    @cached_property
    def suffixes(self) -> PublicSuffixList:
        from publicsuffixlist import PublicSuffixList

        return PublicSuffixList()  # the bundled list: parsed once, about 10k rules

    def domain(self, url: str) -> str | None:
        """The registrable domain of `url` (`bbc.co.uk`, `myblog.blogspot.com`); None for IP addresses, single
        labels such as `localhost`, and URLs without a host."""
        host = _host(url)
        if host is None:
            return None
        return self.suffixes.privatesuffix(host)

    def name(self, url: str) -> str | None:
        """The mapped name of the URL's host (most specific first: `news.bbc.co.uk`, then `bbc.co.uk`), else
        its registrable domain."""
        domain = self.domain(url)
        host = _host(url)
        if domain is None or host is None:
            return None
        labels = host.split(".")
        for start in range(len(labels) - domain.count(".")):
            candidate = ".".join(labels[start:])
            if candidate in self.names:
                return self.names[candidate]
        return domain

    def fill(self, article: Article) -> Article:
        """`article` with its outlet named after its URL when it has none of its own (unchanged otherwise)."""
        if article.source or not article.url:
            return article
        name = self.name(article.url)
        return replace(article, source=name) if name else article

    def fill_all(self, results: Iterable[LoadResult]) -> Iterator[LoadResult]:
        """What a loader yields, each article with its outlet named (see `fill`); failures pass through."""
        for result in results:
            yield self.fill(result) if isinstance(result, Article) else result


def _host(url: str) -> str | None:
    try:
        host = urlsplit(url.strip()).hostname
    except ValueError:  # a malformed IPv6 literal or port
        return None
    if not host or "." not in host.strip("."):
        return None
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return host.strip(".").lower()
    return None
