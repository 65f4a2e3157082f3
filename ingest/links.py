"""Links: canonical URLs without click-tracking parameters, and deep links that scroll a browser to a quote.

Tracking parameters are recognised by courlan's maintained tracker list (courlan comes with trafilatura).
Deep links use the text fragment syntax of the WICG scroll-to-text-fragment spec (`#:~:text=...`), which
Chromium, Safari and Firefox follow.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

# Campaign ids courlan's list lacks (MSN's `ocid`, CNN's `cmpid`), kept from Byline's own list.
_EXTRA_TRACKERS = re.compile(r"ocid|cmpid")
_NAME_SEPARATORS = "_-."


def is_tracking_parameter(name: str) -> bool:
    """A click-tracking query parameter (utm_*, fbclid, gclid, mc_cid, _ga, xtor...), by courlan's list.

    courlan's patterns also match word beginnings (`ga`, `ref`, `source`), which would take `gallery`, `game`
    or `refresh` for trackers and merge pages that differ by them; a match counts only when it ends at the end
    of the name or at a separator (`utm_`, `_ga`, `at_medium`, `campaign_id`).
    """
    from courlan.clean import TRACKERS_RE

    key = name.lower()
    if _EXTRA_TRACKERS.fullmatch(key):
        return True
    for match in TRACKERS_RE.finditer(key):
        end = match.end()
        if end == len(key) or key[end - 1] in _NAME_SEPARATORS or key[end] in _NAME_SEPARATORS:
            return True
    return False


def strip_tracking(url: str) -> str:
    """The URL without click-tracking parameters, so feed links match canonical URLs. Everything else (the
    order and blank values of the other parameters, the fragment) is kept; a URL with none is returned as is."""
    parts = urlsplit(url)
    if not parts.query:
        return url
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    kept = [(k, v) for k, v in pairs if not is_tracking_parameter(k)]
    if len(kept) == len(pairs):
        return url
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(kept), parts.fragment))


# -- text fragments ----------------------------------------------------------------------------------------

# Quotes longer than this many words are linked as `textStart,textEnd` (their first and last words), which
# keeps links short and still highlights the whole quote.
RANGE_AFTER_WORDS = 10
RANGE_WORDS = 4
_DIRECTIVE = ":~:"
_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")


def text_fragment(quote_text: str, *, prefix: str = "") -> str:
    """The text directive for `quote_text`: `text=words` or, for a long quote or one over several paragraphs,
    `text=first words,last words`; with `prefix` (the text just before the quote), `text=prefix-,...` so a
    browser picks the right one of several matches."""
    encoded = [_encode(" ".join(term)) for term in _terms(quote_text)]
    before = _PARAGRAPH_BREAK.split(prefix)[-1].split()[-RANGE_WORDS:]
    if before:
        encoded.insert(0, _encode(" ".join(before)) + "-")
    return "text=" + ",".join(encoded)


def text_fragment_url(url: str, quote_text: str, *, prefix: str = "") -> str:
    """`url` with a text fragment that scrolls to and highlights `quote_text`. An existing fragment is kept (a
    browser still uses it when the text is not found); an existing fragment directive is replaced."""
    base, _, fragment = url.partition("#")
    fragment = fragment.split(_DIRECTIVE, 1)[0]
    return f"{base}#{fragment}{_DIRECTIVE}{text_fragment(quote_text, prefix=prefix)}"


def deep_link(url: str, quote_text: str, *, before: str = "") -> str | None:
    """A link that scrolls a browser to `quote_text` in the web page at `url`; None unless `url` is http(s) and
    the quote has words.

    `before` is the article text before the quote, as far as it is known. A browser highlights the first match
    of the quote's opening words, so when they already occur in `before`, the words just before the quote go in
    as the directive's prefix. Only then: a prefix that does not match the page exactly (text the extraction
    left out or changed) makes the browser ignore the whole fragment.
    """
    if urlsplit(url).scheme.lower() not in ("http", "https") or not quote_text.split():
        return None
    opening = " ".join(_terms(quote_text)[0]).casefold()
    earlier = " ".join(before.split()).casefold()
    text = f"{earlier} {' '.join(quote_text.split()).casefold()}"
    first = re.search(rf"(?<!\w){re.escape(opening)}(?!\w)", text)
    ambiguous = first is not None and first.start() < len(earlier)
    return text_fragment_url(url, quote_text, prefix=before if ambiguous else "")


def _terms(quote_text: str) -> list[list[str]]:
    """The words of the directive's terms: the whole quote, or the first and last words of a long one."""
    blocks = [block.split() for block in _PARAGRAPH_BREAK.split(quote_text) if block.split()]
    if not blocks:
        raise ValueError("nothing to quote")
    words = [word for block in blocks for word in block]
    if len(blocks) == 1 and len(words) <= RANGE_AFTER_WORDS:
        return [words]
    # a browser matches one term within one block (paragraph), so each end of the range stays in its own
    start = blocks[0][:RANGE_WORDS]
    return [start, _unambiguous_end(words[len(start) :], min(len(blocks[-1]), len(words) - len(start)))]


def _unambiguous_end(after_start: list[str], most: int) -> list[str]:
    """The last few words (at most `most`), as few as make their first match after textStart the quote's own
    end: a browser ends the highlight at the first match of textEnd, a case-blind, whole-word match."""
    tail = " ".join(after_start).casefold()
    for size in range(min(RANGE_WORDS, most), most):
        end = after_start[-size:]
        term = " ".join(end).casefold()
        first = re.search(rf"(?<!\w){re.escape(term)}(?!\w)", tail)
        if first is not None and first.end() == len(tail):
            return end
    return after_start[-most:]


def _encode(term: str) -> str:
    # Percent-encode everything but unreserved characters; `-` is unreserved in URLs but is the directive's
    # prefix/suffix marker, so the spec requires it encoded too (as `&` and `,`, which quote() already encodes).
    return quote(term, safe="").replace("-", "%2D")
