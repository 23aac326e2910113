"""Pytest fixtures for testing payout code against the simulator.

Enable them with one line in your ``conftest.py``::

    pytest_plugins = ["doku_async.testing.pytest_plugin"]

Fixtures:
    doku_simulator_options: keyword arguments for :class:`DokuSimulator`; override it in
        your own conftest or test module to change them.
    doku_simulator: a started :class:`DokuSimulator` on an ephemeral loopback port.
    doku_client: a :class:`~doku_async.DokuClient` pointed at ``doku_simulator``, closed after
        the test.
    doku_webhook_target: a :class:`~doku_async.testing.WebhookTarget` for a webhook receiver
        under test: the keys (``agent_key``, ``encryption_keys``, ``environ``), ``send_to``
        its URLs, ``await serve(app)`` on a loopback port, ``await notify(reference)``.

Needs ``pytest-asyncio`` (``pip install 'doku-async[testing]'``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from .._client import DokuClient
from ._simulator import DokuSimulator
from ._webhook_target import WebhookTarget

__all__ = ["doku_client", "doku_simulator", "doku_simulator_options", "doku_webhook_target"]


@pytest.fixture
def doku_simulator_options() -> dict[str, Any]:
    """Keyword arguments for the simulator; override to change them."""
    return {}


@pytest_asyncio.fixture
async def doku_simulator(doku_simulator_options: dict[str, Any]) -> AsyncIterator[DokuSimulator]:
    """A running simulator, closed after the test."""
    async with DokuSimulator(**doku_simulator_options) as sim:
        yield sim


@pytest_asyncio.fixture
async def doku_client(doku_simulator: DokuSimulator) -> AsyncIterator[DokuClient]:
    """A client for ``doku_simulator``, closed after the test."""
    async with DokuClient(**doku_simulator.client_kwargs()) as client:
        yield client


@pytest_asyncio.fixture
async def doku_webhook_target(doku_simulator: DokuSimulator) -> AsyncIterator[WebhookTarget]:
    """Points ``doku_simulator``'s notifications at your receiver; apps it served are
    stopped after the test."""
    target = WebhookTarget(doku_simulator)
    try:
        yield target
    finally:
        await target.close()
