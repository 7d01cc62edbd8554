"""The event log and everything kept beside it, in one SQLite database.

`Store.write` is the hot path: the committer hands it a `Batch` (every append waiting
at that moment, with their command records, snapshots and timer changes) and it
writes all of it in ONE transaction: all of it is durable, or none of it is visible.
Rows arrive already encoded (`EventRow.data` is JSON text), so writing costs no
per-row Python work beyond building binding tuples.

Reads page through the log by key (seq, or version within a hunt) instead of holding
one cursor open across `yield`s: a slow consumer then never pins an old read snapshot
(which would stop WAL checkpoints) or keeps a statement open on the writer's connection.
The log is append-only, so paging gives the same answer as one long cursor would.

Every apsw error is translated into `StorageError`, naming the file and what failed.

One `Store` is one apsw connection: use it from one thread at a time. In particular,
never read through the writer's Store from another thread while `write` may be
running: a connection sees its own uncommitted transaction, so such a read could
observe events that are not yet durable. Concurrent readers open their own Store
(`readonly=True` works in the same process, and in other processes).
"""

from __future__ import annotations

import contextlib
import operator
import os
import secrets
import time
from collections.abc import Iterable, Iterator, Sequence
from types import TracebackType
from typing import Any, NamedTuple

import apsw
import attrs
import orjson
from attrs import Factory

from thengine.domain.codes import CODE_SECRET_META_KEY
from thengine.domain.events import StoredEvent
from thengine.domain.shapes import SHAPES, upcast
from thengine.errors import StorageError
from thengine.storage import migrations as _migrations
from thengine.storage import codec
from thengine.storage.connection import Sync, connect

PAGE_SIZE = 1000
SNAPSHOT_PAGE_SIZE = 32
_MAX_INT = 2**63 - 1
_MIN_INT = -(2**63)


class EventRow(NamedTuple):
    """An event ready to store: `data` is its JSON object already encoded as text.

    A named tuple, not an attrs class: the engine makes one per event on its hot path,
    and `executemany` binds the tuple as it is.
    """

    seq: int
    hunt_id: str
    version: int
    type: str
    ts: int
    data: str
    command_id: str | None = None
    shape: int = 1  # the layout `data` is in (`thengine.domain.shapes`)


class CommandRecord(NamedTuple):
    """An accepted command with a `command_id`: its events are `first_seq..last_seq`."""

    command_id: str
    fingerprint: str
    hunt_id: str
    first_seq: int
    last_seq: int
    ts: int


@attrs.frozen(kw_only=True)
class SnapshotRow:
    """A hunt's state as of `version` (log position `seq`), serialised in `format`."""

    hunt_id: str
    version: int
    seq: int
    format: int
    state: bytes
    ts: int


@attrs.frozen(kw_only=True)
class CatalogRow:
    """A hunt's catalog entry: lifecycle status, when it ended, its `hunts` summary (JSON)."""

    hunt_id: str
    status: str
    ended_ts: int | None
    summary: str


@attrs.frozen(kw_only=True)
class Batch:
    """One transaction's worth of writes.

    Applied in this order: events, commands, snapshots (replacing one at the same
    hunt and version), timers_set (upserts of `(hunt_id, kind, due_ts)`), then
    timers_deleted (`(hunt_id, kind)`; so a timer set and deleted in one batch ends
    up deleted).
    """

    events: list[EventRow] = Factory(list)
    commands: list[CommandRecord] = Factory(list)
    snapshots: list[SnapshotRow] = Factory(list)
    timers_set: list[tuple[str, str, int]] = Factory(list)
    timers_deleted: list[tuple[str, str]] = Factory(list)
    hunts: list[CatalogRow] = Factory(list)


# Event and command rows are tuples already; the others are bound through attrgetter, in C.
_snapshot_values = operator.attrgetter("hunt_id", "version", "seq", "format", "state", "ts")

