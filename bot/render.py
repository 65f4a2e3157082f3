"""Terminal rendering of answers and reports."""

from __future__ import annotations

import textwrap

from bot.models import Answer, Citation


def source_line(citation: Citation) -> str:
    """`Title · Outlet · 2019-04-16 · link`, skipping what is unknown: the link goes to the quote in a web
    article (see `Citation.link`); a file's is its path."""
    parts = [citation.title]
    if citation.source:
        parts.append(citation.source)
    if citation.published_at:
        parts.append(citation.published_at.date().isoformat())
    if where := citation.link or citation.url or citation.path:
        parts.append(where)
    return " · ".join(parts)


def render_answer(answer: Answer, width: int = 100) -> str:
    # Fill each paragraph on its own: a fallback answer labels its quoted passages on lines of their own.
    lines = [textwrap.fill(line, width=width) if line.strip() else "" for line in answer.text.split("\n")]
    if answer.short_answer:
        lines = [textwrap.fill(f"Answer: {answer.short_answer}", width=width), "", *lines]
    return "\n".join(lines) + render_after_text(answer, width)


def render_after_text(answer: Answer, width: int = 100) -> str:
    """What follows the answer's text (the notice, the sources with their quotes), each part after a blank line."""
    lines: list[str] = []
    if answer.notice:
        lines += ["", answer.notice]
    if answer.citations:
        lines += ["", "Sources:"]
        shown: set[int] = set()
        for citation in answer.citations:
            if citation.n not in shown:
                shown.add(citation.n)
                lines.append(f"[{citation.n}] {source_line(citation)}")
            quote = textwrap.fill(f"“{citation.quote}”", width=width, initial_indent="    ", subsequent_indent="    ")
            lines.append(quote)
    return "".join(f"\n{line}" for line in lines)
