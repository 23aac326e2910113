"""``python -m doku_async.testing``: run the simulator standalone and print how to use it.

As a service: ``--credentials FILE`` writes the generated credentials to ``FILE`` on the
first start and reuses them afterwards (with ``--port``, the printed configuration then
survives restarts); the private key file is kept (next to ``FILE``, or at ``--key-file``),
otherwise it lives in a temporary folder removed at exit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shlex
import shutil
import signal
import sys
import tempfile
from decimal import Decimal, InvalidOperation
from pathlib import Path

from ._admin import ADMIN_PREFIX
from ._credfile import CredentialsFileError, load_or_create_credentials, write_private
from ._records import SimulatorCredentials
from ._simulator import DokuSimulator


def _amount(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"not an amount: {text!r}") from None
    if not value.is_finite() or value < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative amount, not {text!r}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m doku_async.testing", description="Run a local DOKU simulator."
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    parser.add_argument("--unpaid-url", help="where to send Unpaid notifications")
    parser.add_argument("--refund-url", help="where to send Refund notifications")
    parser.add_argument("--token-ttl", type=float, default=900.0, help="token lifetime, s")
    parser.add_argument(
        "--balance", type=_amount, help="the agent's starting balance (default 1000000000.00)"
    )
    parser.add_argument(
        "--credentials",
        type=Path,
        metavar="FILE",
        help="write the generated credentials to FILE (mode 0600), or reuse them if it exists",
    )
    parser.add_argument(
        "--key-file",
        type=Path,
        metavar="PATH",
        help="keep the private key at PATH (default with --credentials: FILE.private-key.pem; "
        "otherwise a temporary file removed at exit)",
    )
    return parser


def _key_path(args: argparse.Namespace, temp_dir: Path | None) -> Path:
    if args.key_file is not None:
        return Path(args.key_file)
    if args.credentials is not None:
        return Path(args.credentials).with_suffix(".private-key.pem")
    assert temp_dir is not None
    return temp_dir / "merchant-private-key.pem"


def _banner(sim: DokuSimulator, key_path: Path, *, kept: bool) -> str:
    creds = sim.credentials
    q = shlex.quote
    return (
        "DOKU simulator listening (test credentials, valid only here):\n"
        f"  export DOKU_BASE_URL={sim.base_url}\n"
        f"  export DOKU_CLIENT_ID={q(creds.client_id)}\n"
        f"  export DOKU_CLIENT_SECRET={q(creds.client_secret)}\n"
        f"  export DOKU_PRIVATE_KEY_PATH={q(str(key_path))}\n"
        f"  export DOKU_ENCRYPTION_KEYS={q(creds.encryption_key)}\n"
        f"  export DOKU_AGENT_KEY={q(creds.agent_key)}\n"
        f"  agent key (balance inquiry accountNo): {creds.agent_key}\n"
        f"  notification encryption key: {creds.encryption_key}\n"
        f"  notifications: unpaid to {sim.unpaid_url or '(none)'}, "
        f"refund to {sim.refund_url or '(none)'}\n"
        f"  admin: {sim.base_url}{ADMIN_PREFIX}/ledger, /requests, /notifications, /faults\n"
        + (
            "Ctrl-C stops it (the key file is kept).\n"
            if kept
            else "Ctrl-C stops it (the key file is removed).\n"
        )
    )


async def _serve(args: argparse.Namespace, creds: SimulatorCredentials, key_path: Path) -> None:
    options = {} if args.balance is None else {"balance": args.balance}
    sim = DokuSimulator(
        credentials=creds,
        host=args.host,
        port=args.port,
        unpaid_url=args.unpaid_url,
        refund_url=args.refund_url,
        token_ttl=args.token_ttl,
        **options,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    async with sim:
        kept = args.key_file is not None or args.credentials is not None
        sys.stdout.write(_banner(sim, key_path, kept=kept))
        sys.stdout.flush()
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    """Entry point: 0 after Ctrl-C or SIGTERM, 2 for unusable arguments or files."""
    args = _parser().parse_args(argv)
    temp_dir = None
    if args.key_file is None and args.credentials is None:
        temp_dir = Path(tempfile.mkdtemp(prefix="doku-sim-"))
    try:
        if args.credentials is not None:
            creds, _ = load_or_create_credentials(Path(args.credentials))
            if Path(args.credentials).stat().st_mode & 0o077:
                sys.stderr.write(
                    f"warning: {args.credentials} is readable by others; chmod 600 it\n"
                )
        else:
            creds = SimulatorCredentials.generate()
        key_path = _key_path(args, temp_dir).absolute()
        write_private(key_path, creds.private_key_pem, replace=True)
        asyncio.run(_serve(args, creds, key_path))
    except CredentialsFileError as exc:
        sys.stderr.write(f"python -m doku_async.testing: error: {exc}\n")
        return 2
    except OSError as exc:  # the port is taken, the host is not ours
        sys.stderr.write(
            f"python -m doku_async.testing: error: cannot listen on {args.host}:{args.port}: "
            f"{exc.strerror or exc}\n"
        )
        return 2
    finally:
        if temp_dir is not None:
            shutil.rmtree(temp_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