# A batch's events and command records go in as ONE statement each, the rows bound as
# one JSON array: apsw releases the GIL around every statement step, and with
# `executemany` (a step per row) the writer thread had to win the GIL back from a busy
# event loop once per row, up to `sys.getswitchinterval()` (5 ms) each: 500 rows took
# 2.2 s against a busy loop instead of 1.3 ms (benchmarks/storage_write.py --gil). One
# statement parses the JSON and inserts every row in C, without the GIL.
_INSERT_EVENTS = (
    "INSERT INTO events (seq, hunt_id, version, type, ts, data, command_id, shape) "
    "SELECT value->>0, value->>1, value->>2, value->>3, value->>4, value->>5, value->>6, value->>7 "
    "FROM json_each(?)"
)
_INSERT_COMMANDS = (
    "INSERT INTO commands (command_id, fingerprint, hunt_id, first_seq, last_seq, ts) "
    "SELECT value->>0, value->>1, value->>2, value->>3, value->>4, value->>5 FROM json_each(?)"
)
_INSERT_SNAPSHOT = (
    "INSERT OR REPLACE INTO snapshots (hunt_id, version, seq, format, state, ts) VALUES (?, ?, ?, ?, ?, ?)"
)
_UPSERT_TIMER = (
    "INSERT INTO timers (hunt_id, kind, due_ts) VALUES (?, ?, ?) "
    "ON CONFLICT (hunt_id, kind) DO UPDATE SET due_ts = excluded.due_ts"
)
_DELETE_TIMER = "DELETE FROM timers WHERE hunt_id = ? AND kind = ?"
_UPSERT_HUNT = (
    "INSERT INTO hunts (hunt_id, status, ended_ts, summary) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (hunt_id) DO UPDATE SET status = excluded.status, ended_ts = excluded.ended_ts, "
    "summary = excluded.summary"
)
_catalog_values = operator.attrgetter("hunt_id", "status", "ended_ts", "summary")

_EVENT_COLUMNS = "seq, hunt_id, version, type, ts, data, shape"
_SNAPSHOT_COLUMNS = "hunt_id, version, seq, format, state, ts"
_COMMAND_COLUMNS = "command_id, fingerprint, hunt_id, first_seq, last_seq, ts"
# Through the command_id index (migration 0003); the newest record of an id if there are several.
_FIND_COMMAND = (
    f"SELECT {_COMMAND_COLUMNS} FROM commands WHERE command_id = ? AND +ts >= ? ORDER BY rowid DESC LIMIT 1"
)

# Whole log in seq order: a rowid range scan.
_EVENTS_BY_SEQ = f"SELECT {_EVENT_COLUMNS} FROM events WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?"
# One hunt in version order, through the UNIQUE(hunt_id, version) index; `+seq` keeps
# the planner from trading that index for a rowid range scan plus a sort.
_EVENTS_OF_HUNT = (
    f"SELECT {_EVENT_COLUMNS} FROM events "
    "WHERE hunt_id = ? AND version > ? AND +seq > ? AND +seq <= ? ORDER BY version LIMIT ?"
)

# The distinct hunt ids by skipping through the (hunt_id, version) index: one
# index seek per hunt instead of a scan of every event.
_HUNT_IDS_CTE = """
WITH RECURSIVE hunts(id) AS (
    SELECT min(hunt_id) FROM events
    UNION ALL
    SELECT (SELECT min(hunt_id) FROM events WHERE hunt_id > hunts.id) FROM hunts WHERE hunts.id IS NOT NULL
)
"""
_HUNT_IDS = _HUNT_IDS_CTE + "SELECT id FROM hunts WHERE id IS NOT NULL"
_HUNT_HEADS = _HUNT_IDS_CTE + """
SELECT events.hunt_id, events.version, events.seq
FROM hunts JOIN events
  ON events.hunt_id = hunts.id
 AND events.version = (SELECT max(version) FROM events AS head WHERE head.hunt_id = hunts.id)
"""


def decode_events(rows: Sequence[tuple[Any, ...]], *, path: str = "the database") -> list[StoredEvent]:
    """`(seq, hunt_id, version, type, ts, data_json, shape)` rows -> `StoredEvent`s, each
    in its type's current shape (`thengine.domain.shapes.upcast`).

    Raises:
        StorageError: a row's data is not JSON (a corrupted file), or is in a shape newer
            than this thengine knows, naming its seq.
    """
    loads = codec.loads
    shapes = SHAPES
    try:
        return [
            StoredEvent(seq=seq, hunt_id=hunt_id, version=version, type=type_, ts=ts,
                        data=loads(data) if shape == shapes.get(type_, 1) else upcast(type_, shape, loads(data)))
            for seq, hunt_id, version, type_, ts, data, shape in rows
        ]
    except (ValueError, KeyError, TypeError):
        pass
    for seq, _, _, type_, _, data, shape in rows:
        try:
            value = loads(data)
        except ValueError as exc:
            raise StorageError(f"{path}: event {seq} has malformed data (corrupted file?): {exc}") from exc
        upcast_stored(type_, shape, value, seq=seq, path=path)
    raise AssertionError("unreachable: a row failed to decode once but not again")  # pragma: no cover


