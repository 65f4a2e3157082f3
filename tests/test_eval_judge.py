"""`byline eval` with the model as judge: the real CLI, index and langchain client, a scripted model over HTTP.

The fake model answers each question from its sources (citing the right one), then judges each answer with the
verdict this test scripted for that question.
"""

from __future__ import annotations

import json
import re
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import eval_outputs
from fake_openai import FakeOpenAI, Reply, completion, error, message_text
from seed_passages import seed_articles
from typer.testing import CliRunner, Result

from bot.cli.main import build_app
from bot.models import CANNOT_ANSWER

app = build_app()

pytestmark = [pytest.mark.slow, pytest.mark.network]

REPO = Path(__file__).resolve().parents[1]
MODEL = "openai:gpt-4o-mini"  # the provider's default model, named as the reports name it
# Seed-set questions on two articles, in set order: three answerable, one not (no injury count is given).
QUESTION_IDS = ("seed-045", "seed-046", "seed-120", "seed-047")
# What the fake model answers, by question id: a word of the title of the source it cites, and its claim.
ANSWERS = {
    "seed-045": ("Notre", "Over 400 firefighters fought the fire at Notre Dame cathedral"),
    "seed-046": ("Notre", "Water bombing by aircraft was disallowed as it might have caused additional damage"),
    "seed-120": ("Kipchoge", "The Ineos 1:59 Challenge featured 42 pacemakers"),
}
AGREE = '{"correct": true, "faithful": true}'
VERDICTS = {
    "seed-045": completion(AGREE),
    "seed-046": completion('{"correct": false, "faithful": false}'),
    "seed-120": completion('Graded: {"correct": true, "faithful": false}'),
    "seed-047": completion(AGREE),
}
JUDGE_PROMPT = "You grade answers"


class Model:
    """A stand-in chat model that answers as ANSWERS says and judges as `verdicts` says, per question."""

    def __init__(self, questions: dict[str, str], verdicts: dict[str, Reply]) -> None:
        self.ids = {text: qid for qid, text in questions.items()}
        self.verdicts = verdicts
        self.judged: list[str] = []  # question ids, in the order the judge was asked
        self.before_judging: dict[int, Any] = {}  # nth judge request (1-based) -> called before replying

    def __call__(self, request: dict[str, Any]) -> Reply:
        user = message_text(request, "user")
        if user.startswith(JUDGE_PROMPT):
            match = re.search(r"<question>\n(.*?)\n</question>", user)
            assert match, user
            self.judged.append(self.ids[match.group(1)])
            if hook := self.before_judging.get(len(self.judged)):
                hook()
            return self.verdicts[self.judged[-1]]
        match = re.search(r"^Question: (.*)$", user, re.MULTILINE)
        assert match, user
        if (answer := ANSWERS.get(self.ids[match.group(1)])) is None:
            return completion(CANNOT_ANSWER)
        key, claim = answer
        titles = dict(re.findall(r'<source n="(\d+)">\ntitle: ([^\n]*)', user))
        n = next(n for n, title in titles.items() if key in title)
        return completion(f"{claim} [{n}].")


def judge_requests(server: FakeOpenAI) -> list[dict[str, Any]]:
    return [r for r in server.requests if message_text(r, "user").startswith(JUDGE_PROMPT)]


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    """tmp/set.jsonl (four seed-set questions) and tmp/articles.jsonl (their two articles and a third)."""
    articles = [seed_articles()[key] for key in ("notre", "eliud", "magnitogorsk")]
    (tmp_path / "articles.jsonl").write_text("".join(json.dumps(a) + "\n" for a in articles))
    by_id = {q["id"]: q for q in map(json.loads, (REPO / "evals" / "data" / "seeds.jsonl").read_text().splitlines())}
    (tmp_path / "set.jsonl").write_text("".join(json.dumps(by_id[qid]) + "\n" for qid in QUESTION_IDS))
    return tmp_path


@pytest.fixture
def model(tiny: Path) -> Model:
    questions = [json.loads(line) for line in (tiny / "set.jsonl").read_text().splitlines()]
    return Model({q["id"]: q["question"] for q in questions}, dict(VERDICTS))


@pytest.fixture
def server(model: Model) -> Iterator[FakeOpenAI]:
    with FakeOpenAI(responder=model) as fake:
        yield fake


