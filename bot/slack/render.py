"""An Answer as a Slack message: Block Kit blocks within Slack's limits, plus the plain `text` fallback.

Layout: the answer (a model's checked answer in a `markdown` block; an extractive one, quoting articles, in
mrkdwn sections of under 3,000 characters each), a divider, one context block per source (`[n] <url|title> ·
outlet · date` and a short quote), and Slack's feedback buttons. Everything that comes from an answer or an
article is escaped or neutralised, so it can neither break the markup nor ping @channel or a person.
"""

from __future__ import annotations

import re
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

# Passages listed for a claim ("Find sources") quote more of each article than an answer's sources do.
CLAIM_QUOTE_CHARS = 500

FEEDBACK_BLOCK = "byline-feedback"
# Slack's feedback buttons (a context_actions block); their values are "up:<answer id>" / "down:<answer id>".
FEEDBACK_ACTION = "byline_feedback"
# The 👍/👎 buttons of answers sent through a response_url (/ask), and of messages posted before the feedback
# buttons: their value is the answer id.
VOTE_UP = "byline_feedback_up"
VOTE_DOWN = "byline_feedback_down"

PLACEHOLDER = "Searching the articles…"
RESTARTING_MESSAGE = "Byline is restarting and could not get to your question. Please ask again in a minute."
NOTHING_BEARS = "Nothing in the ingested articles bears on this."
SOURCES_HEADING = "*What the ingested articles say about this:*"
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


def neutral_markdown(text: str) -> str:
    """Markdown (a `markdown` block, streamed `markdown_text`) that can neither ping anyone nor mention a channel:
    a word joiner after every `<` (Slack's `<!here>`, `<@U…>`, `<#C…>`) and every `@` (`@channel`), which
    leaves the text as it reads but no longer a mention, whatever Slack does with either in Markdown.

    Each character is treated on its own, so a text cut anywhere and neutralised piece by piece comes out as the
    whole does: a mention split between two streamed pieces is neutralised too."""
    return text.replace("<", "<\u2060").replace("@", "@\u2060")


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


def shorten(text: str, limit: int) -> str:
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    return text[: limit - 1].rsplit(" ", 1)[0] + "…"


def source_line(citation: Citation, quote_chars: int = QUOTE_CHARS) -> str:
    """`[n] <link|title> · outlet · date` and, on the next line, a short quote; the link scrolls to the quote."""
    title = shorten(citation.title or "(untitled)", TITLE_CHARS)
    head = link(citation.link or citation.url, title) if citation.url else f"*{escape(title)}*"
    details = [f"*[{citation.n}]* {head}"]
    if citation.source:
        details.append(escape(citation.source))
    if citation.published_at:
        details.append(citation.published_at.date().isoformat())
    line = " · ".join(details)
    if citation.quote.strip():
        line += f"\n“{escape(shorten(citation.quote, quote_chars))}”"
    return line


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text, "verbatim": True}}


def _context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text, "verbatim": True}]}


def feedback_block(answer_id: str) -> dict[str, Any]:
    """Slack's feedback buttons for an answer (a context_actions block)."""

    def button(text: str, vote: str, label: str) -> dict[str, Any]:
        return {
            "text": {"type": "plain_text", "text": text},
            "value": f"{vote}:{answer_id}",
            "accessibility_label": label,
        }

    return {
        "type": "context_actions",
        "block_id": f"{FEEDBACK_BLOCK}:{answer_id}",
        "elements": [
            {
                "type": "feedback_buttons",
                "action_id": FEEDBACK_ACTION,
                "positive_button": button("Helpful", "up", "This answer was helpful"),
                "negative_button": button("Not helpful", "down", "This answer was not helpful"),
            }
        ],
    }


def vote_buttons(answer_id: str) -> dict[str, Any]:
    """👍/👎 buttons, for answers sent through a response_url."""

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


def is_written(answer: Answer) -> bool:
    """Whether the answer is a model's own text, sentence by sentence checked (rather than quoted articles)."""
    return bool(answer.sentences) and not answer.refused


