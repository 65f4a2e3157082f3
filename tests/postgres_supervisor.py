"""Runs one throwaway PostgreSQL server for `postgres_server.start_postgres` and removes it when the caller goes.

Run as `python postgres_supervisor.py CONFIG_JSON`: creates a temporary directory, runs `initdb` and `postgres`
there (as the `postgres` user when run as root: both refuse root), writes one JSON line to stdout
({"port", "socket_dir"} or {"error"}), then reads stdin until it closes — the caller stopping the server, or the
caller dying, even by SIGKILL — and shuts the server down and deletes the directory. The server gets SIGQUIT if
this process dies first. Standard library only: it starts before, and apart from, the test process's imports.
"""

from __future__ import annotations

import ctypes
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

READY_TIMEOUT = 60.0
_PR_SET_PDEATHSIG = 1


class StartFailed(RuntimeError):
    pass


def die_with_parent(sig: int) -> Callable[[], None]:
    """A preexec_fn: the child gets `sig` when this process dies. subprocess calls it after switching user
    (a switch would clear the setting)."""

    def arm() -> None:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)

    return arm


def supervise(config: dict[str, Any], out: IO[str]) -> int:
    bin_dir = Path(config["bin_dir"])
    root = Path(tempfile.mkdtemp(prefix="byline-pg-"))
    server: subprocess.Popen[bytes] | None = None

    def leave(*_: object) -> None:
        raise SystemExit(0)

    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, leave)
    try:
        as_user: dict[str, Any] = {}
        if os.geteuid() == 0:
            import pwd

            account = pwd.getpwnam("postgres")
            os.chown(root, account.pw_uid, account.pw_gid)
            as_user = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}
        password_file = root / "superuser-password"
        password_file.write_text(secrets.token_urlsafe(16) + "\n")
        if as_user:
            os.chown(password_file, as_user["user"], as_user["group"])
        initdb = subprocess.run(
            [
                str(bin_dir / "initdb"),
                f"--pgdata={root / 'data'}",
                "--username=postgres",
                f"--pwfile={password_file}",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
                "--no-sync",
                "--no-instructions",
            ],
            capture_output=True,
            text=True,
            **as_user,
        )
        if initdb.returncode != 0:
            raise StartFailed(f"initdb failed: {(initdb.stderr or initdb.stdout).strip()[-500:]}")
        server, port = start_server(bin_dir, root, config["settings"], as_user)
        out.write(json.dumps({"port": port, "socket_dir": str(root)}) + "\n")
        out.flush()
        while sys.stdin.buffer.read(65536):  # until the caller closes the pipe or dies
            pass
        return 0
    except (StartFailed, OSError) as exc:
        out.write(json.dumps({"error": str(exc)}) + "\n")
        out.flush()
        return 1
    finally:
        if server is not None:
            shut_down(server)
        shutil.rmtree(root, ignore_errors=True)


def start_server(
    bin_dir: Path, root: Path, settings: dict[str, str], as_user: dict[str, Any]
) -> tuple[subprocess.Popen[bytes], int]:
    log = root / "server.log"
    for _attempt in range(5):  # another process may take the free port between our probe and the bind
        port = free_port()
        options = {"listen_addresses": "127.0.0.1", "port": str(port), "unix_socket_directories": str(root)}
        command = [str(bin_dir / "postgres"), "-D", str(root / "data")]
        for name, value in (options | settings).items():
            command += ["-c", f"{name}={value}"]
        with log.open("ab") as log_file:
            server = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent(signal.SIGQUIT),
                **as_user,
            )
        if wait_ready(server, root / "data" / "postmaster.pid"):
            return server, port
        shut_down(server)
        if "could not bind" not in log.read_text(errors="replace"):
            break
    raise StartFailed(f"postgres did not start: {log.read_text(errors='replace').strip()[-500:]}")


def wait_ready(server: subprocess.Popen[bytes], pid_file: Path) -> bool:
    """True once the postmaster writes "ready" in its pid file (what `pg_ctl -w` waits for); False if it exited
    or took too long."""
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline and server.poll() is None:
        try:
            lines = pid_file.read_text().splitlines()
        except FileNotFoundError:
            lines = []
        if len(lines) >= 8 and lines[7].strip() == "ready":
            return True
        time.sleep(0.01)
    return False


def shut_down(server: subprocess.Popen[bytes]) -> None:
    """Immediate shutdown (SIGQUIT: no shutdown checkpoint, which took seconds after a benchmark's writes; the
    cluster is deleted next), then SIGKILL if it hangs."""
    for sig, wait in ((signal.SIGQUIT, 10), (signal.SIGKILL, None)):
        if server.poll() is not None:
            return
        server.send_signal(sig)
        try:
            server.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


if __name__ == "__main__":
    sys.exit(supervise(json.loads(sys.argv[1]), sys.stdout))
