"""Offline replay: rebuild hunt state from the log alone, and check the snapshots against it.

`replay` folds the event log into hunt states FROM SCRATCH, ignoring snapshots, for
every hunt or one, optionally stopping at a log position (`until_seq`) or a moment
(`until_ts`). `verify` replays the same way and, each time a hunt reaches the version
of a stored snapshot, compares the snapshot with the replayed state field by field;
it returns the first `Divergence` (promise 4: exact replay), or None.

Only storage and the pure domain are used (no engine, no trio), and nothing is
ever written, so both work on a read-only `Store` while an engine runs.

Speed: the log is read in pages of raw rows in seq order (one indexed range scan per
page) and each row goes straight into `evolve`. Rows are not turned into frozen
`StoredEvent`s first: that costs as much as decoding the JSON. Each page is its own
short read transaction, bounded by the last `seq` seen at the start, so a long replay
never pins the WAL of a running engine yet reads one consistent prefix of the log.
"""

from __future__ import annotations

import json
import reprlib
import zlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import attrs

from ..domain.rules import evolve
from ..domain.shapes import SHAPES
from ..domain.state import SNAPSHOT_FORMAT, HuntState, to_snapshot
from ..errors import StorageError, UnknownHunt
from ..storage import codec
from ..storage.store import Store, upcast_stored

#: Rows fetched per read transaction.
PAGE_SIZE = 10_000
_MAX_INT = 2**63 - 1

Progress = Callable[[int, int], None]
"""`progress(events_done, events_total)`, called after every page of the log."""

_COLUMNS = "seq, hunt_id, version, type, ts, data, shape"
_LOG_PAGE = f"SELECT {_COLUMNS} FROM events WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?"
# Through the UNIQUE(hunt_id, version) index; `+seq` keeps the planner on it.
_HUNT_PAGE = (f"SELECT {_COLUMNS} FROM events WHERE hunt_id = ? AND version > ? AND +seq <= ? "
              "ORDER BY version LIMIT ?")
# Each snapshot with the seq of the event that brought its hunt to its version (NULL
# when the log has no such event).
_CHECKPOINTS = """
SELECT snapshots.hunt_id, snapshots.version, snapshots.seq, events.seq
FROM snapshots LEFT JOIN events
  ON events.hunt_id = snapshots.hunt_id AND events.version = snapshots.version
"""
_SNAPSHOT_BLOB = "SELECT format, state FROM snapshots WHERE hunt_id = ? AND version = ?"


@attrs.frozen(kw_only=True)
class ReplayResult:
    """Hunt states rebuilt from the log; `seq` is the last event applied (0: none)."""

    seq: int
    events: int
    hunts: dict[str, HuntState]


@attrs.frozen(kw_only=True)
class Divergence:
    """Where a stored snapshot disagrees with the state replayed from the log.

    `field` is a path into the snapshot data such as ``groups[3].score`` or
    ``players.p1.active``; ``snapshot`` when the snapshot cannot be decoded at all, or
    ``version`` when the log never reaches the snapshot's version.
    """

    hunt_id: str
    version: int
    seq: int | None
    field: str
    replayed: Any
    stored: Any

    def describe(self) -> str:
        """One line for people."""
        where = f"hunt {self.hunt_id!r} at version {self.version}"
        if self.seq is not None:
            where += f" (seq {self.seq})"
        return (f"divergence in {where}: {self.field}: replayed {_show.repr(self.replayed)}, "
                f"snapshot has {_show.repr(self.stored)}")

    def to_json(self) -> dict[str, Any]:
        return {"hunt_id": self.hunt_id, "version": self.version, "seq": self.seq, "field": self.field,
                "replayed": self.replayed, "stored": self.stored}


@attrs.frozen(kw_only=True)
class Verification:
    """What `check` compared: `snapshots` snapshots over `events` replayed events, and
    `skipped` snapshots of an older format (which recovery skips too); `hunts` as
    replayed to the end of the log."""

    snapshots: int
    events: int
    divergence: Divergence | None
    skipped: int = 0
    hunts: dict[str, HuntState] = attrs.field(factory=dict, repr=False)


