"""Progress of long jobs: the pipeline's events (embedding progress as slices complete, not only inputs read), the
display's words, and `byline ingest` through a pseudo-terminal, where the count must move while embedding runs."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, SEED_JSONL
from typer.testing import CliRunner

from bot.app import Byline
from bot.cli.main import build_app
from bot.cli.progress import ProgressText
from ingest.progress import IngestProgress

DEV_ARTICLES = REPO / "evals" / "data" / "dev-wikinews-articles.jsonl"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
FRAME = re.compile(r"embedding .*? (\d+)/(\d+) articles · (\d+)/(\d+) chunks")


def event(stage: str = "embedding", **fields: object) -> IngestProgress:
    values: dict[str, object] = {
        "read": 171,
        "done": 0,
        "total": 171,
        "chunks_done": 0,
        "chunks_total": 522,
        "failed": 0,
        "label": "",
    }
    return IngestProgress(stage=stage, **(values | fields))  # type: ignore[arg-type]


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_display_says_stage_counts_rate_and_time_left() -> None:
    clock = Clock()
    text = ProgressText(clock=clock)
    clock.now += 0.5
    assert text.line(event("reading", read=57, chunks_total=0, label="Storm hits the coast")) == (
        "57/171 read · Storm hits the coast"
    )
    assert text.line(event(label="Storm hits the coast")) == "0/171 articles · 0/522 chunks · Storm hits the coast"
    clock.now += 10.0  # 200 chunks in 10 s of embedding; every input read, so the time left is the chunks left
    line = text.line(event(done=60, chunks_done=200, read_all=True, failed=2, label="A" * 60))
    assert line == "60/171 articles · 200/522 chunks · 2 failed · 20.0 chunks/s · ETA 0:16 · " + "A" * 39 + "…"
    clock.now += 1.0  # too few chunks after the first slice to leave it out: 210 chunks in 11 s
    assert "19.1 chunks/s" in text.line(event(done=63, chunks_done=210, read_all=True))
    clock.now += 4.0  # the first slice carried the model's start-up: the rate is now the later slices' alone
    line = text.line(event(done=171, chunks_done=522, read_all=True))
    assert "64.4 chunks/s" in line
    clock.now += 5.0  # writing is not embedding: the rate stays what it was, and nothing is left
    assert text.line(event("writing", done=171, chunks_done=522, read_all=True)) == (
        "171/171 articles · 522/522 chunks · 64.4 chunks/s"
    )


def test_without_a_total_the_display_keeps_a_running_count_and_the_pace_of_articles() -> None:
    clock = Clock()
    text = ProgressText(clock=clock)
    clock.now += 4.0
    line = text.line(event("reading", read=40, done=30, total=None, chunks_total=0, label="Feed entry"))
    assert line == "40 read · 7.5 articles/s · Feed entry"
    clock.now += 3600.0  # half done after an hour: an hour left
    assert "ETA 1:00:04" in text.line(event("reading", read=40, done=30, total=60, chunks_total=0))


@pytest.mark.slow
def test_the_pipeline_reports_chunks_as_they_are_embedded(byline: Byline) -> None:
    events: list[IngestProgress] = []
    report = byline.ingest([str(SEED_JSONL)], progress=events.append)
    assert report.added == 37 and events[-1].total == 37  # the JSONL lines were counted first
    embedding = [e for e in events if e.stage == "embedding"]
    partial = {e.chunks_done for e in embedding if 0 < e.chunks_done < report.chunks}
    assert partial, "no report between the first and the last chunk"  # the first slice is 64 chunks
    assert [e.chunks_done for e in events] == sorted(e.chunks_done for e in events)
    assert [e.done for e in events] == sorted(e.done for e in events)
    last = events[-1]
    assert (last.stage, last.done, last.chunks_done, last.chunks_total, last.read_all) == (
        "writing",
        37,
        report.chunks,
        report.chunks,
        True,
    )
    assert {e.stage for e in events} == {"reading", "embedding", "writing"}


@pytest.mark.slow
def test_unchanged_and_failed_inputs_count_as_done(byline: Byline, tmp_path: Path) -> None:
    byline.ingest([str(SEED_JSONL)])
    broken = tmp_path / "broken.jsonl"
    broken.write_text("{not json\n")
    events: list[IngestProgress] = []
    report = byline.ingest([str(SEED_JSONL), str(broken)], progress=events.append)
    assert (report.unchanged, len(report.failed)) == (37, 1)
    assert (events[-1].done, events[-1].total, events[-1].failed, events[-1].chunks_total) == (38, 38, 1, 0)


def test_piped_ingest_shows_no_progress(cli_runner: CliRunner, tmp_path: Path) -> None:
    story = tmp_path / "story.txt"
    story.write_text("Pier repairs\n\nThe pier repairs finish this week.")
    result = cli_runner.invoke(build_app(), ["ingest", str(story)])
    assert result.exit_code == 0, result.output
    assert result.stderr == "" and result.stdout.startswith("added 1, updated 0")


@pytest.mark.slow
def test_ingest_on_a_terminal_shows_the_count_moving_during_embedding(tmp_path: Path) -> None:
    """`byline ingest` of 65 articles under a pseudo-terminal: frames of the embedding stage show the chunk count
    moving before all chunks are embedded (the first slice is 64 of 195 chunks), then the summary line, and the
    display is gone after it."""
    master, slave = pty.openpty()
    env = {
        **os.environ,
        "BYLINE_HOME": str(tmp_path / "home"),
        "TERM": "xterm-256color",
        "COLUMNS": "160",
        "LINES": "40",
        "HF_HUB_OFFLINE": "1",
    }
    command = [str(Path(sys.executable).parent / "byline"), "ingest", str(DEV_ARTICLES)]
    process = subprocess.Popen(command, stdin=slave, stdout=slave, stderr=slave, env=env, cwd=REPO)
    os.close(slave)
    output = b""
    deadline = time.monotonic() + 280
    while time.monotonic() < deadline:
        try:
            data = os.read(master, 65536)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        output += data
    os.close(master)
    assert process.wait(timeout=30) == 0
    text = ANSI.sub("", output.decode(errors="replace"))
    summary = text.index("added 65, updated 0, unchanged 0, failed 0")
    frames = [m.groups() for m in FRAME.finditer(text[:summary])]
    assert frames, text[-2000:]
    chunks_total = int(frames[-1][3])
    before_the_end = {int(done) for _, _, done, _ in frames if int(done) < chunks_total}
    assert len(before_the_end) >= 2 and max(before_the_end) > 0, sorted(before_the_end)  # it moved, unfinished
    assert all(total == "65" for _, total, _, _ in frames)
    assert "embedding" not in text[summary:]
