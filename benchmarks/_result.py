"""What each benchmark module hands back to the runner."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ._common import Row


@dataclass
class Result:
    """Table rows plus everything measured (for ``latest.json``)."""

    name: str
    title: str
    rows: list[Row] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    error: str | None = None
