"""Real storage faults for tests: a pass-through SQLite VFS that fails on command.

    with faulty_vfs() as vfs:
        store = Store.open(path, vfs=vfs.name)
        vfs.fail(op="xWrite", file_suffix="-wal")        # the next WAL write fails
        with pytest.raises(StorageError): store.write(batch)
        vfs.heal()                                      # the "disk" works again
        store.close()                                   # close before leaving the block

The faults reach SQLite as real error codes (SQLITE_IOERR, or SQLITE_FULL with
`error=apsw.FullError`), exactly as a failing disk would report them. Used by the
storage tests and reusable by the runtime tests (the committer's fail-stop path).
Every connection opened with the VFS must be closed before `faulty_vfs` exits.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import apsw

_names = itertools.count(1)


class FaultyVFS(apsw.VFS):
    """Passes everything to the default VFS; `fail` arms a fault, `heal` disarms it."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._lock = threading.Lock()
        self._op: str | None = None
        self._suffix = ""
        self._after = 0
        self._error: type[apsw.Error] = apsw.IOError
        self._sticky = True
        self.faults = 0  # how many operations have failed so far
        super().__init__(name, "")

    def fail(
        self,
        *,
        op: str = "xWrite",
        file_suffix: str = "-wal",
        after: int = 0,
        error: type[apsw.Error] = apsw.IOError,
        sticky: bool = True,
    ) -> None:
        """Make `op` ("xWrite" or "xSync") fail on files whose name ends with `file_suffix`.

        The first `after` matching calls still succeed. A sticky fault keeps failing
        (a dead disk) until `heal`; otherwise only one call fails (a transient error).
        """
        if op not in ("xWrite", "xSync"):
            raise ValueError(f"op must be 'xWrite' or 'xSync', got {op!r}")
        with self._lock:
            self._op, self._suffix, self._after = op, file_suffix, after
            self._error, self._sticky = error, sticky

    def heal(self) -> None:
        """Stop failing."""
        with self._lock:
            self._op = None

    def check(self, op: str, filename: str) -> None:
        """Raise the armed error if this call is one that should fail."""
        with self._lock:
            if self._op != op or not filename.endswith(self._suffix):
                return
            if self._after > 0:
                self._after -= 1
                return
            self.faults += 1
            error = self._error
            if not self._sticky:
                self._op = None
        raise error(f"injected fault: {op} on {filename}")

    def xOpen(self, name: str | apsw.URIFilename | None, flags: list[int]) -> FaultyFile:
        return FaultyFile(self, name, flags)


class FaultyFile(apsw.VFSFile):
    """A file of the default VFS whose writes and syncs consult its `FaultyVFS` first."""

    def __init__(self, vfs: FaultyVFS, name: str | apsw.URIFilename | None, flags: list[int]) -> None:
        self._vfs = vfs
        if isinstance(name, apsw.URIFilename):
            self._filename = name.filename()
        else:
            self._filename = name or ""
        super().__init__("", name, flags)

    def xWrite(self, data: bytes, offset: int) -> None:
        self._vfs.check("xWrite", self._filename)
        super().xWrite(data, offset)

    def xSync(self, flags: int) -> None:
        self._vfs.check("xSync", self._filename)
        super().xSync(flags)


@contextmanager
def faulty_vfs() -> Iterator[FaultyVFS]:
    """Register a fresh `FaultyVFS` under a unique name; unregister it afterwards."""
    vfs = FaultyVFS(f"thengine-faulty-{next(_names)}")
    try:
        yield vfs
    finally:
        vfs.unregister()
