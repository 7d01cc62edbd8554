"""Opening the SQLite database: one `connect`, every pragma applied in one place.

A writable connection puts the database in WAL mode, so read-only connections (from
other processes too: `thengine replay`, `events`, `stats`, `backup`) read a consistent
snapshot while the engine writes. `sync="full"` makes every commit survive power
loss; `sync="normal"` survives a process crash (kill -9) but may lose the last
commits on power loss.

apsw errors are translated here, at the boundary, into `StorageError`.
"""

from __future__ import annotations

import os
from typing import Literal

import apsw

from thengine.errors import StorageError

Sync = Literal["full", "normal"]

BUSY_TIMEOUT_MS = 5000
CACHE_SIZE_KIB = 16384
JOURNAL_SIZE_LIMIT_BYTES = 64 * 1024 * 1024

_SYNC_LEVELS = {"full": "FULL", "normal": "NORMAL"}


def set_wal_mode(conn: apsw.Connection) -> None:
    """Write-ahead logging: readers never block the writer, and the writer never blocks them."""
    mode = conn.execute("PRAGMA journal_mode = WAL").fetchall()[0][0]
    if mode != "wal" and conn.filename:  # an in-memory database has no WAL, and needs none
        raise StorageError(f"{conn.filename}: cannot use WAL mode (journal_mode is {mode!r})")


def set_busy_timeout(conn: apsw.Connection) -> None:
    """Wait for locks (e.g. a checkpoint or WAL recovery) rather than failing at once."""
    conn.set_busy_timeout(BUSY_TIMEOUT_MS)


def set_synchronous(conn: apsw.Connection, sync: Sync) -> None:
    """FULL: fsync the WAL at every commit. NORMAL: only at checkpoints."""
    conn.execute(f"PRAGMA synchronous = {_SYNC_LEVELS[sync]}")


def enable_foreign_keys(conn: apsw.Connection) -> None:
    """Enforce declared foreign keys (SQLite leaves them off by default)."""
    conn.execute("PRAGMA foreign_keys = ON")


def set_temp_store_memory(conn: apsw.Connection) -> None:
    """Sorts and temporary tables in memory, not in temp files."""
    conn.execute("PRAGMA temp_store = MEMORY")


def set_cache_size(conn: apsw.Connection) -> None:
    """A page cache for the hot end of the log and its indexes, and no bigger.

    It is resident memory, and a writer's cache only ever fills up (readers' caches are
    emptied whenever another connection has written): at 64 MiB, an engine's RSS grew
    by 40 MiB over 100,000 commands with ids even with the ids themselves capped in
    memory. 16 MiB holds every hot page with room to spare, at the same throughput,
    and beyond it the OS's file cache serves reads (benchmarks/idempotency_memory.py).
    """
    conn.execute(f"PRAGMA cache_size = -{CACHE_SIZE_KIB}")


def set_journal_size_limit(conn: apsw.Connection) -> None:
    """Truncate the WAL file back to a bounded size after a checkpoint resets it."""
    conn.execute(f"PRAGMA journal_size_limit = {JOURNAL_SIZE_LIMIT_BYTES}")


def disable_double_quoted_strings(conn: apsw.Connection) -> None:
    """A misspelt "column" is an error, not silently a string literal."""
    conn.config(apsw.SQLITE_DBCONFIG_DQS_DML, 0)
    conn.config(apsw.SQLITE_DBCONFIG_DQS_DDL, 0)


def apply_pragmas(conn: apsw.Connection, sync: Sync, *, readonly: bool = False) -> None:
    """Apply every connection setting thengine relies on.

    A read-only connection skips what only a writer may change (the journal mode is
    stored in the file, so readers see WAL once a writer has set it).
    """
    if sync not in _SYNC_LEVELS:
        raise ValueError(f"sync must be 'full' or 'normal', got {sync!r}")
    set_busy_timeout(conn)
    disable_double_quoted_strings(conn)
    if not readonly:
        set_wal_mode(conn)
        set_journal_size_limit(conn)
    set_synchronous(conn, sync)
    enable_foreign_keys(conn)
    set_temp_store_memory(conn)
    set_cache_size(conn)


def connect(
    path: str | os.PathLike[str],
    *,
    readonly: bool = False,
    sync: Sync = "full",
    vfs: str | None = None,
) -> apsw.Connection:
    """Open the database at `path` with thengine's settings.

    Args:
        path: the database file. Created if missing, unless `readonly`.
        readonly: open with SQLITE_OPEN_READONLY; works while another process writes.
        sync: "full" (durable across power loss) or "normal" (across process crashes).
        vfs: name of a registered SQLite VFS (tests use one that injects I/O faults).

    Raises:
        StorageError: no database at `path` (read-only), the file is not a SQLite
            database, or it cannot be opened.
    """
    if sync not in _SYNC_LEVELS:
        raise ValueError(f"sync must be 'full' or 'normal', got {sync!r}")
    name = os.fspath(path)
    if readonly and not os.path.exists(name):
        raise StorageError(f"no database at {name}")
    if readonly:
        flags = apsw.SQLITE_OPEN_READONLY
    else:
        flags = apsw.SQLITE_OPEN_READWRITE | apsw.SQLITE_OPEN_CREATE
    try:
        conn = apsw.Connection(name, flags=flags, vfs=vfs)
    except apsw.Error as exc:
        raise StorageError(f"cannot open {name}: {exc}") from exc
    try:
        apply_pragmas(conn, sync, readonly=readonly)
        # Reading the schema is the first access to the file: it fails here, with a
        # clear message, if the file is not a SQLite database.
        conn.execute("SELECT count(*) FROM sqlite_schema").fetchall()
    except apsw.NotADBError as exc:
        conn.close()
        raise StorageError(f"{name} is not a thengine database: {exc}") from exc
    except apsw.CantOpenError as exc:
        conn.close()
        hint = ""
        if not (os.path.exists(name + "-wal") and os.path.exists(name + "-shm")):
            hint = f" (SQLite makes {name}-wal and {name}-shm beside it: can its directory be written?)"
        raise StorageError(f"cannot open {name}: {exc}{hint}") from exc
    except apsw.Error as exc:
        conn.close()
        raise StorageError(f"cannot open {name}: {exc}") from exc
    except BaseException:
        conn.close()
        raise
    return conn
