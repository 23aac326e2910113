"""``WebhookTarget``: a webhook receiver under test, as the simulator sees it.

It hands the receiver the keys its notifications are signed with, points the simulator's
Unpaid and Refund notifications at the receiver's URLs, can serve an aiohttp app on a loopback
port for the test, and sends a transfer's notification on demand. The pytest plugin's
``doku_webhook_target`` fixture gives one per test.
"""

from __future__ import annotations

from aiohttp import web

from ._records import DeliveredNotification
from ._simulator import DokuSimulator

__all__ = ["WebhookTarget"]


class WebhookTarget:
    """Points ``simulator``'s notifications at a receiver and triggers them.

    Args:
        simulator: a running :class:`DokuSimulator`.
    """

    def __init__(self, simulator: DokuSimulator) -> None:
        self.simulator = simulator
        self._runners: list[web.AppRunner] = []

    def __repr__(self) -> str:
        return (
            f"WebhookTarget(unpaid_url={self.simulator.unpaid_url!r}, "
            f"refund_url={self.simulator.refund_url!r})"
        )

    @property
    def agent_key(self) -> str:
        """The agent key the notifications carry (``agentKey`` header)."""
        return self.simulator.credentials.agent_key

    @property
    def encryption_keys(self) -> tuple[str, ...]:
        """The encryption keys that verify the notifications' signatures."""
        return (self.simulator.credentials.encryption_key,)

    @property
    def environ(self) -> dict[str, str]:
        """``DOKU_AGENT_KEY`` and ``DOKU_ENCRYPTION_KEYS``, as a receiver reads them from the
        environment (``monkeypatch.setenv`` each, or pass the mapping on)."""
        return {
            "DOKU_AGENT_KEY": self.agent_key,
            "DOKU_ENCRYPTION_KEYS": ",".join(self.encryption_keys),
        }

    def send_to(self, *, unpaid_url: str | None = None, refund_url: str | None = None) -> None:
        """Send Unpaid and Refund notifications to these URLs (each one given replaces the
        current one)."""
        for url in (unpaid_url, refund_url):
            if url is not None and not url.startswith(("http://", "https://")):
                raise ValueError(f"not an http(s) URL: {url!r}")
        if unpaid_url is not None:
            self.simulator.unpaid_url = unpaid_url
        if refund_url is not None:
            self.simulator.refund_url = refund_url

    async def serve(self, app: web.Application, *, host: str = "127.0.0.1") -> str:
        """Run ``app`` on an ephemeral port of ``host`` until :meth:`close`; its base URL
        (``http://host:port``, no trailing slash)."""
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        self._runners.append(runner)
        site = web.TCPSite(runner, host, 0)
        await site.start()
        port = runner.addresses[0][1]
        return f"http://{host}:{port}"

    async def notify(
        self, partner_reference_no: str, kind: str = "unpaid", *, failed: bool = False
    ) -> DeliveredNotification:
        """Send the transfer's notification now (see :meth:`DokuSimulator.notify`) and wait
        until the receiver acknowledged it or the retries ran out; the delivery's record
        (``acknowledged``, ``attempts``, ``responses``: the HTTP status of each attempt)."""
        record = await self.simulator.notify(partner_reference_no, kind, failed=failed)
        if record is None:
            raise RuntimeError(f"the {kind} URL was unset before the notification went out")
        return record

    async def close(self) -> None:
        """Stop the apps :meth:`serve` started."""
        while self._runners:
            await self._runners.pop().cleanup()