def upcast_stored(type_: str, shape: int, data: Any, *, seq: int, path: str) -> Any:
    """`upcast` of a stored event's data, its failures said as `StorageError`s naming the event."""
    try:
        return upcast(type_, shape, data)
    except ValueError as exc:
        raise StorageError(f"{path}: event {seq}: {exc}; upgrade thengine to read it") from exc
    except (KeyError, TypeError) as exc:
        raise StorageError(f"{path}: event {seq} ({type_}, shape {shape}) cannot be upcast "
                           f"(corrupted file?): {exc!r}") from exc


def _not_utf8(conn: apsw.Connection, sql: str, bindings: tuple[Any, ...]) -> str:
    """Which row of `sql`'s answer holds text that is not valid UTF-8, said for an error message.

    apsw raises UnicodeDecodeError converting such a value without saying where it is.
    Asking again with every text column cast to BLOB gives the raw bytes, so the row
    can be named by its leading columns (``seq=123``, ``hunt_id='h', version=4``). Only
    runs after a failure; if the question itself fails, the answer names no row.
    """
    unnamed = "a row holds text that is not valid UTF-8 (corrupted file?)"
    try:
        cursor = conn.execute(sql, bindings)
        columns = cursor.description_full  # (name, declared type, database, table, origin)
        cursor.close()
        names = ", ".join(f"c{i}" for i in range(len(columns)))
        picks = ", ".join(f"typeof(c{i}), CASE WHEN typeof(c{i}) = 'text' THEN CAST(c{i} AS BLOB) ELSE c{i} END"
                          for i in range(len(columns)))
        raw_rows = conn.execute(f"WITH _answer({names}) AS ({sql}) SELECT {picks} FROM _answer", bindings)
        for raw in raw_rows:
            values = [(kind, value) for kind, value in zip(raw[::2], raw[1::2])]
            bad = [i for i, (kind, value) in enumerate(values) if kind == "text" and not _is_utf8(value)]
            if bad:
                raw_rows.close()
                break
        else:
            return unnamed
    except apsw.Error:
        return unnamed
    key = []
    for i, (kind, value) in enumerate(values):
        if i in bad or kind == "blob":
            continue
        key.append(f"{columns[i][0]}={value.decode() if kind == 'text' else value!r}")
        if kind == "integer" or len(key) == 2:
            break
    table = columns[bad[0]][3]
    row = "a row" if not key else f"row {', '.join(key)}"
    where = f" of {table}" if table else ""
    column = ", ".join(columns[i][0] for i in bad)
    return f"{row}{where} holds text that is not valid UTF-8 in {column} (corrupted file?)"


def _is_utf8(value: bytes) -> bool:
    try:
        value.decode()
    except UnicodeDecodeError:
        return False
    return True


def _snapshot(row: tuple[Any, ...]) -> SnapshotRow:
    hunt_id, version, seq, format_, state, ts = row
    return SnapshotRow(hunt_id=hunt_id, version=version, seq=seq, format=format_, state=state, ts=ts)


