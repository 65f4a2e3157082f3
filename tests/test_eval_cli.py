"""`byline eval` end to end on a tiny set over three seed articles, a tiny BEIR directory, and its gate."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from conftest import SEED_ARTICLE, SEED_JSONL, eval_outputs
from typer.testing import CliRunner

from bot.app import Byline
from bot.cli.main import build_app
from bot.settings import Settings
from evals.datasets import load_questions
from evals.report import compare_with_baseline
from evals.runner import resolve_gold, run_questions, throwaway_settings

app = build_app()

REPO = Path(__file__).resolve().parents[1]
# Notre Dame fire, Kipchoge's marathon, and The Hill article (evidence by path).
TINY_IDS = ("seed-045", "seed-046", "seed-047", "seed-120", "seed-139", "seed-143")
NOTRE_DAME = "https://en.wikinews.org/wiki/Notre_Dame_in_Paris_catches_fire"
KIPCHOGE = "https://en.wikinews.org/wiki/Eliud_Kipchoge_of_Kenya_runs_marathon_under_two_hours"
# Extra fields a set may give: two kinds, so the run reports per kind, and free-form tags and notes.
TINY_META: dict[str, dict[str, Any]] = {
    "seed-045": {"kind": "number", "tags": ["conversational"]},
    "seed-047": {"kind": "number"},
    "seed-143": {"kind": "duration", "notes": "the call's length is not reported"},
}


@pytest.fixture
def runner(cli_runner: CliRunner) -> CliRunner:
    return cli_runner


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    """tmp/set.jsonl (questions from the shipped seed set) and tmp/articles/ (their three articles)."""
    articles = tmp_path / "articles"
    articles.mkdir()
    shutil.copy(SEED_ARTICLE, articles / SEED_ARTICLE.name)
    records = [json.loads(line) for line in SEED_JSONL.read_text().splitlines()]
    kept = [r for r in records if r["url"] in (NOTRE_DAME, KIPCHOGE)]
    (articles / "wikinews.jsonl").write_text("".join(json.dumps(r) + "\n" for r in kept))
    lines = []
    for line in (REPO / "evals" / "data" / "seeds.jsonl").read_text().splitlines():
        question = json.loads(line)
        if question["id"] in TINY_IDS:
            question.update(TINY_META.get(question["id"], {}))
            for ev in question["evidence"]:
                assert ev.get("url") in (NOTRE_DAME, KIPCHOGE) or ev.get("path") == "seeds/" + SEED_ARTICLE.name
                if "path" in ev:  # relative to the set's folder here, as it is relative to the repo there
                    ev["path"] = f"articles/{SEED_ARTICLE.name}"
            lines.append(json.dumps(question))
    assert len(lines) == len(TINY_IDS)
    (tmp_path / "set.jsonl").write_text("\n".join(lines) + "\n")
    return tmp_path


def _invoke(runner: CliRunner, *args: str) -> Any:
    return runner.invoke(app, ["eval", *args])


@pytest.mark.slow
def test_eval_own_set_writes_every_output(runner: CliRunner, tiny: Path, isolated_env: Path) -> None:
    out = tiny / "out"
    result = _invoke(runner, str(tiny / "set.jsonl"), "--articles", str(tiny / "articles"), *eval_outputs(out))
    assert result.exit_code == 0, result.output
    assert "evidence_hits@5" in result.stdout and "6 of 6 scored" in result.stdout

    saved = json.loads((out / "result.json").read_text())
    metrics, config = saved["metrics"], saved["config"]
    for name in ("hits@1", "hits@5", "mrr@10", "evidence_hits@5", "answer_accuracy", "answer_f1"):
        assert 0.0 <= metrics[name] <= 1.0, name
    for name in ("citation_precision", "citation_recall", "refusal_recall", "latency_retrieve_p50_ms"):
        assert name in metrics
    # Three articles, ten passages: every answerable question's article is retrieved (the Hill one by path).
    assert metrics["hits@10"] == 1.0
    assert config["articles"] == 3 and config["answerable"] == 4 and config["unresolved_evidence"] == []
    assert config["store"] == "throwaway" and config["retrieval"]["k"] == config["k"]

    predictions = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert [p["id"] for p in predictions] == list(TINY_IDS)
    for p in predictions:
        assert {"id", "question", "answer", "short_answer", "refused", "citations", "passages"} <= p.keys()
        assert 0 < len(p["passages"]) <= 10
        for citation in p["citations"]:
            assert {"n", "article_id", "quote", "start", "end"} <= citation.keys()
    hill = next(p for p in predictions if p["id"] == "seed-139")
    assert hill["evidence_rank"] is not None
    by_id = {p["id"]: p for p in predictions}
    assert by_id["seed-045"]["kind"] == "number" and by_id["seed-045"]["tags"] == ["conversational"]
    assert by_id["seed-143"]["notes"].startswith("the call") and "kind" not in by_id["seed-139"]

    # Per kind: every metric, over the questions of that kind only.
    kinds = saved["by_kind"]
    assert list(kinds) == ["number", "duration"]
    assert [(k["questions"], k["answerable"]) for k in kinds.values()] == [(2, 1), (1, 0)]
    assert kinds["number"]["metrics"].keys() == metrics.keys()
    assert kinds["number"]["metrics"]["answer_accuracy"] == float(by_id["seed-045"]["correct"])
    assert kinds["number"]["metrics"]["refusal_recall"] == float(by_id["seed-047"]["refused"])
    assert kinds["duration"]["metrics"]["answer_accuracy"] is None
    assert "per kind" in result.stdout and "duration" in result.stdout and "(1)" in result.stdout

    report = (out / "report" / "report.md").read_text()
    assert "## Misses" in report and "| hits@10 | 1.000 |" in report
    assert "## Per kind" in report and "| metric | number (2) | duration (1) |" in report
    assert (out / "report" / "metrics.png").read_bytes().startswith(b"\x89PNG")
    # The throwaway store left the configured home untouched.
    assert not isolated_env.exists() or not any(isolated_env.iterdir())


@pytest.mark.slow
def test_baseline_gate_passes_within_tolerance_and_fails_on_a_drop(runner: CliRunner, tiny: Path) -> None:
    lower = tiny / "lower.json"
    lower.write_text(json.dumps({"metrics": {"hits@10": 0.99, "latency_total_p50_ms": 0.001}, "config": {}}))
    args = [str(tiny / "set.jsonl"), "--articles", str(tiny / "articles"), "--limit", "1"]
    result = _invoke(runner, *args, "--baseline", str(lower), "--tolerance", "0.02")
    assert result.exit_code == 0, result.output

    higher = tiny / "higher.json"
    higher.write_text(json.dumps({"metrics": {"hits@10": 1.0, "answer_accuracy": 1.5}, "config": {}}))
    result = _invoke(runner, *args, "--baseline", str(higher), "--json", str(tiny / "r.json"))
    assert result.exit_code == 1, result.output
    assert "regressed by more than 0.02 against the baseline: answer_accuracy" in result.stderr
    assert "REGRESSED" in result.stdout
    assert (tiny / "r.json").exists(), "the measured result is still written"


@pytest.mark.slow
def test_eval_beir_reports_document_level_metrics(runner: CliRunner, tmp_path: Path) -> None:
    beir = tmp_path / "beir"
    (beir / "qrels").mkdir(parents=True)
    docs = {
        "d1": ("Volcanoes", "Lava from the Kilauea eruption fed a bloom of phytoplankton in the ocean."),
        "d2": ("Marathons", "Eliud Kipchoge ran a marathon in under two hours in Vienna."),
        "d3": ("Cathedrals", "The roof and spire of Notre Dame cathedral in Paris burned."),
        "d4": ("Penguins", "Male Magellanic penguins wait for their mates at the breeding colony."),
    }
    (beir / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": i, "title": t, "text": x}) + "\n" for i, (t, x) in docs.items())
    )
    queries = [("q1", "Who ran a marathon in less than two hours?"), ("q2", "Which Paris church caught fire?")]
    (beir / "queries.jsonl").write_text("".join(json.dumps({"_id": i, "text": t}) + "\n" for i, t in queries))
    (beir / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td2\t1\nq2\td3\t1\n")

    result = _invoke(runner, "--beir", str(beir), "--json", str(tmp_path / "beir.json"))
    assert result.exit_code == 0, result.output
    saved = json.loads((tmp_path / "beir.json").read_text())
    assert saved["metrics"]["ndcg@10"] == 1.0 and saved["metrics"]["mrr@10"] == 1.0
    assert saved["metrics"]["recall@10"] == 1.0 and saved["metrics"]["recall@100"] == 1.0
    assert saved["config"]["documents"] == 4 and saved["config"]["scored"] == 2


def test_usage_errors_are_clear_and_exit_2(runner: CliRunner, tiny: Path) -> None:
    result = _invoke(runner, str(tiny / "set.jsonl"))
    assert result.exit_code == 2 and "--articles FILE|DIR" in result.stderr
    result = _invoke(runner)
    assert result.exit_code == 2 and "give a question set" in result.stderr
    result = _invoke(runner, "--beir", str(tiny), "--store")
    assert result.exit_code == 2 and "drop --articles/--store" in result.stderr
    bad = tiny / "bad.jsonl"
    bad.write_text('{"id": "x", "question": "?", "answerable": true, "answers": [], "evidence": []}\n')
    result = _invoke(runner, str(bad), "--store")
    assert result.exit_code == 2 and f"{bad}:1: an answerable question needs" in result.stderr
    result = _invoke(runner, "--beir", str(tiny))
    assert result.exit_code == 2 and "corpus.jsonl: missing" in result.stderr
    (tiny / "notjson.json").write_text("{")
    result = _invoke(runner, str(tiny / "set.jsonl"), "--store", "--baseline", str(tiny / "notjson.json"))
    assert result.exit_code == 2 and "the baseline is not JSON" in result.stderr


@pytest.mark.slow
def test_ctrl_c_keeps_what_was_measured(byline: Byline, tiny: Path) -> None:
    report = byline.ingest([str(tiny / "articles")])
    assert report.articles == 3
    questions = load_questions(tiny / "set.jsonl")
    gold, unresolved = resolve_gold(byline, questions, [tiny])
    assert not unresolved

    def interrupt_after_two(done: int, total: int | None, label: str) -> None:
        if done == 2:
            raise KeyboardInterrupt  # as Ctrl-C would, between two questions

    result = run_questions(byline, questions, gold, progress=interrupt_after_two)
    assert result.interrupted and result.config["scored"] == 2 and len(result.predictions) == 2
    assert result.metrics["hits@10"] == 1.0  # computed over the two scored questions


def test_baseline_comparison_rounds_as_saved_skips_latency_and_flags_lost_metrics() -> None:
    baseline = {"hits@5": 0.9, "mrr@10": 0.5, "answer_accuracy": 0.7, "latency_total_p50_ms": 1.0}
    current = {"hits@5": 0.900004, "mrr@10": 0.4799, "answer_accuracy": None, "latency_total_p50_ms": 99.0}
    compared = {c.name: c for c in compare_with_baseline(current, baseline, tolerance=0.02)}
    assert set(compared) == {"hits@5", "mrr@10", "answer_accuracy"}
    assert compared["hits@5"].delta == 0.0 and not compared["hits@5"].regressed
    assert compared["mrr@10"].regressed  # 0.4799 < 0.5 - 0.02
    assert compared["answer_accuracy"].regressed and compared["answer_accuracy"].delta is None


def test_a_throwaway_eval_never_writes_into_shared_servers(tmp_path: Path) -> None:
    shared = Settings(
        home=tmp_path / "home",
        store={"database_url": "postgresql://team@db.example/byline", "chroma_url": "http://chroma.example:8000"},
    )
    throwaway = throwaway_settings(shared, tmp_path / "throwaway")
    assert throwaway.home == tmp_path / "throwaway"
    assert throwaway.store.database_url is None and throwaway.store.chroma_url is None
