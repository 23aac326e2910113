"""Run the benchmarks: ``python -m benchmarks [--quick] [--only NAME ...] [--update-readme]``.

Writes ``benchmarks/results/latest.json`` (every sample) and ``latest.md`` (the table), and
prints the table. ``--update-readme`` also puts the table into ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import importlib
import json
import os
import platform
import resource
import subprocess
import sys
import time
import traceback
from importlib import metadata
from pathlib import Path
from typing import Any

from ._common import CLIENT_CPU, DASH, Settings, pin, pinning_possible, uvloop_version
from ._result import Result

MODULES = ("overhead", "bulk", "tokens", "official", "webhook", "memory", "journal")
"""Run in this order; imported only when run (spawned children re-import this module)."""
HERE = Path(__file__).resolve().parent
README = HERE / "README.md"
START, END = "<!-- bench:start -->", "<!-- bench:end -->"


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    cpu = platform.processor() or platform.machine()
    mem = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 2**20:.1f} GiB"
                break
    except OSError:
        pass

    def version(name: str) -> str | None:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None

    commit = None
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        git = ["git", "rev-parse", "--short", "HEAD"]
        done = subprocess.run(  # noqa: S603
            git, capture_output=True, text=True, timeout=5, cwd=HERE, check=False
        )
        commit = done.stdout.strip() or None
        status = subprocess.run(
            ["git", "status", "--porcelain", "--", "doku_async"],  # noqa: S607
            capture_output=True,
            text=True,
            timeout=5,
            cwd=HERE,
            check=False,
        )
        if commit and status.stdout.strip():
            commit += "+uncommitted changes in doku_async"
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory": mem,
        "os": platform.platform(),
        "python": platform.python_version(),
        "pinned": pinning_possible(),
        "commit": commit,
        "versions": {
            "doku-async": version("doku-async"),
            "aiohttp": version("aiohttp"),
            "msgspec": version("msgspec"),
            "cryptography": version("cryptography"),
            "uvloop": uvloop_version(),
            "doku-python-library": version("doku-python-library"),
        },
    }


def _system_busy() -> float | None:
    """CPU seconds all processes used since boot (Linux), or ``None``."""
    try:
        with open("/proc/stat") as stat:
            fields = [int(v) for v in stat.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    # user + nice + system: process time. Not irq/softirq (loopback TCP work lands there,
    # ours included, without being charged to any process), not steal, not idle/iowait.
    return (fields[0] + fields[1] + fields[2]) / os.sysconf("SC_CLK_TCK")


def _own_cpu() -> float:
    """CPU seconds of this process and of its children that have ended (servers, probes)."""
    me, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


class Background:
    """How much CPU other processes used while a benchmark ran (they skew it: 2 cores)."""

    def __init__(self) -> None:
        self.busy, self.own, self.wall = _system_busy(), _own_cpu(), time.perf_counter()

    def share(self) -> float | None:
        """Other processes' CPU as a share of one core over the interval."""
        busy = _system_busy()
        if busy is None or self.busy is None:
            return None
        wall = time.perf_counter() - self.wall
        other = (busy - self.busy) - (_own_cpu() - self.own)
        return max(0.0, other / wall) if wall > 0 else None


def wait_for_idle(limit: float, threshold: float = 0.1) -> float | None:
    """Wait (at most ``limit`` seconds) until other processes use under ``threshold`` of a
    core over one second; return the last share seen."""
    deadline = time.monotonic() + limit
    share: float | None = None
    while True:
        probe = Background()
        time.sleep(1.0)
        share = probe.share()
        if share is None or share < threshold or time.monotonic() >= deadline:
            return share
        print(f"[bench] machine busy ({share:.0%} of a core); waiting", file=sys.stderr)


