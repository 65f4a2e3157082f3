"""Byline's DM as Slack's AI-app container: suggested prompts from the latest stories, a title from the first
question, and each pane thread's context (which channel the user is looking at), through Bolt's `Assistant`.

Slack has two experiences. Under `agent_view` (the manifests' setting, and the only one for new apps) opening the
DM sends `app_home_opened` (tab "messages") and prompts are set for the DM as a whole, without a thread. Under the
legacy `assistant_view` each pane thread starts with `assistant_thread_started` and gets its own prompts. Both are
handled; in both, a person's message in a DM thread reaches Bolt's `Assistant.user_message`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from slack_bolt.middleware.assistant import Assistant

from bot.slack.render import shorten
from bot.slack.threads import CatalogThreadContextStore
from bot.slack.web import SlackWeb
from ingest.storage.catalog import Headline

log = logging.getLogger(__name__)

PROMPTS_TITLE = "Ask about the latest stories"
MAX_PROMPTS = 4  # Slack's limit
PROMPT_TITLE_CHARS = 60
THREAD_TITLE_CHARS = 80
# Headlines read to find four different ones (a story republished under one title counts once).
HEADLINES_READ = 12


def suggested_prompts(headlines: Sequence[Headline]) -> list[dict[str, str]]:
    """A question about each of the latest stories (distinct titles, newest first), as Slack's prompts."""
    prompts: list[dict[str, str]] = []
    seen: set[str] = set()
    for headline in headlines:
        title = " ".join(headline.title.split())
        if not title or title.casefold() in seen:
            continue
        seen.add(title.casefold())
        prompts.append(
            {"title": shorten(title, PROMPT_TITLE_CHARS), "message": f"What do the articles say about “{title}”?"}
        )
        if len(prompts) == MAX_PROMPTS:
            break
    return prompts


def thread_title(question: str) -> str:
    return shorten(question, THREAD_TITLE_CHARS)


class Pane:
    """Prompts and contexts for the DM; `recent_articles(n)` lists what is indexed, newest first."""

    def __init__(
        self, web: SlackWeb, recent_articles: Callable[[int], Sequence[Headline]], contexts: CatalogThreadContextStore
    ) -> None:
        self.web = web
        self.recent_articles = recent_articles
        self.contexts = contexts

    def offer_prompts(self, channel: str, thread_ts: str | None = None) -> None:
        try:
            prompts = suggested_prompts(self.recent_articles(HEADLINES_READ))
        except Exception:
            log.exception("listing the latest stories for suggested prompts failed")
            return
        if prompts:  # nothing indexed yet: nothing worth suggesting
            self.web.set_prompts(channel, prompts, title=PROMPTS_TITLE, thread_ts=thread_ts)

    def on_home_opened(self, event: dict[str, Any]) -> None:
        """agent_view: the user opened Byline's DM (the Messages tab)."""
        if event.get("tab") == "messages" and event.get("channel"):
            self.offer_prompts(str(event["channel"]))

    def on_thread_started(self, event: dict[str, Any]) -> None:
        """assistant_view: a new pane thread; remember what the user is looking at and offer prompts."""
        thread = event.get("assistant_thread") or {}
        channel, thread_ts = thread.get("channel_id"), thread.get("thread_ts")
        if not (channel and thread_ts):
            return
        if (thread.get("context") or {}).get("channel_id"):
            self.contexts.save(channel_id=channel, thread_ts=thread_ts, context=thread["context"])
        self.offer_prompts(channel, thread_ts)

    def viewed_channel(self, channel: str, thread_ts: str) -> str | None:
        """The channel the user was looking at when they wrote in this pane thread, if Slack said."""
        try:
            context = self.contexts.find(channel_id=channel, thread_ts=thread_ts)
        except Exception:
            log.exception("reading the thread context of %s %s failed", channel, thread_ts)
            return None
        return context.channel_id if context is not None else None


def build_assistant(pane: Pane, on_user_message: Callable[..., None], logger: logging.Logger) -> Assistant:
    """Bolt's Assistant middleware: thread starts go to the pane, a person's messages in DM threads to
    `on_user_message`; context changes are saved to the catalog by Bolt's default listener."""
    assistant = Assistant(thread_context_store=pane.contexts, logger=logger)
    assistant.thread_started(pane.on_thread_started)
    assistant.user_message(on_user_message)
    return assistant
