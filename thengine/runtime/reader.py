"""The engine's reads of its own log, on a read-only connection, in a thread.

One `Store` opened read-only, used by one thread hop at a time: events for
subscribers catching up, meta values, evicted hunts rebuilt on demand, and, batched in
one hop for all that are waiting from every shard, the first results of repeated
commands and the command ids that have left memory (`replay`, `find_commands`), so
that a client re-sending a whole stream after a crash is not served one by one.
"""

from __future__ import annotations

from typing import Any, Callable

import trio

from ..domain.events import StoredEvent
from ..domain.state import HuntState
from ..errors import EngineClosed
from ..history.recovery import rebuild
from ..storage.store import CommandRecord, Store


class LogReader:
    """Reads for a running engine. `run` serves the batched ones; start it in its nursery."""

    def __init__(self, store: Store, committed_seq: Callable[[], int]) -> None:
        self._store = store
        self._committed_seq = committed_seq  # what the reads are sure to see
        self._lock = trio.Lock()
        self._replays: list[_Replay] = []
        self._lookups: list[_Lookup] = []
        self._waiting = trio.Event()
        self._done = False

    # -- one hop each ------------------------------------------------------------------
    async def read_events(self, **kwargs: Any) -> list[StoredEvent]:
        """`Store.read_events`, as a list."""
        async with self._lock:
            return await trio.to_thread.run_sync(lambda: list(self._store.read_events(**kwargs)))

    async def read_meta(self, key: str) -> str | None:
        async with self._lock:
            return await trio.to_thread.run_sync(self._store.get_meta, key)

    async def rebuild(self, hunt_id: str) -> tuple[HuntState | None, int]:
        """A hunt from its latest snapshot plus later events (see `history.recovery.rebuild`)."""
        async with self._lock:
            return await trio.to_thread.run_sync(rebuild, self._store, hunt_id)

    # -- batched -----------------------------------------------------------------------
    @property
    def replays_pending(self) -> bool:
        return bool(self._replays)

    async def replay(self, record: CommandRecord) -> list[StoredEvent]:
        """The events of a command seen before (its first result), read back."""
        if self._done:
            raise EngineClosed("the engine closed before the repeated command's result was read")
        waiter = _Replay(record)
        self._replays.append(waiter)
        self._waiting.set()
        await waiter.done.wait()
        if waiter.events is None:
            raise EngineClosed("the engine closed before the repeated command's result was read")
        return waiter.events

    async def find_commands(self, command_ids: list[str], since_ts: int) -> tuple[dict[str, CommandRecord], int]:
        """The records of `command_ids` with ``ts >= since_ts``, and the seq the log was
        committed up to when they were read (every record up to it is seen)."""
        if self._done:
            raise EngineClosed("the engine closed before a command id could be looked up")
        waiter = _Lookup(command_ids, since_ts)
        self._lookups.append(waiter)
        self._waiting.set()
        await waiter.done.wait()
        if waiter.found is None:
            raise EngineClosed("the engine closed before a command id could be looked up")
        return waiter.found, waiter.seq

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve the waiting replays and lookups, all of them in one thread hop each time."""
        task_status.started()
        try:
            while True:
                if not self._replays and not self._lookups:
                    self._waiting = trio.Event()
                    await self._waiting.wait()
                batch, self._replays = self._replays, []
                lookups, self._lookups = self._lookups, []
                store = self._store
                seq = self._committed_seq()  # every record committed up to here is visible below

                def read(batch: list[_Replay] = batch, lookups: list[_Lookup] = lookups,
                         ) -> tuple[list[list[StoredEvent]], list[dict[str, CommandRecord]]]:
                    return ([store.events_in_range(w.record.first_seq, w.record.last_seq) for w in batch],
                            [store.find_commands(w.command_ids, w.since_ts) for w in lookups])

                async with self._lock:
                    results, found = await trio.to_thread.run_sync(read)
                for waiter, events in zip(batch, results):
                    waiter.events = events
                    waiter.done.set()
                for lookup, records in zip(lookups, found):
                    lookup.found, lookup.seq = records, seq
                    lookup.done.set()
        finally:
            self._done = True
            for waiter in [*self._replays, *self._lookups]:  # closing: nobody waits forever
                waiter.done.set()


class _Replay:
    """A repeated command waiting for its first result to be read back from the log."""

    __slots__ = ("record", "done", "events")

    def __init__(self, record: CommandRecord) -> None:
        self.record = record
        self.done = trio.Event()
        self.events: list[StoredEvent] | None = None


class _Lookup:
    """Command ids waiting to be looked up in the database (records with `ts >= since_ts`)."""

    __slots__ = ("command_ids", "since_ts", "done", "found", "seq")

    def __init__(self, command_ids: list[str], since_ts: int) -> None:
        self.command_ids = command_ids
        self.since_ts = since_ts
        self.done = trio.Event()
        self.found: dict[str, CommandRecord] | None = None
        self.seq = 0  # the log was committed up to here when the lookup started