def render(results: list[Result], info: dict[str, Any], settings: Settings) -> str:
    """The markdown report: machine, one table with every target, then notes."""
    v = info["versions"]
    lines = [
        f"Measured {info['date']}{' (quick smoke run)' if settings.quick else ''} on "
        f"{info['cpu']}, {info['cores']} cores, {info['memory']}, {info['os']}, "
        f"Python {info['python']}; client pinned to core 0 and servers to core 1: "
        f"{'yes' if info['pinned'] else 'no'}. doku-async {v['doku-async']}"
        f"{' @ ' + info['commit'] if info['commit'] else ''}, aiohttp {v['aiohttp']}, "
        f"msgspec {v['msgspec']}, uvloop {v['uvloop'] or 'not installed'}, "
        f"doku-python-library {v['doku-python-library'] or 'not installed'}. "
        f"{settings.rounds} rounds per comparison, sides alternating; "
        f"median [min{DASH}max] over rounds; ratio = SDK median / baseline median "
        f"[min{DASH}max of the per-round ratios].",
        "",
        "| # | measurement | SDK | baseline | ratio | target | met |",
        "|---|---|---|---|---|---|---|",
    ]
    for result in results:
        for row in result.rows:
            label = row.label + (f" — {row.note}" if row.note else "")
            lines.append(
                f"| {row.section} | {label} | {row.sdk} | {row.baseline} | {row.ratio} | "
                f"{row.target} | {row.met_text} |"
            )
    targets = [row for r in results for row in r.rows if row.met is not None]
    met = sum(1 for row in targets if row.met)
    lines += ["", f"Targets met: {met} of {len(targets)}."]
    busy = [
        f"{r.name} {r.data['background_core_share']:.0%}"
        for r in results
        if (r.data.get("background_core_share") or 0) > 0.1
    ]
    if busy:
        lines += [
            "",
            "**Other processes were busy during: " + ", ".join(busy) + " (of one core, on "
            "average). Their numbers are less reliable; run again on an idle machine.**",
        ]
    errors = [r for r in results if r.error]
    notes = [note for r in results for note in r.notes]
    if notes or errors:
        lines.append("")
    for note in notes:
        lines.append(f"- {note}")
    for r in errors:
        lines.append(f"- **{r.name} failed**: {r.error}")
    lines.append("")
    lines.append(
        "Baselines: 1 the same pieces by hand (hashlib, hmac, msgspec); 2 a bare aiohttp "
        "ClientSession posting the SDK's captured bytes; 4 the official doku-python-library "
        "(PyPI) as shipped; 5 a bare aiohttp handler on the same server."
    )
    return "\n".join(lines) + "\n"


def update_readme(table: str) -> None:
    text = README.read_text()
    if START not in text or END not in text:
        raise SystemExit(f"{README} has no {START} ... {END} section")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    README.write_text(f"{head}{START}\n{table}{END}{tail}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a short smoke run (~1 minute)")
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAME",
        help=f"run only these (repeat or comma-separate): {', '.join(MODULES)}",
    )
    parser.add_argument("--out", type=Path, default=HERE / "results", help="results folder")
    parser.add_argument(
        "--update-readme", action="store_true", help="write the table into benchmarks/README.md"
    )
    parser.add_argument(
        "--wait-idle",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="before each benchmark, wait up to this long for other processes to go quiet",
    )
    args = parser.parse_args(argv)
    names = [n.strip() for item in args.only for n in item.split(",") if n.strip()] or list(MODULES)
    unknown = [n for n in names if n not in MODULES]
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}; choose from {list(MODULES)}")
    settings = Settings(quick=args.quick)
    pin(CLIENT_CPU)
    info = machine()
    results: list[Result] = []
    started = time.perf_counter()
    for name in names:
        module = importlib.import_module(f"benchmarks.{name}")
        print(f"[bench] {name}: {module.TITLE} ...", file=sys.stderr, flush=True)
        if args.wait_idle > 0:
            wait_for_idle(args.wait_idle)
        t0 = time.perf_counter()
        background = Background()
        try:
            result = module.run(settings)
        except Exception as exc:
            traceback.print_exc()
            result = Result(name, module.TITLE, error=f"{type(exc).__name__}: {exc}")
        result.seconds = result.seconds or time.perf_counter() - t0
        result.data["background_core_share"] = background.share()
        print(f"[bench] {name}: done in {result.seconds:.1f} s", file=sys.stderr, flush=True)
        results.append(result)
    table = render(results, info, settings)
    args.out.mkdir(parents=True, exist_ok=True)
    payload = {
        "machine": info,
        "quick": settings.quick,
        "rounds": settings.rounds,
        "seconds": time.perf_counter() - started,
        "benchmarks": {
            r.name: {
                "title": r.title,
                "seconds": r.seconds,
                "error": r.error,
                "notes": r.notes,
                "rows": [row.__dict__ | {"met": row.met} for row in r.rows],
                "data": r.data,
            }
            for r in results
        },
    }
    (args.out / "latest.json").write_text(json.dumps(payload, indent=1, default=str) + "\n")
    (args.out / "latest.md").write_text(table)
    if args.update_readme:
        update_readme(table)
    print(table)
    print(f"[bench] total {payload['seconds']:.0f} s; results in {args.out}", file=sys.stderr)
    return 1 if any(r.error for r in results) else 0


if __name__ == "__main__":
    raise SystemExit(main())
