"""What keeps the Slack bot well-behaved: answer each message once, limit each user, bound the work."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor

from ingest.storage.catalog import Catalog, Migration

log = logging.getLogger(__name__)

_DELIVERIES = """
        -- Slack deliveries already taken (event id, client_msg_id, channel+ts), so each message is answered once
        -- across retries, restarts and several bot processes on one home; rows expire after an hour
        CREATE TABLE slack_deliveries (key TEXT PRIMARY KEY, seen_at REAL NOT NULL);
        CREATE INDEX slack_deliveries_seen ON slack_deliveries(seen_at);
        """

MIGRATIONS = [
    Migration(
        "005_slack_deliveries",
        sqlite=_DELIVERIES,
        # PostgreSQL's REAL is single precision (epoch seconds would lose minutes): a double, as in SQLite.
        postgres=_DELIVERIES.replace("seen_at REAL", "seen_at double precision"),
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
        catalog.apply_migrations(MIGRATIONS)

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
    """At most `per_minute` questions per user in any sliding minute."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self._clock = clock
        self._asked: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def wait_seconds(self, user: str) -> int:
        """0 and the question is counted, or how many seconds until this user may ask again."""
        now = self._clock()
        with self._lock:
            times = self._asked.setdefault(user, deque())
            while times and times[0] <= now - 60:
                times.popleft()
            if len(times) >= self.per_minute:
                return max(1, int(times[0] + 60 - now + 0.999))
            times.append(now)
            return 0


class WorkerPool:
    """`workers` threads answering questions, and at most `backlog` more questions waiting for one."""

    def __init__(self, workers: int, backlog: int) -> None:
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="byline-slack")
        self._slots = threading.BoundedSemaphore(workers + backlog)

    def submit(self, job: Callable[[], None]) -> bool:
        """Queue `job`; False (and nothing queued) when the pool is full."""
        if not self._slots.acquire(blocking=False):
            return False

        def run() -> None:
            try:
                job()
            except Exception:
                log.exception("Slack job failed")
            finally:
                self._slots.release()

        self._executor.submit(run)
        return True

    def shutdown(self, wait: bool = True) -> None:
        self._executor.shutdown(wait=wait)
