"""Crash safety, proved by force: the real `byline` CLI killed with SIGKILL at random points of first ingests,
update ingests and forgets on one home, at least 20 times, while a warm asker process asks throughout.

After every kill `doctor` looks (leftovers are allowed, marked); after every finished write the index must be
whole: catalog chunks = vectors = lexical rows, no orphans, nothing pending, every article where the writes put
it. The asker must never fail, and must find each newly added article soon after its ingest ends. The random
points come from a fixed seed (see tests/faults.py; tests/soak_index.py is the long run).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import SEED_JSONL
from faults import Run

pytestmark = pytest.mark.slow


@pytest.mark.timeout(900)
def test_kills_at_random_points_never_break_the_index_or_a_warm_asker(tmp_path: Path) -> None:
    records = [json.loads(line) for line in SEED_JSONL.read_text().splitlines()]
    work = tmp_path / "work"
    work.mkdir()
    figures = Run(tmp_path / "home", work, records, seed=20, verbose=True).run(kills=20, kill_share=0.9)
    print(json.dumps(figures.to_dict(), indent=1))

    assert figures.kills >= 20 and figures.kills_in_writes >= 10
    assert figures.unhealthy_after_write == []
    assert figures.lost == []
    assert figures.asks > 0 and figures.ask_errors == []
    assert figures.answerable_after and figures.never_answered == []
