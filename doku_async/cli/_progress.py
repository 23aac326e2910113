"""Progress output: a redrawn bar on a terminal, plain periodic lines otherwise."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from ..bulk import BulkProgress


class ProgressPrinter:
    """Call with each :class:`BulkProgress`; redraws at most 10 times a second."""

    def __init__(self, stream: TextIO | None = None, *, interval: float | None = None) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.interval = interval if interval is not None else (0.1 if self.tty else 5.0)
        self._last = 0.0
        self._last_done = -1

    def __call__(self, p: BulkProgress) -> None:
        now = time.monotonic()
        finished = p.total is not None and p.done >= p.total
        if not finished and now - self._last < self.interval:
            return
        self._last = now
        self._last_done = p.done
        rate = p.done / p.elapsed if p.elapsed > 0 else 0.0
        counts = (
            f"ok {p.succeeded}  failed {p.failed}  pending {p.pending}  "
            f"unknown {p.unknown}  skipped {p.skipped}  {rate:,.0f}/s"
        )
        if self.tty:
            if p.total:
                width = 30
                filled = int(width * p.done / p.total)
                bar = "#" * filled + "." * (width - filled)
                line = f"\r[{bar}] {p.done}/{p.total}  {counts}"
            else:
                line = f"\r{p.done} done  {counts}"
            self.stream.write(line)
            if finished:
                self.stream.write("\n")
        else:
            total = f"/{p.total}" if p.total else ""
            self.stream.write(f"progress: {p.done}{total}  {counts}\n")
        self.stream.flush()

    def close(self) -> None:
        """End a terminal bar's line."""
        if self.tty and self._last_done >= 0:
            self.stream.write("\n")
            self.stream.flush()
