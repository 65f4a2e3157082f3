"""Cleaning article text: Unicode and whitespace normalised, scraping junk and boilerplate lines removed."""

from __future__ import annotations

import re
import unicodedata

# A hover card glued into a sentence by a scraper: the linked name, then the card (the person's full name,
# which ends in the same surname, and headlines) up to a "MORE" link, e.g.
# "Rep. Ilhan OmarIlhan OmarNew York Times defends itself ... MORE (D-Minn.)" -> "Rep. Ilhan Omar (D-Minn.)".
_LINK_CARD = re.compile(
    r"(?P<last>\b[A-Z][a-z'’-]+)"
    r"(?:[A-Z][\w'’.-]*\s){1,3}(?P=last)"
    r"[^\n]{0,1000}?\sMORE\b"
)

# Whole lines that are page furniture rather than article text.
_BOILERPLATE_LINE = re.compile(
    r"^(advertisement|advertisements|sponsored content|share this( article| story)?:?|share on (facebook|twitter)"
    r"|click here to (subscribe|read more)|read more:?|related:?|sign up for our newsletter.*|"
    r"subscribe to our newsletter.*|follow us on .*|all rights reserved\.?|copyright ©.*)$",
    re.IGNORECASE,
)
_INLINE_SPACE = re.compile(r"[ \t\f\v\u00a0\u2000-\u200b\u202f\u205f\u3000]+")
_ZERO_WIDTH = re.compile(r"[\u200b-\u200d\u2060\ufeff\u00ad]")


def clean_text(raw: str) -> str:
    """Normalised article text: paragraphs separated by one blank line, no junk cards or furniture lines."""
    text = unicodedata.normalize("NFKC", raw)
    text = _ZERO_WIDTH.sub("", text).replace("\r\n", "\n").replace("\r", "\n")
    text = _LINK_CARD.sub(lambda m: m.group("last"), text)
    paragraphs = []
    for block in re.split(r"\n\s*\n", text):
        lines = [_INLINE_SPACE.sub(" ", line).strip() for line in block.split("\n")]
        kept = [line for line in lines if line and not _BOILERPLATE_LINE.match(line)]
        if kept:
            paragraphs.append(" ".join(kept))
    return "\n\n".join(paragraphs)


def clean_inline(raw: str) -> str:
    """A one-line field (title, author, outlet): normalised, single-spaced."""
    return _INLINE_SPACE.sub(" ", unicodedata.normalize("NFKC", raw).replace("\n", " ")).strip()
