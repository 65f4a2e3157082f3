"""A real, throwaway PostgreSQL server on 127.0.0.1 for tests and benchmarks, and pytest fixtures over it.

`start_postgres()` starts `postgres_supervisor.py`, which runs `initdb` and `postgres` in a temporary directory
and removes both when `stop()` closes its stdin or when this process dies (even by SIGKILL), so no server
outlives the run. The server has a superuser `postgres`, trusted only on its private Unix socket (used here to
create roles and databases), and a login role `byline` whose password is checked over TCP (scram-sha-256), so
tests can also see a wrong password refused.

Use from a conftest or a test module: `from postgres_server import postgres_server, postgres_url`.
"""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

POSTGRES_BIN = Path("/usr/lib/postgresql/15/bin")
SUPERVISOR = Path(__file__).resolve().with_name("postgres_supervisor.py")
TEST_ROLE = "byline"
# Tests need no durability: the cluster is thrown away with the run.
NO_DURABILITY = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}


class PostgresUnavailable(RuntimeError):
    """The server binaries are missing or the server did not start."""


def find_postgres_bin() -> Path:
    """Debian's PostgreSQL 15 server binaries, else the directory of the `initdb` on PATH."""
    if (POSTGRES_BIN / "initdb").is_file():
        return POSTGRES_BIN
    if found := shutil.which("initdb"):
        return Path(found).parent
    raise PostgresUnavailable(
        f"PostgreSQL server binaries not found (no {POSTGRES_BIN}/initdb, no initdb on PATH): "
        "apt-get install postgresql-15"
    )


@dataclass
class PostgresServer:
    """A running throwaway server; `url()` is the test role's connection URL."""

    port: int
    socket_dir: Path
    password: str
    host: str = "127.0.0.1"
    user: str = TEST_ROLE
    database: str = TEST_ROLE
    started_seconds: float = 0.0
    _supervisor: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def url(self, database: str | None = None, password: str | None = None) -> str:
        secret = quote(self.password if password is None else password, safe="")
        return f"postgresql://{self.user}:{secret}@{self.host}:{self.port}/{database or self.database}"

    def admin(self) -> Any:
        """An autocommit superuser connection over the private socket."""
        import psycopg

        return psycopg.connect(
            host=str(self.socket_dir), port=self.port, user="postgres", dbname="postgres", autocommit=True
        )

    def create_database(self, name: str) -> str:
        """A new empty database owned by the test role; returns its URL."""
        from psycopg import sql

        with self.admin() as admin:
            admin.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(self.user))
            )
        return self.url(name)

    def clone_database(self, template: str, name: str) -> str:
        """A copy of `template` (which nobody may be connected to), owned by the test role; returns its URL."""
        from psycopg import sql

        with self.admin() as admin:
            admin.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {} OWNER {}").format(
                    sql.Identifier(name), sql.Identifier(template), sql.Identifier(self.user)
                )
            )
        return self.url(name)

    def drop_database(self, name: str) -> None:
        from psycopg import sql

        with self.admin() as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    @property
    def running(self) -> bool:
        return self._supervisor is not None and self._supervisor.poll() is None

    def stop(self) -> None:
        """Shut the server down and delete its directory: the supervisor does both once its stdin closes."""
        supervisor, self._supervisor = self._supervisor, None
        if supervisor is None:
            return
        if supervisor.stdin:
            supervisor.stdin.close()
        try:
            supervisor.wait(timeout=60)
        except subprocess.TimeoutExpired:
            supervisor.kill()
            supervisor.wait()


def start_postgres(settings: Mapping[str, str] | None = None, *, bin_dir: Path | None = None) -> PostgresServer:
    """A server (`settings` passed as `-c name=value`) with the test role and its database, accepting logins."""
    import psycopg
    from psycopg import sql

    started = time.perf_counter()
    config = {"bin_dir": str(bin_dir or find_postgres_bin()), "settings": dict(settings or {})}
    supervisor = subprocess.Popen(
        [sys.executable, str(SUPERVISOR), json.dumps(config)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        # Its own session: a Ctrl-C in the terminal reaches only the test run, whose teardown stops the server.
        start_new_session=True,
    )
    assert supervisor.stdout is not None
    line = supervisor.stdout.readline()
    try:
        report = json.loads(line) if line else {"error": f"supervisor exited with {supervisor.wait()}"}
    except json.JSONDecodeError:
        report = {"error": f"supervisor wrote {line!r}"}
    if "error" in report:
        supervisor.kill()
        supervisor.wait()
        raise PostgresUnavailable(f"PostgreSQL did not start: {report['error']}")
    server = PostgresServer(
        port=int(report["port"]),
        socket_dir=Path(report["socket_dir"]),
        password=secrets.token_urlsafe(16),
        _supervisor=supervisor,
    )
    try:
        with server.admin() as admin:
            admin.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                    sql.Identifier(server.user), sql.Literal(server.password)
                )
            )
            admin.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(
                    sql.Identifier(server.database), sql.Identifier(server.user)
                )
            )
    except (psycopg.Error, OSError):
        server.stop()
        raise
    server.started_seconds = time.perf_counter() - started
    return server


@contextmanager
def running_postgres(settings: Mapping[str, str] | None = None) -> Iterator[PostgresServer]:
    server = start_postgres(settings)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One server for the whole test session."""
    with running_postgres(NO_DURABILITY) as server:
        yield server


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """The URL of a fresh, empty database owned by the test role, dropped after the test."""
    name = f"test_{secrets.token_hex(6)}"
    url = postgres_server.create_database(name)
    try:
        yield url
    finally:
        postgres_server.drop_database(name)
