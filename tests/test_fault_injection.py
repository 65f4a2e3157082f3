"""Crash safety, proved by force: the real `byline` CLI killed with SIGKILL at random points of first ingests,
update ingests and forgets on one home, at least 20 times, while a warm asker process asks throughout.

After every kill `doctor` looks (leftovers are allowed, marked); after every finished write the index must be
whole: catalog chunks = vectors = lexical rows, no orphans, nothing pending, every article where the writes put
it. The asker must never fail, and must find each newly added article soon after its ingest ends. The random
points come from a fixed seed (see tests/faults.py; tests/soak_index.py is the long run). It runs on both
catalogs: SQLite with 20 kills, PostgreSQL (the same protocol through the other catalog) with 10.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from catalog_backends import on_both_catalogs
from conftest import SEED_JSONL
from faults import Run

pytestmark = pytest.mark.slow


@pytest.mark.timeout(900)
@on_both_catalogs
def test_kills_at_random_points_never_break_the_index_or_a_warm_asker(tmp_path: Path, database_url: str | None) -> None:
    records = [json.loads(line) for line in SEED_JSONL.read_text().splitlines()]
    work = tmp_path / "work"
    work.mkdir()
    kills = 10 if database_url else 20
    figures = Run(tmp_path / "home", work, records, seed=20, verbose=True).run(kills=kills, kill_share=0.9)
    print(json.dumps(figures.to_dict(), indent=1))

    assert figures.kills >= kills and figures.kills_in_writes >= kills // 2
    assert figures.unhealthy_after_write == []
    assert figures.lost == []
    assert figures.asks > 0 and figures.ask_errors == []
    assert figures.answerable_after and figures.never_answered == []
