"""The layers contract: prompts <- ingest <- bot <- evals, no cycles; import-linter checks it, and catches a breach."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from conftest import REPO

PACKAGES = ("prompts", "ingest", "bot", "evals")


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """Run import-linter with the project's contracts on the packages under `root`."""
    linter = Path(sys.executable).with_name("lint-imports")
    return subprocess.run(
        [str(linter), "--config", str(REPO / "pyproject.toml"), "--no-cache"],
        cwd=root,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
    )


def test_the_tree_keeps_every_contract() -> None:
    result = lint_imports(REPO)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "0 broken" in result.stdout


def test_an_upward_import_is_caught(tmp_path: Path) -> None:
    for package in PACKAGES:
        shutil.copytree(REPO / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    models = tmp_path / "ingest" / "models.py"
    models.write_text(models.read_text() + "\n\nfrom bot.models import Answer  # noqa: E402\n")
    result = lint_imports(tmp_path)
    assert result.returncode != 0
    assert "ingest is not allowed to import bot" in result.stdout
    assert "ingest.models -> bot.models" in result.stdout
