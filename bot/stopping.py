"""A stop request that a signal handler may raise, for the long-running commands (`watch`, the Slack bot).

Python runs a signal handler in the main thread between two bytecodes, wherever that thread is, so the handler must
not take a lock (the `signal` module's documentation warns of deadlocks): `threading.Event.set` takes the lock that
`Event.wait` holds around its bookkeeping, and a signal landing there hangs the process. A signal arriving just
before `Event.wait` blocks is not even seen until the wait times out (an hour for an idle `byline watch`). So the
flag is a plain attribute, and waiting is sleeping in short steps.
"""

from __future__ import annotations

import time

# How long a stop request can go unseen by a waiting thread.
STEP_SECONDS = 0.1


class StopFlag:
    """Set once, from any thread or a signal handler; read and waited on by the others."""

    def __init__(self) -> None:
        self._requested = False

    def set(self) -> None:
        self._requested = True  # one attribute store: atomic, and takes no lock

    def is_set(self) -> bool:
        return self._requested

    def wait(self, timeout: float | None = None) -> bool:
        """Sleep until set or `timeout` seconds pass (forever with None); returns whether it is set."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._requested:
            left = STEP_SECONDS if deadline is None else deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(STEP_SECONDS, left))
        return True
