"""How far an ingest has got: the events the pipeline reports, and the bookkeeping that makes them.

Nothing here draws: a front end turns the events into a display (the CLI's is `bot/cli/progress.py`).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from itertools import accumulate
from typing import Literal

Stage = Literal["reading", "embedding", "writing"]

# While progress is reported, chunks are embedded in slices sized to take about this long, each sized by the
# speed of the one before, so a display moves every few seconds. Smaller slices would cost throughput: the model
# runs batches in parallel, and each slice drains that pipeline.
_SLICE_SECONDS = 2.0
_FIRST_SLICE = 64
_SLICE_LIMITS = (64, 1024)  # at most what is embedded at once without progress (the pipeline's write batch)


@dataclass(frozen=True, slots=True)
class IngestProgress:
    """One report of an ingest's progress."""

    stage: Stage
    read: int  # inputs read so far: articles and failures
    done: int  # inputs finished: embedded (and being written, or written), unchanged or failed
    total: int | None  # inputs expected, when they were counted first
    chunks_done: int  # chunks embedded, or whose earlier vectors were kept
    chunks_total: int  # chunks of the articles chunked so far (unchanged ones are not chunked)
    failed: int
    label: str  # the latest input: an article's title, or a failure's source
    read_all: bool = False  # every input has been read and chunked: `chunks_total` is final


Progress = Callable[[IngestProgress], None]
# What a front end hands a long job: opens a display and gives the callback to report to, or None for none.
ProgressDisplay = Callable[[], AbstractContextManager[Progress | None]]


@dataclass
class Reading:
    """How far the reading side (a thread of its own) has got. It writes these, the tracker only reads them."""

    count: int = 0  # inputs read
    latest: str = ""  # the latest input's label
    chunks: int = 0  # chunks of the articles chunked so far
    finished: bool = False  # every input read and chunked


class ProgressTracker:
    """Counts what the pipeline has done and tells `report` after each step; also sizes embedding slices."""

    def __init__(self, report: Progress, total: int | None, reading: Reading) -> None:
        self.report = report
        self.total = total
        self.reading = reading
        self.done = 0
        self.failed = 0
        self.chunks_done = 0
        self.slice = _FIRST_SLICE

    def emit(self, stage: Stage, label: str | None = None) -> None:
        reading = self.reading
        self.report(
            IngestProgress(
                stage=stage,
                read=reading.count,
                done=self.done,
                total=self.total,
                chunks_done=self.chunks_done,
                chunks_total=reading.chunks,
                failed=self.failed,
                label=reading.latest if label is None else label,
                read_all=reading.finished,
            )
        )

    def skipped(self, unchanged: int, failed: int) -> None:
        """Inputs finished without embedding: unchanged articles and failures."""
        self.done += unchanged + failed
        self.failed += failed
        self.emit("reading")

    def batch(self, titles: list[str], chunk_counts: list[int]) -> BatchProgress:
        """A batch of articles (their titles and chunk counts) is about to be embedded."""
        batch = BatchProgress(self, titles, chunk_counts)
        self.emit("embedding", batch.label)
        return batch

    def timed(self, chunks: int, seconds: float) -> None:
        """The next slice's size, from the speed of the last one."""
        if chunks and seconds > 0:
            wanted = round(chunks * _SLICE_SECONDS / seconds)
            self.slice = min(max(wanted, _SLICE_LIMITS[0]), _SLICE_LIMITS[1])


class BatchProgress:
    """A batch of articles being embedded: an article is done once all its chunks are."""

    def __init__(self, tracker: ProgressTracker, titles: list[str], chunk_counts: list[int]) -> None:
        self.tracker = tracker
        self.titles = titles
        self.ends = list(accumulate(chunk_counts))
        self.handled = 0
        self.finished = 0

    @property
    def label(self) -> str:
        """The title of the article being embedded."""
        return self.titles[min(self.finished, len(self.titles) - 1)] if self.titles else ""

    def embedded(self, handled: int, chunks: int, seconds: float) -> None:
        """Chunks before index `handled` of the batch are embedded or kept, the last `chunks` of them in
        `seconds`: count them and the articles they complete, and report."""
        self._count(handled)
        self.tracker.timed(chunks, seconds)
        self.tracker.emit("embedding", self.label)

    def writing(self) -> None:
        self._count(self.ends[-1] if self.ends else 0)
        self.tracker.emit("writing", "")

    def _count(self, handled: int) -> None:
        tracker = self.tracker
        finished = bisect_right(self.ends, handled)
        tracker.chunks_done += handled - self.handled
        tracker.done += finished - self.finished
        self.handled, self.finished = handled, finished
