"""The eval chart reads on its own (title with the set, day and settings; metrics beside the baseline; latency per
stage in its own panel), and report.md and metrics.png are written alike: atomically, with an ordinary file's mode."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import matplotlib.pyplot as plt
import pytest
from matplotlib.colors import to_hex
from matplotlib.figure import Figure

from evals.chart import REGRESSED, chart_figure, chart_title, render_chart
from evals.report import Baseline, compare_with_baseline, write_json, write_report
from evals.runner import EvalResult

REPO = Path(__file__).resolve().parent.parent


def saved_run() -> tuple[dict[str, float], dict[str, object]]:
    data = json.loads((REPO / "evals" / "baselines" / "seeds.json").read_text())
    return data["metrics"], data["config"]


def this_run() -> EvalResult:
    metrics, config = saved_run()
    changed = metrics | {
        "answer_accuracy": metrics["answer_accuracy"] - 0.05,
        "evidence_mrr@10": metrics["evidence_mrr@10"] - 0.0003,
        "latency_answer_p50_ms": 41.0,
    }
    return EvalResult(kind="questions", metrics=dict(changed), config=dict(config))


def test_the_title_names_the_set_the_day_and_the_settings() -> None:
    _, config = saved_run()
    title, subtitle = chart_title(config)
    assert title == f"Byline eval: seeds · {str(config['started_at'])[:10]}"
    assert "answerer extractive · k 5 · embedding all-MiniLM-L6-v2 (openvino)" in subtitle
    assert "146 questions · 38 articles" in subtitle and subtitle.endswith("evals/data/seeds.jsonl")
    llm = config | {"answerer": "llm", "llm_model": "gpt-4o-mini", "interrupted": True, "scored": 40, "total": 146}
    llm_subtitle = chart_title(llm)[1]
    assert "answerer llm (gpt-4o-mini)" in llm_subtitle and "interrupted: 40 of 146 scored" in llm_subtitle
    assert chart_title({"set": "/data/beir-scifact"})[0] == "Byline eval: beir-scifact"


@pytest.fixture
def figure_against_baseline() -> Iterator[Figure]:
    baseline, _ = saved_run()
    fig = chart_figure(this_run(), baseline, regressed={"answer_accuracy"})
    yield fig
    plt.close(fig)


def test_metrics_stand_beside_the_baseline_and_latency_has_its_own_panel(figure_against_baseline: Figure) -> None:
    quality, latency = figure_against_baseline.axes
    quality_names = [label.get_text() for label in quality.get_yticklabels()]
    assert quality_names[-1] == "hits@1" and "answer_accuracy" in quality_names  # the first metric on top
    assert not any(name.startswith("latency_") for name in quality_names)
    assert len(quality.patches) == 2 * len(quality_names)  # a bar for this run and one for the baseline
    assert quality.get_xlim()[1] < 1.5  # proportions: the latencies in ms are not on this axis
    labels = {text.get_text(): text for text in quality.texts}
    baseline, _ = saved_run()
    dropped = f"{baseline['answer_accuracy'] - 0.05:.3f}  -0.050"
    regressed = next(text for label, text in labels.items() if label.startswith(dropped))
    assert regressed.get_text().endswith("regressed") and to_hex(regressed.get_color()) == REGRESSED
    # a drop that rounds away is no "-0.000"
    assert f"{baseline['hits@1']:.3f}  +0.000" in labels
    assert f"{baseline['evidence_mrr@10'] - 0.0003:.3f}  +0.000" in labels
    assert latency.get_title(loc="left") == "Latency per stage"
    assert [label.get_text() for label in latency.get_yticklabels()] == ["total", "answer", "retrieve"]
    p50_p95 = f"41 / {baseline['latency_answer_p95_ms']:.0f}"
    assert any(text.get_text().strip() == p50_p95 for text in latency.texts)  # p50 / p95 in ms
    assert "baseline p50" in [t.get_text() for t in latency.get_legend().get_texts()]


def test_without_a_baseline_there_is_one_bar_a_metric() -> None:
    result = this_run()
    fig = chart_figure(result)
    try:
        quality = fig.axes[0]
        assert quality.get_title(loc="left") == "Quality" and len(quality.patches) == len(quality.get_yticklabels())
    finally:
        plt.close(fig)
    assert render_chart(result).startswith(b"\x89PNG")


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_report_and_chart_have_the_mode_of_ordinary_files(tmp_path: Path, umask: int) -> None:
    previous = os.umask(umask)
    try:
        baseline, _ = saved_run()
        result = this_run()
        comparisons = compare_with_baseline(result.metrics, baseline, 0.035)
        report = write_report(tmp_path / "report", result, Baseline(baseline), comparisons)
        write_json(tmp_path / "result.json", result)
    finally:
        os.umask(previous)
    expected = 0o666 & ~umask
    written = [report, report.parent / "metrics.png", tmp_path / "result.json"]
    assert [stat.S_IMODE(path.stat().st_mode) for path in written] == [expected] * 3
    assert (report.parent / "metrics.png").read_bytes().startswith(b"\x89PNG")
    assert sorted(p.name for p in report.parent.iterdir()) == ["metrics.png", "report.md"]  # no temporary left
