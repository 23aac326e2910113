"""``python -m doku_async.testing``: run the simulator standalone and print how to use it."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import signal
import sys
import tempfile
from pathlib import Path

from ._simulator import DokuSimulator


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m doku_async.testing", description="Run a local DOKU simulator."
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    parser.add_argument("--unpaid-url", help="where to send Unpaid notifications")
    parser.add_argument("--refund-url", help="where to send Refund notifications")
    parser.add_argument("--token-ttl", type=float, default=900.0, help="token lifetime, s")
    return parser


async def _serve(args: argparse.Namespace) -> None:
    sim = DokuSimulator(
        host=args.host,
        port=args.port,
        unpaid_url=args.unpaid_url,
        refund_url=args.refund_url,
        token_ttl=args.token_ttl,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    key_dir = Path(tempfile.mkdtemp(prefix="doku-sim-"))
    try:
        async with sim:
            creds = sim.credentials
            key_path = key_dir / "merchant-private-key.pem"
            key_path.write_bytes(creds.private_key_pem)
            key_path.chmod(0o600)
            out = sys.stdout
            out.write(
                "DOKU simulator listening (test credentials, valid only here):\n"
                f"  export DOKU_BASE_URL={sim.base_url}\n"
                f"  export DOKU_CLIENT_ID={creds.client_id}\n"
                f"  export DOKU_CLIENT_SECRET={creds.client_secret}\n"
                f"  export DOKU_PRIVATE_KEY_PATH={key_path}\n"
                f"  export DOKU_AGENT_KEY={creds.agent_key}\n"
                f"  agent key (balance inquiry accountNo): {creds.agent_key}\n"
                f"  notification encryption key: {creds.encryption_key}\n"
                "Ctrl-C stops it (the key file is removed).\n"
            )
            out.flush()
            await stop.wait()
    finally:
        shutil.rmtree(key_dir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    args = _parser().parse_args(argv)
    asyncio.run(_serve(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
