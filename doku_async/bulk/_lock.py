"""One process at a time over a journal: an OS lock on a side file, plus a record of its holder.

The lock is an exclusive ``flock`` (``msvcrt.locking`` on Windows) on ``<journal>.lock``, taken
without waiting. The operating system drops it when its process dies, however it dies (SIGKILL,
a power cut), so a dead run never blocks the next one on the same host. The file also holds a
small record of the holder (pid, host, since when, last heartbeat, refreshed every quarter of
the lease by a background thread) so that a refused process can say who holds the journal.

Network file systems do not always share locks between hosts. When the lock is free but the
record names another host whose heartbeat is younger than the lease, that host may still be
running: the lock is refused until the lease has expired, unless ``break_lock`` says the
operator knows that host's run is over. A record of this host whose lock is free belongs to a
dead process (the OS would otherwise report the lock held): it is taken over.

Several :class:`~doku_async.bulk.Journal` objects of one process over the same file share one
lock (counted), as they share the process.

The lock file is removed when its holder releases it (not on Windows, where an open file cannot
be removed), so a clean close leaves no empty ``.lock`` behind. That is safe because the holder
removes it while it still holds the OS lock, and a process that takes the OS lock then checks
that the path still names the file it locked (same device and inode): if the holder removed it
meanwhile, the process opens the path again, so two processes never hold two different files.
A process killed while holding the lock leaves the file (with its record) for the next one.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from .._exceptions import DokuError

__all__ = ["DEFAULT_LEASE", "JournalLock", "JournalLockedError", "LockHolder"]

log = logging.getLogger("doku_async.bulk")

DEFAULT_LEASE = 60.0
"""Seconds after the last heartbeat when another host's lock record counts as abandoned."""
_RECORD_SIZE = 512
"""The record is written padded to this size, in one write, so a reader never sees half."""


class JournalLockedError(DokuError):
    """Another process holds the journal; nothing was read, written or sent.

    Attributes:
        path: the journal.
        holder: the holder's record (``None`` if it could not be read).
    """

    def __init__(self, message: str, *, path: str, holder: LockHolder | None) -> None:
        super().__init__(message)
        self.path = path
        self.holder = holder


@dataclass(frozen=True)
class LockHolder:
    """Who holds (or last held) a journal: process id, host name, since when, last heartbeat
    (epoch seconds)."""

    pid: int
    host: str
    since: float
    heartbeat: float

    def describe(self, now: float | None = None) -> str:
        """``pid 4242 on host batch-1 since 2024-10-01T02:00:00Z (last heartbeat 3 s ago)``."""
        age = max(0.0, (time.time() if now is None else now) - self.heartbeat)
        return (
            f"pid {self.pid} on host {self.host} since {_iso(self.since)} "
            f"(last heartbeat {age:.0f} s ago)"
        )

    def to_bytes(self) -> bytes:
        """The record as written to the lock file (JSON, padded)."""
        record = {"pid": self.pid, "host": self.host, "since": self.since, "hb": self.heartbeat}
        return json.dumps(record).encode().ljust(_RECORD_SIZE)

    @classmethod
    def from_bytes(cls, data: bytes) -> LockHolder | None:
        """The record in ``data``; ``None`` if empty (released) or unreadable."""
        text = data.strip()
        if not text:
            return None
        try:
            record = json.loads(text)
            return cls(
                pid=int(record["pid"]),
                host=str(record["host"]),
                since=float(record["since"]),
                heartbeat=float(record["hb"]),
            )
        except (ValueError, TypeError, KeyError):
            return None


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _hostname() -> str:
    return socket.gethostname() or "unknown-host"


def _pid_alive(pid: int) -> bool:
    if sys.platform == "win32":  # pragma: no cover - no signal 0 there; the OS lock decides
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _try_lock(fd: int) -> bool:
    """Take the OS lock without waiting; ``False`` if another open file holds it."""
    if sys.platform == "win32":  # pragma: no cover
        import msvcrt

        try:
            os.lseek(fd, _RECORD_SIZE, os.SEEK_SET)  # lock a byte past the record
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
            return False
        raise
    return True


