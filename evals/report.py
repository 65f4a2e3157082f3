"""What an eval run leaves behind: the baseline gate, the Markdown report and its chart.

The judge's figures depend on the judging model, so the gate compares them only with a baseline judged by the
same model; otherwise they are reported, with a note saying why they were not compared.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.cli.common import atomic_write
from evals.chart import render_chart
from evals.runner import JUDGED_RATES, EvalResult, JudgeSummary
from evals.scoring import LOWER_IS_BETTER


@dataclass(frozen=True, slots=True)
class Comparison:
    name: str
    baseline: float
    current: float | None
    regressed: bool

    @property
    def delta(self) -> float | None:
        return None if self.current is None else self.current - self.baseline


def gated(name: str) -> bool:
    """Quality metrics are gated; latencies depend on the machine, so they are reported but not gated."""
    return not name.startswith("latency_")


@dataclass(frozen=True, slots=True)
class Baseline:
    """A saved `--json` result: its numeric metrics, and the judge's rates with the model that judged them."""

    metrics: dict[str, float]
    judge_model: str | None = None
    judged: dict[str, float] = field(default_factory=dict)


def load_baseline(path: Path) -> Baseline:
    """The figures of a saved `--json` result."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: cannot read the baseline: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: the baseline is not JSON: {exc.msg} (line {exc.lineno})") from exc
    metrics = data.get("metrics") if isinstance(data, dict) else None
    if not isinstance(metrics, dict):
        raise ValueError(f'{path}: not an eval result (expected {{"metrics": {{...}}, "config": {{...}}}})')
    judge = data.get("judge")
    if not isinstance(judge, dict):
        return Baseline(_numbers(metrics))
    return Baseline(_numbers(metrics), str(judge.get("model")), _numbers({k: judge.get(k) for k in JUDGED_RATES}))


def _numbers(values: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in values.items() if isinstance(v, int | float) and not isinstance(v, bool)}


def compare_with_baseline(
    current: dict[str, float | None], baseline: dict[str, float], tolerance: float
) -> list[Comparison]:
    """Every gated baseline metric against this run; a drop of more than `tolerance` (a rise, for a metric where
    lower is better), or a lost metric, fails."""
    out = []
    for name, before in baseline.items():
        if not gated(name):
            continue
        value = current.get(name)
        now = None if value is None else round(value, 4)  # as saved, so an unchanged run shows +0.000
        if now is None:
            worse = True
        elif name in LOWER_IS_BETTER:
            worse = now > before + tolerance
        else:
            worse = now < before - tolerance
        out.append(Comparison(name, before, now, worse))
    return out


def judged_name(rate: str) -> str:
    """How a judge rate is named in comparisons: the path of its value in the `--json` output."""
    return f"judge.{rate}"


def judge_not_compared(result: EvalResult, baseline: Baseline) -> str | None:
    """Why the baseline's judge rates are left out of the gate, or None when they are compared (or absent)."""
    if not baseline.judged:
        return None
    if result.judge is None:
        return f"judge figures not compared: the baseline was judged by {baseline.judge_model}, this run was not judged"
    if result.judge.model != baseline.judge_model:
        return (
            f"judge figures not compared: the baseline was judged by {baseline.judge_model}, "
            f"this run by {result.judge.model}"
        )
    return None


def gate(result: EvalResult, baseline: Baseline, tolerance: float) -> list[Comparison]:
    """The gated metrics against the baseline, and the judge's rates when the same model judged both runs."""
    comparisons = compare_with_baseline(result.metrics, baseline.metrics, tolerance)
    if result.judge is None or judge_not_compared(result, baseline):
        return comparisons
    current = {judged_name(rate): value for rate, value in result.judge.rates().items()}
    before = {judged_name(rate): value for rate, value in baseline.judged.items()}
    return comparisons + compare_with_baseline(current, before, tolerance)


def write_json(path: Path, result: EvalResult) -> None:
    with atomic_write(path) as out:
        json.dump(result.to_json(), out, indent=2, ensure_ascii=False)
        out.write("\n")


def write_predictions(path: Path, result: EvalResult) -> None:
    with atomic_write(path) as out:
        for record in result.predictions:
            out.write(json.dumps(record, ensure_ascii=False) + "\n")


def _fmt(value: float | None, name: str = "") -> str:
    if value is None:
        return "–"
    return f"{value:.1f}" if name.startswith("latency_") else f"{value:.3f}"


