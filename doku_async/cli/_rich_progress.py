"""The progress bar drawn by rich (the ``cli`` extra): redrawn in place, fitted to the
terminal's width, the last state left on screen. Imported only when rich is installed."""

from __future__ import annotations

from typing import TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn

from ..bulk import BulkProgress
from ._common import counts_text

__all__ = ["RichProgress"]


class RichProgress:
    """A rich :class:`~rich.progress.Progress` with one task: the bar, done/total and the
    counts. Redrawn at most 4 times a second by rich's own thread."""

    def __init__(self, stream: TextIO) -> None:
        self._progress = Progress(
            BarColumn(bar_width=None),
            MofNCompleteColumn(),
            TextColumn("{task.fields[counts]}"),
            console=Console(file=stream),
            refresh_per_second=4,
            expand=True,
        )
        self._task: TaskID | None = None

    def __call__(self, p: BulkProgress) -> None:
        counts = counts_text(p)
        if self._task is None:
            self._progress.start()
            self._task = self._progress.add_task("payouts", total=p.total, counts=counts)
        self._progress.update(self._task, completed=p.done, total=p.total, counts=counts)

    def close(self) -> None:
        """Draw the last state and stop redrawing."""
        if self._task is not None:
            self._progress.refresh()
        self._progress.stop()
