"""The live progress display of long jobs (`ingest`, feed polls in `watch`, `eval --articles`, `reindex`): the
ingest pipeline's `IngestProgress` events drawn on stderr, or nothing at all when stderr is not a terminal.

    embedding ━━━━━━━━╸━━━━━━━━━━━━━━━ 64/171 articles · 217/522 chunks · 37.7 chunks/s · ETA 0:08 · Hong Kong…

The stage (reading, embedding, writing); articles done of the total when it was counted, or the running count
(while reading: inputs read); chunks embedded of those chunked so far; the rate (chunks a second while
embedding, articles a second otherwise); with a total, the time left. The display is transient: the command's
summary line takes its place.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ingest.progress import IngestProgress, Progress

_LABEL_CHARS = 40
# Seconds before an articles-a-second rate or an ETA from it is shown: the first readings say nothing.
_SETTLE_SECONDS = 1.0
# Chunks embedded after the first slice before the rate leaves that slice out.
_STEADY_CHUNKS = 32


@dataclass
class ProgressText:
    """The words of the display for each event in turn. The chunk rate counts only time spent embedding (an
    embedding event reports a slice that began at the event before it), and leaves out the first slice once
    enough chunks are timed after it: that slice carries the model's start-up, which is not to come again. The
    time left is the chunks left at that rate once every input is read and chunked, else the inputs left at the
    pace of those done."""

    clock: Callable[[], float] = time.monotonic
    started: float = field(default=0.0, init=False)
    last: tuple[float, str, int] = field(default=(0.0, "", 0), init=False)  # (time, stage, chunks done)
    first_slice: tuple[float, int] | None = field(default=None, init=False)  # (seconds, chunks)
    embed_seconds: float = field(default=0.0, init=False)  # after the first slice
    embed_chunks: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self.started = self.clock()
        self.last = (self.started, "", 0)

    def line(self, event: IngestProgress) -> str:
        now = self.clock()
        before, stage, chunks = self.last
        if stage == "embedding" and event.chunks_done > chunks:
            if self.first_slice is None:
                self.first_slice = (now - before, event.chunks_done - chunks)
            else:
                self.embed_seconds += now - before
                self.embed_chunks += event.chunks_done - chunks
        self.last = (now, event.stage, event.chunks_done)
        # while reading, how many inputs are read (the bar shows those done, embedded or skipped)
        count, unit = (event.read, "read") if event.stage == "reading" else (event.done, "articles")
        parts = [f"{count:,}/{event.total:,} {unit}" if event.total is not None else f"{count:,} {unit}"]
        if event.chunks_total:
            parts.append(f"{event.chunks_done:,}/{event.chunks_total:,} chunks")
        if event.failed:
            parts.append(f"{event.failed:,} failed")
        chunk_rate = self._chunk_rate()
        elapsed = now - self.started
        if chunk_rate:
            parts.append(f"{chunk_rate:.1f} chunks/s")
        elif event.done and elapsed >= _SETTLE_SECONDS:
            parts.append(f"{event.done / elapsed:.1f} articles/s")
        left: float | None = None
        if event.read_all and chunk_rate:
            left = (event.chunks_total - event.chunks_done) / chunk_rate
        elif event.total and event.done and elapsed >= _SETTLE_SECONDS:
            left = (event.total - event.done) * elapsed / event.done
        if left is not None and (event.total is None or event.done < event.total):
            parts.append(f"ETA {_clock_time(left)}")
        if event.label:
            label = " ".join(event.label.split())
            parts.append(label if len(label) <= _LABEL_CHARS else label[: _LABEL_CHARS - 1] + "…")
        return " · ".join(parts)

    def _chunk_rate(self) -> float:
        if self.first_slice is None:
            return 0.0
        if self.embed_chunks >= _STEADY_CHUNKS and self.embed_seconds:
            return self.embed_chunks / self.embed_seconds
        seconds, chunks = self.first_slice
        seconds += self.embed_seconds
        return (chunks + self.embed_chunks) / seconds if seconds else 0.0


def _clock_time(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def ingest_display() -> AbstractContextManager[Progress | None]:
    """The progress callback to hand an ingest, drawn live on stderr while the context is open; None (no display,
    and no counting of inputs beforehand) when stderr is not a terminal."""
    return _live() if sys.stderr.isatty() else nullcontext(None)


@contextmanager
def _live() -> Iterator[Progress]:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn

    text = ProgressText()
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description:<9}"),
        BarColumn(bar_width=24),
        TextColumn("{task.fields[line]}"),
        console=Console(stderr=True),
        transient=True,
        refresh_per_second=8,
    ) as display:
        task = display.add_task("starting", total=None, line="")

        def show(event: IngestProgress) -> None:
            total = event.total if event.total else None
            display.update(task, description=event.stage, total=total, completed=event.done, line=text.line(event))

        yield show