class Store:
    """One open thengine database: the event log, snapshots, command records, timers, meta."""

    def __init__(self, path: str, conn: apsw.Connection, *, readonly: bool = False) -> None:
        self.path = path
        self.conn = conn
        self.readonly = readonly
        self.last_commit_s = 0.0  # the last COMMIT statement's duration
        # Opened for writing, yet SQLite fell back to read-only: the file cannot be
        # written (its mode, `chattr +i`, a read-only mount). Said before any write fails.
        self.file_readonly = not readonly and bool(conn.readonly("main"))
        self._wal: tuple[str, int, int] | None = None  # (path, st_dev, st_ino) once `watch_wal` ran

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        sync: Sync = "full",
        readonly: bool = False,
        migrate: bool = True,
        vfs: str | None = None,
    ) -> Store:
        """Open (and, if writable, create or migrate) the database at `path`.

        Args:
            sync: "full" or "normal", see `connection.connect`.
            readonly: open read-only; the schema must already be current.
            migrate: apply pending migrations (writable only); if False the schema is
                only checked.
            vfs: a registered SQLite VFS name (fault-injection tests).

        Raises:
            StorageError: cannot open, not a thengine database, not initialised (read-only).
            SchemaTooNew: written by a newer thengine.
        """
        name = os.fspath(path)
        conn = connect(name, readonly=readonly, sync=sync, vfs=vfs)
        try:
            if migrate and not readonly:
                _migrations.migrate(conn)
            else:
                _migrations.check_schema(conn)
        except BaseException:
            conn.close()
            raise
        return cls(name, conn, readonly=readonly)

    # -- plumbing ---------------------------------------------------------------

    @contextlib.contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        """Translate apsw errors into StorageError naming the file and `what` failed."""
        try:
            yield
        except apsw.Error as exc:
            raise StorageError(f"{self.path}: {what} failed: {exc}") from exc
        except UnicodeDecodeError as exc:  # (`_all` names the row; this is for any other read)
            raise StorageError(f"{self.path}: {what} failed: text that is not valid UTF-8 (corrupted file?)") from exc

    @contextlib.contextmanager
    def _transaction(self, what: str) -> Iterator[apsw.Connection]:
        """BEGIN IMMEDIATE ... COMMIT; rolled back on any error, never left open."""
        if self.readonly:
            raise StorageError(f"{self.path}: {what} failed: the database is open read-only")
        self.require_writable(what)
        conn = self.conn
        with self._errors(what):
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                started = time.perf_counter()
                conn.execute("COMMIT")
                self.last_commit_s = time.perf_counter() - started  # (the fsync's share of a write)
            except BaseException:
                # A failed COMMIT may already have rolled back; ROLLBACK only if still open.
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    def require_writable(self, what: str) -> None:
        """Refuse at once, naming the cause, if the database file cannot be written.

        Raises:
            StorageError: the file is read-only; `what` says what needed to write.
        """
        if self.file_readonly:
            raise StorageError(
                f"{self.path}: {what} failed: the database is read-only (attempt to write a readonly "
                "database): check the file's permissions, its immutable flag (lsattr) and the mount"
            )

    def _all(self, what: str, sql: str, bindings: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._errors(what):
            cursor = self.conn.execute(sql, bindings)
            try:
                return cursor.fetchall()
            except UnicodeDecodeError as exc:
                # A corrupted page can leave a TEXT value that is not UTF-8; apsw fails
                # converting it. Every read comes through here, so this is the one place.
                cursor.close()
                raise StorageError(f"{self.path}: {what} failed: {_not_utf8(self.conn, sql, bindings)}") from exc

    def rows(self, what: str, sql: str, bindings: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Every row of a read the Store has no method for (replay's pages, stats' counts).

        Errors are translated as for the Store's own reads: `StorageError` naming the
        file, `what` failed, and for text that is not UTF-8 (a corrupted page) the row.
        """
        return self._all(what, sql, bindings)

    def _scalar(self, what: str, sql: str, bindings: tuple[Any, ...] = ()) -> Any:
        return self._all(what, sql, bindings)[0][0]

    # -- writing ----------------------------------------------------------------

    def write(self, batch: Batch) -> None:
        """Write everything in `batch` in one transaction: all durable, or nothing visible.

        Raises:
            StorageError: any database error (constraint violation, I/O error, disk
                full). The transaction is rolled back and the Store stays usable.
                Or, after `watch_wal`, the `-wal` file was deleted (see `check_wal`):
                the batch is committed but must not be acknowledged.

        One caveat of WAL mode: if the fsync at COMMIT fails, the batch's frames may
        already be in the WAL file. The running process never sees them, and the next
        successful write (or a clean `close`) discards them for good; but a crash
        before either lets WAL recovery find them, so the batch reappears. Treat a
        failed write as "outcome unknown" until then (command_id dedupe covers retries).
        """
        with self._transaction(f"writing a batch of {len(batch.events)} events") as conn:
            if batch.events:
                conn.execute(_INSERT_EVENTS, (orjson.dumps(batch.events, default=tuple),))
            if batch.commands:
                conn.execute(_INSERT_COMMANDS, (orjson.dumps(batch.commands, default=tuple),))
            if batch.snapshots:
                conn.executemany(_INSERT_SNAPSHOT, map(_snapshot_values, batch.snapshots))
            if batch.timers_set:
                conn.executemany(_UPSERT_TIMER, batch.timers_set)
            if batch.timers_deleted:
                conn.executemany(_DELETE_TIMER, batch.timers_deleted)
            if batch.hunts:
                conn.executemany(_UPSERT_HUNT, map(_catalog_values, batch.hunts))
        self.check_wal()  # committed, but to a WAL that is still the database's?

    # -- the log ----------------------------------------------------------------

    def last_seq(self) -> int:
        """The highest `seq` in the log, 0 if it is empty."""
        return int(self._scalar("reading the last seq", "SELECT coalesce(max(seq), 0) FROM events"))

    def hunt_ids(self) -> list[str]:
        """Every hunt with at least one event, sorted."""
        return [hunt_id for (hunt_id,) in self._all("listing hunts", _HUNT_IDS)]

    def hunt_heads(self) -> dict[str, tuple[int, int]]:
        """For each hunt, `(last version, seq of that event)`."""
        rows = self._all("reading hunt heads", _HUNT_HEADS)
        return {hunt_id: (version, seq) for hunt_id, version, seq in rows}

    def read_events(
        self,
        *,
        after_seq: int = 0,
        hunt_id: str | None = None,
        until_seq: int | None = None,
        limit: int | None = None,
    ) -> Iterator[StoredEvent]:
        """Events with `after_seq < seq <= until_seq`, optionally of one hunt, in seq order."""
        if hunt_id is not None:
            return self._read_hunt(hunt_id, after_version=0, after_seq=after_seq, until_seq=until_seq, limit=limit)
        return self._read_log(after_seq=after_seq, until_seq=until_seq, limit=limit)

    def read_hunt_events(
        self, hunt_id: str, *, after_version: int = 0, until_seq: int | None = None
    ) -> Iterator[StoredEvent]:
        """One hunt's events with `version > after_version` (and `seq <= until_seq`), in version order."""
        return self._read_hunt(hunt_id, after_version=after_version, after_seq=0, until_seq=until_seq, limit=None)

    def events_in_range(self, first_seq: int, last_seq: int) -> list[StoredEvent]:
        """The events `first_seq..last_seq` inclusive (e.g. a remembered command's result)."""
        rows = self._all(
            f"reading events {first_seq}..{last_seq}",
            f"SELECT {_EVENT_COLUMNS} FROM events WHERE seq >= ? AND seq <= ? ORDER BY seq",
            (first_seq, last_seq),
        )
        return decode_events(rows, path=self.path)

    def _read_log(self, *, after_seq: int, until_seq: int | None, limit: int | None) -> Iterator[StoredEvent]:
        until = _MAX_INT if until_seq is None else until_seq
        remaining = _MAX_INT if limit is None else limit
        while remaining > 0:
            page = min(PAGE_SIZE, remaining)
            rows = self._all("reading events", _EVENTS_BY_SEQ, (after_seq, until, page))
            yield from decode_events(rows, path=self.path)
            if len(rows) < page:
                return
            remaining -= len(rows)
            after_seq = rows[-1][0]

    def _read_hunt(
        self, hunt_id: str, *, after_version: int, after_seq: int, until_seq: int | None, limit: int | None
    ) -> Iterator[StoredEvent]:
        # Within a hunt, version order is seq order.
        until = _MAX_INT if until_seq is None else until_seq
        remaining = _MAX_INT if limit is None else limit
        while remaining > 0:
            page = min(PAGE_SIZE, remaining)
            rows = self._all(
                f"reading events of hunt {hunt_id!r}",
                _EVENTS_OF_HUNT,
                (hunt_id, after_version, after_seq, until, page),
            )
            yield from decode_events(rows, path=self.path)
            if len(rows) < page:
                return
            remaining -= len(rows)
            after_version = rows[-1][2]

    # -- snapshots --------------------------------------------------------------

    def latest_snapshot(self, hunt_id: str, *, max_seq: int | None = None) -> SnapshotRow | None:
        """The hunt's newest snapshot, or its newest taken at or before `max_seq`."""
        rows = self._all(
            f"reading the latest snapshot of {hunt_id!r}",
            f"SELECT {_SNAPSHOT_COLUMNS} FROM snapshots WHERE hunt_id = ? AND seq <= ? "
            "ORDER BY version DESC LIMIT 1",
            (hunt_id, _MAX_INT if max_seq is None else max_seq),
        )
        return _snapshot(rows[0]) if rows else None

    def snapshots(self, hunt_id: str | None = None) -> Iterator[SnapshotRow]:
        """Every snapshot (of one hunt, or of all), ordered by hunt and version."""
        after: tuple[str, int] = ("", _MIN_INT)
        while True:
            if hunt_id is None:
                sql = (
                    f"SELECT {_SNAPSHOT_COLUMNS} FROM snapshots WHERE (hunt_id, version) > (?, ?) "
                    "ORDER BY hunt_id, version LIMIT ?"
                )
                bindings: tuple[Any, ...] = (*after, SNAPSHOT_PAGE_SIZE)
            else:
                sql = (
                    f"SELECT {_SNAPSHOT_COLUMNS} FROM snapshots WHERE hunt_id = ? AND version > ? "
                    "ORDER BY version LIMIT ?"
                )
                bindings = (hunt_id, after[1], SNAPSHOT_PAGE_SIZE)
            rows = self._all("reading snapshots", sql, bindings)
            yield from map(_snapshot, rows)
            if len(rows) < SNAPSHOT_PAGE_SIZE:
                return
            after = (rows[-1][0], rows[-1][1])

    def delete_snapshots(self, hunt_id: str | None = None) -> int:
        """Delete the snapshots of one hunt, or all of them. Returns how many."""
        with self._transaction("deleting snapshots") as conn:
            if hunt_id is None:
                conn.execute("DELETE FROM snapshots")
            else:
                conn.execute("DELETE FROM snapshots WHERE hunt_id = ?", (hunt_id,))
            return conn.changes()

    def prune_snapshots(self, keep: int = 2) -> int:
        """Keep only the newest `keep` snapshots of each hunt. Returns how many were deleted."""
        if keep < 0:
            raise ValueError(f"keep must be >= 0, got {keep}")
        with self._transaction("pruning snapshots") as conn:
            conn.execute(
                """
                DELETE FROM snapshots WHERE (hunt_id, version) IN (
                    SELECT hunt_id, version FROM (
                        SELECT hunt_id, version,
                               row_number() OVER (PARTITION BY hunt_id ORDER BY version DESC) AS newest
                        FROM snapshots
                    ) WHERE newest > ?
                )
                """,
                (keep,),
            )
            return conn.changes()

    # -- command records ----------------------------------------------------------

    def load_commands(self, since_ts: int) -> Iterator[CommandRecord]:
        """Command records with `ts >= since_ts`, in the order they were written."""
        after_rowid = 0
        while True:
            rows = self._all(
                "loading command records",
                "SELECT rowid, command_id, fingerprint, hunt_id, first_seq, last_seq, ts FROM commands "
                "WHERE rowid > ? AND +ts >= ? ORDER BY rowid LIMIT ?",
                (after_rowid, since_ts, PAGE_SIZE),
            )
            for _, command_id, fingerprint, hunt_id, first_seq, last_seq, ts in rows:
                yield CommandRecord(
                    command_id=command_id,
                    fingerprint=fingerprint,
                    hunt_id=hunt_id,
                    first_seq=first_seq,
                    last_seq=last_seq,
                    ts=ts,
                )
            if len(rows) < PAGE_SIZE:
                return
            after_rowid = rows[-1][0]

    def recent_commands(self, since_ts: int, limit: int) -> tuple[list[CommandRecord], CommandRecord | None]:
        """The newest `limit` command records with `ts >= since_ts`, oldest first, and
        the newest of those left out (None if none was).

        Read newest first through the ts index, so opening costs `limit` rows however
        many the window holds.
        """
        rows = self._all(
            "loading command records",
            f"SELECT {_COMMAND_COLUMNS} FROM commands WHERE ts >= ? ORDER BY ts DESC, rowid DESC LIMIT ?",
            (since_ts, limit + 1),
        )
        records = [CommandRecord(*row) for row in rows]
        left_out = records.pop() if len(records) > limit else None
        records.reverse()
        return records, left_out

    def find_commands(self, command_ids: Iterable[str], since_ts: int) -> dict[str, CommandRecord]:
        """The records of those `command_ids` that have one with `ts >= since_ts` (the
        newest, if an id has several), by id. One index seek per id."""
        found = {}
        with self._errors("looking up command ids"):
            execute = self.conn.execute
            for command_id in command_ids:
                for row in execute(_FIND_COMMAND, (command_id, since_ts)):
                    found[command_id] = CommandRecord(*row)
        return found

    def prune_commands(self, before_ts: int, *, limit: int | None = None) -> int:
        """Forget command records older than `before_ts` (at most `limit`, oldest
        first). Returns how many.

        Each deleted record is also a random write in the command_id index, so an engine
        prunes in bounded chunks: its writer waits for the lock one chunk at most.
        """
        with self._transaction("pruning command records") as conn:
            if limit is None:
                conn.execute("DELETE FROM commands WHERE ts < ?", (before_ts,))
            else:
                conn.execute("DELETE FROM commands WHERE rowid IN "
                             "(SELECT rowid FROM commands WHERE ts < ? ORDER BY ts LIMIT ?)", (before_ts, limit))
            return conn.changes()

    def disable_autocheckpoint(self) -> None:
        """Stop this connection from checkpointing the WAL inside its own commits.

        The engine's writer uses this so a checkpoint (which copies the WAL into the
        database and fsyncs it) never stalls a commit; the engine checkpoints from
        another connection instead (`checkpoint`).
        """
        with self._errors("turning off automatic checkpoints"):
            self.conn.execute("PRAGMA wal_autocheckpoint = 0")

    def checkpoint(self) -> tuple[int, int]:
        """Copy committed WAL frames into the database without blocking the writer.

        Returns (frames in the WAL, frames checkpointed). A PASSIVE checkpoint: it
        never waits for readers or the writer, and does what it can.
        """
        with self._errors("checkpointing the WAL"):
            _busy, frames, done = self.conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()[0]
        return frames, done

    def watch_wal(self) -> None:
        """Remember which `-wal` file this connection writes (device and inode), for `check_wal`.

        Raises:
            StorageError: there is no `-wal` file (the database is not open in WAL mode).
        """
        path = os.path.abspath(self.path) + "-wal"
        try:
            found = os.stat(path)
        except OSError as exc:
            raise StorageError(f"{self.path}: cannot watch the WAL file: {exc}") from exc
        self._wal = (path, found.st_dev, found.st_ino)

    def wal_change(self) -> str | None:
        """How the `-wal` file seen by `watch_wal` changed since ("deleted"...), or None.

        One `os.stat`; None too if nothing is watched.
        """
        if self._wal is None:
            return None
        path, device, inode = self._wal
        try:
            found = os.stat(path)
        except FileNotFoundError:
            return "deleted"
        except OSError as exc:
            return f"made unreadable ({exc.strerror})"
        if found.st_ino == inode and found.st_dev == device:
            return None
        return "replaced by another file"

    def check_wal(self) -> None:
        """Fail if the `-wal` file seen by `watch_wal` was deleted or replaced since.

        SQLite keeps writing to the file it opened, so after an operator's clean-up
        deletes `*.db-wal` every commit lands in a file that no later open will read: a
        crash then loses it. One `os.stat`, cheap enough to run after every commit. On
        a change, what the old file holds is first copied into the database through
        this connection (which still has it open), so nothing committed is lost.

        Raises:
            StorageError: the file was deleted or replaced (the message names it).
        """
        change = self.wal_change()
        if change is None:
            return
        try:
            # TRUNCATE also empties the wal-index, so a reader opening now reads the
            # database file alone instead of looking for frames in a new, empty -wal.
            with self._errors("saving the deleted WAL"):
                _busy, frames, done = self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()[0]
            saved = (f"everything committed is saved in {self.path}" if done == frames
                     else f"only {done} of its {frames} frames could be saved in {self.path}")
        except StorageError as exc:
            saved = f"saving what it held failed too ({exc})"
        raise StorageError(
            f"{self.path}-wal was {change} while the engine ran (a clean-up script?); stopped rather than "
            f"acknowledge commands into a file no restart will read; {saved}; restart the engine"
        )

    def hunt_catalog(self) -> dict[str, CatalogRow]:
        """Every hunt's catalog entry, by hunt id."""
        rows = self._all("reading the hunt catalog", "SELECT hunt_id, status, ended_ts, summary FROM hunts")
        return {r[0]: CatalogRow(hunt_id=r[0], status=r[1], ended_ts=r[2], summary=r[3]) for r in rows}

    # -- timers and meta ----------------------------------------------------------

    def timers(self) -> list[tuple[str, str, int]]:
        """Every pending timer as `(hunt_id, kind, due_ts)`, soonest first."""
        return self._all(
            "reading timers", "SELECT hunt_id, kind, due_ts FROM timers ORDER BY due_ts, hunt_id, kind"
        )

    def get_meta(self, key: str) -> str | None:
        """A stored setting, or None."""
        rows = self._all(f"reading meta {key!r}", "SELECT value FROM meta WHERE key = ?", (key,))
        return rows[0][0] if rows else None

    def set_meta(self, key: str, value: str, *, replace: bool = True, what: str | None = None) -> None:
        """Store a setting, replacing any previous value (or, with `replace=False`, keeping it).

        `what` names the write in errors (default: writing meta `key`).
        """
        update = "UPDATE SET value = excluded.value" if replace else "NOTHING"
        with self._transaction(what or f"writing meta {key!r}") as conn:
            conn.execute(f"INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO {update}", (key, value))

    def code_secret(self) -> bytes:
        """The secret of the database's printed codes (`thengine.domain.codes`), made now if
        there is none. Never rotated: codes printed from it must keep working."""
        stored = self.get_meta(CODE_SECRET_META_KEY)
        if stored is None:
            self.set_meta(CODE_SECRET_META_KEY, secrets.token_hex(32), replace=False,
                          what="making the code secret")
            stored = self.get_meta(CODE_SECRET_META_KEY)
            assert stored is not None
        return bytes.fromhex(stored)

    # -- the whole database -------------------------------------------------------

    def stats(self) -> dict[str, int]:
        """Counts and sizes: events, hunts, snapshots, commands, timers, db_bytes,
        wal_bytes, schema_version, last_seq."""
        counts = {
            table: self._scalar(f"counting {table}", f"SELECT count(*) FROM {table}")
            for table in ("events", "snapshots", "commands", "timers")
        }
        return {
            "events": counts["events"],
            "hunts": len(self.hunt_ids()),
            "snapshots": counts["snapshots"],
            "commands": counts["commands"],
            "timers": counts["timers"],
            "db_bytes": _file_size(self.path),
            "wal_bytes": _file_size(self.path + "-wal"),
            "schema_version": self._scalar("reading the schema version", "PRAGMA user_version"),
            "last_seq": self.last_seq(),
        }

    def backup_to(self, dest_path: str | os.PathLike[str]) -> None:
        """Copy the database, as of one consistent moment, to a new file `dest_path`.

        Uses SQLite's online backup API, so the copy includes what is only in the WAL
        and is consistent while a writer runs. The copy is a single self-contained
        file (rollback-journal mode; thengine switches it back to WAL when opened).

        Raises:
            StorageError: `dest_path` exists (never overwritten), or the copy failed
                (the partial file is removed).
        """
        dest = os.fspath(dest_path)
        try:
            # O_EXCL claims the name atomically: an existing file is never overwritten.
            os.close(os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
        except FileExistsError:
            raise StorageError(f"{dest} already exists; not overwriting it") from None
        except OSError as exc:
            raise StorageError(f"cannot create {dest}: {exc}") from exc
        done = False
        try:
            with self._errors(f"backing up to {dest}"):
                target = apsw.Connection(dest)
                try:
                    with target.backup("main", self.conn, "main") as backup:
                        while not backup.done:
                            backup.step(-1)  # every page in one step: one read snapshot
                    target.execute("PRAGMA journal_mode = DELETE").fetchall()
                finally:
                    target.close()
            done = True
        finally:
            if not done:
                for leftover in (dest, dest + "-journal", dest + "-wal", dest + "-shm"):
                    with contextlib.suppress(FileNotFoundError):
                        os.remove(leftover)

    def close(self) -> None:
        """Close the connection. Calling it again does nothing."""
        with self._errors("closing"):
            self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        mode = "read-only" if self.readonly else "read-write"
        return f"<Store {self.path} {mode}>"


def _file_size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0
