"""`byline ask`: one question, answered from the ingested articles with numbered citations."""

from __future__ import annotations

from typing import Annotated

import typer

from bot.cli import common
from bot.cli.common import (
    SinceOption,
    SourceOption,
    StreamOption,
    UntilOption,
    fail,
    parse_day,
    settings_from,
    user_errors,
)
from bot.cli.live import LiveAnswer, print_json


def ask(
    ctx: typer.Context,
    question: Annotated[str, typer.Argument(metavar="QUESTION", help="The question, in quotes.")],
    k: Annotated[int | None, typer.Option("-k", metavar="N", min=1, help="Passages to retrieve.")] = None,
    source: SourceOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    stream: StreamOption = None,
) -> None:
    """Answer a question from the ingested articles, with numbered citations.

    Example: byline ask "Why did Jack Dorsey call Ilhan Omar?" --since 2019-04-01
    """
    from ingest.models import SearchFilters

    if not question.strip():
        fail("the question is empty", 2)
    filters = SearchFilters(tuple(source or ()), parse_day(since, "--since"), parse_day(until, "--until"))
    settings = settings_from(ctx)
    if as_json:
        with user_errors():
            answer = common.open_byline(settings).ask(question, filters=filters, k=k)
        print_json(answer)
        return
    with user_errors(), LiveAnswer.for_terminal(stream) as live:
        byline = common.open_byline(settings)
        answer = byline.ask(question, filters=filters, k=k, on_text=live.on_text, on_status=live.on_status)
        live.finish(answer)
