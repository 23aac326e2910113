"""Shared fixtures: an RSA key pair, an independent signature-verifying fake DOKU on an
ephemeral loopback port, a DokuClient wired to it with instant sleeps, and the embedded
simulator with one set of credentials for the whole run."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from fakedoku import FakeDoku, generate_rsa_keypair, serve

from doku_async import DokuClient, RetryPolicy, Timeouts
from doku_async.testing import DokuSimulator, SimulatorCredentials

CLIENT_ID = "BRN-0001-1700000000001"
CLIENT_SECRET = "SK-unit-test-secret-do-not-leak-7f3a9c"
AGENT_KEY = "A41879"


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


async def _no_sleep(_: float) -> None:
    return None


def make_client(url: str, keypair: tuple[bytes, bytes], **kwargs: object) -> DokuClient:
    """A client against ``url`` with fast timeouts, no real sleeping and no jitter."""
    options: dict[str, object] = {
        "base_url": url,
        "timeouts": Timeouts(connect=2.0, attempt=2.0, total=10.0),
        "retry": RetryPolicy(jitter=False),
        "sleep": _no_sleep,
    }
    options.update(kwargs)
    return DokuClient(CLIENT_ID, CLIENT_SECRET, keypair[0], **options)  # type: ignore[arg-type]


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
