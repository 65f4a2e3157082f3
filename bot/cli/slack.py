"""`byline slack` (run the Slack bot) and `byline feedback export` (👎 answers as eval questions)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from bot.cli import common
from bot.cli.common import atomic_write, fail, settings_from, user_errors

if TYPE_CHECKING:
    from bot.app import Byline
    from bot.models import Answer, Turn
    from ingest.models import SearchFilters
    from ingest.storage.catalog import Headline

NO_ARTICLES = "No articles have been ingested yet, so there is nothing to answer from."


def register(app: typer.Typer) -> None:
    app.command("slack")(slack)
    feedback = typer.Typer(
        help="Votes people gave Byline's answers in Slack.\n\nExample: byline feedback export -o downvoted.jsonl",
        no_args_is_help=True,
    )
    feedback.command("export")(export_feedback)
    app.add_typer(feedback, name="feedback")


def slack(
    ctx: typer.Context,
    http: Annotated[
        bool, typer.Option("--http", help="Serve the Events API over HTTP instead of Socket Mode.")
    ] = False,
    port: Annotated[
        int, typer.Option(metavar="PORT", min=0, max=65535, help="HTTP mode: the port to listen on.")
    ] = 3000,
    host: Annotated[str, typer.Option(metavar="ADDRESS", help="HTTP mode: the address to listen on.")] = "0.0.0.0",
) -> None:
    """Answer questions in Slack: Socket Mode with SLACK_APP_TOKEN, or --http with SLACK_SIGNING_SECRET.

    On SIGTERM it stops taking questions, finishes the ones taken, and exits.

    Example: byline slack --http --port 3000
    """
    from bot.slack import HttpServer, create_slack_app, run_socket_mode
    from bot.slack.client import SlackStartupError, check_startup, make_web_client, verify_bot_token

    settings = settings_from(ctx)
    try:
        check_startup(settings.slack, http=http)
        client = make_web_client(settings.slack)
        identity = verify_bot_token(client)
    except SlackStartupError as exc:
        fail(str(exc), 2)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    with user_errors():
        byline = common.open_byline(settings)
        empty = byline.store.count() == 0
    if empty:
        typer.echo(f"warning: {NO_ARTICLES} Run `byline ingest PATH...`.", err=True)
    try:
        slack_app = create_slack_app(settings, BylineAnswers(byline), byline.catalog, client=client)
    except ValueError as exc:  # a bad slack.channel_filters entry
        fail(str(exc), 2)
    who = f"@{identity.get('user', '?')} in {identity.get('team', '?')}"
    app_token = settings.slack.app_token
    if http:
        try:
            server = HttpServer(slack_app, host, port, drain_seconds=settings.slack.drain_seconds)
        except OSError as exc:
            fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}", 2)
        typer.echo(f"Byline is answering in Slack as {who}: http://{host}:{server.port}/slack/events", err=True)
        drained = server.serve()
    else:
        assert app_token is not None  # check_startup has made sure it is there
        typer.echo(f"Byline is answering in Slack as {who} (Socket Mode)", err=True)
        drained = run_socket_mode(slack_app, app_token.get_secret_value(), settings.slack.drain_seconds)
    typer.echo("stopped" if drained else "stopped; some answers were still being worked on", err=True)


class BylineAnswers:
    """The facade as the Slack bot's `Answering`; an empty index is answered as a refusal that says why."""

    def __init__(self, byline: Byline) -> None:
        self.byline = byline

    def ask(
        self,
        question: str,
        filters: SearchFilters | None,
        history: Sequence[Turn],
        *,
        on_text: Callable[[str], None] | None = None,
        on_status: Callable[[str], None] | None = None,
    ) -> Answer:
        from bot.app import EmptyIndexError
        from bot.models import CANNOT_ANSWER, Answer

        try:
            return self.byline.ask(question, filters=filters, history=history, on_text=on_text, on_status=on_status)
        except EmptyIndexError:
            return Answer(question=question, text=CANNOT_ANSWER, refused=True, notice=NO_ARTICLES)

    def recent_articles(self, n: int) -> list[Headline]:
        return self.byline.recent_articles(n)


def export_feedback(
    ctx: typer.Context,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", metavar="FILE", help="JSONL file to write (default: standard output)."),
    ] = None,
) -> None:
    """Write the answers voted 👎 in Slack as eval-format JSONL, to review and turn into test questions.

    Example: byline feedback export -o downvoted.jsonl
    """
    from bot.slack import FeedbackStore

    catalog = common.open_byline(settings_from(ctx)).catalog
    lines = [json.dumps(r, ensure_ascii=False) + "\n" for r in FeedbackStore(catalog).downvoted()]
    if output is None:
        typer.echo("".join(lines), nl=False)
    else:
        with atomic_write(output) as out:
            out.write("".join(lines))
        typer.echo(f"wrote {len(lines)} question(s) to {output}", err=True)
