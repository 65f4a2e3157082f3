"""`make demo` as a new user runs it: the seed articles ingested, cited answers, a refusal, and where to go next."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def test_make_demo_answers_refuses_and_says_where_the_index_is_and_how_to_go_on(tmp_path: Path) -> None:
    if shutil.which("make") is None:
        pytest.skip("no make on this machine")
    if subprocess.run(["make", "-q", "install"], cwd=REPO, capture_output=True).returncode != 0:
        pytest.skip("the virtualenv is not installed from this pyproject.toml (run `make install` first)")
    home = tmp_path / "home"
    env = {**os.environ, "BYLINE_HOME": str(home), "COLUMNS": "100"}
    done = subprocess.run(["make", "demo"], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    assert "added 38" in out  # the seed articles, ingested into the home the user chose
    assert "Twitter CEO Jack Dorsey reportedly called Rep. Ilhan Omar" in out and "[1]" in out
    assert "Answer: James Peebles and the duo of Didier Queloz and Michel Mayor" in out
    assert "I couldn't find that in the ingested articles." in out  # the 2018 World Cup is in no seed article
    assert f"The index is in {home}" in out
    assert 'Go on:  source .venv/bin/activate; byline ask "your question"' in out
    assert "setuptools" not in done.stdout + done.stderr  # the install stays quiet