def _cell(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    return text.replace("|", "\\|")


def write_report(
    directory: Path,
    result: EvalResult,
    saved: Baseline | None = None,
    comparisons: list[Comparison] | None = None,
) -> Path:
    """DIR/report.md with the metrics, a chart (DIR/metrics.png), the judge's figures and the per-question misses."""
    directory.mkdir(parents=True, exist_ok=True)
    baseline = saved.metrics if saved else None
    regressed = {c.name for c in comparisons or [] if c.regressed}
    with atomic_write(directory / "metrics.png", binary=True) as chart:
        chart.write(render_chart(result, baseline, regressed))
    config = result.config
    lines = [f"# Byline eval: {config.get('set', '')}", ""]
    if result.interrupted:
        lines += [f"**Interrupted**: {config.get('scored')} of {config.get('total')} scored.", ""]
    lines += [
        f"- started: {config.get('started_at', '')}, {config.get('wall_seconds', '')} s",
        f"- articles: {config.get('articles', '')}",
        f"- store: {config.get('store', '')}",
        f"- embedding model: {config.get('embedding_model', '')} ({config.get('embedding_backend', '')}), "
        f"answerer: {config.get('answerer', '')}",
        "",
        "## Metrics",
        "",
        "| metric | value | baseline | change |",
        "|---|---:|---:|---:|",
    ]
    by_name = {c.name: c for c in comparisons or []}
    for name, value in result.metrics.items():
        compared = by_name.get(name)
        before = _fmt(baseline.get(name), name) if baseline and name in baseline else ""
        change = ""
        if compared and compared.delta is not None:
            change = f"{compared.delta:+.3f}" + (" **regressed**" if compared.regressed else "")
        lines.append(f"| {name} | {_fmt(value, name)} | {before} | {change} |")
    lines += ["", "![metrics](metrics.png)", ""]
    if result.by_kind:
        headers, rows = kind_table(result)
        lines += ["## Per kind", "", "| " + " | ".join(headers) + " |", "|---|" + "---:|" * (len(headers) - 1)]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        lines.append("")
    if result.judge is not None:
        lines += _judge_section(result, result.judge, saved, by_name)
    lines += [f"## Misses ({len(result.misses)})", ""]
    if result.misses:
        lines += ["| id | question | expected | got | why |", "|---|---|---|---|---|"]
        lines += [
            f"| {_cell(x.id)} | {_cell(x.question)} | {_cell(x.expected)} | {_cell(x.got)} | {_cell(x.why)} |"
            for x in result.misses
        ]
    else:
        lines.append("None.")
    lines += ["", "## Config", "", "```json", json.dumps(config, indent=2, default=str), "```", ""]
    report = directory / "report.md"
    with atomic_write(report) as out:
        out.write("\n".join(lines))
    return report


def _judge_section(
    result: EvalResult, judge: JudgeSummary, saved: Baseline | None, by_name: dict[str, Comparison]
) -> list[str]:
    """The judge's block of report.md: its rates against the baseline's, then the answers it faulted."""
    latency = [result.metrics.get(f"latency_judge_p{p}_ms") for p in (50, 95)]
    lines = [
        f"## Judged by {judge.model}",
        "",
        f"Rates over the {judge.verdicts} question(s) the judge gave a verdict on; {judge.failures} judge "
        f"failure(s). Judge latency p50 {_fmt(latency[0], 'latency_')} ms, p95 {_fmt(latency[1], 'latency_')} ms.",
        "",
    ]
    if saved is not None and (note := judge_not_compared(result, saved)):
        lines += [f"The {note}.", ""]
    lines += ["| figure | value | baseline | change |", "|---|---:|---:|---:|"]
    for rate, value in judge.rates().items():
        compared = by_name.get(judged_name(rate))
        before = _fmt(compared.baseline) if compared else ""
        change = ""
        if compared and compared.delta is not None:
            change = f"{compared.delta:+.3f}" + (" **regressed**" if compared.regressed else "")
        lines.append(f"| {rate} | {_fmt(value)} | {before} | {change} |")
    lines += [f"| verdicts | {judge.verdicts} | | |", f"| failures | {judge.failures} | | |", ""]
    faulted = [p for p in result.predictions if _judge_fault(p.get("judge"))]
    lines += [f"### Answers the judge faulted, and judge failures ({len(faulted)})", ""]
    if not faulted:
        return [*lines, "None.", ""]
    lines += ["| id | question | answer | judge |", "|---|---|---|---|"]
    lines += [
        f"| {_cell(p['id'])} | {_cell(p['question'])} | {_cell(p['answer'])} | {_cell(_judge_fault(p['judge']))} |"
        for p in faulted
    ]
    return [*lines, ""]


def _judge_fault(judged: dict[str, Any] | None) -> str:
    """What the judge found wrong with one answer ('' when nothing, or when it was not judged)."""
    if not judged:
        return ""
    if "error" in judged:
        return str(judged["error"])
    return ", ".join(
        fault for fault, ok in (("incorrect", judged["correct"]), ("unfaithful", judged["faithful"])) if not ok
    )


def _change(compared: Comparison | None) -> str:
    if compared is None:
        return ""
    change = "missing" if compared.delta is None else f"{compared.delta:+.3f}"
    return change + (" REGRESSED" if compared.regressed else "")


def metrics_table_rows(result: EvalResult, comparisons: list[Comparison] | None) -> list[tuple[str, str, str]]:
    """(metric, value, change vs baseline) for the terminal table."""
    by_name = {c.name: c for c in comparisons or []}
    return [(name, _fmt(value, name), _change(by_name.get(name))) for name, value in result.metrics.items()]


def kind_table(result: EvalResult) -> tuple[list[str], list[list[str]]]:
    """The per-kind figures as a table: a column per kind (headed with its question count), a row per metric."""
    kinds = result.by_kind
    headers = ["metric", *(f"{kind} ({group.questions})" for kind, group in kinds.items())]
    names = list(dict.fromkeys(name for group in kinds.values() for name in group.metrics))
    rows = [[name, *(_fmt(group.metrics.get(name), name) for group in kinds.values())] for name in names]
    answerable = ["answerable", *(str(group.answerable) for group in kinds.values())]
    return headers, [answerable, *rows]


def judge_table_rows(judge: JudgeSummary, comparisons: list[Comparison] | None) -> list[tuple[str, str, str]]:
    """(figure, value, change vs baseline) for the terminal table's "judged by" block."""
    by_name = {c.name: c for c in comparisons or []}
    rows = [(rate, _fmt(value), _change(by_name.get(judged_name(rate)))) for rate, value in judge.rates().items()]
    return [*rows, ("verdicts", str(judge.verdicts), ""), ("failures", str(judge.failures), "")]
