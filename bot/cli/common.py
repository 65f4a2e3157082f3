"""What every `byline` command shares: settings built at the edge, one-line errors, opening the facade."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import typer

if TYPE_CHECKING:
    from bot.app import Byline
    from bot.settings import Settings


class UserError(Exception):
    """A problem the user can fix; printed as one line, exit status 1."""


def fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def settings_from(ctx: typer.Context, **overrides: Any) -> Settings:
    """The settings for this command: the global --home/--config options, then `overrides` (its own flags)."""
    from pydantic import ValidationError

    from bot.settings import load_settings

    options = ctx.find_root().obj or {}
    try:
        return load_settings(options.get("config"), home=options.get("home"), **overrides)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        fail(f"invalid settings: {problems}", 2)
    except FileNotFoundError as exc:
        fail(str(exc), 2)


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn the errors a user can act on into one line on stderr instead of a traceback."""
    from bot.answering.llm import ConfigError
    from bot.app import EmptyIndexError
    from ingest.embedding import EmbeddingError
    from ingest.storage.catalog import CatalogError
    from ingest.storage.store import StoreError

    try:
        yield
    except (UserError, EmptyIndexError, EmbeddingError, StoreError, CatalogError) as exc:
        fail(str(exc))
    except ConfigError as exc:
        fail(str(exc), 2)
    except KeyboardInterrupt:
        fail("interrupted", 130)


def open_byline(settings: Settings) -> Byline:
    from bot.app import Byline

    return Byline(settings)


def parse_day(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        fail(f"{option} takes a date like 2019-04-16, not {value!r}", 2)


def json_default(value: object) -> str:
    """For json.dumps: dates and paths as text."""
    if isinstance(value, datetime | date | Path):
        return str(value)
    raise TypeError(type(value).__name__)
