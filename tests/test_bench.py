"""`byline bench` on tiny slices of the shared data: every figure is produced, and the report is written."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest
from conftest import SEED_JSONL, SHARED_DATA
from postgres_server import PostgresServer
from typer.testing import CliRunner

from bot.cli.main import build_app
from evals.bench import Options, byline_ingest, median_run, pair_ratios, percentiles, read_jsonl, run_bench, write_jsonl
from evals.bench_catalog import catalog_env, catalog_settings, catalog_url

app = build_app()

SCIFACT = SHARED_DATA / "beir-scifact" / "corpus.jsonl"
WIKINEWS = SHARED_DATA / "wikinews" / "wikinews-2019.jsonl"
needs_data = pytest.mark.skipif(not SCIFACT.is_file() or not WIKINEWS.is_file(), reason="shared data not present")


@pytest.mark.slow
@needs_data
def test_a_tiny_bench_run_produces_every_figure(tmp_path: Path) -> None:
    options = Options(
        out=tmp_path / "bench",
        scifact=SCIFACT,
        wikinews=WIKINEWS,
        quick=True,
        scale=(40,),
        queries=3,
        cold_runs=1,
        pairs=2,
        scifact_limit=6,
        wikinews_limit=3,
    )
    results = run_bench(options, say=lambda line: None)

    saved = json.loads((options.out / "results.json").read_text())
    assert saved["scifact"]["byline"]["chunks"] == results["scifact"]["byline"]["chunks"] > 0
    assert all(saved["peak"][f"{precision}_gflops"] > 0 for precision in ("fp32", "bf16", "int8"))
    for corpus, articles in (("scifact", 6), ("wikinews", 3)):
        for side in ("byline", "tutorial"):
            figures = saved[corpus][side]
            assert figures["articles"] == articles and figures["chunks"] > 0
            assert figures["wall_s"] > 0 and figures["cpu_s"] > 0 and figures["peak_rss_mb"] > 50
            assert figures["embedded_tokens"] > figures["chunks"]
            assert figures["query"]["retrieve_ms"]["n"] == 3
        assert saved[corpus]["byline"]["cold_ask"]["wall_s"] > 0
        assert saved[corpus]["byline"]["query"]["ask_ms"]["p50"] <= saved[corpus]["byline"]["query"]["ask_ms"]["p95"]
        runs = saved[corpus]["runs"]
        assert len(runs["byline"]) == len(runs["tutorial"]) == 2
        wall = saved[corpus]["ratio"]["wall_s"]
        pairs = zip(runs["byline"], runs["tutorial"], strict=True)
        assert wall["pairs"] == [b["wall_s"] / t["wall_s"] for b, t in pairs]
        assert wall["min"] <= wall["median"] <= wall["max"] and wall["min"] > 0
    (point,) = saved["scale"]
    assert 20 <= point["chunks"] <= 80  # the synthesiser aims at the asked size
    assert point["query"]["chunks_indexed"] == point["chunks"]

    summary = (options.out / "summary.md").read_text()
    assert "| scifact | byline | 6 |" in summary and "| wikinews | tutorial | 3 |" in summary
    assert "median of 2 alternating pairs (min" in summary and "int8" in summary
    assert (options.out / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_percentiles_of_latency_samples() -> None:
    figures = percentiles([5.0, 1.0, 3.0, 2.0, 4.0, 100.0])
    assert figures["n"] == 6 and figures["p50"] == 3.5 and figures["p95"] == 100.0


def test_bench_names_a_missing_data_file(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["bench", "--scifact", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path)])
    assert result.exit_code == 2 and "nope.jsonl: no such file" in result.output


@pytest.mark.slow
@pytest.mark.network
def test_bench_catalog_gives_each_index_a_fresh_database(postgres_server: PostgresServer, tmp_path: Path) -> None:
    with postgres_server.admin() as admin:
        admin.execute(f"ALTER ROLE {postgres_server.user} CREATEDB")
    server, home = postgres_server.url(), tmp_path / "homes" / "scifact-byline"
    corpus = write_jsonl(tmp_path / "two.jsonl", read_jsonl(SEED_JSONL, 2))
    env = catalog_env(server, home, fresh=True)
    assert env["BYLINE_STORE_DATABASE_URL"].endswith("/byline_bench_scifact_byline")
    assert byline_ingest(corpus, home, env).result["added"] == 2
    assert not (home / "catalog.sqlite").exists()
    with psycopg.connect(catalog_url(server, home)) as conn:
        assert conn.execute("SELECT count(*) FROM articles").fetchone() == (2,)
    catalog_env(server, home, fresh=True)  # the next run starts from an empty catalog
    with psycopg.connect(catalog_url(server, home)) as conn:
        assert conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'articles'"
        ).fetchone() == (0,)
    assert catalog_env(None, home) == {} and catalog_settings(None, home) == {}


def test_ratios_are_taken_pair_by_pair_and_the_median_run_is_reported() -> None:
    byline = [
        {"wall_s": 10.0, "cpu_s": 9.0, "peak_rss_mb": 500.0},
        {"wall_s": 12.0, "cpu_s": 9.0, "peak_rss_mb": 500.0},
        {"wall_s": 30.0, "cpu_s": 9.0, "peak_rss_mb": 600.0},
    ]
    tutorial = [{"wall_s": 40.0, "cpu_s": 36.0, "peak_rss_mb": 1000.0}] * 2
    tutorial.append({"wall_s": 60.0, "cpu_s": 36.0, "peak_rss_mb": 1000.0})
    ratio = pair_ratios(byline, tutorial)
    assert ratio["wall_s"] == {"median": 0.3, "min": 0.25, "max": 0.5, "pairs": [0.25, 0.3, 0.5]}
    assert ratio["cpu_s"]["median"] == 0.25 and ratio["peak_rss_mb"]["max"] == 0.6
    assert median_run(byline)["wall_s"] == 12.0
    assert median_run(byline[:2])["wall_s"] == 10.0
