"""Recovery by replay: a hunt from its latest usable snapshot plus the events after it.

Snapshots are a cache. One in another format, or one that fails to decode, is never
trusted: the hunt is then replayed from its first event, giving the same state, only
slower. The hunt catalog row (status, end time, `hunts` summary) is written with
every lifecycle event so that hunts that ended long ago can stay on disk.
"""

from __future__ import annotations

import zlib

from ..domain import views
from ..domain.rules import evolve
from ..domain.state import SNAPSHOT_FORMAT, HuntState, from_snapshot
from ..errors import StorageError
from ..storage.codec import decode_snapshot, dumps
from ..storage.store import CatalogRow, Store

LIFECYCLE = frozenset({"hunt_created", "hunt_started", "hunt_ended", "hunt_extended"})


def catalog_row(state: HuntState) -> CatalogRow:
    return CatalogRow(hunt_id=state.hunt_id, status=state.status, ended_ts=state.ended_ts,
                      summary=dumps(views.hunt_summary(state)))


def rebuild(store: Store, hunt_id: str) -> tuple[HuntState | None, int]:
    """One hunt from its latest usable snapshot plus later events (blocking: run in a thread).

    Returns the state and the version of the snapshot used (0 for none). A snapshot is
    a cache: one of another format, or that fails to decode, is never trusted.
    """
    state = None
    snapshot = store.latest_snapshot(hunt_id)
    if snapshot is not None and snapshot.format == SNAPSHOT_FORMAT:
        try:
            state = from_snapshot(decode_snapshot(snapshot.state))
        except (ValueError, KeyError, TypeError, zlib.error):
            state = None
    snapshot_version = state.version if state is not None else 0
    for event in store.read_hunt_events(hunt_id, after_version=snapshot_version):
        try:
            state = evolve(state, event)
        except (LookupError, TypeError, ValueError, AttributeError, AssertionError) as exc:
            # A stored event the rules cannot apply: a corrupted file, said like replay says it.
            raise StorageError(f"{store.path}: event {event.seq} ({event.type} of hunt {hunt_id!r}) "
                               f"cannot be applied: {exc!r}") from exc
    return state, snapshot_version