def replay(store: Store, *, hunt_id: str | None = None, until_seq: int | None = None,
           until_ts: int | None = None, progress: Progress | None = None) -> ReplayResult:
    """Rebuild every hunt (or one) from its events alone, ignoring snapshots.

    Args:
        hunt_id: only this hunt.
        until_seq: apply only events with ``seq <= until_seq``.
        until_ts: stop before the first event stamped after this time (ms since the
            epoch): the state as it was at that moment.
        progress: called with (events done, events to do) after every page.

    Raises:
        UnknownHunt: `hunt_id` has no events.
        StorageError: the database cannot be read.
    """
    hunts: dict[str, HuntState] = {}
    last_seq, count = _fold(store, hunts, hunt_id=hunt_id, until_seq=until_seq, until_ts=until_ts,
                            progress=progress)
    return ReplayResult(seq=last_seq, events=count, hunts=hunts)


def verify(store: Store, *, hunt_id: str | None = None, progress: Progress | None = None) -> Divergence | None:
    """Replay from scratch and return the first snapshot that disagrees, or None.

    An undecodable snapshot (bad zlib, bad JSON, a format newer than this thengine's) is
    a divergence too; one of an older format is skipped, as recovery skips it.
    Raises like `replay`.
    """
    return check(store, hunt_id=hunt_id, progress=progress).divergence


def check(store: Store, *, hunt_id: str | None = None, progress: Progress | None = None) -> Verification:
    """`verify`, also saying how many snapshots and events it went through."""
    bound = _last_seq(store)
    found: list[Divergence] = []
    compared = skipped = 0
    pending: dict[int, tuple[str, int, int]] = {}  # event seq -> (hunt, version, snapshot row seq)
    beyond: list[tuple[str, int]] = []
    for snap_hunt, version, row_seq, event_seq in _rows(store, "reading snapshots", _CHECKPOINTS):
        if hunt_id is not None and snap_hunt != hunt_id:
            continue
        if event_seq is None:
            beyond.append((snap_hunt, version))
        elif event_seq <= bound:
            pending[event_seq] = (snap_hunt, version, row_seq)

    def at_checkpoint(seq: int, state: HuntState) -> bool:
        nonlocal compared, skipped
        snap_hunt, version, row_seq = pending[seq]
        divergence = _compare(store, state, version, row_seq)
        if divergence is SKIPPED:
            skipped += 1
            return False
        compared += 1
        if divergence is not None:
            found.append(divergence)
            return True
        return False

    hunts: dict[str, HuntState] = {}
    _, count = _fold(store, hunts, hunt_id=hunt_id, until_seq=bound, until_ts=None, progress=progress,
                     checkpoints=sorted(pending), on_checkpoint=at_checkpoint)
    if not found and beyond:
        snap_hunt, version = min(beyond)
        state = hunts.get(snap_hunt)
        compared += 1
        found.append(Divergence(hunt_id=snap_hunt, version=version, seq=None, field="version",
                                replayed=state.version if state is not None else 0, stored=version))
    return Verification(snapshots=compared, events=count, divergence=found[0] if found else None,
                        skipped=skipped, hunts=hunts)


# -- the fold --------------------------------------------------------------------------

class _Row:
    """One log row in the shape `evolve` reads (seq, version, type, ts, data).

    `evolve` keeps no reference to the event it applies, so replay refills one `_Row`
    for every row instead of building a frozen `StoredEvent` per row.
    """

    __slots__ = ("seq", "hunt_id", "version", "type", "ts", "data")


