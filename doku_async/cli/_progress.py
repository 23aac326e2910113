"""Progress output: a rich progress bar on a terminal when the ``cli`` extra (rich) is
installed, plain periodic lines otherwise (rich missing, or the output is not a terminal)."""

from __future__ import annotations

import sys
import time
from typing import Protocol, TextIO

from ..bulk import BulkProgress

__all__ = ["ProgressDisplay", "ProgressPrinter", "progress_display"]


class ProgressDisplay(Protocol):
    """Called with each :class:`BulkProgress`; :meth:`close` ends the display."""

    def __call__(self, p: BulkProgress) -> None: ...

    def close(self) -> None:
        """End the display (the last state stays on screen)."""


def progress_display(stream: TextIO | None = None) -> ProgressDisplay:
    """A rich bar when ``stream`` (standard error by default) is a terminal and rich can be
    imported; :class:`ProgressPrinter`'s plain lines otherwise."""
    stream = stream or sys.stderr
    if stream.isatty():
        try:
            from ._rich_progress import RichProgress
        except ImportError:  # the cli extra is not installed
            pass
        else:
            return RichProgress(stream)
    return ProgressPrinter(stream)


class ProgressPrinter:
    """Plain ``progress:`` lines, one every ``interval`` seconds (5 s; 2 s on a terminal) and
    one at the end: safe in logs, pipes and terminals of any width."""

    def __init__(self, stream: TextIO | None = None, *, interval: float | None = None) -> None:
        self.stream = stream or sys.stderr
        self.interval = interval if interval is not None else (2.0 if self.stream.isatty() else 5.0)
        self._last = 0.0

    def __call__(self, p: BulkProgress) -> None:
        now = time.monotonic()
        finished = p.total is not None and p.done >= p.total
        if not finished and now - self._last < self.interval:
            return
        self._last = now
        total = f"/{p.total}" if p.total else ""
        rate = p.done / p.elapsed if p.elapsed > 0 else 0.0
        self.stream.write(
            f"progress: {p.done}{total}  ok {p.succeeded}  failed {p.failed}  pending "
            f"{p.pending}  unknown {p.unknown}  skipped {p.skipped}  {rate:,.0f}/s\n"
        )
        self.stream.flush()

    def close(self) -> None:
        """Nothing to end: every line is complete."""
