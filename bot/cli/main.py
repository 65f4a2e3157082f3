"""The `byline` command: global options, the built-in commands, and those other packages register.

A package adds commands through the `byline.commands` entry-point group: each entry names a function that takes
the typer app and registers its commands on it (the eval suite's `eval` and `bench` come this way).
"""

from __future__ import annotations

import gc
from importlib.metadata import entry_points
from pathlib import Path
from typing import Annotated

import typer

from bot.cli import ask, catalog, chat, index, slack, upkeep, web
from bot.cli.help import BylineGroup

COMMANDS_GROUP = "byline.commands"
# Allocations between young-generation collections (Python's default is 700).
YOUNG_COLLECTION_THRESHOLD = 7_000


def main_options(
    ctx: typer.Context,
    home: Annotated[
        Path | None,
        typer.Option(metavar="DIR", help="Data directory (default: $BYLINE_HOME or the user data dir)."),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(metavar="FILE", help="TOML settings file (default: $BYLINE_CONFIG or HOME/byline.toml)."),
    ] = None,
) -> None:
    ctx.obj = {"home": home, "config": config}


def build_app() -> typer.Typer:
    """The `byline` app: global options, the built-in commands, then every `byline.commands` plugin's."""
    app = typer.Typer(
        cls=BylineGroup,
        name="byline",
        help="Ask questions about news articles; every answer cites the passages it came from.\n\n"
        'Example: byline ingest seeds/ && byline ask "Why did Jack Dorsey call Ilhan Omar?"',
        no_args_is_help=True,
        context_settings={"help_option_names": ["-h", "--help"]},
        pretty_exceptions_enable=False,
    )
    app.callback()(main_options)
    for command in (index.ingest, ask.ask, index.stats, index.forget):
        app.command()(command)
    for entry in sorted(entry_points(group=COMMANDS_GROUP), key=lambda e: e.name):
        entry.load()(app)
    for module in (web, slack, chat, catalog, upkeep):
        module.register(app)
    return app


def main() -> None:
    """The `byline` process: runs one command, then exits."""
    # Start-up (imports, models) allocates mostly objects that live as long as the process; at the default
    # threshold the collector passes over them hundreds of times as they come. Garbage cycles wait a little longer.
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD)
    try:
        build_app()()
    finally:
        # Interpreter shutdown runs full garbage collections over every object still alive (well over a hundred
        # thousand once the libraries are imported): a large share of a one-shot command like `ask`. Frozen
        # objects are skipped. Atexit handlers, flushes and thread joins still run, and no write relies on more at
        # exit: each is safe against the process being killed.
        gc.freeze()
