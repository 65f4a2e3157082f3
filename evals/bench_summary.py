"""The bench's Markdown summary and its chart, written from the results the run gathered."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any


def figure(value: Any, digits: int = 1) -> str:
    return f"{value:,.{digits}f}" if isinstance(value, int | float) else "-"


def table_row(*cells: object) -> str:
    return "| " + " | ".join(map(str, cells)) + " |"


def ratio_line(wall: dict[str, Any]) -> str:
    pairs = len(wall["pairs"])
    return (
        f"Byline / tutorial wall time {wall['median']:.3f} median of {pairs} alternating pair{'s' * (pairs > 1)} "
        f"(min {wall['min']:.3f}, max {wall['max']:.3f}): {1 / wall['median']:.2f}x faster"
    )


PIPELINES = ("byline", "tutorial")
CORPORA = ("scifact", "wikinews")


def write_summary(results: dict[str, Any], path: Path) -> None:
    sections = (header(results), ingest_table(results), query_table(results), scale_table(results))
    path.write_text("\n".join(line for section in sections for line in section) + "\n")


def header(results: dict[str, Any]) -> list[str]:
    peak, machine, settings = results["peak"], results["machine"], results["settings"]
    return [
        "# Byline benchmark",
        "",
        f"Machine: {machine['cores']} cores, load average {machine['load_average_at_start']:.1f}"
        f" at start; matrix-multiply peaks {figure(peak['fp32_gflops'], 0)} GFLOP/s fp32, "
        f"{figure(peak['bf16_gflops'], 0)} bf16, {figure(peak['int8_gflops'], 0)} int8.",
        f"Byline embedding backend: {settings['backend']} ({settings['precision']}); "
        f"catalog: {settings.get('catalog', 'sqlite')}.",
        "",
    ]


def ingest_table(results: dict[str, Any]) -> list[str]:
    peak = results["peak"]
    pairs = max(len(results[name].get("runs", {}).get("byline", [])) for name in CORPORA)
    lines = [
        f"## Ingest (whole command, start-up included, each in its own process; {pairs} run(s) of each, alternating;"
        " the run with the median wall time shown)",
        "",
        "| corpus | pipeline | articles | chunks | wall s | CPU s | articles/s | chunks/s | tokens/s |"
        " peak RSS MB | embed GFLOP/s |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, who, row in rows(results):
        lines.append(
            table_row(
                name,
                who,
                row["articles"],
                row["chunks"],
                figure(row["wall_s"]),
                figure(row["cpu_s"]),
                figure(row["articles_per_s"]),
                figure(row["chunks_per_s"]),
                figure(row["tokens_per_s"], 0),
                figure(row["peak_rss_mb"], 0),
                figure(row.get("embed_gflops")),
            )
        )
    lines.append("")
    for name in CORPORA:
        if ratio := results[name].get("ratio"):
            cpu, rss = ratio["cpu_s"], ratio["peak_rss_mb"]
            lines.append(
                f"- {name}: {ratio_line(ratio['wall_s'])}; CPU time {cpu['median']:.3f} "
                f"(min {cpu['min']:.3f}, max {cpu['max']:.3f}); peak RSS {rss['median']:.2f}."
            )
        if gflops := results[name]["byline"].get("embed_gflops"):
            lines.append(
                f"- {name}: Byline's embedding step ran at {gflops:,.0f} GFLOP/s, "
                f"{gflops / peak['int8_gflops']:.0%} of the int8 peak, {gflops / peak['bf16_gflops']:.0%} of bf16."
            )
    startup = results["startup_s"]
    lines.append(
        "- Start-up (one-article ingest, median): "
        + ", ".join(f"{who} {startup[who]['median']:.2f} s" for who in PIPELINES if who in startup)
        + "."
    )
    return [*lines, ""]


def query_table(results: dict[str, Any]) -> list[str]:
    lines = [
        "## Queries (warm, in-process; ms)",
        "",
        "| index | pipeline | chunks | retrieve p50 | retrieve p95 | retrieve+answer p50 | retrieve+answer p95 |"
        " cold `byline ask` s |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, who, row in rows(results):
        q = row["query"]
        ask = q.get("ask_ms", {})
        cold = row.get("cold_ask", {}).get("wall_s")
        lines.append(
            table_row(
                name,
                who,
                row["chunks"],
                figure(q["retrieve_ms"]["p50"]),
                figure(q["retrieve_ms"]["p95"]),
                figure(ask.get("p50")),
                figure(ask.get("p95")),
                figure(cold, 2),
            )
        )
    return [*lines, ""]


def scale_table(results: dict[str, Any]) -> list[str]:
    lines = [
        f"## Scale (synthetic Wikinews recombinations, {results['settings']['scale_chunk_tokens']}-token chunks)",
        "",
        "| chunks | articles | ingest wall s | CPU s | chunks/s | peak RSS MB | retrieve p50 | retrieve p95 |"
        " retrieve+answer p50 |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for point in results["scale"]:
        q = point["query"]
        lines.append(
            table_row(
                point["chunks"],
                point["articles"],
                figure(point["wall_s"]),
                figure(point["cpu_s"]),
                figure(point["chunks_per_s"]),
                figure(point["peak_rss_mb"], 0),
                figure(q["retrieve_ms"]["p50"]),
                figure(q["retrieve_ms"]["p95"]),
                figure(q["ask_ms"]["p50"]),
            )
        )
    return [*lines, "", "![scale curves](bench.png)"]


def rows(results: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(corpus, pipeline, its median run) for every pipeline that ran on each corpus."""
    for name in CORPORA:
        for who in PIPELINES:
            if (row := results[name].get(who)) is not None:
                yield name, who, row


def write_chart(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = results["scale"]
    chunks = [p["chunks"] for p in points]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    left.plot(chunks, [p["wall_s"] for p in points], "o-", label="ingest wall s")
    left.plot(chunks, [p["cpu_s"] for p in points], "s--", label="ingest CPU s")
    if chunks and points[0]["wall_s"]:
        left.plot(chunks, [points[0]["wall_s"] * c / chunks[0] for c in chunks], ":", color="grey", label="linear")
    left.set(xscale="log", yscale="log", xlabel="chunks", ylabel="seconds", title="Ingest")
    left.legend()
    for key, label in (("retrieve_ms", "retrieve"), ("ask_ms", "retrieve + answer")):
        right.plot(chunks, [p["query"][key]["p50"] for p in points], "o-", label=f"{label} p50")
        right.plot(chunks, [p["query"][key]["p95"] for p in points], "x:", label=f"{label} p95")
    right.set(xscale="log", xlabel="chunks in the index", ylabel="ms (warm)", title="Query latency")
    right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
