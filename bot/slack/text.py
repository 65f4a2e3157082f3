"""Reading what people write in Slack: a message as a question, whom it mentions, and per-channel search filters."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date
from typing import Any

from ingest.models import SearchFilters

_USER = re.compile(r"<@([UW][A-Z0-9]+)(?:\|([^>]*))?>")
_CHANNEL = re.compile(r"<#([CG][A-Z0-9]+)(?:\|([^>]*))?>")
_SPECIAL = re.compile(r"<!(\w+)(?:\^[^|>]*)?(?:\|([^>]*))?>")
_LINKED = re.compile(r"<([^<>|]+)(?:\|([^<>]*))?>")


def question_text(text: str, bot_user_id: str | None) -> str:
    """A message's text as a question: the bot's mention removed, Slack markup turned back into words."""

    def user(m: re.Match[str]) -> str:
        return "" if m.group(1) == bot_user_id else "@" + (m.group(2) or m.group(1))

    text = _USER.sub(user, text)
    text = _CHANNEL.sub(lambda m: "#" + (m.group(2) or m.group(1)), text)
    text = _SPECIAL.sub(lambda m: "@" + (m.group(2) or m.group(1)), text)
    text = _LINKED.sub(lambda m: (m.group(2) or m.group(1)).removeprefix("mailto:"), text)
    text = text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    return " ".join(text.split())


def mentions_someone(text: str) -> bool:
    """Whether a message mentions any user (the bot included) or a group (@channel, @here, a user group)."""
    return bool(_USER.search(text) or _SPECIAL.search(text))


def parse_channel_filters(raw: Mapping[str, Mapping[str, Any]]) -> dict[str, SearchFilters]:
    """`settings.slack.channel_filters` as SearchFilters; a bad entry raises ValueError naming channel and key."""

    def day(channel: str, key: str, value: Any) -> date | None:
        if value is None or isinstance(value, date):
            return value
        try:
            return date.fromisoformat(str(value))
        except ValueError:
            raise ValueError(f"slack.channel_filters[{channel}].{key}: {value!r} is not a YYYY-MM-DD date") from None

    filters: dict[str, SearchFilters] = {}
    for channel, spec in raw.items():
        unknown = set(spec) - {"sources", "since", "until"}
        if unknown:
            raise ValueError(
                f"slack.channel_filters[{channel}]: unknown key(s) {sorted(unknown)}; expected sources, since, until"
            )
        sources = spec.get("sources") or ()
        filters[channel] = SearchFilters(
            sources=(sources,) if isinstance(sources, str) else tuple(str(s) for s in sources),
            since=day(channel, "since", spec.get("since")),
            until=day(channel, "until", spec.get("until")),
        )
    return filters
