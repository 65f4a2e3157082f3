"""An Answer as a Slack message: Block Kit blocks within Slack's limits, plus the plain `text` fallback.

Layout: the answer in mrkdwn sections (each under 3,000 characters), a divider, one context block per source
(`[n] <url|title> · outlet · date` and a short quote), and the 👍/👎 buttons. Everything that comes from an
answer or an article is escaped, so it can neither break the markup nor ping @channel or a person.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from bot.models import Answer, Citation

MAX_BLOCKS = 50
SECTION_CHARS = 3000
# Slack rejects a message whose blocks hold much more than ~13k characters in all (msg_blocks_too_long),
# so the answer is cut well below that and each source is kept short.
ANSWER_CHARS = 8000
FALLBACK_CHARS = 3000
SOURCES_SHOWN = 10
QUOTE_CHARS = 200
TITLE_CHARS = 150

ANSWER_BLOCK = "byline-answer"
FEEDBACK_BLOCK = "byline-feedback"
VOTE_UP = "byline_feedback_up"
VOTE_DOWN = "byline_feedback_down"

PLACEHOLDER = "Searching the articles…"
ERROR_MESSAGE = ":warning: Sorry, something went wrong while answering. Please try again in a little while."
BUSY_MESSAGE = "I'm answering a lot of questions right now. Please ask again in a minute."
USAGE_MESSAGE = "Ask me a question about the news articles, for example: `/ask why did Dorsey call Omar?`"

_BROADCAST = re.compile(r"@(channel|here|everyone)\b", re.IGNORECASE)
_LINK = re.compile(r"\[([^\]\n]+)\]\(([^)\s]+)\)")
_BOLD = re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1")
_ITALIC_STAR = re.compile(r"(?<![*\w])\*(?=\S)([^*\n]+?)(?<=\S)\*(?![*\w])")
_STRIKE = re.compile(r"~~(?=\S)(.+?)(?<=\S)~~")
_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)
_BULLET = re.compile(r"^(\s*)[-*+]\s+", re.MULTILINE)
_BOLD_MARK = "\x00"


def escape(text: str) -> str:
    """Slack's three control characters, and a word joiner so @channel/@here/@everyone cannot notify."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _BROADCAST.sub(lambda m: "@\u2060" + m.group(1), text)


def unescape(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&").replace("\u2060", "")


def link(url: str, label: str) -> str:
    """`<url|label>`: the label loses `|` (it would end the label) and is escaped like any text."""
    return f"<{escape(url).replace('|', '%7C')}|{escape(label.replace('|', '/'))}>"


def to_mrkdwn(markdown: str) -> str:
    """Markdown as an LLM writes it, escaped and with its emphasis, links and headings in Slack's mrkdwn."""
    # Code spans and blocks are kept as they are (only escaped): emphasis inside code is literal.
    parts = re.split(r"(```.*?```|`[^`\n]*`)", markdown, flags=re.DOTALL)
    return "".join(escape(part) if i % 2 else _prose_to_mrkdwn(part) for i, part in enumerate(parts))


def _prose_to_mrkdwn(text: str) -> str:
    links: list[str] = []

    def keep_link(m: re.Match[str]) -> str:
        links.append(link(m.group(2), m.group(1)))
        return f"\x01{len(links) - 1}\x01"

    text = escape(_LINK.sub(keep_link, text))
    text = _HEADING.sub(lambda m: f"{_BOLD_MARK}{m.group(1)}{_BOLD_MARK}", text)
    text = _BULLET.sub(lambda m: f"{m.group(1)}• ", text)
    text = _BOLD.sub(lambda m: f"{_BOLD_MARK}{m.group(2)}{_BOLD_MARK}", text)
    text = _ITALIC_STAR.sub(lambda m: f"_{m.group(1)}_", text)
    text = _STRIKE.sub(lambda m: f"~{m.group(1)}~", text)
    text = text.replace(_BOLD_MARK, "*")
    return re.sub(r"\x01(\d+)\x01", lambda m: links[int(m.group(1))], text)


def split_mrkdwn(text: str, limit: int = SECTION_CHARS) -> list[str]:
    """Cut text into pieces of at most `limit` characters: at a paragraph, line, sentence or word break,
    never inside a `<...>` link or an `&...;` entity."""
    pieces: list[str] = []
    while len(text) > limit:
        cut = _break_before(text, limit)
        pieces.append(text[:cut].rstrip())
        text = text[cut:].lstrip()
    if text.strip():
        pieces.append(text)
    return [p for p in pieces if p]


def _break_before(text: str, limit: int) -> int:
    window = text[:limit]
    for separator in ("\n\n", "\n", ". ", " "):
        at = window.rfind(separator)
        while at > 0 and _inside_markup(text, at):
            at = window.rfind(separator, 0, at)
        if at > limit // 2:
            return at + len(separator)
    cut = limit
    while cut > 1 and _inside_markup(text, cut):
        cut -= 1
    return cut


def _inside_markup(text: str, at: int) -> bool:
    """Whether position `at` falls inside a `<...>` link or an `&amp;`-style entity."""
    opened, closed = text.rfind("<", 0, at), text.rfind(">", 0, at)
    if opened > closed:
        return True
    amp = text.rfind("&", max(0, at - 5), at)
    return amp != -1 and ";" not in text[amp:at] and text.find(";", at, amp + 6) != -1


def _shorten(text: str, limit: int) -> str:
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    return text[: limit - 1].rsplit(" ", 1)[0] + "…"


def source_line(citation: Citation) -> str:
    """`[n] <link|title> · outlet · date` and, on the next line, a short quote; the link scrolls to the quote."""
    title = _shorten(citation.title or "(untitled)", TITLE_CHARS)
    head = link(citation.link or citation.url, title) if citation.url else f"*{escape(title)}*"
    details = [f"*[{citation.n}]* {head}"]
    if citation.source:
        details.append(escape(citation.source))
    if citation.published_at:
        details.append(citation.published_at.date().isoformat())
    line = " · ".join(details)
    if citation.quote.strip():
        line += f"\n“{escape(_shorten(citation.quote, QUOTE_CHARS))}”"
    return line


def _section(text: str, block_id: str | None = None) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "section", "text": {"type": "mrkdwn", "text": text, "verbatim": True}}
    if block_id:
        block["block_id"] = block_id
    return block