@pytest.fixture
def runner(cli_runner: CliRunner, server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    """The CLI with the LLM answerer on the fake model."""
    monkeypatch.setenv("BYLINE_ANSWERER", "llm")
    monkeypatch.setenv("BYLINE_LLM_BASE_URL", server.base_url)
    monkeypatch.setenv("BYLINE_LLM_RETRIES", "0")
    return cli_runner


def table_row(*cells: str) -> re.Pattern[str]:
    """A row of a terminal table as rich draws it, whatever the column widths."""
    return re.compile(r"│\s*" + r"\s*│\s*".join(map(re.escape, cells)) + r"\s*│")


def run_eval(runner: CliRunner, tiny: Path, *args: str) -> Result:
    return runner.invoke(app, ["eval", str(tiny / "set.jsonl"), "--articles", str(tiny / "articles.jsonl"), *args])


def test_llm_answers_are_judged_and_reported_apart_from_the_string_metrics(
    runner: CliRunner, tiny: Path, server: FakeOpenAI, model: Model
) -> None:
    out = tiny / "out"
    result = run_eval(runner, tiny, *eval_outputs(out))
    assert result.exit_code == 0, result.output

    saved = json.loads((out / "result.json").read_text())
    # 045 right and faithful, 046 neither, 120 right but unfaithful, 047 (a refusal) right and faithful.
    assert saved["judge"] == {
        "model": MODEL,
        "correctness": 0.75,
        "faithfulness": 0.5,
        "verdicts": 4,
        "failures": 0,
    }
    metrics = saved["metrics"]
    assert not any(name.startswith("judge") for name in metrics)
    assert metrics["latency_judge_p50_ms"] > 0 and metrics["latency_judge_p95_ms"] >= metrics["latency_judge_p50_ms"]
    # The string metrics and the citation metrics score the LLM's checked answers.
    assert metrics["answer_accuracy"] == 1.0 and metrics["refusal_recall"] == 1.0
    assert metrics["citation_precision"] == 1.0 and metrics["citation_recall"] == 1.0
    assert saved["config"]["answerer"] == "llm" and saved["config"]["judge_seconds"] > 0

    predictions = {p["id"]: p for p in map(json.loads, (out / "predictions.jsonl").read_text().splitlines())}
    assert predictions["seed-046"]["judge"] == {"correct": False, "faithful": False}
    assert predictions["seed-120"]["judge"] == {"correct": True, "faithful": False}
    assert predictions["seed-120"]["answer"] == f"{ANSWERS['seed-120'][1]} [1]."
    (citation,) = predictions["seed-120"]["citations"]
    assert "42 pacemakers" in citation["quote"] and citation["title"].startswith("Eliud Kipchoge")
    assert predictions["seed-047"]["refused"] and predictions["seed-047"]["judge"]["correct"]
    assert all("judge" in p["timings_ms"] for p in predictions.values())

    # One judge call per question, each shown the answer (without markers) and the passages it was given.
    assert model.judged == list(QUESTION_IDS)
    prompt = message_text(judge_requests(server)[2], "user")
    assert f"<answer>\n{ANSWERS['seed-120'][1]}.\n</answer>" in prompt and "<reference>\n42\n</reference>" in prompt
    assert "it featured 42 pacemakers" in prompt
    assert len(server.requests) == 8  # an answer and a verdict per question

    assert f"judged by {MODEL}: rates over 4 verdict(s), 0 failure(s)" in result.stdout
    report = (out / "report" / "report.md").read_text()
    judged = report.split(f"## Judged by {MODEL}")[1].split("## Misses")[0]
    assert "| correctness | 0.750 |" in judged and "| faithfulness | 0.500 |" in judged
    assert "| verdicts | 4 |" in judged and "| failures | 0 |" in judged
    assert "judge failure(s). Judge latency p50" in judged
    assert "### Answers the judge faulted, and judge failures (2)" in judged
    assert re.search(r"\| seed-046 \|.*\| incorrect, unfaithful \|", judged)
    assert re.search(r"\| seed-120 \|.*\| unfaithful \|", judged)
    assert "| correctness |" not in report.split("## Judged by")[0]


def test_a_question_the_judge_fails_on_is_counted_and_the_run_goes_on(
    runner: CliRunner, tiny: Path, model: Model
) -> None:
    model.verdicts["seed-046"] = completion("The answer seems fine to me.")
    model.verdicts["seed-120"] = error(400, "context length exceeded")
    out = tiny / "out"
    result = run_eval(
        runner, tiny, "--json", str(out / "r.json"), "--predictions", str(out / "p.jsonl"), "--report", str(out)
    )
    assert result.exit_code == 0, result.output

    saved = json.loads((out / "r.json").read_text())
    assert saved["judge"] == {"model": MODEL, "correctness": 1.0, "faithfulness": 1.0, "verdicts": 2, "failures": 2}
    predictions = {p["id"]: p for p in map(json.loads, (out / "p.jsonl").read_text().splitlines())}
    assert predictions["seed-046"]["judge"] == {
        "error": "no verdict in the judge's reply: 'The answer seems fine to me.'"
    }
    assert predictions["seed-120"]["judge"] == {"error": "the judge model failed: HTTP 400"}
    assert predictions["seed-045"]["judge"] == {"correct": True, "faithful": True}
    assert "warning: the judge gave no verdict on 2 question(s), left out of its rates (first: seed-046: " in (
        result.stderr
    )
    assert "rates over 2 verdict(s), 2 failure(s)" in result.stdout
    report = (out / "report.md").read_text()
    assert "| failures | 2 |" in report
    assert re.search(r"\| seed-120 \|.*\| the judge model failed: HTTP 400 \|", report)


def test_no_judge_makes_no_judge_calls(runner: CliRunner, tiny: Path, server: FakeOpenAI) -> None:
    result = run_eval(runner, tiny, "--no-judge", "--json", str(tiny / "r.json"))
    assert result.exit_code == 0, result.output
    assert len(server.requests) == 4 and not judge_requests(server)  # the answers only
    saved = json.loads((tiny / "r.json").read_text())
    assert "judge" not in saved and "latency_judge_p50_ms" not in saved["metrics"]
    assert saved["metrics"]["answer_accuracy"] == 1.0
    assert "judged by" not in result.stdout


def test_judge_asks_the_model_to_judge_extractive_answers_too(
    cli_runner: CliRunner, tiny: Path, server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BYLINE_LLM_BASE_URL", server.base_url)  # a model configured, the answerer extractive
    result = run_eval(cli_runner, tiny, "--limit", "2")
    assert result.exit_code == 0, result.output
    assert server.requests == [] and "judged by" not in result.stdout  # extractive answers: no judge by default

    result = run_eval(cli_runner, tiny, "--limit", "2", "--judge", "--json", str(tiny / "r.json"))
    assert result.exit_code == 0, result.output
    assert len(server.requests) == 2 and len(judge_requests(server)) == 2  # verdicts only: no answers asked for
    saved = json.loads((tiny / "r.json").read_text())
    assert saved["config"]["answerer"] == "extractive"
    assert saved["judge"]["verdicts"] == 2 and saved["judge"]["model"] == MODEL


def test_judge_without_a_model_is_a_one_line_error(cli_runner: CliRunner, tiny: Path) -> None:
    result = run_eval(cli_runner, tiny, "--judge")
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        "error: --judge with provider openai needs OPENAI_API_KEY (or BYLINE_LLM_API_KEY), "
        "or BYLINE_LLM_BASE_URL for an OpenAI-compatible server"
    ]
    assert result.stdout == ""  # stopped before ingesting anything
    result = cli_runner.invoke(app, ["eval", "--beir", str(tiny), "--judge"])
    assert result.exit_code == 2 and "--beir runs are retrieval-only" in result.stderr


def test_the_gate_compares_judge_rates_only_with_a_baseline_judged_by_the_same_model(
    runner: CliRunner, tiny: Path
) -> None:
    def baseline(name: str, model: str) -> str:
        path = tiny / name
        judge = {"model": model, "correctness": 0.9, "faithfulness": 0.5, "verdicts": 2, "failures": 0}
        path.write_text(json.dumps({"metrics": {"hits@10": 1.0}, "judge": judge, "config": {}}))
        return str(path)

    # Two questions: 045 judged right, 046 wrong, so correctness 0.5 against the baseline's 0.9.
    result = run_eval(runner, tiny, "--limit", "2", "--baseline", baseline("same.json", MODEL))
    assert result.exit_code == 1, result.output
    assert "regressed by more than 0.02 against the baseline: judge.correctness" in result.stderr
    assert table_row("correctness", "0.500", "-0.400 REGRESSED").search(result.stdout)

    result = run_eval(runner, tiny, "--limit", "2", "--baseline", baseline("other.json", "openai:gpt-4o"))
    assert result.exit_code == 0, result.output
    assert (
        "note: judge figures not compared: the baseline was judged by openai:gpt-4o, this run by openai:gpt-4o-mini"
        in result.stderr
    )
    result = run_eval(runner, tiny, "--limit", "2", "--no-judge", "--baseline", baseline("same.json", MODEL))
    assert result.exit_code == 0, result.output
    assert "this run was not judged" in result.stderr


def test_ctrl_c_while_judging_prints_the_judge_figures_so_far(runner: CliRunner, tiny: Path, model: Model) -> None:
    main = threading.main_thread().ident
    assert main is not None
    # Ctrl-C while the third verdict is awaited: the main thread is blocked reading the reply.
    model.before_judging[3] = lambda: signal.pthread_kill(main, signal.SIGINT)
    result = run_eval(runner, tiny, "--json", str(tiny / "r.json"))
    assert result.exit_code == 130, result.output
    assert "interrupted: 2 of 4 scored; no files written" in result.stderr
    assert f"judged by {MODEL}: rates over 2 verdict(s), 0 failure(s)" in result.stdout
    assert table_row("correctness", "0.500").search(result.stdout)
    assert table_row("faithfulness", "0.500").search(result.stdout)
    assert "latency_judge_p50_ms" in result.stdout
    assert not (tiny / "r.json").exists()


def test_a_separate_judge_model_grades_while_the_configured_model_answers(
    runner: CliRunner, tiny: Path, server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BYLINE_LLM_MODEL", "small-answerer")
    monkeypatch.setenv("BYLINE_LLM_JUDGE_MODEL", "big-judge")
    result = run_eval(runner, tiny, "--json", str(tiny / "result.json"))
    assert result.exit_code == 0, result.output
    assert json.loads((tiny / "result.json").read_text())["judge"]["model"] == "openai:big-judge"
    judged = judge_requests(server)
    assert judged and {r["model"] for r in judged} == {"big-judge"}
    assert {r["model"] for r in server.requests if r not in judged} == {"small-answerer"}
