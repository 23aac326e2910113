"""Shared pieces: settings, CPU pinning, samples and their statistics, table rows, keys."""

from __future__ import annotations

import asyncio
import gc
import os
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any

CLIENT_CPU = 0
"""The core the measuring (client) process pins itself to."""
SERVER_CPU = 1
"""The core server processes pin themselves to."""

CLIENT_ID = "BRN-0001-1234567890123"
CLIENT_SECRET = "SK-benchmark-secret-0123456789abcdef"
CUSTOMER_NUMBER = "628115678890"
AGENT_KEY = "A41418"
ENCRYPTION_KEY = "627054fevj1sutvs"
DASH = "\u2013"  # an en dash between the ends of a range


# --- settings --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """How hard each benchmark works; ``quick`` is a smoke run."""

    quick: bool = False

    @property
    def rounds(self) -> int:
        """Rounds per comparison, each side once per round, order alternating."""
        return 3 if self.quick else 5

    def scale(self, full: int, quick: int) -> int:
        """``full`` normally, ``quick`` in a smoke run."""
        return quick if self.quick else full


# --- CPU pinning ----------------------------------------------------------------------------


def _online_cpus() -> int:
    return os.cpu_count() or 1


def pin(cpu: int) -> bool:
    """Pin this process to ``cpu`` if the platform allows it and the machine has 2+ cores.

    The set of allowed cores is not inherited: a server started by a client that already
    pinned itself to core 0 can still move to core 1.
    """
    if not hasattr(os, "sched_setaffinity") or _online_cpus() < 2 or cpu >= _online_cpus():
        return False
    try:
        os.sched_setaffinity(0, {cpu})
    except OSError:
        return False
    return True


def pinning_possible() -> bool:
    """Whether client and server can be put on separate cores."""
    return hasattr(os, "sched_setaffinity") and _online_cpus() > max(CLIENT_CPU, SERVER_CPU)


# --- event loops -----------------------------------------------------------------------------

LoopFactory = Callable[[], asyncio.AbstractEventLoop] | None


def loop_factories() -> list[tuple[str, LoopFactory]]:
    """``asyncio`` always; ``uvloop`` too when it is importable."""
    loops: list[tuple[str, LoopFactory]] = [("asyncio", None)]
    try:
        import uvloop
    except ImportError:
        return loops
    loops.append(("uvloop", uvloop.new_event_loop))
    return loops


def uvloop_version() -> str | None:
    """The installed uvloop's version, or ``None``."""
    try:
        import uvloop
    except ImportError:
        return None
    return str(getattr(uvloop, "__version__", "?"))


# --- samples and statistics ------------------------------------------------------------------


@dataclass
class Sample:
    """One timed run of one side: operations done, wall and CPU seconds."""

    ops: int
    wall: float
    cpu: float
    errors: int = 0
    capped: bool = False
    """The run hit its time bound before its count."""

    @property
    def rate(self) -> float:
        """Operations per second of wall time."""
        return self.ops / self.wall if self.wall > 0 else 0.0

    @property
    def cpu_us(self) -> float:
        """Client CPU microseconds per operation."""
        return self.cpu / self.ops * 1e6 if self.ops else float("nan")

    @property
    def wall_us(self) -> float:
        """Wall microseconds per operation."""
        return self.wall / self.ops * 1e6 if self.ops else float("nan")


@dataclass
class Stat:
    """Median and spread of one metric over rounds."""

    median: float
    min: float
    max: float
    q1: float
    q3: float
    n: int
    values: list[float] = field(default_factory=list)

    @classmethod
    def of(cls, values: list[float]) -> Stat:
        vals = sorted(v for v in values if v == v)  # drop NaN
        if not vals:
            return cls(float("nan"), float("nan"), float("nan"), float("nan"), float("nan"), 0)
        if len(vals) >= 2:
            q1, _, q3 = statistics.quantiles(vals, n=4, method="inclusive")
        else:
            q1 = q3 = vals[0]
        return cls(statistics.median(vals), vals[0], vals[-1], q1, q3, len(vals), list(values))

    def fmt(self, digits: int = 0, unit: str = "") -> str:
        """``median [min-max]`` with thousands separators."""
        low, high = fmt_num(self.min, digits), fmt_num(self.max, digits)
        return f"{fmt_num(self.median, digits)}{unit} [{low}{DASH}{high}]"


