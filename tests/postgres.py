"""PostgreSQL for the tests: the machine's server (``DOKU_TEST_POSTGRES_DSN``, default
``postgresql://postgres@127.0.0.1:5432/test``), a fresh schema per test module (dropped
afterwards), and a private server of a test's own (``initdb`` in a temporary folder, its own
port) for the tests that stop and restart it. The shared server is never stopped, restarted or
reconfigured from a test.

Without a server, the tests that need one skip with one line saying what is missing and how to
start one, unless ``CI`` is set: there they fail.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg  # type: ignore[import-untyped]
import pytest

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/test"
START_HINT = (
    "start one with: docker run -p 5432:5432 -e POSTGRES_HOST_AUTH_METHOD=trust postgres:15 "
    "(or set DOKU_TEST_POSTGRES_DSN)"
)


def postgres_dsn() -> str:
    """The test server's DSN."""
    return os.environ.get("DOKU_TEST_POSTGRES_DSN", DEFAULT_DSN)


def missing(what: str) -> None:
    """Skip (or fail under ``CI``) because ``what`` is missing."""
    if os.environ.get("CI"):
        pytest.fail(f"{what}; CI is set, so this fails instead of skipping")
    pytest.skip(f"{what}; {START_HINT}")


def with_search_path(dsn: str, schema: str) -> str:
    """``dsn`` with ``search_path=schema`` (and ``application_name=doku-schema``, so that
    :func:`terminate_connections` finds the journal's connections)."""
    parts = urlsplit(dsn)
    ours = f"search_path={schema}&application_name=doku-{schema}"
    query = "&".join(filter(None, (parts.query, ours)))
    return urlunsplit(parts._replace(query=query))


async def _execute(dsn: str, sql: str) -> None:
    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def execute(dsn: str, sql: str) -> None:
    """Run ``sql`` on ``dsn``, blocking (on a thread of its own, so it works inside an event
    loop too)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, _execute(dsn, sql)).result(timeout=30)


@contextlib.contextmanager
def fresh_schema(prefix: str = "doku_t") -> Iterator[str]:
    """A new schema on the test server; yields a DSN whose ``search_path`` is it. Dropped on
    the way out."""
    dsn = postgres_dsn()
    schema = f"{prefix}_{uuid.uuid4().hex[:10]}"
    try:
        execute(dsn, f"CREATE SCHEMA {schema}")
    except (OSError, asyncpg.PostgresError) as exc:
        missing(f"no PostgreSQL at {dsn} ({type(exc).__name__})")
    try:
        yield with_search_path(dsn, schema)
    finally:
        execute(dsn, f"DROP SCHEMA IF EXISTS {schema} CASCADE")


async def terminate_connections(dsn: str, schema: str) -> int:
    """``pg_terminate_backend`` every other connection whose ``search_path`` is ``schema``
    (the journal's); how many were terminated."""
    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        rows = await conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE pid <> pg_backend_pid() "
            "AND datname = current_database() AND usename = current_user "
            "AND application_name = $1",
            f"doku-{schema}",
        )
        for row in rows:
            await conn.execute("SELECT pg_terminate_backend($1)", row["pid"])
        return len(rows)
    finally:
        await conn.close()


def free_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


class PrivatePostgres:
    """A PostgreSQL server of the test's own: ``initdb`` in a temporary folder the
    ``postgres`` user can reach (pytest's own is private to root), listening on 127.0.0.1 at a
    port of its own; :meth:`stop` and :meth:`start` it at will, :meth:`remove` at the end."""

    def __init__(self) -> None:
        folder = Path(tempfile.mkdtemp(prefix="doku-pg-"))
        self.folder = folder
        self.data = folder / "data"
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        bindir = _pg_bindir()
        if bindir is None:
            missing("no PostgreSQL server binaries (initdb, pg_ctl)")
        assert bindir is not None
        self._bin = bindir
        self._started = False
        os.chmod(folder, 0o777)  # noqa: S103 - a temporary folder the postgres user writes
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres")

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self._bin / tool), *args]
        if os.geteuid() == 0:  # initdb refuses root: run as the postgres user
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)  # noqa: S603

    def start(self) -> None:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        log = str(self.folder / "log")
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", log, "-w", "start")
        self._started = True

    def stop(self) -> None:
        self._started = False
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def remove(self) -> None:
        """Stop the server if it runs, and delete its folder."""
        if self._started:
            with contextlib.suppress(subprocess.SubprocessError, OSError):
                self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


def _pg_bindir() -> Path | None:
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).parent
    root = Path("/usr/lib/postgresql")
    if root.is_dir():
        for version in sorted(root.iterdir(), reverse=True):
            if (version / "bin" / "pg_ctl").exists():
                return version / "bin"
    return None
