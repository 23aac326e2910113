"""Summarize a py-spy profile: where the SDK side spends its CPU, in doku_async terms.

Record with py-spy's raw (collapsed stacks) format, then summarize::

    py-spy record -r 1000 -f raw -o bulk.txt -- python -m benchmarks.bulk --side sdk
    python -m benchmarks._hotspots bulk.txt --within _run_once

    py-spy record --subprocesses -r 1000 -f raw -o webhook.txt -- \\
        python -m benchmarks.webhook --side sdk
    python -m benchmarks._hotspots webhook.txt --within _handle_request

Each sample is owned by the deepest ``doku_async`` frame on its stack unless an aiohttp,
asyncio, multidict or yarl frame sits below it (then it is library time). So a doku_async
function's "owned" share includes the C and standard-library code it calls directly (hmac,
msgspec, strftime...), not the HTTP library it hands the request to. ``--within`` keeps only
samples whose stack contains that text (e.g. the SDK side's function in a benchmark).
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

_LIBS = ("aiohttp", "asyncio", "multidict", "yarl", "uvloop", "propcache")
_LINE = re.compile(r":\d+\)$")


def _name(frame: str) -> str:
    return _LINE.sub(")", frame)


def summarize(path: Path, within: str | None = None, top: int = 15) -> str:
    total = 0
    kinds: Counter[str] = Counter()
    owned: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        if within and not any(within in f for f in frames):
            continue
        total += n
        for name in {_name(f) for f in frames if "doku_async" in f}:
            inclusive[name] += n
        owner = "other"
        for frame in reversed(frames):
            if "doku_async" in frame:
                owner = _name(frame)
                break
            if any(lib in frame for lib in _LIBS):
                owner = "library"
                break
        if owner in ("other", "library"):
            kinds[owner] += n
        else:
            kinds["doku_async"] += n
            owned[owner] += n
    if not total:
        return "no samples matched"
    out = [f"{total} samples{f' within {within!r}' if within else ''}"]
    for kind in ("doku_async", "library", "other"):
        out.append(f"  {kind:<11} {kinds[kind] / total:6.1%}")
    out.append("doku_async functions by owned samples (self + the C/stdlib code they call):")
    out += [f"  {n / total:6.1%}  {name}" for name, n in owned.most_common(top)]
    out.append("doku_async functions by inclusive samples:")
    out += [f"  {n / total:6.1%}  {name}" for name, n in inclusive.most_common(top)]
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("profile", type=Path, help="py-spy raw output (-f raw)")
    parser.add_argument("--within", help="keep only stacks containing this text")
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    print(summarize(args.profile, args.within, args.top))


if __name__ == "__main__":
    main()