def _read_record(fd: int) -> LockHolder | None:
    os.lseek(fd, 0, os.SEEK_SET)
    return LockHolder.from_bytes(os.read(fd, _RECORD_SIZE))


def _write_record(fd: int, data: bytes) -> None:
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, data)
    os.fsync(fd)


def _still_named(fd: int, path: str) -> bool:
    """Whether ``path`` still names the file open on ``fd`` (its holder may have removed it
    between our open and our lock)."""
    try:
        named = os.stat(path)
    except FileNotFoundError:
        return False
    opened = os.fstat(fd)
    return (named.st_dev, named.st_ino) == (opened.st_dev, opened.st_ino)


class _Removed(Exception):
    """The lock file was removed by its last holder after we opened it: open it again."""


_OPEN_ATTEMPTS = 20
"""Bound on re-opening a lock file that its holders keep removing under us."""


class _Held:
    """The lock as this process holds it: one descriptor, counted users, a heartbeat."""

    def __init__(self, fd: int, holder: LockHolder, lease: float, path: str = "") -> None:
        self.fd = fd
        self.path = path
        self.holder = holder
        self.users = 1
        self._stop = threading.Event()
        self._beat = threading.Thread(
            target=self._heartbeat, args=(max(0.05, lease / 4),), name="doku-journal-lock"
        )
        self._beat.daemon = True
        self._beat.start()

    def _heartbeat(self, interval: float) -> None:
        while not self._stop.wait(interval):
            holder = LockHolder(
                pid=self.holder.pid,
                host=self.holder.host,
                since=self.holder.since,
                heartbeat=time.time(),
            )
            try:
                _write_record(self.fd, holder.to_bytes())
            except OSError:  # a full disk: the OS lock still holds; the record ages
                log.warning("could not refresh the journal lock's heartbeat", exc_info=True)

    def release(self) -> None:
        self._stop.set()
        if self._beat is not threading.current_thread():
            self._beat.join(5)
        try:
            with contextlib.suppress(OSError):  # released: the next holder finds no record
                os.ftruncate(self.fd, 0)
            if self.path and sys.platform != "win32" and _still_named(self.fd, self.path):
                with contextlib.suppress(OSError):  # removed while still locked (module doc)
                    os.unlink(self.path)
        finally:
            os.close(self.fd)  # drops the OS lock


_HELD: dict[str, _Held] = {}
_HELD_GUARD = threading.Lock()
_GUARD_OWNER: list[int | None] = [None]
"""The thread inside ``_HELD_GUARD``, so a release from that very thread can be told apart."""
_DEFERRED: list[str] = []
"""Releases that arrived while their own thread held the guard (a journal's finalizer run by
the garbage collector in the middle of another lock's bookkeeping): done when it leaves."""


@contextlib.contextmanager
def _guarded() -> Iterator[None]:
    """Hold ``_HELD_GUARD``; on leaving, do the releases deferred meanwhile."""
    with _HELD_GUARD:
        _GUARD_OWNER[0] = threading.get_ident()
        try:
            yield
        finally:
            _GUARD_OWNER[0] = None
    while _DEFERRED:
        _release_key(_DEFERRED.pop())


def _release_key(key: str) -> None:
    with _guarded():
        held = _HELD.get(key)
        if held is None:
            return
        held.users -= 1
        if held.users > 0:
            return
        del _HELD[key]
    held.release()


