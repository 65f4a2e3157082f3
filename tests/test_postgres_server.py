"""The throwaway PostgreSQL server the tests use: password auth over TCP, and no server left behind when the
process that started it dies."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
from postgres_server import PostgresServer

pytestmark = [pytest.mark.slow, pytest.mark.network]


def test_wrong_password_is_refused(postgres_server: PostgresServer) -> None:
    with psycopg.connect(postgres_server.url()) as conn:
        assert conn.execute("SELECT current_user").fetchone() == (postgres_server.user,)
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(postgres_server.url(password="not-the-password"))


def test_server_is_removed_when_its_owner_is_killed() -> None:
    owner = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; sys.path.insert(0, sys.argv[1]); from postgres_server import start_postgres; "
            "s = start_postgres(); print(s.port, s.socket_dir, flush=True); time.sleep(600)",
            str(Path(__file__).parent),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert owner.stdout is not None
    port, socket_dir = owner.stdout.readline().split()
    assert accepts(int(port))
    os.kill(owner.pid, signal.SIGKILL)
    owner.wait()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (accepts(int(port)) or Path(socket_dir).exists()):
        time.sleep(0.1)
    assert not accepts(int(port)) and not Path(socket_dir).exists()


def accepts(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0