def fmt_num(value: float, digits: int = 0) -> str:
    """A number with thousands separators, or ``n/a``."""
    if value != value:
        return "n/a"
    return f"{value:,.{digits}f}"


@dataclass
class Paired:
    """A side-by-side comparison: SDK samples vs baseline samples, one pair per round."""

    sdk: list[Sample]
    base: list[Sample]

    def stat(self, side: str, metric: str) -> Stat:
        samples = self.sdk if side == "sdk" else self.base
        return Stat.of([getattr(s, metric) for s in samples])

    def ratio(self, metric: str) -> tuple[float, Stat]:
        """(ratio of medians SDK/baseline, spread of the per-round ratios)."""
        sdk = self.stat("sdk", metric).median
        base = self.stat("base", metric).median
        ratio = sdk / base if base else float("nan")
        per_round = [
            getattr(a, metric) / getattr(b, metric)
            for a, b in zip(self.sdk, self.base, strict=False)
            if getattr(b, metric)
        ]
        return ratio, Stat.of(per_round)

    def errors(self) -> int:
        return sum(s.errors for s in self.sdk) + sum(s.errors for s in self.base)

    def capped(self) -> bool:
        return any(s.capped for s in self.sdk + self.base)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "sdk": [asdict(s) | {"rate": s.rate, "cpu_us": s.cpu_us} for s in self.sdk],
            "baseline": [asdict(s) | {"rate": s.rate, "cpu_us": s.cpu_us} for s in self.base],
        }
        for metric in ("rate", "cpu_us"):
            ratio, spread = self.ratio(metric)
            out[metric] = {
                "sdk": asdict(self.stat("sdk", metric)),
                "baseline": asdict(self.stat("base", metric)),
                "ratio_of_medians": ratio,
                "per_round_ratio": asdict(spread),
            }
        return out


def alternate(rounds: int) -> Iterator[tuple[int, tuple[str, str]]]:
    """Round numbers with the side order for each: SDK first on even rounds."""
    for r in range(rounds):
        yield r, (("sdk", "base") if r % 2 == 0 else ("base", "sdk"))


@contextmanager
def measured() -> Iterator[list[float]]:
    """Yields a list that receives ``[wall, cpu]`` seconds of the block (after a GC)."""
    gc.collect()
    out: list[float] = []
    w0, c0 = time.perf_counter(), time.process_time()
    try:
        yield out
    finally:
        out.extend((time.perf_counter() - w0, time.process_time() - c0))


# --- table rows --------------------------------------------------------------------------------


@dataclass
class Row:
    """One line of the results table."""

    section: str
    label: str
    sdk: str
    baseline: str = "—"
    ratio: str = "—"
    target: str = "—"
    met: bool | None = None
    note: str = ""

    @property
    def met_text(self) -> str:
        if self.met is None:
            return "—" if self.target == "—" else "n/a"
        return "yes" if self.met else "no"


def ratio_text(ratio: float, spread: Stat) -> str:
    """``0.91x [0.88-0.93]``: the ratio of medians and the per-round spread."""
    if ratio != ratio:
        return "n/a"

    def f(x: float) -> str:
        return f"{x:.2g}" if abs(x) < 0.1 else f"{x:.2f}"

    return f"{f(ratio)}x [{f(spread.min)}{DASH}{f(spread.max)}]"


# --- keys --------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def rsa_key_pem() -> tuple[str, str]:
    """A fresh 2048-bit RSA key pair as (private PKCS#8 PEM, public SPKI PEM), made once."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


class Deadline:
    """A monotonic time bound."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.at = time.monotonic() + seconds

    def passed(self) -> bool:
        return time.monotonic() >= self.at

    def remaining(self) -> float:
        return max(0.0, self.at - time.monotonic())
