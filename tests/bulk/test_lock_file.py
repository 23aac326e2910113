"""The journal's ``.lock`` file is removed on a clean close (issue 15 follow-up, item 8), and
removing it cannot let two processes hold the journal: a process that locked a file its holder
removed meanwhile opens the path again (see :mod:`doku_async.bulk._lock`)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from doku_async.bulk import Journal, JournalLockedError, _lock

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="the file stays on Windows")

HOLD = """
import sys
from doku_async.bulk._lock import JournalLock
lock = JournalLock(sys.argv[1])
lock.acquire()
print("held", flush=True)
sys.stdin.readline()
lock.release()
"""


def test_a_clean_close_leaves_no_lock_file(tmp_path: Path) -> None:
    db = tmp_path / "run.db"
    journal = Journal(db)
    assert (tmp_path / "run.db.lock").exists()  # held while open
    journal.close()
    assert not (tmp_path / "run.db.lock").exists()
    Journal(db).close()  # and the next run takes it as before
    assert not (tmp_path / "run.db.lock").exists()


def test_two_users_in_one_process_remove_it_with_the_last(tmp_path: Path) -> None:
    path = str(tmp_path / "a.db")
    first, second = _lock.JournalLock(path), _lock.JournalLock(path)
    first.acquire()
    second.acquire()
    first.release()
    assert Path(path + ".lock").exists()  # the second still holds it
    second.release()
    assert not Path(path + ".lock").exists()


def test_a_process_that_locked_a_removed_file_opens_the_path_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = str(tmp_path / "a.db")
    lock_path = path + ".lock"
    first = _lock.JournalLock(path)
    first.acquire()
    stale = os.open(lock_path, os.O_RDWR)  # opened before the holder releases (and removes)
    first.release()
    assert not Path(lock_path).exists()
    holder = subprocess.Popen(  # noqa: S603 - this interpreter, our own code
        [sys.executable, "-c", HOLD, path],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "held\n"
        real_open = os.open
        handed: list[int] = []

        def open_stale_first(file: Any, flags: int, *args: Any) -> int:
            if file == lock_path and not handed:
                handed.append(stale)
                return stale  # the race: our open happened before the removal
            return real_open(file, flags, *args)

        monkeypatch.setattr(os, "open", open_stale_first)
        with pytest.raises(JournalLockedError, match=f"in use by pid {holder.pid} "):
            _lock.JournalLock(path).acquire()  # never two holders of two different files
        assert handed == [stale]
    finally:
        monkeypatch.undo()
        if holder.poll() is None:
            holder.communicate("\n", timeout=10)
    assert holder.returncode == 0
    assert not Path(lock_path).exists()
    with pytest.raises(OSError, match="Bad file descriptor"):
        os.fstat(stale)  # closed by the acquire that found it stale
