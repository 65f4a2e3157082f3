"""`byline chat`, a conversation with the articles."""

from __future__ import annotations

import sys
from collections import deque
from typing import Annotated

import typer

from bot.cli import common
from bot.cli.common import SinceOption, SourceOption, StreamOption, UntilOption, parse_day, settings_from, user_errors
from bot.cli.live import LiveAnswer, print_json

_QUIT = frozenset({"exit", "quit", ":q"})


def chat(
    ctx: typer.Context,
    k: Annotated[int | None, typer.Option("-k", metavar="N", min=1, help="Passages to retrieve per question.")] = None,
    source: SourceOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    stream: StreamOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON answer object per line.")] = False,
) -> None:
    """Talk with the articles: follow-up questions ("what did he say next?") use the conversation so far.

    One question per line; `exit`, `quit` or end of input (Ctrl-D) ends the chat.

    Example: byline chat --source Wikinews
    """
    from bot.models import Turn
    from ingest.models import SearchFilters

    filters = SearchFilters(tuple(source or ()), parse_day(since, "--since"), parse_day(until, "--until"))
    settings = settings_from(ctx)
    with user_errors():
        byline = common.open_byline(settings)
        byline.answerer  # noqa: B018 - a bad LLM setup stops the chat before the first question
    history: deque[Turn] = deque(maxlen=settings.llm.history_turns)
    interactive = sys.stdin.isatty()
    if interactive:
        typer.echo("Ask about the ingested articles; `exit` or Ctrl-D ends the chat.", err=True)
    while True:
        if interactive:
            typer.echo("\n› ", nl=False, err=True)
        line = sys.stdin.readline()
        question = line.strip()
        if not line or question.lower() in _QUIT:
            break
        if not question:
            continue
        turns = tuple(history)
        if as_json:
            with user_errors():
                answer = byline.ask(question, filters=filters, history=turns, k=k)
            print_json(answer)
        else:
            with user_errors(), LiveAnswer.for_terminal(stream) as live:
                answer = byline.ask(
                    question, filters=filters, history=turns, k=k, on_text=live.on_text, on_status=live.on_status
                )
                live.finish(answer)
            typer.echo("")
        history.append(Turn(question, answer.text))


def register(app: typer.Typer) -> None:
    app.command("chat")(chat)
