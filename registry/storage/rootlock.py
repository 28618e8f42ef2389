"""The storage root's lock: servers hold it shared, garbage collection alone.

A flock(2) on `<root>/registry.lock`. Worker processes forked by a server inherit its open
file, so the lock lives as long as any of them does, and goes with the last one, whatever
the way it ends.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from registry.storage import paths


class RootBusy(RuntimeError):
    """The root is locked the other way: served while collecting, or the reverse."""


class RootLock:
    """Hold `root`'s lock, shared (`exclusive=False`: serving) or exclusive (collecting);
    RootBusy at once when the other kind is held."""

    def __init__(self, root: Path, exclusive: bool) -> None:
        self.root = root
        # Read-only is enough for flock(2): a lock file another user made still locks.
        self._fd = os.open(root / paths.ROOT_LOCK, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC,
                           0o644)
        try:
            fcntl.flock(self._fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
                        | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._fd)
            if exclusive:
                raise RootBusy(f"the registry at {root} is being served, or collected by "
                               "another gc: stop it first (garbage collection needs its "
                               "storage to itself)") from None
            raise RootBusy(f"garbage is being collected in {root}: serve it once that "
                           "ends") from None

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> RootLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
