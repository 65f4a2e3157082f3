"""`byline catalog copy`: move this home's SQLite catalog into PostgreSQL, to share it between machines."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from bot.cli.common import fail, settings_from, user_errors

if TYPE_CHECKING:
    from ingest.storage.catalog import Migration


def register(app: typer.Typer) -> None:
    catalog = typer.Typer(
        help="The catalog: articles, chunks, BM25 index and feature state.\n\n"
        "Example: byline catalog copy --to postgresql://byline:PASSWORD@db-host:5432/byline",
        no_args_is_help=True,
    )
    catalog.command("copy")(copy)
    app.add_typer(catalog, name="catalog")


def feature_migrations() -> list[Migration]:
    """The migrations of every feature that keeps state in the catalog."""
    from bot.slack import feedback, guards, threads
    from ingest.web import state

    return [
        *state.MIGRATIONS,
        *feedback.MIGRATIONS,
        *guards.DELIVERY_MIGRATIONS,
        *guards.RATE_MIGRATIONS,
        *threads.MIGRATIONS,
    ]


def copy(
    ctx: typer.Context,
    to: Annotated[str, typer.Option("--to", help="PostgreSQL URL of an empty catalog: postgresql://user:pw@host/db")],
) -> None:
    """Copy this home's SQLite catalog (articles, chunks, feeds, Slack state) into PostgreSQL, and check it.

    Example: byline catalog copy --to postgresql://byline:PASSWORD@db-host:5432/byline
    """
    from ingest.storage.copy import copy_catalog
    from ingest.storage.postgres import PostgresCatalog
    from ingest.storage.sqlite import SQLiteCatalog

    settings = settings_from(ctx)
    path = settings.home / "catalog.sqlite"
    if not path.is_file():
        fail(f"no SQLite catalog at {path}: nothing to copy")
    if not to.startswith(("postgresql://", "postgres://")):
        fail("--to takes a postgresql:// URL", 2)
    with user_errors():
        source = SQLiteCatalog(path)
        target = PostgresCatalog(to)
        try:
            counts = copy_catalog(source, target, feature_migrations())
        finally:
            source.close()
            target.close()
    for table, (_, written) in counts.items():
        typer.echo(f"{table}: {written} rows")
    typer.echo(
        f"copied {sum(read for read, _ in counts.values())} rows in {len(counts)} tables to {target.where}; row "
        "counts checked. Point BYLINE_STORE_DATABASE_URL at it on every machine."
    )
