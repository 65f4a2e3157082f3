"""The stop flag behind `byline watch` and the Slack bot's SIGTERM/Ctrl-C handling."""

from __future__ import annotations

import sys
import threading
import time
from types import FrameType
from typing import Any

from bot.stopping import StopFlag


def test_a_stop_requested_anywhere_inside_wait_is_seen_at_once() -> None:
    """A signal handler runs in the main thread wherever the signal lands, including inside `wait`; a profile hook
    sets the flag at each point of the waiting thread in turn, as such a handler would. (`threading.Event` fails
    this: set inside its own `wait` it deadlocks, or goes unseen until the wait times out.)"""
    for nth_event in range(1, 13):
        assert _sees_stop_set_at(nth_event), f"a stop set at the waiting thread's profile event {nth_event} was lost"


def _sees_stop_set_at(nth_event: int) -> bool:
    """Whether `wait` returns True within 5 s when the flag is set at the waiting thread's `nth_event` profile
    event."""
    flag = StopFlag()
    events = 0
    seen: list[bool] = []

    def set_at_nth_event(frame: FrameType, event: str, arg: Any) -> None:
        nonlocal events
        events += 1
        if events == nth_event:
            flag.set()

    def wait() -> None:
        sys.setprofile(set_at_nth_event)
        try:
            seen.append(flag.wait(30))
        finally:
            sys.setprofile(None)

    waiter = threading.Thread(target=wait, daemon=True)
    waiter.start()
    waiter.join(5)
    return seen == [True]


def test_wait_times_out_unset_and_returns_at_once_when_set() -> None:
    flag = StopFlag()
    started = time.monotonic()
    assert flag.wait(0.25) is False
    assert 0.25 <= time.monotonic() - started < 5
    threading.Timer(0.1, flag.set).start()
    assert flag.wait(30) is True and flag.is_set()
    assert flag.wait(0) is True
