"""Answer correctness and faithfulness judged by the configured chat model, with the `judge` prompt.

Used by the eval runner when an LLM is configured; reported apart from the string metrics.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING

from bot.answering.citations import strip_markers
from bot.answering.context import fit_sources
from bot.answering.llm import ChatClient, LLMError, model_name
from prompts import render_prompt

if TYPE_CHECKING:
    from bot.models import Passage
    from bot.settings import LLMSettings, Settings

Verdict = dict[str, bool]
Judge = Callable[[str, Sequence[str], str, Sequence["Passage"]], Verdict]

UNANSWERABLE = "The articles do not answer this question; a correct answer says so and answers nothing."
_OBJECT = re.compile(r"\{[^{}]*\}")
_BOOLEAN = {"true": True, "yes": True, "false": False, "no": False}


class JudgeError(RuntimeError):
    """No verdict: the model failed or its reply holds no readable {"correct", "faithful"} object."""


def judging(settings: LLMSettings) -> LLMSettings:
    """The model settings the judge uses: `judge_model` in place of `model` when one is set."""
    return settings.model_copy(update={"model": settings.judge_model}) if settings.judge_model else settings


def build_judge(settings: Settings) -> Judge:
    """A judge bound to the judging model; ConfigError when none can be set up."""
    return partial(judge_answer, client=ChatClient(judging(settings.llm)))


def judge_model(settings: LLMSettings) -> str:
    """The judging model as reports name it: provider:model, as langchain's init_chat_model spells it."""
    return f"{settings.provider}:{model_name(judging(settings))}"


def judge_answer(
    question: str, gold: Sequence[str], answer: str, passages: Sequence[Passage], *, client: ChatClient
) -> Verdict:
    """{"correct": ..., "faithful": ...} for `answer`; `gold` empty means the question is unanswerable."""
    _, evidence = fit_sources(list(passages), client.settings.context_tokens, client.count_tokens)
    prompt = render_prompt(
        "judge",
        question=question,
        gold="; ".join(gold) if gold else UNANSWERABLE,
        # Numbers in the answer refer to its own source list, not to this one: leave them out.
        answer=strip_markers(answer),
        passages=evidence or "(none)",
    )
    from langchain_core.messages import HumanMessage

    try:
        reply = client.complete([HumanMessage(prompt)])
    except LLMError as exc:
        raise JudgeError(f"the judge model failed: {exc}") from exc
    return parse_verdict(reply)


def parse_verdict(reply: str) -> Verdict:
    """The first JSON object in `reply` that has both verdicts as booleans (or yes/no, true/false strings)."""
    for match in _OBJECT.finditer(reply):
        try:
            found = json.loads(match.group())
        except ValueError:
            continue
        verdict = {key: _boolean(found.get(key)) for key in ("correct", "faithful")}
        if all(value is not None for value in verdict.values()):
            return {key: bool(value) for key, value in verdict.items()}
    raise JudgeError(f"no verdict in the judge's reply: {reply[:120]!r}")


def _boolean(value: object) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return _BOOLEAN.get(value.strip().lower())
    return None