def _fold(store: Store, hunts: dict[str, HuntState], *, hunt_id: str | None, until_seq: int | None,
          until_ts: int | None, progress: Progress | None, checkpoints: Sequence[int] = (),
          on_checkpoint: Callable[[int, HuntState], bool] | None = None) -> tuple[int, int]:
    """Apply the log to `hunts`; returns (last seq applied, events applied).

    After the event at each seq in `checkpoints` (ascending) `on_checkpoint(seq, state)`
    runs; it returns True to stop there.
    """
    bound = _last_seq(store)
    if until_seq is not None:
        bound = min(bound, until_seq)
    if hunt_id is not None:
        total = min(bound, _hunt_length(store, hunt_id))
    else:
        total = bound
    limit_ts = _MAX_INT if until_ts is None else until_ts
    pending = iter(checkpoints)
    stop = next(pending, -1)
    row = _Row()
    get = hunts.get
    shapes = SHAPES
    last_seq = count = 0
    for rows in _pages(store, hunt_id, bound):
        for (seq, row_hunt, version, type_, ts, _, shape), data in zip(rows, _decode(store, rows)):
            if ts > limit_ts:
                return last_seq, count
            if shape != shapes.get(type_, 1):
                data = upcast_stored(type_, shape, data, seq=seq, path=store.path)
            row.seq, row.hunt_id, row.version, row.type, row.ts, row.data = seq, row_hunt, version, type_, ts, data
            try:
                state = hunts[row_hunt] = evolve(get(row_hunt), row)  # type: ignore[arg-type]
            except (LookupError, TypeError, ValueError, AttributeError, AssertionError) as exc:
                raise StorageError(f"{store.path}: event {seq} ({type_} of hunt {row_hunt!r}) "
                                   f"cannot be applied: {exc!r}") from exc
            last_seq = seq
            count += 1
            if seq == stop:
                assert on_checkpoint is not None
                if on_checkpoint(seq, state):
                    return last_seq, count
                stop = next(pending, -1)
        if progress is not None:
            progress(count, total)
    return last_seq, count


def _decode(store: Store, rows: list[tuple[Any, ...]]) -> list[Any]:
    """The `data` of every row, parsed.

    One `loads` of the whole page as a JSON array costs less than one call
    per row. Each row is one JSON value exactly when the counts agree (an empty or
    broken row is a syntax error; a row holding two values makes the count differ);
    otherwise rows are parsed one by one, to name the bad one.
    """
    try:
        values = codec.loads("[" + ",".join([r[5] for r in rows]) + "]")
        if len(values) == len(rows):
            return values
    except ValueError:
        pass
    values = []
    for seq, *_, data, _ in rows:
        try:
            values.append(codec.loads(data))
        except ValueError as exc:
            raise StorageError(f"{store.path}: event {seq} has malformed data: {exc}") from exc
    return values


def _pages(store: Store, hunt_id: str | None, bound: int) -> Iterator[list[tuple[Any, ...]]]:
    """The log up to `bound` (all hunts in seq order, or one hunt in version order), a page at a time."""
    after = 0
    while True:
        if hunt_id is None:
            rows = _rows(store, "reading events", _LOG_PAGE, (after, bound, PAGE_SIZE))
        else:
            rows = _rows(store, f"reading events of hunt {hunt_id!r}", _HUNT_PAGE,
                         (hunt_id, after, bound, PAGE_SIZE))
        if rows:
            yield rows
        if len(rows) < PAGE_SIZE:
            return
        after = rows[-1][0] if hunt_id is None else rows[-1][2]


