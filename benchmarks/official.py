"""4. The official ``doku-python-library`` (PyPI) vs the SDK, against the same loopback server.

The official library has no Kirim DOKU (payout) calls; its closest SNAP read is the VA check
status (``DokuSNAP.check_status_va``: B2B token + HMAC-SHA512-signed POST + JSON answer). The
SDK's equivalent is ``kirim.check_status`` (cached B2B token + HMAC-SHA512-signed POST + typed
answer). The library is driven as shipped; the only change is where it sends requests: it has
no base URL setting, so its sandbox base URL (``config._Development.BASE_URL``) is pointed at
the loopback server. Concurrency 1 is a plain loop; concurrency 64 is a pool of 64 threads
sharing one ``DokuSNAP`` (the library is synchronous), vs 64 asyncio tasks sharing one client.

The server counts requests and new connections per call for each side, which is most of the
explanation of the gap.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ._common import (
    CLIENT_ID,
    CLIENT_SECRET,
    Deadline,
    Paired,
    Row,
    Sample,
    Settings,
    alternate,
    measured,
    ratio_text,
    rsa_key_pem,
)
from ._result import Result
from ._server import ServerProcess
from .bulk import new_client

NAME = "official"
TITLE = "Official doku-python-library vs the SDK"
TARGETS = {1: 100.0, 64: 250.0}
RUN_SECONDS = 15.0
COUNTS = {  # (concurrency, quick) -> (official calls, SDK calls) per round
    (1, False): (60, 2000),
    (64, False): (128, 5000),
    (1, True): (10, 300),
    (64, True): (64, 1000),
}
VA = {
    "partner_service_id": "  888994",
    "customer_no": "00000000000000000001",
    "virtual_acc_no": "  88899400000000000000000001",
    "inquiry_request_id": "abcdef-123456-abcdef",
    "payment_request_id": "abcdef-123456-abcdef",
}
STATUS_ARGS = {"original_partner_reference_no": "DRV-2024-10-000001"}


def official_version() -> str | None:
    from importlib import metadata

    try:
        return metadata.version("doku-python-library")
    except metadata.PackageNotFoundError:
        return None


class Official:
    """The official library's ``DokuSNAP``, pointed at ``url``."""

    def __init__(self, url: str) -> None:
        from doku_python_library.src.commons import config
        from doku_python_library.src.model.va.check_status_va_request import CheckStatusRequest
        from doku_python_library.src.snap import DokuSNAP

        config._Development.BASE_URL = url  # the library has no base URL setting
        private, public = rsa_key_pem()
        self.snap = DokuSNAP(
            private_key=private,
            client_id=CLIENT_ID,
            is_production=False,
            public_key=public,
            issuer="benchmark",
            secret_key=CLIENT_SECRET,
            merchant_public_key=public,
        )
        self.request = CheckStatusRequest(**VA)

    def call(self) -> bool:
        response = self.snap.check_status_va(self.request)
        return response is not None and response.response_code == "2002600"

    def run(self, n: int, concurrency: int, seconds: float) -> Sample:
        deadline = Deadline(seconds)
        counter = itertools.count()
        lock = threading.Lock()
        stats = {"ok": 0, "errors": 0}

        def worker() -> None:
            while next(counter) < n and not deadline.passed():
                ok = self.call()
                with lock:
                    stats["ok" if ok else "errors"] += 1

        with measured() as m:
            if concurrency == 1:
                worker()
            else:
                with ThreadPoolExecutor(concurrency) as pool:
                    for future in [pool.submit(worker) for _ in range(concurrency)]:
                        future.result(timeout=seconds + 60)
        done = stats["ok"] + stats["errors"]
        return Sample(done, m[0], m[1], errors=stats["errors"], capped=done < n)


async def sdk_run(client: Any, n: int, concurrency: int, seconds: float) -> Sample:
    deadline = Deadline(seconds)
    counter = itertools.count()
    stats = {"ok": 0, "errors": 0}

    async def worker() -> None:
        while next(counter) < n and not deadline.passed():
            try:
                found = await client.kirim.check_status(**STATUS_ARGS)
            except Exception:
                stats["errors"] += 1
            else:
                stats["ok" if found.transaction_status == "00" else "errors"] += 1

    with measured() as m:
        async with asyncio.timeout(seconds + 30):
            await asyncio.gather(*(worker() for _ in range(concurrency)))
    done = stats["ok"] + stats["errors"]
    return Sample(done, m[0], m[1], errors=stats["errors"], capped=done < n)


def _key_parse_ms() -> float:
    """What the official library pays per token request just to parse the PEM key."""
    from cryptography.hazmat.primitives import serialization

    private, _ = rsa_key_pem()
    n = 5
    start = time.perf_counter()
    for _ in range(n):
        serialization.load_pem_private_key(private.encode(), password=None)
    return (time.perf_counter() - start) / n * 1000


