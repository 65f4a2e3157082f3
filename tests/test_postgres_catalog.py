"""What the PostgreSQL catalog adds to the catalog interface, against a real server: choosing it, bad URLs and
passwords, a schema newer than the code, locks shared by processes, lost connections, serialised feature
transactions, moving a SQLite catalog over (`byline catalog copy`), and a server that goes away."""

from __future__ import annotations

import importlib
import os
import pkgutil
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest
from conftest import REPO, SEED_ARTICLE, SEED_JSONL, free_port
from fake_slack import FakeSlack
from postgres_server import NO_DURABILITY, PostgresServer, running_postgres
from slack_harness import CHANNEL, SlackHarness

from bot.app import Byline
from bot.cli.catalog import feature_migrations
from bot.settings import Settings
from ingest.embedding import Embedder
from ingest.storage import postgres_schema, sqlite_schema
from ingest.storage.catalog import CatalogError, LexicalQuery, Migration
from ingest.storage.postgres import PostgresCatalog, pg_sql
from ingest.storage.sqlite import SQLiteCatalog
from ingest.web.state import WebState

pytestmark = [pytest.mark.slow, pytest.mark.network]

BYLINE = Path(sys.executable).with_name("byline")


def byline_command(*args: str, home: Path, database_url: str | None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BYLINE_HOME": str(home)}
    if database_url is not None:
        env["BYLINE_STORE_DATABASE_URL"] = database_url
    return subprocess.run([str(BYLINE), *args], env=env, capture_output=True, text=True, timeout=300)


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.startswith("error: ") and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    return result.stderr


def test_placeholders_become_psycopg_ones_outside_quotes() -> None:
    assert pg_sql("SELECT a FROM t WHERE b = ? AND c LIKE '%?%' AND d = ?") == (
        "SELECT a FROM t WHERE b = %s AND c LIKE '%%?%%' AND d = %s"
    )
    assert pg_sql('SELECT "odd?" -- why?\nFROM t WHERE x % 2 = ?') == (
        'SELECT "odd?" -- why?\nFROM t WHERE x %% 2 = %s'
    )
    assert pg_sql("SELECT 'it''s ?', ?") == "SELECT 'it''s ?', %s"


def test_a_portable_migration_gives_postgresql_sqlites_widths() -> None:
    migration = Migration.portable("900_x", "CREATE TABLE t (n INTEGER NOT NULL, at REAL, s TEXT, REALM TEXT)")
    assert migration.sqlite == "CREATE TABLE t (n INTEGER NOT NULL, at REAL, s TEXT, REALM TEXT)"
    assert migration.postgres == "CREATE TABLE t (n bigint NOT NULL, at double precision, s TEXT, REALM TEXT)"


def declared_migrations() -> list[Migration]:
    """The migrations of every module-level list of them in Byline's packages, but the catalogs' own."""
    cores = (sqlite_schema.CORE_MIGRATIONS, postgres_schema.CORE_MIGRATIONS)
    found: dict[int, list[Migration]] = {}
    for package in ("bot", "ingest", "evals"):
        for module in pkgutil.walk_packages([str(REPO / package)], prefix=f"{package}."):
            for value in vars(importlib.import_module(module.name)).values():
                listed = isinstance(value, list) and value and all(isinstance(m, Migration) for m in value)
                if listed and not any(value is core for core in cores):
                    found[id(value)] = value
    return [migration for migrations in found.values() for migration in migrations]


def test_every_migration_has_both_versions_under_the_same_names() -> None:
    # every feature's migrations are known to `catalog copy` (and the test template), with both versions
    assert {m.name for m in declared_migrations()} == {m.name for m in feature_migrations()}
    for migration in feature_migrations():
        assert migration.sqlite and migration.postgres, migration.name
    names = [m.name for m in feature_migrations()]
    assert len(names) == len(set(names))
    # the core schemas: one name, one change, in both catalogs
    assert [m.name for m in postgres_schema.CORE_MIGRATIONS] == [m.name for m in sqlite_schema.CORE_MIGRATIONS]
    assert not {m.name for m in postgres_schema.CORE_MIGRATIONS} & set(names)


def test_bad_urls_and_passwords_are_one_line_errors(postgres_server: PostgresServer, tmp_path: Path) -> None:
    unreachable = f"postgresql://byline:pw@127.0.0.1:{free_port()}/byline"
    cases = {
        unreachable: "Connection refused",
        postgres_server.url(password="not-the-password"): "password authentication failed",
        postgres_server.url("no_such_database"): 'database "no_such_database" does not exist',
        "mysql://byline@127.0.0.1/byline": "must be a postgresql:// URL",
    }
    commands = [["stats"], ["ask", "Anything?"], ["ingest", str(SEED_ARTICLE)], ["feeds", "list"]]
    for command, (url, reason) in zip(commands, cases.items(), strict=True):
        error = one_line_error(byline_command(*command, home=tmp_path / "home", database_url=url))
        assert reason in error, error
        assert "not-the-password" not in error and ":pw@" not in error  # no password in messages
    assert not (tmp_path / "home" / "catalog.sqlite").exists()  # nothing fell back to SQLite


def test_a_schema_newer_than_the_code_is_refused(fresh_postgres_url: str, tmp_path: Path) -> None:
    PostgresCatalog(fresh_postgres_url).close()
    with psycopg.connect(fresh_postgres_url, autocommit=True) as conn:
        conn.execute("UPDATE catalog_schema SET core = core + 1")
    with pytest.raises(CatalogError, match="written by a newer Byline"):
        PostgresCatalog(fresh_postgres_url)
    error = one_line_error(byline_command("stats", home=tmp_path / "home", database_url=fresh_postgres_url))
    assert "upgrade Byline" in error


def test_a_migration_without_a_postgres_version_is_refused(fresh_postgres_url: str) -> None:
    catalog = PostgresCatalog(fresh_postgres_url)
    with pytest.raises(CatalogError, match="migration 999_sqlite_only has no PostgreSQL version"):
        catalog.apply_migrations([Migration("999_sqlite_only", sqlite="CREATE TABLE x (y TEXT)")])
    catalog.close()


def test_locks_are_shared_and_die_with_their_holder(fresh_postgres_url: str) -> None:
    one, other = PostgresCatalog(fresh_postgres_url), PostgresCatalog(fresh_postgres_url)
    with one.lock("write") as held:
        assert held
        with other.lock("write", blocking=False) as taken:
            assert not taken
        with other.lock("another", blocking=False) as taken:
            assert taken
    with other.lock("write", blocking=False) as taken:
        assert taken
    # a holder that dies (here: a process killed while holding it) never blocks anybody
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from ingest.storage.postgres import PostgresCatalog\n"
            "c = PostgresCatalog(sys.argv[1])\n"
            "with c.lock('write'):\n    print('held', flush=True); time.sleep(600)",
            fresh_postgres_url,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with other.lock("write", blocking=False) as taken:
            assert not taken
        holder.kill()
        holder.wait()
        with other.lock("write") as taken:  # blocking: returns once the server has seen the holder go
            assert taken
    finally:
        holder.kill()
    one.close()
    other.close()


def test_a_dropped_connection_is_replaced(fresh_postgres_url: str, postgres_server: PostgresServer) -> None:
    catalog = PostgresCatalog(fresh_postgres_url)
    catalog.apply_migrations(feature_migrations())
    assert catalog.fetch("SELECT count(*) FROM feeds") == [(0,)]
    with postgres_server.admin() as admin:  # as a server restart or a network cut would
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
            (fresh_postgres_url.rsplit("/", 1)[1],),
        )
    assert catalog.fetch("SELECT count(*) FROM feeds") == [(0,)]
    with catalog.transaction() as db:
        db.execute("INSERT INTO feeds (url, added_at) VALUES (?, ?)", ("https://x.example/feed", "now"))
    assert catalog.fetch("SELECT url FROM feeds") == [("https://x.example/feed",)]
    catalog.close()


