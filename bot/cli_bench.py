"""`byline bench`: ingest and query speed against the LangChain tutorial pipeline, written to a folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

# The shared data folder sits beside the checkout (here and in CI).
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def register(app: typer.Typer) -> None:
    app.command()(bench)


def bench(
    out: Annotated[Path, typer.Option("--out", help="Folder for results.json, summary.md and bench.png.")] = Path(
        "bench-out"
    ),
    scifact: Annotated[
        Path, typer.Option(help="BEIR SciFact corpus.jsonl (its queries.jsonl beside it).")
    ] = SHARED_DATA / "beir-scifact" / "corpus.jsonl",
    wikinews: Annotated[Path, typer.Option(help="Wikinews sample JSONL.")] = SHARED_DATA
    / "wikinews"
    / "wikinews-2019.jsonl",
    quick: Annotated[bool, typer.Option("--quick", help="Small subsets: a smoke run in about a minute.")] = False,
    scale: Annotated[
        list[int] | None, typer.Option("--scale", help="Chunk counts for the scale curves (repeatable).")
    ] = None,
    queries: Annotated[int | None, typer.Option(min=1, help="Questions per latency measurement.")] = None,
    scifact_limit: Annotated[int | None, typer.Option(min=1, help="Only the first N SciFact abstracts.")] = None,
    pairs: Annotated[
        int | None, typer.Option(min=1, help="Ingests of each corpus per pipeline, alternating (default 3; quick 1).")
    ] = None,
    no_tutorial: Annotated[bool, typer.Option("--no-tutorial", help="Skip the LangChain baseline.")] = False,
) -> None:
    """Benchmark ingest and queries against the LangChain tutorial pipeline (same data, same machine, alternating)."""
    from evals.bench import BenchError, Options, run_bench

    for path in (scifact, scifact.parent / "queries.jsonl", wikinews):
        if not path.is_file():
            typer.echo(f"error: {path}: no such file", err=True)
            raise typer.Exit(2)
    options = Options.quick_run(out, scifact, wikinews) if quick else Options(out, scifact, wikinews)
    if scale:
        options.scale = tuple(scale)
    if queries:
        options.queries = queries
    if scifact_limit:
        options.scifact_limit = scifact_limit
    if pairs:
        options.pairs = pairs
    options.skip_tutorial = no_tutorial
    out.mkdir(parents=True, exist_ok=True)
    try:
        run_bench(options, say=lambda line: typer.echo(line, err=True))
    except BenchError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo((out / "summary.md").read_text())
