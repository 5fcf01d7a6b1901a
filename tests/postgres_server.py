"""A throw-away PostgreSQL server for tests and benchmarks: initdb in a temp dir, 127.0.0.1, a
free port, stopped by its PID.

PostgreSQL refuses to run as root, so under root (CI) the server runs as ``nobody`` in a folder
that user owns. :func:`find_bin` is None only where no server binary is installed (Debian's
``postgresql`` package: ``.ci/run`` installs it when missing); every other failure is an error.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

SKIP_REASON = (
    "no PostgreSQL server binary (initdb/postgres): install Debian's postgresql package "
    "(.ci/run does) or put its bin folder on PATH"
)


def find_bin() -> Path | None:
    """The folder holding ``initdb`` and ``postgres``, or None."""
    found = shutil.which("initdb")
    candidates = [Path(found).resolve().parent] if found else []
    candidates += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)]
    for c in candidates:
        if (c / "initdb").exists() and (c / "postgres").exists():
            return c
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """One running server; :meth:`new_database` gives a fresh database URL."""

    def __init__(self, bin_dir: Path, root: Path, port: int, proc: subprocess.Popen) -> None:
        self.bin_dir, self.root, self.port, self.proc = bin_dir, root, port, proc
        self.url = f"postgresql://postgres@127.0.0.1:{port}/postgres"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def new_database(self) -> str:
        """A new empty database on this server; its URL."""
        import psycopg

        name = "t" + uuid.uuid4().hex[:12]
        with psycopg.connect(self.url, autocommit=True) as con:
            con.execute(f"CREATE DATABASE {name}")
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    def drop_database(self, url: str) -> None:
        """Drop a database made by :meth:`new_database` (its connections are ended first)."""
        import psycopg

        name = url.rsplit("/", 1)[1]
        with psycopg.connect(self.url, autocommit=True) as con:
            con.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def stop(self) -> None:
        """Stop the server by its PID, then remove its folder.

        An immediate shutdown (SIGQUIT): the data is thrown away, so the shutdown checkpoint a
        fast shutdown writes (minutes after hundreds of test databases on a busy disk) is waste.
        """
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGQUIT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        shutil.rmtree(self.root, ignore_errors=True)


def start(bin_dir: Path | None = None, *, fsync: bool = True) -> Server:
    """Start a server; RuntimeError (with its log) if it does not come up."""
    bin_dir = bin_dir or find_bin()
    if bin_dir is None:
        raise RuntimeError(SKIP_REASON)
    root = Path(tempfile.mkdtemp(prefix="wb-pg-"))
    as_user: dict = {}
    if os.geteuid() == 0:  # the server refuses root: run it as nobody, in a folder it owns
        import pwd

        nobody = pwd.getpwnam("nobody")
        os.chmod(root, 0o700)
        os.chown(root, nobody.pw_uid, nobody.pw_gid)
        as_user = {"user": nobody.pw_uid, "group": nobody.pw_gid, "extra_groups": []}
    data, log = root / "data", root / "log"
    subprocess.run(
        [str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "-E", "UTF8",
         "--no-sync", "--locale=C"],
        check=True, capture_output=True, cwd=root, **as_user,
    )  # fmt: skip
    port = _free_port()
    settings = ["-c", f"fsync={'on' if fsync else 'off'}", "-c", "max_connections=200",
                "-c", "shared_buffers=32MB", "-c", "listen_addresses=127.0.0.1"]  # fmt: skip
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(bin_dir / "postgres"), "-D", str(data), "-p", str(port), "-k", str(root),
             *settings],
            stdout=out, stderr=subprocess.STDOUT, cwd=root, **as_user,
        )  # fmt: skip
    server = Server(bin_dir, root, port, proc)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            if _accepts(server.url):
                return server
        time.sleep(0.1)
    text = log.read_text(errors="replace")[-2000:]
    server.stop()
    raise RuntimeError(f"the test PostgreSQL server did not start:\n{text}")


def _accepts(url: str) -> bool:
    import psycopg

    try:
        with psycopg.connect(url, connect_timeout=2) as con:
            con.execute("SELECT 1")
        return True
    except psycopg.Error:
        return False


@contextlib.contextmanager
def running(fsync: bool = True) -> Iterator[Server]:
    """A server for the duration of the block."""
    server = start(fsync=fsync)
    try:
        yield server
    finally:
        server.stop()


def raw_connection(store):
    """A connection to ``store``'s database that bypasses the store (autocommit, ``?`` params)."""
    import sqlite3

    from workbench.labels._db import Conn

    if store.backend == "sqlite":
        return Conn(sqlite3.connect(store.path, isolation_level=None), "sqlite")
    import psycopg

    return Conn(psycopg.connect(store.url, autocommit=True), "postgresql")


def raw_errors() -> tuple:
    """The exception classes a raw connection raises for a refused statement."""
    import sqlite3

    import psycopg

    return (sqlite3.DatabaseError, psycopg.Error)