def answer_body(answer: Answer) -> tuple[list[dict[str, Any]], bool]:
    """The answer's own blocks, and whether it had to be cut: a written answer in one `markdown` block, an
    extractive one (article text, which may hold `*` or `_` of its own) escaped in mrkdwn sections."""
    if is_written(answer):
        body = neutral_markdown(answer.text.strip())
        truncated = len(body) > ANSWER_CHARS
        if truncated:
            body = split_mrkdwn(body, ANSWER_CHARS)[0]
        return [{"type": "markdown", "text": body}], truncated
    text = to_mrkdwn(answer.text.strip() or answer.question)
    truncated = len(text) > ANSWER_CHARS
    if truncated:
        text = split_mrkdwn(text, ANSWER_CHARS)[0]
    short = [_section(short_answer_line(answer.short_answer))] if answer.short_answer else []
    return short + [_section(piece) for piece in split_mrkdwn(text)], truncated


def short_answer_line(short_answer: str) -> str:
    """The fact an answer states, in bold: article text escaped, with no asterisk of its own to end the bold."""
    return f"*{escape(shorten(short_answer, TITLE_CHARS)).replace('*', '∗')}*"


def answer_tail(answer: Answer, answer_id: str, *, truncated: bool, buttons: bool = False) -> list[dict[str, Any]]:
    """What follows the answer's text: notes, its sources, and the feedback buttons (`buttons`: 👍/👎 instead).
    These are also the blocks that finish a streamed answer."""
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
    tail.append(vote_buttons(answer_id) if buttons else feedback_block(answer_id))
    return tail


def answer_message(
    answer: Answer, answer_id: str, *, question: str | None = None, buttons: bool = False
) -> dict[str, Any]:
    """`{"text", "blocks"}` for chat.postMessage/chat.update or a response_url; `question` echoes it on top."""
    body, truncated = answer_body(answer)
    tail = answer_tail(answer, answer_id, truncated=truncated, buttons=buttons)
    head = [_context(f"*Q:* {escape(shorten(question, 500))}")] if question else []
    blocks = head + body[: MAX_BLOCKS - len(head) - len(tail)] + tail
    short = f"{short_answer_line(answer.short_answer)}\n" if answer.short_answer else ""
    text = fallback_text(short + to_mrkdwn(answer.text.strip() or answer.question), answer.citations)
    return {"text": text, "blocks": blocks}


def sources_message(answer: Answer, answer_id: str) -> dict[str, Any]:
    """The passages that bear on a claim ("Find sources"): each cited source with a longer quote, or a note
    that nothing in the articles bears on it."""
    citations = [] if answer.refused else answer.citations[:SOURCES_SHOWN]
    if not citations:
        return notice_message(NOTHING_BEARS)
    blocks = [_section(SOURCES_HEADING)]
    blocks += [_section(source_line(c, CLAIM_QUOTE_CHARS)) for c in citations]
    blocks.append(feedback_block(answer_id))
    text = "What the ingested articles say about this: " + "; ".join(
        f"[{c.n}] {escape(shorten(c.title, 80))}" for c in citations
    )
    return {"text": _shorten_keep_lines(text, FALLBACK_CHARS), "blocks": blocks}


def fallback_text(body: str, citations: list[Citation]) -> str:
    """The notification and screen-reader text (mrkdwn): the answer, then its sources' titles."""
    text = body
    if citations:
        text += "\n\nSources: " + "; ".join(f"[{c.n}] {escape(shorten(c.title, 80))}" for c in citations)
    return _shorten_keep_lines(text, FALLBACK_CHARS)


def _shorten_keep_lines(text: str, limit: int) -> str:
    return text if len(text) <= limit else split_mrkdwn(text, limit - 1)[0] + "…"


def notice_message(text: str) -> dict[str, Any]:
    """A one-section message (errors, refusals of service, usage): text is mrkdwn we wrote ourselves."""
    return {"text": text, "blocks": [_section(text)]}
