"""The eval judge against a scripted OpenAI-compatible server: what it is shown, how its verdict is read."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fake_openai import FakeOpenAI, completion, error, message_text
from seed_passages import passages

from bot.models import CANNOT_ANSWER
from bot.settings import Settings
from evals.judge import UNANSWERABLE, Judge, JudgeError, build_judge, parse_verdict

pytestmark = pytest.mark.network


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture
def judge(server: FakeOpenAI) -> Judge:
    return build_judge(Settings(llm={"base_url": server.base_url, "retries": 0}))


def test_the_judge_sees_question_gold_answer_and_passages(server: FakeOpenAI, judge: Judge) -> None:
    server.add(completion('{"correct": true, "faithful": false}'))
    verdict = judge(
        "How many firefighters fought the Notre Dame fire?",
        ["over 400", "400"],
        "Over 400 firefighters fought it [1][2].",
        passages("notre", slice(0, 2)),
    )
    assert verdict == {"correct": True, "faithful": False}
    prompt = message_text(server.requests[0], "user")
    assert "<question>\nHow many firefighters fought the Notre Dame fire?\n</question>" in prompt
    assert "<reference>\nover 400; 400\n</reference>" in prompt
    assert "<answer>\nOver 400 firefighters fought it.\n</answer>" in prompt  # markers left out
    assert "Reportedly over 400 firefighters" in prompt and "title: Notre Dame in Paris catches fire" in prompt


def test_an_unanswerable_question_is_spelled_out_for_the_judge(server: FakeOpenAI, judge: Judge) -> None:
    server.add(completion('Verdict: {"correct": "yes", "faithful": "yes"} because it declined.'))
    verdict = judge("Who started the fire?", [], CANNOT_ANSWER, [])
    assert verdict == {"correct": True, "faithful": True}
    prompt = message_text(server.requests[0], "user")
    assert UNANSWERABLE in prompt and "<passages>\n(none)\n</passages>" in prompt


@pytest.mark.parametrize(
    "reply",
    ["I think it is correct.", '{"correct": true}', '{"correct": maybe, "faithful": true}', "{}"],
)
def test_a_reply_without_both_verdicts_is_an_error(reply: str) -> None:
    with pytest.raises(JudgeError, match="no verdict"):
        parse_verdict(reply)


def test_the_first_complete_verdict_wins() -> None:
    reply = 'Example: {"correct": true}. Mine: {"correct": false, "faithful": true} {"correct": true, "faithful": true}'
    assert parse_verdict(reply) == {"correct": False, "faithful": True}


def test_a_failing_judge_model_is_a_judge_error(server: FakeOpenAI, judge: Judge) -> None:
    server.add(error(500))
    with pytest.raises(JudgeError, match="HTTP 500"):
        judge("Q?", ["a"], "A [1].", [])
