"""What keeps the Slack bot well-behaved: answer each message once, limit each user, bound the work."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor

from ingest.storage.catalog import Catalog, Migration

log = logging.getLogger(__name__)

DELIVERY_MIGRATIONS = [
    Migration.portable(
        "005_slack_deliveries",
        """
        -- Slack deliveries already taken (event id, client_msg_id, channel+ts), so each message is answered once
        -- across retries, restarts and several bot processes on one home; rows expire after an hour
        CREATE TABLE slack_deliveries (key TEXT PRIMARY KEY, seen_at REAL NOT NULL);
        CREATE INDEX slack_deliveries_seen ON slack_deliveries(seen_at);
        """,
    ),
]
RATE_MIGRATIONS = [
    Migration.portable(
        "008_slack_questions_asked",
        """
        -- when each user asked a question in the last minute: the per-user rate limit, shared by every bot process
        -- on one home; rows older than a minute are deleted as the limit is checked
        CREATE TABLE slack_questions_asked (user_id TEXT NOT NULL, asked_at REAL NOT NULL);
        CREATE INDEX slack_questions_asked_user ON slack_questions_asked(user_id, asked_at);
        """,
    ),
]


class Deduplicator:
    """Remembers delivery keys (event_id, client_msg_id, channel+ts) for `ttl` seconds, in the catalog.

    `first_time(keys)` is atomic, also between processes sharing the home: of two deliveries of one message
    arriving together, exactly one gets True — whether both reach this process, a second bot process (Socket
    Mode spreads events and their retries over connections), or this one after a restart. Slack retries for
    about five minutes after the first attempt, so the default keeps keys for an hour.
    """

    def __init__(self, catalog: Catalog, ttl: float = 3600.0, clock: Callable[[], float] = time.time) -> None:
        self.catalog = catalog
        self.ttl = ttl
        self._clock = clock
        catalog.apply_migrations(DELIVERY_MIGRATIONS)

    def first_time(self, keys: Iterable[str]) -> bool:
        keys = [k for k in keys if k]
        if not keys:
            return True
        now = self._clock()
        with self.catalog.transaction() as db:
            db.execute("DELETE FROM slack_deliveries WHERE seen_at < ?", (now - self.ttl,))
            # A key that is already there is a repeat; inserting every key in one transaction makes the check
            # atomic between processes (the database serialises the inserts of one key).
            fresh = [
                db.execute("INSERT INTO slack_deliveries (key, seen_at) VALUES (?, ?) ON CONFLICT DO NOTHING", (k, now))
                for k in keys
            ]
            return all(fresh)


class UserRateLimiter:
    """At most `per_minute` questions per user in any sliding minute, counted in the catalog so that the limit
    holds across every bot process sharing the home (and across restarts)."""

    def __init__(self, catalog: Catalog, per_minute: int, clock: Callable[[], float] = time.time) -> None:
        self.catalog = catalog
        self.per_minute = per_minute
        self._clock = clock
        catalog.apply_migrations(RATE_MIGRATIONS)

    def wait_seconds(self, user: str) -> int:
        """0 and the question is counted, or how many seconds until this user may ask again."""
        # One write transaction: of two processes counting the same user at once, the second sees the first's row.
        # The time is read once the transaction holds the write lock, so rows are counted in the order written.
        with self.catalog.transaction() as db:
            now = self._clock()
            db.execute("DELETE FROM slack_questions_asked WHERE asked_at <= ?", (now - 60,))
            asked: list[float] = [
                row[0]
                for row in db.fetch(
                    "SELECT asked_at FROM slack_questions_asked WHERE user_id = ? ORDER BY asked_at", (user,)
                )
            ]
            if len(asked) >= self.per_minute:
                # The user may ask again once enough of these are a minute old to leave room for one more.
                frees_at = float(asked[len(asked) - self.per_minute]) + 60
                return min(60, max(1, math.ceil(frees_at - now)))  # within bounds across processes' clocks
            db.execute("INSERT INTO slack_questions_asked (user_id, asked_at) VALUES (?, ?)", (user, now))
            return 0


class WorkerPool:
    """`workers` threads answering questions, and at most `backlog` more questions waiting for one.

    `drain` closes it (nothing new is taken) and waits for the jobs queued and under way; jobs a drain gives up
    on before they start get their `on_cancel` instead, so that nobody waits for an answer that never comes."""

    def __init__(self, workers: int, backlog: int) -> None:
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="byline-slack")
        self._capacity = workers + backlog
        self._pending = 0
        self._closed = False
        self._changed = threading.Condition()

    def submit(self, job: Callable[[], None], on_cancel: Callable[[], None] | None = None) -> bool:
        """Queue `job`; False (and nothing queued) when the pool is full or closed."""
        with self._changed:
            if self._closed or self._pending >= self._capacity:
                return False
            self._pending += 1
            future = self._executor.submit(_logged, job, "Slack job")
        future.add_done_callback(lambda done: self._finished(done, on_cancel))
        return True

    def _finished(self, future: Future[None], on_cancel: Callable[[], None] | None) -> None:
        if future.cancelled() and on_cancel is not None:
            _logged(on_cancel, "Telling a question's asker the drain gave up on it")
        with self._changed:
            self._pending -= 1
            self._changed.notify_all()

    def drain(self, timeout: float) -> bool:
        """Take nothing new; wait up to `timeout` seconds for every job; True when all of them ran. Past the
        deadline the jobs not yet started are cancelled (their `on_cancel` runs); those under way go on."""
        with self._changed:
            self._closed = True
            idle = self._changed.wait_for(lambda: self._pending == 0, timeout)
        self._executor.shutdown(wait=idle, cancel_futures=not idle)
        return idle


def _logged(job: Callable[[], None], what: str) -> None:
    try:
        job()
    except Exception:
        log.exception("%s failed", what)
