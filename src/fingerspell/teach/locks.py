"""Locks that hold across threads and across server processes (``fingerspell serve --workers``).

Profiles live in one data folder that every process reads and changes: each change is a
read-modify-replace, which two processes must not interleave, and one training runs at a time
however many processes there are. ``FileLock`` is a thread lock within a process and an
``flock`` on a file beside the profiles across processes (POSIX; elsewhere the thread lock alone).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

try:
    import fcntl
except ImportError:  # not POSIX: one process per data folder
    fcntl = None

POLL_S = 0.2  # how often a wait for another process's lock looks again (and whether to stop)


class FileLock:
    """A re-entrant lock: a thread ``RLock``, and while held an exclusive ``flock`` on ``path``.

    The file is made (0o600, its folder 0o700) the first time the lock is taken, and kept: a lock
    file removed while another process waits on it would let a third take a new one.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self._thread = threading.RLock()
        self._depth = 0
        self._fd: int | None = None

    def acquire(self, wait: Callable[[], bool] | None = None) -> bool:
        """Take the lock. ``wait``: called while another process holds it; False gives up (returns False)."""
        self._thread.acquire()
        if self._depth == 0:
            try:
                if not self._lock_file(wait):
                    self._thread.release()
                    return False
            except BaseException:
                self._thread.release()
                raise
        self._depth += 1
        return True

    def _lock_file(self, wait: Callable[[], bool] | None) -> bool:
        if fcntl is None:
            return True
        for folder in reversed([self.path.parent, *self.path.parent.parents]):  # each one made private
            if not folder.is_dir():
                folder.mkdir(mode=0o700, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if wait is None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            else:
                while True:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        if not wait():
                            os.close(fd)
                            return False
                        time.sleep(POLL_S)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return True

    def release(self) -> None:
        self._depth -= 1
        if self._depth == 0 and self._fd is not None:
            fd, self._fd = self._fd, None
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
        self._thread.release()

    def __enter__(self) -> "FileLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