class JournalLock:
    """The lock of one journal file for one user in this process (see the module docstring).

    Args:
        journal_path: the journal; the lock file is ``<journal_path>.lock``.
        lease: seconds after its last heartbeat when another host's record is abandoned.
        break_lock: take over a record of another host even if its lease is still running
            (the operator has made sure that host's run is over). A lock the OS reports held
            is never taken.
    """

    def __init__(
        self,
        journal_path: str,
        *,
        lease: float = DEFAULT_LEASE,
        break_lock: bool = False,
    ) -> None:
        self.journal_path = journal_path
        self.path = journal_path + ".lock"
        self.lease = lease
        self.break_lock = break_lock
        self._key: str | None = None

    def __repr__(self) -> str:
        return f"JournalLock({self.path!r}, held={self._key is not None})"

    @property
    def held(self) -> bool:
        """Whether this user holds the lock."""
        return self._key is not None

    def acquire(self) -> None:
        """Take the lock at once or raise :class:`JournalLockedError` naming the holder."""
        if self._key is not None:
            return
        key = os.path.realpath(self.path)
        with _guarded():
            held = _HELD.get(key)
            if held is not None:
                held.users += 1
                self._key = key
                return
            for attempt in range(_OPEN_ATTEMPTS):
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
                try:
                    holder = self._take(fd, last=attempt == _OPEN_ATTEMPTS - 1)
                except _Removed:
                    os.close(fd)
                    continue
                except BaseException:
                    os.close(fd)
                    raise
                _HELD[key] = _Held(fd, holder, self.lease, self.path)
                self._key = key
                return

    def _take(self, fd: int, *, last: bool = False) -> LockHolder:
        if not _try_lock(fd):
            holder = _read_record(fd)
            who = holder.describe() if holder is not None else "another process"
            raise JournalLockedError(
                f"the journal {self.journal_path} is in use by {who}; a second run over the "
                "same journal is refused (nothing was read, written or sent). Wait for that "
                "run to finish, or stop it first.",
                path=self.journal_path,
                holder=holder,
            )
        if sys.platform != "win32" and not _still_named(fd, self.path):
            if not last:
                raise _Removed
            raise JournalLockedError(
                f"the journal {self.journal_path}'s lock file kept being replaced while this "
                "process took it; another process is starting or ending a run: retry",
                path=self.journal_path,
                holder=None,
            )
        previous = _read_record(fd)
        host = _hostname()
        now = time.time()
        if previous is not None and previous.pid != os.getpid():
            if previous.host != host:
                age = now - previous.heartbeat
                if age < self.lease and not self.break_lock:
                    raise JournalLockedError(
                        f"the journal {self.journal_path} was last held by "
                        f"{previous.describe(now)}, another host; its lease runs "
                        f"{self.lease - age:.0f} s more. If that host's run is certainly over, "
                        "retry after the lease or use --break-lock (break_lock=True).",
                        path=self.journal_path,
                        holder=previous,
                    )
                log.warning(
                    "taking over the journal lock of %s (%s)",
                    previous.describe(now),
                    "break_lock" if age < self.lease else "lease expired",
                )
            else:
                log.warning(
                    "taking over the journal lock of %s: %s",
                    previous.describe(now),
                    "that process is not running"
                    if not _pid_alive(previous.pid)
                    else "its OS lock is free (the process ended; its pid was reused)",
                )
        holder = LockHolder(pid=os.getpid(), host=host, since=now, heartbeat=now)
        _write_record(fd, holder.to_bytes())
        return holder

    def release(self) -> None:
        """Give the lock back (the last user of this process releases the OS lock)."""
        key, self._key = self._key, None
        if key is None:
            return
        if _GUARD_OWNER[0] == threading.get_ident():
            # A finalizer run by the garbage collector while this thread holds the guard:
            # waiting for it would deadlock; the guard's holder releases it on leaving.
            _DEFERRED.append(key)
            return
        _release_key(key)


def read_holder(journal_path: str) -> LockHolder | None:
    """The holder record of ``journal_path``'s lock file, if any (for messages and tests)."""
    try:
        with open(journal_path + ".lock", "rb") as f:
            return LockHolder.from_bytes(f.read(_RECORD_SIZE))
    except OSError:
        return None
