"""What every `byline` command shares: settings built at the edge, one-line errors, opening the facade."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated, Any, NoReturn

import typer

if TYPE_CHECKING:
    from bot.app import Byline
    from bot.settings import Settings


# Options that `ask` and `chat` share.
SourceOption = Annotated[
    list[str] | None, typer.Option("--source", metavar="OUTLET", help="Only this outlet (repeatable).")
]
SinceOption = Annotated[str | None, typer.Option(metavar="DATE", help="Only articles published on or after this date.")]
UntilOption = Annotated[
    str | None, typer.Option(metavar="DATE", help="Only articles published on or before this date.")
]
StreamOption = Annotated[
    bool | None,
    typer.Option("--stream/--no-stream", help="Print checked sentences as they pass (default: on a terminal)."),
]


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
    from ingest.model_files import EmbeddingError
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


@contextmanager
def atomic_write(path: Path, *, binary: bool = False) -> Iterator[IO[Any]]:
    """Write to a temporary file beside `path` and move it into place, so no half-written file is left.

    The file gets the mode open() would give it (0666 less the umask: 0644 as a rule), where mkstemp makes 0600.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
        try:
            descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            break
        except FileExistsError:
            continue
    try:
        with os.fdopen(descriptor, "wb") if binary else os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            yield handle
        temporary.replace(path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
