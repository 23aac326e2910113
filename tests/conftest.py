"""Shared fixtures: an RSA key pair, an independent signature-verifying fake DOKU on an
ephemeral loopback port, a DokuClient wired to it with instant sleeps, and the embedded
simulator with one set of credentials for the whole run."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from fakedoku import FakeDoku, generate_rsa_keypair, serve
from helpers import CLIENT_ID, CLIENT_SECRET, make_client
from postgres import fresh_schema
from redis_fixtures import private_redis, redis_prefix, redis_url  # noqa: F401 (fixtures)

from doku_async import DokuClient
from doku_async.testing import DokuSimulator, SimulatorCredentials


@pytest.fixture(scope="session")
def keypair() -> tuple[bytes, bytes]:
    """(private PEM, public PEM); generated once per session (RSA generation is slow)."""
    return generate_rsa_keypair()


@pytest.fixture
def fake(keypair: tuple[bytes, bytes]) -> FakeDoku:
    return FakeDoku(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, public_key_pem=keypair[1])


@pytest.fixture
async def fake_url(fake: FakeDoku) -> AsyncIterator[str]:
    async with serve(fake.app) as url:
        yield url


@pytest.fixture
async def client(fake_url: str, keypair: tuple[bytes, bytes]) -> AsyncIterator[DokuClient]:
    async with make_client(fake_url, keypair) as doku:
        yield doku


@pytest.fixture(scope="session")
def creds() -> SimulatorCredentials:
    """Simulator credentials shared by the run (generating an RSA key costs ~100 ms)."""
    return SimulatorCredentials.generate()


@pytest.fixture
async def sim(creds: SimulatorCredentials) -> AsyncIterator[DokuSimulator]:
    """A fresh simulator on an ephemeral loopback port (modules may override it)."""
    async with DokuSimulator(credentials=creds) as simulator:
        yield simulator


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    """A DSN on the test PostgreSQL whose ``search_path`` is a fresh schema of this test
    module, dropped afterwards (skips with one line when there is no server, unless CI)."""
    with fresh_schema() as url:
        yield url
