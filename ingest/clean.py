"""Cleaning article text: Unicode and whitespace normalised, control characters and scraping junk and
boilerplate lines removed. Every rule runs in time linear in the text, however hostile the text."""

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
# Where a card can end. A card is searched for only in the stretch just before one (see `_drop_link_cards`).
_CARD_END = re.compile(r"\sMORE\b")
_CARD_REACH = 1100  # the card's text (at most 1000 characters) and the names before it

# Whole lines that are page furniture rather than article text.
_BOILERPLATE_LINE = re.compile(
    r"^(advertisement|advertisements|sponsored content|share this( article| story)?:?|share on (facebook|twitter)"
    r"|click here to (subscribe|read more)|read more:?|related:?|sign up for our newsletter.*|"
    r"subscribe to our newsletter.*|follow us on .*|all rights reserved\.?|copyright ©.*)$",
    re.IGNORECASE,
)
_INLINE_SPACE = re.compile(r"[ \t\f\v\u00a0\u2000-\u200b\u202f\u205f\u3000]+")
_ZERO_WIDTH = re.compile(r"[\u200b-\u200d\u2060\ufeff\u00ad]")
# Control characters other than tab and newlines (a NUL deep in a file, a terminal escape), lone UTF-16
# surrogates (JSON can spell them; they cannot be encoded) and the two Unicode non-characters.
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")


def clean_text(raw: str) -> str:
    """Normalised article text: paragraphs separated by one blank line, no junk cards or furniture lines."""
    text = _CONTROL.sub("", unicodedata.normalize("NFKC", raw))
    text = _ZERO_WIDTH.sub("", text).replace("\r\n", "\n").replace("\r", "\n")
    text = _drop_link_cards(text)
    paragraphs = []
    for block in re.split(r"\n\s*\n", text):
        lines = [_INLINE_SPACE.sub(" ", line).strip() for line in block.split("\n")]
        kept = [line for line in lines if line and not _BOILERPLATE_LINE.match(line)]
        if kept:
            paragraphs.append(" ".join(kept))
    return "\n\n".join(paragraphs)


def clean_inline(raw: str) -> str:
    """A one-line field (title, author, outlet): normalised, single-spaced."""
    text = _CONTROL.sub("", unicodedata.normalize("NFKC", raw))
    return _INLINE_SPACE.sub(" ", text.replace("\r", " ").replace("\n", " ")).strip()


def strip_controls(raw: str) -> str:
    """A field kept as written (a URL) without control characters or lone surrogates."""
    return _CONTROL.sub("", raw).strip()


def _drop_link_cards(text: str) -> str:
    """Hover cards replaced by the name they hang from. The pattern is tried only in the stretch before each
    " MORE" (after the previous card and the last newline): tried at every position, its look-ahead of up to
    1,000 characters made hostile text cost a thousand steps a character."""
    kept: list[str] = []
    done = 0
    for end in _CARD_END.finditer(text):
        if end.start() < done:
            continue
        start = max(done, text.rfind("\n", 0, end.start()) + 1, end.start() - _CARD_REACH)
        card = _LINK_CARD.search(text, start, end.end())
        if card is not None:
            kept += [text[done : card.start()], card.group("last")]
            done = card.end()
    return "".join(kept) + text[done:] if kept else text
