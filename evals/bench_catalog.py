"""`byline bench --catalog postgresql://…`: every index the benchmark builds gets a PostgreSQL catalog of its
own, a database named after its home on that server (the URL's role must be allowed to create databases)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

DATABASE_ENV = "BYLINE_STORE_DATABASE_URL"


def catalog_url(server: str, home: Path, *, fresh: bool = False) -> str:
    """The URL of `home`'s database on `server`; with `fresh`, dropped and made anew (before an ingest)."""
    import psycopg
    from psycopg import sql

    parts = urlsplit(server)
    name = f"{parts.path.strip('/') or 'byline'}_bench_{home.name}".replace("-", "_").lower()
    if fresh:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return urlunsplit(parts._replace(path=f"/{name}"))


def catalog_env(server: str | None, home: Path, *, fresh: bool = False) -> dict[str, str]:
    """The environment a `byline` child needs to use `home`'s catalog (nothing for the SQLite one)."""
    return {DATABASE_ENV: catalog_url(server, home, fresh=fresh)} if server else {}


def catalog_settings(server: str | None, home: Path) -> dict[str, dict[str, str]]:
    """Settings overrides for a Byline in this process using `home`'s catalog."""
    return {"store": {"database_url": catalog_url(server, home)}} if server else {}
