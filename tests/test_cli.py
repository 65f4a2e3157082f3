"""The command line end to end through typer's runner: real files, real index, exit codes that mean something."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import SEED_ARTICLE
from typer.testing import CliRunner

from bot.cli.main import build_app

app = build_app()


@pytest.fixture
def runner(cli_runner: CliRunner) -> CliRunner:
    return cli_runner


def test_help_is_instant_and_imports_nothing_heavy() -> None:
    heavy = "('torch', 'chromadb', 'sentence_transformers', 'openvino', 'slack_bolt', 'langchain_openai')"
    code = (
        "import sys; from bot.cli.main import build_app; build_app(); "
        f"print(sorted(m for m in {heavy} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0 and "ingest" in result.output and "ask" in result.output


def test_ingest_ask_stats_forget(runner: CliRunner, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{oops")
    result = runner.invoke(app, ["ingest", str(SEED_ARTICLE), str(bad), "--json"])
    assert result.exit_code == 1, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["added"] == 1 and summary["failed"][0]["source"] == str(bad)

    result = runner.invoke(app, ["ask", "--json", "Why did Jack Dorsey call Ilhan Omar?"])
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert not answer["refused"] and answer["citations"][0]["path"] == str(SEED_ARTICLE)

    result = runner.invoke(app, ["ask", "Why did Jack Dorsey call Ilhan Omar?"])
    assert (
        result.exit_code == 0 and "Sources:" in result.stdout and "[1] Jack Dorsey called Ilhan Omar" in result.stdout
    )

    result = runner.invoke(app, ["stats", "--json"])
    assert json.loads(result.stdout)["articles"] == 1

    result = runner.invoke(app, ["forget", str(SEED_ARTICLE)])
    assert result.exit_code == 0 and "removed 1" in result.stdout


def test_clear_errors(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(app, ["ask", "   "])
    assert result.exit_code == 2 and "the question is empty" in result.stderr
    result = runner.invoke(app, ["ask", "Anything?"])
    assert result.exit_code == 1 and "no articles yet" in result.stderr
    result = runner.invoke(app, ["ask", "--since", "last week", "Anything?"])
    assert result.exit_code == 2 and "--since takes a date" in result.stderr
    result = runner.invoke(app, ["ingest"])
    assert result.exit_code == 2
    result = runner.invoke(app, ["forget", "nothing-by-this-name"])
    assert result.exit_code == 1 and "not found: nothing-by-this-name" in result.stderr


def test_settings_from_env_toml_and_flags(runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bot.settings import load_settings

    config = tmp_path / "byline.toml"
    config.write_text('answerer = "extractive"\n[retrieval]\nk = 9\nper_article = 4\n[answer]\nmax_sentences = 2\n')
    monkeypatch.setenv("BYLINE_RETRIEVAL_PER_ARTICLE", "3")
    settings = load_settings(config, answer={"max_sentences": 1})
    assert (settings.retrieval.k, settings.retrieval.per_article, settings.answer.max_sentences) == (9, 3, 1)
    config.write_text("[retrieval]\nnot_a_setting = 1\n")
    result = runner.invoke(app, ["--config", str(config), "stats"])
    assert result.exit_code == 2 and "retrieval.not_a_setting" in result.stderr


def test_broken_store_is_a_clear_error(runner: CliRunner, isolated_env: Path) -> None:
    isolated_env.mkdir(parents=True)
    (isolated_env / "catalog.sqlite").write_bytes(b"this is not a database" * 100)
    result = runner.invoke(app, ["ask", "Anything?"])
    assert result.exit_code == 1 and "cannot open the catalog" in result.stderr
