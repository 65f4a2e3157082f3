"""The eval chart (metrics.png beside report.md), made to read on its own: the title names the question set, the
day and the settings; the quality metrics are bars, beside the baseline's when there is one; latency per stage
has its own panel, in milliseconds."""

from __future__ import annotations

import io
import re
from collections.abc import Collection
from pathlib import Path
from typing import Any

from evals.runner import EvalResult

# latency_<stage>_p<percentile>_ms, as evals.runner names them
_LATENCY = re.compile(r"latency_(?P<stage>\w+?)_p(?P<percentile>\d+)_ms")
CURRENT = "#4c72b0"
BASELINE = "#b8b8b8"
REGRESSED = "#c44e52"
SLOWER = "#a6bddb"


def render_chart(
    result: EvalResult, baseline: dict[str, float] | None = None, regressed: Collection[str] = ()
) -> bytes:
    """The chart as PNG bytes. `baseline` holds a saved run's metrics; `regressed` names the metrics that failed
    the gate against it (their change is shown in red)."""
    import matplotlib.pyplot as plt

    fig = chart_figure(result, baseline, regressed)
    image = io.BytesIO()
    try:
        fig.savefig(image, format="png", dpi=120)
    finally:
        plt.close(fig)
    return image.getvalue()


def chart_figure(result: EvalResult, baseline: dict[str, float] | None = None, regressed: Collection[str] = ()) -> Any:
    """The chart's matplotlib Figure (see `render_chart`); the caller closes it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    quality = {n: v for n, v in result.metrics.items() if v is not None and not _LATENCY.fullmatch(n)}
    latency = _latency_by_stage(result.metrics)
    # one row per bar, two per metric against a baseline; the latency panel below, one row per stage
    quality_rows = max(len(quality), 1) * (1.6 if baseline else 1) + 1
    latency_rows = len(latency) + 1.8 if latency else 0
    fig = plt.figure(figsize=(9, 0.24 * (quality_rows + latency_rows) + 1.3))
    grid = fig.add_gridspec(2 if latency else 1, 1, height_ratios=[quality_rows, latency_rows] if latency else [1])
    _quality_panel(fig.add_subplot(grid[0]), quality, baseline or {}, set(regressed))
    if latency:
        _latency_panel(fig.add_subplot(grid[1]), latency, _latency_by_stage(baseline or {}))
    title, subtitle = chart_title(result.config)
    fig.suptitle(title, fontsize=12, fontweight="bold", x=0.01, ha="left")
    fig.text(0.01, 0.995 - 0.45 / fig.get_figheight(), subtitle, fontsize=8.5, color="#444444", va="top")
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.7 / fig.get_figheight()))
    return fig


def chart_title(config: dict[str, Any]) -> tuple[str, str]:
    """("Byline eval: seeds · 2026-11-29", "answerer extractive · k 5 · embedding ... · 146 questions ...")."""
    where = str(config.get("set") or "")
    name = Path(where).stem if where.endswith(".jsonl") else Path(where).name
    day = str(config.get("started_at") or "")[:10]
    title = " · ".join(part for part in (f"Byline eval: {name or 'questions'}", day) if part)
    answerer = str(config.get("answerer") or "?")
    if config.get("llm_model"):
        answerer += f" ({config['llm_model']})"
    embedding = str(config.get("embedding_model") or "?")
    if config.get("embedding_backend"):
        embedding += f" ({config['embedding_backend']})"
    parts = [f"answerer {answerer}", f"k {config.get('k', '?')}", f"embedding {embedding}"]
    counts = [f"{config[key]} {key}" for key in ("questions", "articles") if isinstance(config.get(key), int)]
    if config.get("interrupted"):
        counts.append(f"interrupted: {config.get('scored')} of {config.get('total')} scored")
    return title, " · ".join(parts + counts) + (f"\n{where}" if where else "")


def _latency_by_stage(metrics: dict[str, Any]) -> dict[str, dict[int, float]]:
    """{stage: {50: ms, 95: ms}} from the latency_<stage>_p<NN>_ms metrics."""
    stages: dict[str, dict[int, float]] = {}
    for name, value in metrics.items():
        if (match := _LATENCY.fullmatch(name)) and isinstance(value, int | float):
            stages.setdefault(match["stage"], {})[int(match["percentile"])] = float(value)
    return stages


def _quality_panel(ax: Any, quality: dict[str, float], baseline: dict[str, float], regressed: set[str]) -> None:
    names = list(quality)[::-1]  # the first metric on top
    compared = bool(baseline)
    height = 0.4 if compared else 0.7
    offset = height / 2 if compared else 0.0
    ax.barh([i + offset for i in range(len(names))], [quality[n] for n in names], height, color=CURRENT, label="run")
    if compared:
        known = [(i, baseline[n]) for i, n in enumerate(names) if n in baseline]
        ax.barh([i - offset for i, _ in known], [b for _, b in known], height, color=BASELINE, label="baseline")
    top = max([1.0, *quality.values(), *(baseline[n] for n in names if n in baseline)])
    for i, name in enumerate(names):
        label = f"{quality[name]:.3f}"
        before = baseline.get(name)
        if before is not None:
            label += f"  {round(quality[name] - before, 3) + 0.0:+.3f}"  # + 0.0: a tiny drop shows +0.000, not -0.000
        bad = name in regressed
        ax.text(
            quality[name] + top * 0.01,
            i + offset,
            label + ("  regressed" if bad else ""),
            va="center",
            fontsize=7.5,
            color=REGRESSED if bad else "black",
            fontweight="bold" if bad else "normal",
        )
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.set_xlim(0, top * 1.22)  # room for the figures right of the longest bar
    if top == 1.0:
        ax.set_xticks([0, 0.2, 0.4, 0.6, 0.8, 1.0])
    ax.set_title("Quality (change against the baseline)" if compared else "Quality", fontsize=10, loc="left")
    ax.grid(axis="x", color="#e5e5e5")
    ax.set_axisbelow(True)
    if compared:
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)


def _latency_panel(ax: Any, latency: dict[str, dict[int, float]], baseline: dict[str, dict[int, float]]) -> None:
    stages = list(latency)[::-1]
    p50 = [latency[s].get(50, 0.0) for s in stages]
    p95 = [latency[s].get(95, 0.0) for s in stages]
    slow_bars = ax.barh(stages, p95, 0.6, color=SLOWER, label="p95")
    median_bars = ax.barh(stages, p50, 0.6, color=CURRENT, label="p50")
    shown: list[Any] = [median_bars, slow_bars]
    marked = [(i, baseline[s][50]) for i, s in enumerate(stages) if 50 in baseline.get(s, {})]
    if marked:
        xs, ys = [b for _, b in marked], [i for i, _ in marked]
        shown.append(ax.scatter(xs, ys, marker="|", s=260, color="black", label="baseline p50"))
    for i, (median, slow) in enumerate(zip(p50, p95, strict=True)):
        ax.text(slow, i, f" {median:.0f} / {slow:.0f}", va="center", fontsize=7.5)
    ax.set_xlim(0, max([*p95, *(b for _, b in marked), 1.0]) * 1.35)
    ax.set_xlabel("ms per question (p50 / p95)", fontsize=8)
    ax.set_title("Latency per stage", fontsize=10, loc="left")
    ax.tick_params(labelsize=8)
    ax.grid(axis="x", color="#e5e5e5")
    ax.set_axisbelow(True)
    ax.legend(handles=shown, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=7.5, frameon=False)
