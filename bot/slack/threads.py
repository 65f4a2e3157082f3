"""The Slack threads Byline takes part in, and what the agent pane says each user is looking at.

This module owns the `slack_threads` and `slack_thread_contexts` tables: it declares their migration and alone
reads them, through the catalog's `transaction()` and `fetch()`, so every bot process on one home agrees.
"""

from __future__ import annotations

import json

from slack_bolt.context.assistant.thread_context import AssistantThreadContext
from slack_bolt.context.assistant.thread_context_store.store import AssistantThreadContextStore

from ingest.clock import now_iso
from ingest.storage.catalog import Catalog, Migration

MIGRATIONS = [
    Migration.portable(
        "007_slack_threads",
        """
        -- threads Byline has taken a question in: a later reply there is a follow-up even without a mention
        CREATE TABLE slack_threads (
            channel TEXT NOT NULL,
            thread_ts TEXT NOT NULL,
            joined_at TEXT NOT NULL,
            PRIMARY KEY (channel, thread_ts)
        );
        -- per agent-pane thread, what Slack says the user is looking at (Bolt's assistant thread context)
        CREATE TABLE slack_thread_contexts (
            channel TEXT NOT NULL,
            thread_ts TEXT NOT NULL,
            context TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            PRIMARY KEY (channel, thread_ts)
        );
        """,
    ),
]


class ThreadStore:
    """The threads Byline is part of."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        catalog.apply_migrations(MIGRATIONS)

    def join(self, channel: str, thread_ts: str) -> bool:
        """Record that Byline takes part in the thread; True when it had not before (its first question)."""
        with self.catalog.transaction() as db:
            added = db.execute(
                "INSERT INTO slack_threads (channel, thread_ts, joined_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                (channel, thread_ts, now_iso()),
            )
        return added > 0

    def knows(self, channel: str, thread_ts: str) -> bool:
        rows = self.catalog.fetch(
            "SELECT 1 FROM slack_threads WHERE channel = ? AND thread_ts = ?", (channel, thread_ts)
        )
        return bool(rows)


class CatalogThreadContextStore(AssistantThreadContextStore):
    """Bolt's assistant thread contexts, kept in the catalog.

    Bolt's default store writes the context into the bot's first reply of the thread with chat.update, which
    rewrites that message and fails while it is still streaming, and reads it back with conversations.replies
    on every message; the catalog is one local read, shared by every process on the home."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        catalog.apply_migrations(MIGRATIONS)

    def save(self, *, channel_id: str, thread_ts: str, context: dict[str, str]) -> None:
        with self.catalog.transaction() as db:
            db.execute(
                """INSERT INTO slack_thread_contexts (channel, thread_ts, context, updated_at) VALUES (?, ?, ?, ?)
                   ON CONFLICT(channel, thread_ts) DO UPDATE SET context = excluded.context,
                       updated_at = excluded.updated_at""",
                (channel_id, thread_ts, json.dumps(context), now_iso()),
            )

    def find(self, *, channel_id: str, thread_ts: str) -> AssistantThreadContext | None:
        rows = self.catalog.fetch(
            "SELECT context FROM slack_thread_contexts WHERE channel = ? AND thread_ts = ?", (channel_id, thread_ts)
        )
        if not rows:
            return None
        context = json.loads(rows[0][0])
        return AssistantThreadContext(context) if context.get("channel_id") else None
