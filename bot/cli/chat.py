"""`byline chat`, a conversation with the articles, and the token printer `byline ask` streams through."""

from __future__ import annotations

import json
import sys
from collections import deque
from typing import TYPE_CHECKING, Annotated

import typer

from bot.cli import common
from bot.cli.common import parse_day, settings_from, user_errors

if TYPE_CHECKING:
    from bot.models import Answer

CHECKED = "── checked against the articles ──"
_QUIT = frozenset({"exit", "quit", ":q"})


class TokenPrinter:
    """Writes the model's tokens to stdout as they arrive, then rules them off from the checked answer."""

    def __init__(self) -> None:
        self.printed = False

    def __call__(self, token: str) -> None:
        typer.echo(token, nl=False)  # click flushes after each write
        self.printed = True

    def finish(self) -> None:
        if self.printed:
            typer.echo(f"\n\n{CHECKED}")


def token_printer(stream: bool | None) -> TokenPrinter | None:
    """A printer when streaming is asked for, or by default when stdout is a terminal."""
    return TokenPrinter() if (sys.stdout.isatty() if stream is None else stream) else None


def print_answer(answer: Answer, printer: TokenPrinter | None, as_json: bool = False) -> None:
    """The checked answer and its sources, after whatever was streamed."""
    if as_json:
        typer.echo(json.dumps(answer.to_dict(), ensure_ascii=False))
        return
    from bot.render import render_answer

    if printer is not None:
        printer.finish()
    typer.echo(render_answer(answer))


def chat(
    ctx: typer.Context,
    k: Annotated[int | None, typer.Option("-k", min=1, help="Passages to retrieve per question.")] = None,
    source: Annotated[list[str] | None, typer.Option("--source", help="Only this outlet (repeatable).")] = None,
    since: Annotated[str | None, typer.Option(help="Only articles published on or after this date.")] = None,
    until: Annotated[str | None, typer.Option(help="Only articles published on or before this date.")] = None,
    stream: Annotated[
        bool | None, typer.Option("--stream/--no-stream", help="Stream words as they come (default: on a terminal).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON answer object per line.")] = False,
) -> None:
    """Talk with the articles: follow-up questions ("what did he say next?") use the conversation so far.

    One question per line; `exit`, `quit` or end of input (Ctrl-D) ends the chat.
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
        printer = None if as_json else token_printer(stream)
        with user_errors():
            answer = byline.ask(question, filters=filters, history=tuple(history), k=k, on_token=printer)
        print_answer(answer, printer, as_json)
        if not as_json:
            typer.echo("")
        history.append(Turn(question, answer.text))


def register(app: typer.Typer) -> None:
    app.command("chat")(chat)
