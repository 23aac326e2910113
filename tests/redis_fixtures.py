"""Fixtures (registered by tests/conftest.py) for the Redis-backed fleet state: the shared
Redis 7 (``DOKU_TEST_REDIS_URL``, default ``redis://127.0.0.1:6379/0``), one key prefix per
test, cleaned up afterwards, and a private ``redis-server`` for outage tests. Without Redis
the tests skip with one line (fail when ``CI`` is set)."""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

REDIS_URL = os.environ.get("DOKU_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _missing(what: str) -> None:
    message = f"{what}; start Redis 7 (redis-server --port 6379) or set DOKU_TEST_REDIS_URL"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def redis_url() -> str:
    """The shared test Redis's URL."""
    return REDIS_URL


@pytest.fixture
async def redis_prefix(redis_url: str) -> AsyncIterator[str]:
    """A fresh key prefix on the shared Redis; every key under it is deleted afterwards."""
    from redis.asyncio import Redis  # the redis extra, in the dev extra

    client = Redis.from_url(redis_url, socket_connect_timeout=2)
    try:
        await client.ping()
    except Exception as exc:
        await client.aclose()
        _missing(f"no Redis at {redis_url} ({type(exc).__name__})")
    prefix = f"doku-test:{secrets.token_hex(6)}:"
    try:
        yield prefix
    finally:
        keys = [key async for key in client.scan_iter(match=prefix + "*", count=1000)]
        if keys:
            await client.delete(*keys)
        await client.aclose()


def free_port() -> int:
    """A loopback TCP port free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PrivateRedis:
    """A ``redis-server`` of this test's own on a loopback port, stopped and started at will."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.executable = shutil.which("redis-server") or "redis-server"

    @property
    def url(self) -> str:
        """Its URL."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start it and wait (bounded) until it accepts connections."""
        self.process = subprocess.Popen(  # noqa: S603 (fixed arguments)
            [
                self.executable,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
                "--daemonize",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.02)
        raise AssertionError(f"private redis-server did not start on port {self.port}")

    def stop(self) -> None:
        """Stop it (SIGKILL: an outage, not a clean shutdown) and wait for it."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    """A private redis-server (stopped whatever happens)."""
    if shutil.which("redis-server") is None:
        _missing("no redis-server executable for the outage test")
    server = PrivateRedis(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()
