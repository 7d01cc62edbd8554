"""Which hunts are in memory: loading at open and on demand, the snapshot policy, eviction.

Every hunt in memory is a `HuntState` in `hunts`. Hunts that ended long ago
(`evict_after_s`) leave memory once a committed snapshot covers their last event;
only their catalog summary stays (`evicted`, for the `hunts` query), and they are
rebuilt from their latest snapshot when something asks for them again. A hunt is
snapshotted every `interval` events: more for bigger hunts, since a snapshot costs
the loop time in proportion to the players. A big hunt's snapshot is built a slice at
a time (`SnapshotBuilder`), so that no slice holds the loop for long.
"""

from __future__ import annotations

import json
from typing import Any, Awaitable, Callable

import trio

from ..domain import views
from ..domain.state import SNAPSHOT_FORMAT, HuntState
from ..errors import StorageError
from ..storage.store import SnapshotRow, Store
from ..history.recovery import rebuild
from .snapshots import SnapshotBuilder


class Residency:
    """The hunts in memory, those left on disk, and when each needs a snapshot."""

    def __init__(self, *, snapshot_every: int, snapshot_events_per_player: int, evict_after_s: float) -> None:
        self.hunts: dict[str, HuntState] = {}
        self.evicted: dict[str, dict[str, Any]] = {}  # hunt_id -> its `hunts` summary
        self._snapshot_versions: dict[str, int] = {}  # hunt_id -> the version of its newest snapshot
        self._loading: dict[str, trio.Event] = {}
        self._building: dict[str, SnapshotBuilder] = {}  # hunt_id -> its snapshot being built
        self._snapshot_every = snapshot_every
        self._events_per_player = snapshot_events_per_player
        self._evict_after_ms = evict_after_s * 1000

    def release(self) -> None:
        """Forget every hunt (the engine has closed)."""
        for table in (self.hunts, self.evicted, self._snapshot_versions, self._building):
            table.clear()

    # -- loading ---------------------------------------------------------------------
    def load(self, store: Store, now: int) -> None:
        """Rebuild every hunt but those that ended long before `now` (in a thread, at open)."""
        catalog = store.hunt_catalog()
        cutoff = now - self._evict_after_ms
        for hunt_id in store.hunt_ids():
            row = catalog.get(hunt_id)
            if row is not None and row.status == "ended" and row.ended_ts is not None and row.ended_ts < cutoff:
                try:
                    self.evicted[hunt_id] = json.loads(row.summary)
                except ValueError:
                    raise StorageError(f"{store.path}: the catalog row of hunt {hunt_id!r} is not valid JSON "
                                       "(corrupted file?)") from None
                continue
            self._loaded(hunt_id, *rebuild(store, hunt_id))

    async def ensure_loaded(self, hunt_id: str,
                            rebuild_from_disk: Callable[[str], Awaitable[tuple[HuntState | None, int]]]) -> None:
        """Bring an evicted hunt back into memory (once, however many ask at the same time)."""
        if hunt_id not in self.evicted:
            return
        loading = self._loading.get(hunt_id)
        if loading is not None:
            await loading.wait()
            return
        loading = self._loading[hunt_id] = trio.Event()
        try:
            self._loaded(hunt_id, *await rebuild_from_disk(hunt_id))
            del self.evicted[hunt_id]
        finally:
            del self._loading[hunt_id]
            loading.set()

    def _loaded(self, hunt_id: str, state: HuntState | None, snapshot_version: int) -> None:
        if state is not None:
            self.hunts[hunt_id] = state
            self._snapshot_versions[hunt_id] = snapshot_version

    # -- snapshots -------------------------------------------------------------------
    def interval(self, state: HuntState) -> int:
        """Events between two snapshots of `state`: more for bigger hunts.

        Building a snapshot costs the loop time in proportion to the hunt's players
        (about 55 ms of CPU for 10,000, spread over steps of under 2 ms each by
        `SnapshotBuilder`), so a fixed interval would make big hunts spend much
        of their time snapshotting; scaling keeps it a small cost per event, while
        recovery still replays at most this many events per hunt.
        """
        return max(self._snapshot_every, self._events_per_player * len(state.players))

    def due(self, state: HuntState) -> bool:
        """Whether `state` has gone `interval` events since its last snapshot (and none is
        being built)."""
        return (state.version - self._snapshot_versions.get(state.hunt_id, 0) >= self.interval(state)
                and state.hunt_id not in self._building)

    def unsnapshotted(self, state: HuntState) -> bool:
        """Whether `state` has events that no snapshot covers."""
        return state.version > self._snapshot_versions.get(state.hunt_id, 0)

    def begin(self, state: HuntState) -> SnapshotBuilder:
        """Start building a snapshot of `state`, to take in steps (`building`, `finish`)."""
        builder = self._building[state.hunt_id] = SnapshotBuilder(state)
        return builder

    def building(self, builder: SnapshotBuilder) -> bool:
        """Whether `builder` is still the one wanted (not abandoned for a whole snapshot)."""
        return self._building.get(builder.state.hunt_id) is builder

    def finish(self, builder: SnapshotBuilder, ts: int) -> SnapshotRow:
        """The snapshot `builder` built (its blob ready), as a row to commit."""
        assert builder.blob is not None
        state = builder.state
        del self._building[state.hunt_id]
        self._snapshot_versions[state.hunt_id] = builder.version
        return SnapshotRow(hunt_id=state.hunt_id, version=builder.version, seq=builder.seq,
                           format=SNAPSHOT_FORMAT, state=builder.blob, ts=ts)

    def snapshot(self, state: HuntState, ts: int) -> SnapshotRow:
        """A whole snapshot of `state` now, in one go (any being built is abandoned).

        Built like a sliced one, in a single step: its rows are bytes, which the
        garbage collector does not track, where `to_snapshot`'s lists and dicts would
        make the next full collection scan tens of thousands of objects.
        """
        builder = self._building.pop(state.hunt_id, None)
        if builder is not None:
            builder.abandon()
        builder = self._building[state.hunt_id] = SnapshotBuilder(state)
        builder.complete()
        return self.finish(builder, ts)

    # -- eviction --------------------------------------------------------------------
    def evict(self, now: int, committed_seq: int) -> tuple[list[str], list[HuntState]]:
        """Drop hunts that ended more than `evict_after_s` before `now` and whose last
        event a committed snapshot covers. Returns their ids, and the ended hunts that
        need that snapshot first (they leave on a later round)."""
        cutoff = now - self._evict_after_ms
        evicted, to_snapshot_first = [], []
        for hunt_id, state in list(self.hunts.items()):
            if state.status != "ended" or state.ended_ts is None or state.ended_ts >= cutoff:
                continue
            covered = self._snapshot_versions.get(hunt_id) == state.version
            if covered and committed_seq >= state.seq:
                del self.hunts[hunt_id]
                self.evicted[hunt_id] = views.hunt_summary(state)
                evicted.append(hunt_id)
            elif not covered and hunt_id not in self._building:
                to_snapshot_first.append(state)
        return evicted, to_snapshot_first