def _context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text, "verbatim": True}]}


def feedback_block(answer_id: str) -> dict[str, Any]:
    def button(emoji: str, action_id: str) -> dict[str, Any]:
        return {
            "type": "button",
            "text": {"type": "plain_text", "text": emoji, "emoji": True},
            "action_id": action_id,
            "value": answer_id,
        }

    return {
        "type": "actions",
        "block_id": f"{FEEDBACK_BLOCK}:{answer_id}",
        "elements": [button("👍", VOTE_UP), button("👎", VOTE_DOWN)],
    }


def answer_message(answer: Answer, answer_id: str, *, question: str | None = None) -> dict[str, Any]:
    """`{"text", "blocks"}` for chat.postMessage/chat.update or a response_url; `question` echoes it on top."""
    body = to_mrkdwn(answer.text.strip() or answer.question)
    truncated = len(body) > ANSWER_CHARS
    if truncated:
        body = split_mrkdwn(body, ANSWER_CHARS)[0]
    citations = answer.citations[:SOURCES_SHOWN]
    hidden = len(answer.citations) - len(citations)

    tail: list[dict[str, Any]] = []
    if truncated:
        tail.append(_context("_(answer truncated)_"))
    if answer.notice:
        tail.append(_context(escape(answer.notice)))
    if citations:
        tail.append({"type": "divider"})
        tail += [_context(source_line(c)) for c in citations]
        if hidden:
            tail.append(_context(f"…and {hidden} more source{'s' if hidden > 1 else ''}"))
    tail.append(feedback_block(answer_id))
    head = [_context(f"*Q:* {escape(_shorten(question, 500))}")] if question else []

    sections = split_mrkdwn(body)[: MAX_BLOCKS - len(head) - len(tail)]
    blocks = head + [_section(s, f"{ANSWER_BLOCK}-{i}") for i, s in enumerate(sections)] + tail
    return {"text": fallback_text(body, citations), "blocks": blocks}


def fallback_text(body: str, citations: list[Citation]) -> str:
    """The notification and screen-reader text: the answer, then its sources' titles."""
    text = body
    if citations:
        text += "\n\nSources: " + "; ".join(f"[{c.n}] {escape(_shorten(c.title, 80))}" for c in citations)
    return _shorten_keep_lines(text, FALLBACK_CHARS)


def _shorten_keep_lines(text: str, limit: int) -> str:
    return text if len(text) <= limit else split_mrkdwn(text, limit - 1)[0] + "…"


def notice_message(text: str) -> dict[str, Any]:
    """A one-section message (errors, refusals of service, usage): text is mrkdwn we wrote ourselves."""
    return {"text": text, "blocks": [_section(text)]}


def answer_text_from_blocks(message: Mapping[str, Any]) -> str | None:
    """The answer a Byline message carries (its answer sections), or None for any other message."""
    parts = [
        block["text"]["text"]
        for block in message.get("blocks") or []
        if str(block.get("block_id", "")).startswith(ANSWER_BLOCK) and block.get("type") == "section"
    ]
    return unescape("\n".join(parts)) if parts else None
