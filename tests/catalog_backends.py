"""Running catalog-level tests against both catalogs: SQLite under the test's home and PostgreSQL on the
session's throwaway server, each test on a fresh database cloned from a migrated template (a clone is much
cheaper than migrating).

- `catalog_backend`: "sqlite" or "postgresql", parametrising every test that uses it (or a fixture below);
- `open_catalog`: a function opening a catalog of that backend, the same database each call (several
  "processes"), all closed after the test;
- `backend_env`: sets BYLINE_STORE_DATABASE_URL for the postgresql run, so Bylines built from the environment
  use that catalog; put `pytestmark = pytest.mark.usefixtures("backend_env")` in a module to run all of it twice;
- `PreparedIndex` and `prepared_copy`: an index built once (a home and, for PostgreSQL, a template database),
  copied for each test;
- `seeded_on_both`: a Byline over a copy of the seeded index, on each catalog (`seeded_index`, per module).
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from postgres_server import PostgresServer

from bot.app import Byline
from bot.settings import load_settings
from ingest.storage.catalog import Catalog

BACKENDS = ["sqlite", "postgresql"]
DATABASE_ENV = "BYLINE_STORE_DATABASE_URL"
# A test marked so runs once per catalog, Bylines built from the environment using that catalog.
on_both_catalogs = pytest.mark.usefixtures("backend_env")


@dataclass(frozen=True)
class PreparedIndex:
    """An index built once: its home (vectors, and the SQLite catalog) and the template database holding its
    PostgreSQL catalog, if it has one."""

    home: Path
    database: str | None = None


def close_quietly(catalog: Catalog) -> None:
    with contextlib.suppress(Exception):  # closed already
        catalog.close()


@pytest.fixture(scope="session")
def postgres_template(postgres_server: PostgresServer) -> str:
    """A database with every migration applied, core and features'."""
    from bot.cli.catalog import feature_migrations
    from ingest.storage.postgres import PostgresCatalog

    name = "byline_template"
    catalog = PostgresCatalog(postgres_server.create_database(name))
    catalog.apply_migrations(feature_migrations())
    catalog.close()
    return name


def clone(server: PostgresServer, template: str) -> tuple[str, str]:
    """(name, URL) of a new database cloned from `template`."""
    name = f"test_{secrets.token_hex(6)}"
    return name, server.clone_database(template, name)


@pytest.fixture
def fresh_postgres_url(postgres_server: PostgresServer, postgres_template: str) -> Iterator[str]:
    """A migrated, empty catalog database of the test's own."""
    name, url = clone(postgres_server, postgres_template)
    yield url
    postgres_server.drop_database(name)


@pytest.fixture(params=BACKENDS)
def catalog_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def database_url(catalog_backend: str, request: pytest.FixtureRequest) -> str | None:
    """The PostgreSQL URL of this test's catalog, None for SQLite."""
    if catalog_backend == "sqlite":
        return None
    return str(request.getfixturevalue("fresh_postgres_url"))


@pytest.fixture
def open_catalog(database_url: str | None, tmp_path: Path) -> Iterator[Callable[[], Catalog]]:
    opened: list[Catalog] = []

    def open_one() -> Catalog:
        from ingest.storage.postgres import PostgresCatalog
        from ingest.storage.sqlite import SQLiteCatalog

        catalog = SQLiteCatalog(tmp_path / "catalog.sqlite") if database_url is None else PostgresCatalog(database_url)
        opened.append(catalog)
        return catalog

    yield open_one
    for catalog in opened:
        close_quietly(catalog)


@pytest.fixture
def backend_env(database_url: str | None, isolated_env: Path, monkeypatch: pytest.MonkeyPatch) -> str | None:
    if database_url is not None:
        monkeypatch.setenv(DATABASE_ENV, database_url)
    return database_url


def prepare_on_postgres(server: PostgresServer, sqlite_home: Path, target: Path) -> PreparedIndex:
    """A prepared SQLite index moved onto PostgreSQL: its home copied (the vectors), its catalog copied into a
    new template database with `copy_catalog`."""
    from bot.cli.catalog import feature_migrations
    from ingest.storage.copy import copy_catalog
    from ingest.storage.postgres import PostgresCatalog
    from ingest.storage.sqlite import SQLiteCatalog

    shutil.copytree(sqlite_home, target)
    (target / "catalog.sqlite").unlink()
    name = f"prepared_{secrets.token_hex(6)}"
    source, catalog = SQLiteCatalog(sqlite_home / "catalog.sqlite"), PostgresCatalog(server.create_database(name))
    try:
        copy_catalog(source, catalog, feature_migrations())
        catalog.apply_migrations(feature_migrations())
    finally:
        source.close()
        catalog.close()
    return PreparedIndex(target, name)


def prepared_copy(prepared: PreparedIndex, target: Path, request: pytest.FixtureRequest) -> None:
    """Make a private copy of a prepared index this test's BYLINE_HOME (and catalog database)."""
    monkeypatch: pytest.MonkeyPatch = request.getfixturevalue("monkeypatch")
    shutil.copytree(prepared.home, target)
    monkeypatch.setenv("BYLINE_HOME", str(target))
    if prepared.database is not None:
        server: PostgresServer = request.getfixturevalue("postgres_server")
        name, url = clone(server, prepared.database)
        request.addfinalizer(lambda: server.drop_database(name))
        monkeypatch.setenv(DATABASE_ENV, url)


@pytest.fixture(scope="module", params=BACKENDS)
def seeded_index(
    request: pytest.FixtureRequest, seeded_home: Path, tmp_path_factory: pytest.TempPathFactory
) -> PreparedIndex:
    """The seed articles indexed once, on each catalog: the session's seeded home, and for PostgreSQL that home
    moved onto a template database of the module's own."""
    if request.param == "sqlite":
        return PreparedIndex(seeded_home)
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return prepare_on_postgres(server, seeded_home, tmp_path_factory.mktemp("seeded-postgresql") / "home")


@pytest.fixture
def seeded_on_both(seeded_index: PreparedIndex, tmp_path: Path, request: pytest.FixtureRequest) -> Byline:
    """A Byline over a private copy of the seeded index on the module's catalog, sharing the session's model."""
    prepared_copy(seeded_index, tmp_path / "seeded-home", request)
    return Byline(load_settings(), embedder=request.getfixturevalue("embedder"))