def _rows(store: Store, what: str, sql: str, bindings: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    return store.rows(what, sql, bindings)


def _last_seq(store: Store) -> int:
    return _rows(store, "reading the last seq", "SELECT coalesce(max(seq), 0) FROM events")[0][0]


def _hunt_length(store: Store, hunt_id: str) -> int:
    """How many events `hunt_id` has (its last version); raises UnknownHunt if none."""
    rows = _rows(store, f"reading hunt {hunt_id!r}", "SELECT max(version) FROM events WHERE hunt_id = ?", (hunt_id,))
    if rows[0][0] is None:
        raise UnknownHunt(f"no hunt {hunt_id!r} in {store.path}")
    return rows[0][0]


# -- comparing a snapshot --------------------------------------------------------------

_PLAYER_FIELDS = ("kind", "group_id", "active", "removed", "joined_ts")
_PROGRESS_FIELDS = ("solved_ts", "hints", "wrong", "cooldown_until")
# Dict-of-lists keys whose list positions have names (see `to_snapshot`).
_ITEM_NAMES = {"players": _PLAYER_FIELDS, "progress": _PROGRESS_FIELDS}


class _Absent:
    def __repr__(self) -> str:
        return "(absent)"


ABSENT = _Absent()
"""Stands for a field one side of a `Divergence` does not have."""

_show = reprlib.Repr()
_show.maxstring = 80
_show.maxother = 80
_show.maxlist = 8
_show.maxdict = 8


#: What `_compare` returns for a snapshot of an older format: not compared, not a divergence.
SKIPPED: Any = object()


def _compare(store: Store, state: HuntState, version: int, row_seq: int) -> Divergence | None:
    """The first difference between `state` and its hunt's stored snapshot at `version`
    (`SKIPPED` if the snapshot has an older format)."""
    def diverged(field: str, replayed: Any, stored: Any) -> Divergence:
        return Divergence(hunt_id=state.hunt_id, version=version, seq=state.seq, field=field,
                          replayed=replayed, stored=stored)

    rows = _rows(store, f"reading the snapshot of {state.hunt_id!r} at version {version}",
                 _SNAPSHOT_BLOB, (state.hunt_id, version))
    if not rows:  # deleted since we listed it: a cache entry gone is not a divergence
        return None
    format_, blob = rows[0]
    if format_ < SNAPSHOT_FORMAT:
        return SKIPPED
    if format_ != SNAPSHOT_FORMAT:
        return diverged("format", SNAPSHOT_FORMAT, format_)
    try:
        stored = codec.decode_snapshot(blob)
    except (zlib.error, ValueError, TypeError) as exc:  # (UnicodeDecodeError is a ValueError)
        return diverged("snapshot", "a decodable snapshot", f"undecodable: {type(exc).__name__}: {exc}")
    if not isinstance(stored, dict):
        return diverged("snapshot", "a JSON object", f"undecodable: a JSON {type(stored).__name__}")
    if row_seq != state.seq:
        return diverged("seq (snapshot row)", state.seq, row_seq)
    # What the engine stores is this, through JSON: compare like with like.
    replayed = codec.loads(codec.dumps(to_snapshot(state)))
    difference = _first_difference(replayed, stored, "")
    if difference is None:
        return None
    return diverged(*difference)


def _first_difference(replayed: Any, stored: Any, path: str, names: tuple[str, ...] | None = None,
                      item_names: tuple[str, ...] | None = None) -> tuple[str, Any, Any] | None:
    """(path, replayed value, stored value) of the first difference, in snapshot order."""
    if isinstance(replayed, dict) and isinstance(stored, dict):
        for key in [*replayed, *(k for k in stored if k not in replayed)]:
            found = _first_difference(replayed.get(key, ABSENT), stored.get(key, ABSENT), _key(path, key),
                                      names=item_names, item_names=_ITEM_NAMES.get(key))
            if found is not None:
                return found
        return None
    if isinstance(replayed, list) and isinstance(stored, list):
        for i in range(max(len(replayed), len(stored))):
            a = replayed[i] if i < len(replayed) else ABSENT
            b = stored[i] if i < len(stored) else ABSENT
            where = f"{path}.{names[i]}" if names is not None and i < len(names) else f"{path}[{i}]"
            found = _first_difference(a, b, where)
            if found is not None:
                return found
        return None
    if type(replayed) is type(stored) and replayed == stored:
        return None
    return (path or "(the whole snapshot)", replayed, stored)


def _key(path: str, key: str) -> str:
    if key.isidentifier():
        return f"{path}.{key}" if path else key
    return f"{path}[{json.dumps(key)}]"
