"""Output that cannot break a run: when the reader of standard output or standard error goes
away (``| head``, a ``tee`` killed by Ctrl-C), the run keeps paying and
journaling, and only stops writing to that stream.

Python ignores SIGPIPE, so a write to a closed pipe raises :class:`BrokenPipeError` (EPIPE).
:class:`SafeStream` turns that into "this stream is gone": the write is dropped, the stream's
descriptor is pointed at ``/dev/null`` (so the interpreter's last flush at exit is silent too),
and every later write is dropped. The money never depends on the terminal.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
from collections.abc import Iterator
from typing import Any, TextIO

__all__ = ["SafeStream", "mute", "safe_std_streams"]

_GONE = (errno.EPIPE, errno.ECONNRESET, errno.EBADF, errno.EIO)
"""The reader went away (a pipe or socket, a hung-up terminal: EIO), or the descriptor was
closed under us."""


def mute(stream: TextIO) -> None:
    """Point ``stream``'s descriptor at ``/dev/null``: pending and later writes vanish
    quietly (the standard recipe after a :class:`BrokenPipeError`)."""
    try:
        fd = stream.fileno()
    except (OSError, ValueError, AttributeError):
        return
    with contextlib.suppress(OSError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, fd)
        finally:
            os.close(devnull)


class SafeStream:
    """A text stream whose writes never raise for a reader that went away.

    Attributes:
        gone: the reader went away; nothing is written any more.
    """

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self.gone = False

    def write(self, text: str) -> int:
        """Write ``text`` (dropped once the reader is gone); returns its length."""
        if not self.gone:
            with self._guard():
                self._stream.write(text)
        return len(text)

    def flush(self) -> None:
        """Flush (nothing once the reader is gone)."""
        if not self.gone:
            with self._guard():
                self._stream.flush()

    def isatty(self) -> bool:
        """Whether the stream is a terminal (``False`` once gone)."""
        if self.gone:
            return False
        try:
            return self._stream.isatty()
        except (OSError, ValueError):
            return False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        try:
            yield
        except OSError as exc:
            if not isinstance(exc, BrokenPipeError) and exc.errno not in _GONE:
                raise
            self.gone = True
            mute(self._stream)


@contextlib.contextmanager
def safe_std_streams() -> Iterator[None]:
    """Replace ``sys.stdout`` and ``sys.stderr`` by :class:`SafeStream` s for the block."""
    saved = sys.stdout, sys.stderr
    sys.stdout = SafeStream(saved[0])
    sys.stderr = SafeStream(saved[1])
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved
