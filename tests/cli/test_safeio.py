""":class:`SafeStream`: a reader that goes away stops the writes, never the program; other
write errors (a full disk) still raise."""

from __future__ import annotations

import errno
import io
import os
import sys

import pytest

from doku_async.cli._safeio import SafeStream

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX pipes")


def test_a_closed_pipe_stops_the_writes_quietly() -> None:
    read_end, write_end = os.pipe()
    raw = os.fdopen(write_end, "w", buffering=1, encoding="utf-8")
    stream = SafeStream(raw)
    try:
        assert stream.write("first\n") == 6
        assert os.read(read_end, 100) == b"first\n"
        os.close(read_end)
        assert stream.write("second\n") == 7  # EPIPE: dropped, no exception
        assert stream.gone
        stream.write("third\n")
        stream.flush()
        assert not stream.isatty()
        raw.write("pending\n")  # the descriptor now leads to /dev/null: no EPIPE at exit
        raw.flush()
    finally:
        raw.close()


class _FullDisk(io.StringIO):
    def write(self, text: str) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")


def test_other_write_errors_still_raise() -> None:
    stream = SafeStream(_FullDisk())
    with pytest.raises(OSError, match="No space left"):
        stream.write("x")
    assert not stream.gone
