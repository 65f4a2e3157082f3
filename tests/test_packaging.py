"""The wheel a user installs (`pip install .`) carries every module and data file of the source tree."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ("bot", "ingest", "evals", "prompts")
NOT_SOURCE = shutil.ignore_patterns("__pycache__", "*.pyc")


@pytest.mark.slow
def test_the_wheel_carries_every_module_and_data_file(tmp_path: Path) -> None:
    source = tmp_path / "src"  # a clean copy: no build/ left over from an earlier build can hide a gap
    for folder in SHIPPED:
        shutil.copytree(ROOT / folder, source / folder, ignore=NOT_SOURCE)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(source),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("byline-*.whl")
    inside = set(zipfile.ZipFile(wheel).namelist())
    shipped = {
        str(path.relative_to(source)) for folder in SHIPPED for path in (source / folder).rglob("*") if path.is_file()
    }
    assert "bot/slack/app.py" in shipped and sorted(shipped - inside) == []