def test_feature_transactions_run_one_at_a_time(fresh_postgres_url: str) -> None:
    """A read-then-write in `transaction()` sees no concurrent change, as with SQLite's BEGIN IMMEDIATE."""
    catalogs = [PostgresCatalog(fresh_postgres_url) for _ in range(4)]
    catalogs[0].apply_migrations([Migration("900_counter", postgres="CREATE TABLE counter (n INTEGER NOT NULL)")])
    with catalogs[0].transaction() as db:
        db.execute("INSERT INTO counter VALUES (0)")
    start = threading.Barrier(len(catalogs))

    def bump(catalog: PostgresCatalog) -> None:
        start.wait()
        for _ in range(25):
            with catalog.transaction() as db:
                (n,) = db.fetch("SELECT n FROM counter")[0]
                db.execute("UPDATE counter SET n = ?", (n + 1,))

    threads = [threading.Thread(target=bump, args=(catalog,)) for catalog in catalogs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert catalogs[0].fetch("SELECT n FROM counter") == [(100,)]
    for catalog in catalogs:
        catalog.close()


def test_catalog_copy_moves_a_home_to_postgresql(
    fresh_postgres_url: str, embedder: Embedder, seeded_home: Path, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    shutil.copytree(seeded_home, home)
    byline_command("feeds", "add", "--no-check", "https://x.example/feed.xml", home=home, database_url=None)
    sqlite = Byline(Settings(home=home), embedder=embedder)
    copied = byline_command("catalog", "copy", "--to", fresh_postgres_url, home=home, database_url=None)
    assert copied.returncode == 0, copied.stderr
    assert "articles: 38 rows" in copied.stdout and "feeds: 1 rows" in copied.stdout
    assert "row counts checked" in copied.stdout and str(urlsplit(fresh_postgres_url).password) not in copied.stdout

    moved = Byline(Settings(home=home, store={"database_url": fresh_postgres_url}), embedder=embedder)
    assert type(moved.catalog) is PostgresCatalog
    before, after = sqlite.stats(), moved.stats()
    for key in ("articles", "indexed_articles", "chunks", "tokens", "sources", "published_first", "pending_writes"):
        assert after[key] == before[key], key
    for question in ("Why did Jack Dorsey call Ilhan Omar?", "What happened in Magnitogorsk?"):
        query = LexicalQuery(["jack", "dorsey", "magnitogorsk", "omar"], 20)
        assert [c for c, _ in moved.store.lexical_search(query)] == [c for c, _ in sqlite.store.lexical_search(query)]
        assert moved.ask(question).to_dict()["citations"] == sqlite.ask(question).to_dict()["citations"]
    assert [feed.url for feed in WebState(moved.catalog).feeds()] == ["https://x.example/feed.xml"]

    again = byline_command("catalog", "copy", "--to", fresh_postgres_url, home=home, database_url=None)
    assert "already holds rows in articles: copy only into an empty catalog" in one_line_error(again)
    assert moved.stats()["articles"] == 38  # the refused copy changed nothing


def test_catalog_copy_refuses_what_it_does_not_know(fresh_postgres_url: str, tmp_path: Path) -> None:
    catalog = SQLiteCatalog(tmp_path / "home" / "catalog.sqlite")
    catalog.apply_migrations([Migration("990_from_a_plugin", sqlite="CREATE TABLE plugin_state (k TEXT)")])
    catalog.close()
    error = one_line_error(
        byline_command("catalog", "copy", "--to", fresh_postgres_url, home=tmp_path / "home", database_url=None)
    )
    assert "990_from_a_plugin" in error and "copy it with the Byline that wrote it" in error
    empty = one_line_error(
        byline_command("catalog", "copy", "--to", fresh_postgres_url, home=tmp_path / "nothing", database_url=None)
    )
    assert "no SQLite catalog at" in empty


def test_when_postgresql_goes_away_commands_say_so_in_one_line(embedder: Embedder, tmp_path: Path) -> None:
    with running_postgres(NO_DURABILITY) as server:
        url = server.url()
        byline = Byline(Settings(home=tmp_path / "home", store={"database_url": url}), embedder=embedder)
        byline.ingest([str(SEED_JSONL)])
        assert not byline.ask("What happened in Magnitogorsk?").refused
    # the server is gone: the open Byline and new commands fail naming the catalog, and nothing is half-written
    with pytest.raises(CatalogError, match=r"catalog at postgresql://byline@127\.0\.0\.1:\d+/byline"):
        byline.ask("What happened in Magnitogorsk?")
    for command in (["stats"], ["ask", "What happened in Magnitogorsk?"], ["ingest", str(SEED_ARTICLE)]):
        error = one_line_error(byline_command(*command, home=tmp_path / "home", database_url=url))
        assert "catalog at postgresql://byline@127.0.0.1" in error and "Connection refused" in error


def test_a_slack_bot_whose_catalog_goes_away_says_so(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with running_postgres(NO_DURABILITY) as server, FakeSlack() as fake:
        catalog = PostgresCatalog(server.url())
        with SlackHarness(fake, tmp_path / "home", catalog=catalog) as harness:
            harness.ask_in_channel("why did Dorsey call Omar?")
            fake.wait_for(lambda: "Dorsey called Omar" in fake.shown(CHANNEL))
            server.stop()
            harness.ask_in_channel("and what did Trump tweet?")
            fake.wait_for(lambda: "something went wrong" in fake.shown(CHANNEL).rsplit("Dorsey called Omar", 1)[1])
    assert any("catalog at postgresql://byline@127.0.0.1" in r.getMessage() for r in caplog.records)
