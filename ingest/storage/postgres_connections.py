"""The PostgreSQL catalog's connections: a small pool shared by one process's threads.

Written here rather than taken from psycopg_pool: that pool keeps worker threads, which must be stopped by an
explicit `close()` (a pool dropped without one fails to join them), while Bylines are built and dropped freely,
by the CLI and in tests. This one has no threads: idle connections wait in a list, a connection left unused for a
while is checked with an empty query before it is handed out (so one the server or the network dropped is
replaced, not used), and whatever the last user left broken or mid-transaction is closed instead of kept.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from psycopg import Connection

# A connection idle longer than this is checked before use; one used moments ago is not (a question takes
# several connections in a row).
CHECK_AFTER_SECONDS = 2.0


class PoolExhausted(RuntimeError):
    """Every connection stayed busy for the whole wait."""


class ConnectionPool:
    """At most `size` connections made by `connect`, reused; `connection()` lends one for a block."""

    def __init__(self, connect: Callable[[], Connection[Any]], size: int, wait: float) -> None:
        self._connect = connect
        self._wait = wait
        self._size = size
        self._slots = threading.BoundedSemaphore(size)
        self._lock = threading.Lock()
        self._idle: list[tuple[float, Connection[Any]]] = []
        self._closed = False
        # Dropped without close(): its idle connections are closed all the same.
        self._finalizer = weakref.finalize(self, _close_all, self._idle)

    @contextmanager
    def connection(self) -> Iterator[Connection[Any]]:
        if not self._slots.acquire(timeout=self._wait):
            raise PoolExhausted(f"all {self._size} connections stayed busy for {self._wait:.0f} s")
        try:
            conn = self._take()
            try:
                yield conn
            finally:
                self._give_back(conn)
        finally:
            self._slots.release()

    def close(self) -> None:
        self._closed = True
        self._finalizer()

    def _take(self) -> Connection[Any]:
        import psycopg

        while True:
            with self._lock:
                if not self._idle:
                    break
                since, conn = self._idle.pop()
            if time.monotonic() - since < CHECK_AFTER_SECONDS:
                return conn
            try:
                conn.execute("")
                return conn
            except psycopg.Error:
                conn.close()  # dropped by the server or the network while idle
        return self._connect()

    def _give_back(self, conn: Connection[Any]) -> None:
        from psycopg.pq import TransactionStatus

        if self._closed or conn.closed or conn.broken or conn.info.transaction_status != TransactionStatus.IDLE:
            conn.close()
            return
        with self._lock:
            self._idle.append((time.monotonic(), conn))


def _close_all(idle: list[tuple[float, Connection[Any]]]) -> None:
    while idle:
        _, conn = idle.pop()
        conn.close()
