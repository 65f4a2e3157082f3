"""`byline watch`: poll every followed feed on its schedule and ingest what is new or changed.

One feed or page failing is logged and retried on the next round; a stop request (Ctrl-C, SIGTERM) is honoured
between articles, leaving every article either fully indexed or untouched. Several watches may run on one
catalog (on machines sharing PostgreSQL): each feed is polled by one of them at a time (a catalog lock per feed).
"""

from __future__ import annotations

import hashlib
import logging
import re
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from types import FrameType
from typing import TYPE_CHECKING

from bot.stopping import STEP_SECONDS, StopFlag
from ingest.web.state import Feed, WebState

if TYPE_CHECKING:
    from bot.app import Byline
    from ingest.loaders import LoadResult
    from ingest.pipeline import IngestReport
    from ingest.progress import ProgressDisplay
    from ingest.web.loader import FeedPoll

log = logging.getLogger(__name__)

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(d|h|m|s)", re.IGNORECASE)
_SECONDS = {"d": 86400, "h": 3600, "m": 60, "s": 1}


def parse_duration(text: str) -> float:
    """'15m', '1h30m', '90s', '2d' or plain seconds -> seconds; ValueError otherwise."""
    value = text.strip().lower()
    try:
        seconds = float(value)
    except ValueError:
        parts = _DURATION.findall(value)
        if not parts or _DURATION.sub("", value).strip():
            raise ValueError(f"not a duration: {text!r} (try 15m, 1h, 90s)") from None
        seconds = sum(float(n) * _SECONDS[unit] for n, unit in parts)
    if seconds <= 0:
        raise ValueError(f"a duration must be positive, not {text!r}")
    return seconds


@dataclass(frozen=True, slots=True)
class FeedOutcome:
    """One poll of one feed, as `watch` reports it."""

    url: str
    poll: FeedPoll | None
    report: IngestReport | None
    error: str | None = None

    def describe(self) -> str:
        if self.error or self.poll is None or self.report is None:
            return f"{self.url}: failed: {self.error}"
        poll, report = self.poll, self.report
        if poll.error:
            return f"{self.url}: failed: {poll.error}"
        if poll.not_modified:
            return f"{self.url}: not modified"
        line = (
            f"{self.url}: {poll.entries} entries, {poll.known} already indexed; added {report.added}, "
            f"updated {report.updated}, unchanged {report.unchanged}, failed {len(report.failed)}"
        )
        if poll.forgotten:
            line += f"; {poll.forgotten} forgotten with `byline forget`, left out"
        return line + (f"; {poll.deferred} left for the next poll" if poll.deferred else "")


class Watcher:
    """Polls the followed feeds of one Byline; `run` loops until `stop` is set. Each feed's ingest reports to
    a progress display opened by `display` (none by default)."""

    def __init__(
        self,
        byline: Byline,
        *,
        every: float | None = None,
        stop: StopFlag | None = None,
        echo: Callable[[str], None] = print,
        display: ProgressDisplay = lambda: nullcontext(None),
    ) -> None:
        self.byline = byline
        self.display = display
        self.settings = byline.settings.web
        self.every = every or self.settings.poll_interval
        self.stop = stop or StopFlag()
        self.echo = echo
        self.state = WebState(byline.catalog)

    def due(self, now: float) -> list[Feed]:
        return [f for f in self.state.feeds() if f.due_at(self.every) <= now]

    def poll_round(self, *, everything: bool = False) -> list[FeedOutcome]:
        """Poll the feeds that are due (all of them with `everything`), one after the other; a feed another
        watch is polling, or polled since this round began, is left to it."""
        feeds = self.state.feeds() if everything else self.due(time.time())
        outcomes = []
        for feed in feeds:
            if self.stop.is_set():
                break
            outcome = self._poll_alone(feed, everything)
            if outcome is None:
                continue
            self.echo(outcome.describe())
            for failure in outcome.report.failed if outcome.report else []:
                self.echo(f"  failed: {failure.source}: {failure.reason}")
            outcomes.append(outcome)
        return outcomes

    def _poll_alone(self, feed: Feed, everything: bool) -> FeedOutcome | None:
        """Poll `feed` holding its lock, which every watch sharing the catalog (on any machine) takes; None when
        another watch holds it, or polled the feed since it was listed."""
        with self.byline.catalog.lock(feed_lock(feed.url), blocking=False) as mine:
            if not mine:
                self.echo(f"{feed.url}: another watch is polling it")
                return None
            now = self.state.feed(feed.url)
            if now is None or (not everything and now.last_polled != feed.last_polled):
                return None  # unfollowed, or just polled by another watch
            return self.poll(feed.url)

    def poll(self, url: str) -> FeedOutcome:
        """One feed through the ingest pipeline; any error is caught, recorded and reported."""
        from ingest.web.loader import WebLoader

        try:
            with WebLoader(
                self.settings,
                self.state,
                self.byline.store.indexed_hashes,
                outlets=self.byline.outlets,
                should_stop=self.stop.is_set,
            ) as loader:
                load = loader.load_feed(url, followed=True)
                with self.display() as progress:
                    report = self.byline.ingest_results(_until(load, self.stop), progress)
            return FeedOutcome(url, load.poll, report)
        except Exception as exc:  # one broken feed must not stop the others
            log.exception("polling %s failed", url)
            reason = f"{type(exc).__name__}: {exc}"
            self.state.record_poll(url, error=reason)
            return FeedOutcome(url, None, None, reason)

    def run(self, *, rounds: int | None = None) -> int:
        """Poll on schedule until stopped (or for `rounds` rounds); returns the number of rounds run."""
        done = 0
        while not self.stop.is_set() and (rounds is None or done < rounds):
            self.poll_round()
            done += 1
            if rounds is not None and done >= rounds:
                break
            feeds = self.state.feeds()
            next_due = min((f.due_at(self.every) for f in feeds), default=time.time() + self.every)
            self.stop.wait(max(1.0, min(next_due - time.time(), self.every)))
        return done


def feed_lock(url: str) -> str:
    """The catalog lock a watch holds while it polls a feed (a name safe for any backend)."""
    return "feed-" + hashlib.sha256(url.encode()).hexdigest()[:16]


def _until(results: Iterable[LoadResult], stop: StopFlag) -> Iterator[LoadResult]:
    """Stop handing articles to the pipeline once a stop is requested; what it holds is still written."""
    for result in results:
        yield result
        if stop.is_set():
            return


@contextmanager
def stop_on_signals(stop: StopFlag, echo: Callable[[str], None]) -> Iterator[None]:
    """SIGINT and SIGTERM set `stop` (a second SIGINT interrupts at once); handlers restored afterwards.

    The handler only sets flags: one that prints from the main thread could land inside another print there, and
    the stream refuses the reentrant call. A helper thread says that the stop was heard.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []

    def request_stop(signum: int, frame: FrameType | None) -> None:
        if stop.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        received.append(signum)
        stop.set()

    def announce() -> None:
        while not (stop.is_set() or left.is_set()):
            time.sleep(STEP_SECONDS)
        if received:
            name = signal.Signals(received[0]).name
            echo(f"{name}: stopping after the current article (Ctrl-C again to abort)")

    left = StopFlag()
    announcer = threading.Thread(target=announce, name="stop-announcer", daemon=True)
    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    announcer.start()
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        left.set()
        announcer.join()
