"""A local DOKU for tests, demos and benchmarks (nothing in the SDK imports this package).

::

    from doku_async.testing import DokuSimulator

    async with DokuSimulator() as sim, sim.client() as doku:
        await doku.kirim.balance_inquiry(account_no=sim.credentials.agent_key)

Pytest users enable the fixtures with one line in ``conftest.py``::

    pytest_plugins = ["doku_async.testing.pytest_plugin"]
"""

from ._faults import FAULT_KINDS, OPERATIONS, Fault, FaultKind, FaultPlan
from ._simulator import (
    DeliveredNotification,
    DokuSimulator,
    RecordedRequest,
    SimulatedTransfer,
    SimulatorCredentials,
)
from ._webhook_target import WebhookTarget

__all__ = [
    "FAULT_KINDS",
    "OPERATIONS",
    "DeliveredNotification",
    "DokuSimulator",
    "Fault",
    "FaultKind",
    "FaultPlan",
    "RecordedRequest",
    "SimulatedTransfer",
    "SimulatorCredentials",
    "WebhookTarget",
]
