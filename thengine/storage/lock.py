"""The one-writer rule: an engine holds an exclusive lock on its database.

The lock is `flock(LOCK_EX | LOCK_NB)` on `<db>.lock`, which also records the holder's
pid so that a second engine can name it. The kernel drops a flock when the holding
process dies, however it dies, so a SIGKILLed engine never leaves a stale lock; the
file itself stays behind and is harmless. Read-only tools take no lock.
"""

from __future__ import annotations

import fcntl
import os
from types import TracebackType

from thengine.errors import EngineLocked, StorageError


def lock_path(db_path: str | os.PathLike[str]) -> str:
    """The lock file that guards `db_path`."""
    return os.fspath(db_path) + ".lock"


class EngineLock:
    """An exclusive, non-blocking writer lock on one database, held until `release`."""

    def __init__(self, db_path: str, fd: int) -> None:
        self.db_path = db_path
        self.path = lock_path(db_path)
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, db_path: str | os.PathLike[str]) -> EngineLock:
        """Take the lock on `db_path` or fail at once.

        Raises:
            EngineLocked: another engine (or another `EngineLock` in this process)
                holds it; the message names the holder's pid.
            StorageError: the lock file cannot be created.
        """
        name = os.fspath(db_path)
        path = lock_path(name)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise StorageError(f"cannot create the lock file {path}: {exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            raise EngineLocked(
                f"{name} is in use by another engine (pid {holder}); "
                "stop it first, or use a read-only command"
            ) from None
        except OSError as exc:
            os.close(fd)
            raise StorageError(f"cannot lock {path}: {exc}") from exc
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError as exc:
            os.close(fd)  # closing drops the flock too
            raise StorageError(f"cannot write the lock file {path}: {exc}") from exc
        return cls(name, fd)

    @property
    def held(self) -> bool:
        """True until `release` is called."""
        return self._fd is not None

    def release(self) -> None:
        """Drop the lock. Calling it again does nothing."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        os.close(fd)  # closing the only descriptor drops the flock

    def __enter__(self) -> EngineLock:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def __repr__(self) -> str:
        state = "held" if self.held else "released"
        return f"<EngineLock {self.path} {state}>"


def _read_pid(fd: int) -> str:
    """The pid recorded by the holder, or "unknown" if it has not written it yet."""
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return "unknown"
    return text if text.isdigit() else "unknown"
