"""robots.txt rules per RFC 9309 (wildcards `*`, end anchor `$`, longest match wins), parsed by Protego.

`urllib.robotparser` matches rules as plain prefixes, so `Disallow: /*?utm` or `Disallow: /*.pdf$` let those
URLs through; Protego implements the RFC's matching.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from protego import Protego


@dataclass(frozen=True, slots=True)
class RobotsRules:
    """The rules of one origin's robots.txt, asked on behalf of one crawler."""

    parser: Protego

    def allows(self, url: str, user_agent: str) -> bool:
        return bool(self.parser.can_fetch(url, product_token(user_agent)))

    def crawl_delay(self, user_agent: str) -> float | None:
        delay = self.parser.crawl_delay(product_token(user_agent))
        return float(delay) if delay is not None else None


def parse_robots(body: bytes) -> RobotsRules:
    """Rules from a robots.txt body (UTF-8, as RFC 9309 says; bad bytes are replaced, not fatal)."""
    from protego import Protego

    return RobotsRules(Protego.parse(body.decode("utf-8", errors="replace")))


def product_token(user_agent: str) -> str:
    """`Byline` from `Byline/0.1 (+news question-answering bot)`: RFC 9309 matches groups against the product
    token only, so a `User-agent: bot` group does not catch us through the comment."""
    return user_agent.split("/", 1)[0].split()[0] if user_agent.strip() else user_agent
