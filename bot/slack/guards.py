"""What keeps the Slack bot well-behaved: answer each message once, limit each user, bound the work."""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor

log = logging.getLogger(__name__)


class Deduplicator:
    """Remembers delivery keys (event_id, client_msg_id, channel+ts) for `ttl` seconds.

    `first_time(keys)` is atomic: of two deliveries of one message arriving together, exactly one gets True.
    Slack retries for about five minutes after the first attempt, so the default keeps keys for an hour.
    The memory is per process: several instances behind a load balancer need a shared store instead.
    """

    def __init__(
        self, ttl: float = 3600.0, max_keys: int = 100_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl = ttl
        self.max_keys = max_keys
        self._clock = clock
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def first_time(self, keys: Iterable[str]) -> bool:
        keys = [k for k in keys if k]
        now = self._clock()
        with self._lock:
            self._expire(now)
            if any(k in self._seen for k in keys):
                return False
            for k in keys:
                self._seen[k] = now
            return True

    def _expire(self, now: float) -> None:
        while self._seen and (len(self._seen) > self.max_keys or next(iter(self._seen.values())) < now - self.ttl):
            self._seen.popitem(last=False)


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
