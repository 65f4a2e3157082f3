"""The sources block of an LLM prompt: passages grouped one number per article, delimited, fit to a budget.

Article text is data: anything in it shaped like our delimiters is defused, and its sentences that read like
instructions to an AI are fenced between `<quoted-instructions>` tags the system prompt tells the model about.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from bot.models import Passage
from ingest.injection import instruction_spans

# Article text that imitates our delimiters could close a source early and pose as instructions.
_DELIMITER = re.compile(r"<\s*(/?)\s*(sources?|conversation|quoted-instructions)\b", re.IGNORECASE)
FENCE = ("<quoted-instructions>", "</quoted-instructions>")


@dataclass(slots=True)
class Source:
    """Source `n` of a prompt: one article and the passages of it the model was shown, in article order."""

    n: int
    passages: list[Passage] = field(default_factory=list)

    @property
    def lead(self) -> Passage:
        return self.passages[0]

    @property
    def article_id(self) -> str:
        return self.lead.article_id

    @property
    def may_hold_instructions(self) -> bool:
        """Ingest flagged a passage as holding text that reads like instructions, or never checked one."""
        return any(p.instruction_like is not False for p in self.passages)

    def segments(self) -> list[str]:
        """The passages' text with overlaps merged, so text shared by neighbouring chunks appears once."""
        merged: list[tuple[int, str]] = []  # (end offset, text)
        for passage in sorted(self.passages, key=lambda p: (p.start, p.end)):
            if merged and passage.start <= merged[-1][0]:
                end, text = merged[-1]
                if passage.end > end:
                    merged[-1] = (passage.end, text + passage.text[end - passage.start :])
            else:
                merged.append((passage.end, passage.text))
        return [text for _, text in merged]


def number_sources(passages: Sequence[Passage]) -> list[Source]:
    """One Source per article, numbered by the rank of its best passage; passages in article order."""
    by_article: dict[str, Source] = {}
    for passage in passages:
        source = by_article.get(passage.article_id)
        if source is None:
            source = by_article[passage.article_id] = Source(n=len(by_article) + 1)
        source.passages.append(passage)
    for source in by_article.values():
        source.passages.sort(key=lambda p: (p.start, p.end))
    return list(by_article.values())


def neutralise(text: str) -> str:
    """Article text with anything shaped like our delimiters defused (`<source>` becomes `‹source>`)."""
    return _DELIMITER.sub(lambda m: f"‹{m.group(1)}{m.group(2)}", text)


def fence_instructions(text: str) -> str:
    """`text` (already defused) with each sentence that reads like instructions to an AI between the fence tags."""
    parts: list[str] = []
    cursor = 0
    for start, end in instruction_spans(text):
        parts += [text[cursor:start], FENCE[0], text[start:end], FENCE[1]]
        cursor = end
    return "".join(parts) + text[cursor:]


def format_source(source: Source) -> str:
    lead = source.lead
    date = lead.published_at.date().isoformat() if lead.published_at else "unknown"
    data = fence_instructions if source.may_hold_instructions else (lambda text: text)
    header = [
        f"title: {fence_instructions(neutralise(one_line(lead.title)))}",  # titles are not flagged at ingest
        f"outlet: {neutralise(one_line(lead.source or 'unknown'))}",
        f"date: {date}",
    ]
    body = "\n[…]\n".join(data(neutralise(segment.strip())) for segment in source.segments())
    return f'<source n="{source.n}">\n' + "\n".join(header) + f"\n\n{body}\n</source>"


def format_sources(sources: Sequence[Source]) -> str:
    return "\n\n".join(format_source(source) for source in sources)


def fit_sources(
    passages: Sequence[Passage], budget: int, count_tokens: Callable[[str], int]
) -> tuple[list[Source], str]:
    """Numbered sources and their prompt text within `budget` tokens, lowest-ranked passages dropped first.

    When even the best passage alone is over budget it is cut short (at a word boundary), never dropped,
    so a question with retrieved passages always reaches the model with some evidence.
    """
    kept = list(passages)
    while kept:
        sources = number_sources(kept)
        text = format_sources(sources)
        if count_tokens(text) <= budget:
            return sources, text
        if len(kept) == 1:
            return _cut_to_budget(kept[0], budget, count_tokens)
        kept.pop()
    return [], ""


def _cut_to_budget(passage: Passage, budget: int, count_tokens: Callable[[str], int]) -> tuple[list[Source], str]:
    low, high = 0, len(passage.text)
    while low < high:  # longest prefix that fits
        mid = (low + high + 1) // 2
        if count_tokens(format_sources([Source(1, [_prefix(passage, mid)])])) <= budget:
            low = mid
        else:
            high = mid - 1
    space = passage.text.rfind(" ", 0, low)
    short = _prefix(passage, space if space > 0 else low)
    sources = [Source(1, [short])]
    return sources, format_sources(sources)


def _prefix(passage: Passage, length: int) -> Passage:
    return replace(passage, text=passage.text[:length], end=passage.start + length)


def one_line(text: str) -> str:
    return " ".join(text.split())