def run(settings: Settings) -> Result:
    result = Result(NAME, TITLE)
    started = time.perf_counter()
    version = official_version()
    result.data["official_version"] = version
    if version is None:
        for c in TARGETS:
            result.rows.append(
                Row(
                    "4",
                    f"official library calls/s, concurrency {c}",
                    "n/a",
                    "not installed",
                    target=f"≥ {TARGETS[c]:g}x official",
                    met=None,
                    note="doku-python-library is not installed (make bench installs it)",
                )
            )
        result.seconds = time.perf_counter() - started
        return result
    with ServerProcess("minimal") as server, asyncio.Runner() as loop:
        try:
            official = Official(server.url)
        except Exception as exc:  # cannot import or reach the server: say so, fake nothing
            result.error = f"the official library could not be driven: {exc!r}"
            result.rows.append(
                Row("4", "official library", "n/a", "n/a", met=None, note=result.error)
            )
            return result
        client = new_client(server.url)
        loop.run(client.kirim.check_status(**STATUS_ARGS))  # warm token and pool
        official.call()
        per_call: dict[str, dict[str, list[float]]] = {}
        for concurrency in TARGETS:
            n_official, n_sdk = COUNTS[(concurrency, settings.quick)]
            paired = Paired([], [])
            counts: dict[str, list[float]] = {
                "sdk_requests": [], "sdk_connections": [], "sdk_tokens": [],
                "official_requests": [], "official_connections": [], "official_tokens": [],
            }  # fmt: skip
            for _, order in alternate(settings.rounds):
                for side in order:
                    server.reset()
                    if side == "sdk":
                        sample = loop.run(sdk_run(client, n_sdk, concurrency, RUN_SECONDS))
                        paired.sdk.append(sample)
                        prefix = "sdk"
                    else:
                        sample = official.run(n_official, concurrency, RUN_SECONDS)
                        paired.base.append(sample)
                        prefix = "official"
                    stats = server.stats()
                    calls = max(sample.ops, 1)
                    counts[f"{prefix}_requests"].append(stats["requests"] / calls)
                    counts[f"{prefix}_connections"].append(stats["connections"] / calls)
                    counts[f"{prefix}_tokens"].append(stats["counts"].get("token", 0) / calls)
            per_call[f"c{concurrency}"] = counts
            result.data[f"c{concurrency}"] = paired.to_json() | {"per_call": counts}
            ratio, spread = paired.ratio("rate")
            cpu_ratio, cpu_spread = paired.ratio("cpu_us")
            note = f"{paired.errors()} failed calls" if paired.errors() else ""
            result.rows.append(
                Row(
                    "4",
                    f"check status calls/s vs official `check_status_va`, "
                    f"concurrency {concurrency}",
                    paired.stat("sdk", "rate").fmt(),
                    paired.stat("base", "rate").fmt(1),
                    ratio_text(ratio, spread),
                    f"≥ {TARGETS[concurrency]:g}x official",
                    ratio >= TARGETS[concurrency] and not paired.errors(),
                    note,
                )
            )
            result.rows.append(
                Row(
                    "4",
                    f"client CPU µs per call vs official, concurrency {concurrency}",
                    paired.stat("sdk", "cpu_us").fmt(1),
                    paired.stat("base", "cpu_us").fmt(0),
                    ratio_text(cpu_ratio, cpu_spread),
                )
            )
        loop.run(client.aclose())
    key_ms = _key_parse_ms()
    result.data["official_pem_parse_ms"] = key_ms
    c1 = per_call["c1"]

    def avg(values: list[float]) -> float:
        return sum(values) / len(values) if values else float("nan")

    result.notes.append(
        f"Why the gap (doku-python-library {version}): per call the official library sent "
        f"{avg(c1['official_requests']):.1f} HTTP requests over "
        f"{avg(c1['official_connections']):.1f} new TCP connections and fetched "
        f"{avg(c1['official_tokens']):.1f} B2B tokens; the SDK sent "
        f"{avg(c1['sdk_requests']):.1f} request over {avg(c1['sdk_connections']):.3f} new "
        "connections and fetched no token (one cached token, one pooled session). The "
        "library's token check is inverted (`TokenService.is_token_expired` returns True while "
        "the token is still valid), so every call fetches a new token, and each token request "
        f"re-parses the PEM private key (`load_pem_private_key`, {key_ms:.0f} ms of CPU here, "
        "key validation included) before signing. It also opens a new connection per request "
        "(`requests.post` without a Session) and is synchronous, so 64 threads only share one "
        "GIL. Its declared dependencies also omit `flask`, `xmltodict` and `pycryptodome`, which "
        "its modules import: `make bench` installs them so it can be imported at all."
    )
    result.seconds = time.perf_counter() - started
    return result
