"""Group commit: every waiting append goes to SQLite in ONE transaction, off the loop.

Shards call `Committer.append` (synchronous, so seq assignment and queueing are one
atomic step on the trio loop): it stamps each new event with the next global `seq`,
encodes its row on the loop and queues the entry. The committer task takes every
queued entry (up to `max_batch`), writes them with one thread hop, and only after
COMMIT returns resolves each entry's waiter and publishes the events. Entries without
events (rejections, queries) ride the same queue so that no answer is given before
everything decided ahead of it is durable.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any, Callable

import attrs
import trio

from ..domain.events import StoredEvent
from ..domain.result import Result
from ..domain.shapes import shape_of
from ..errors import StorageError
from ..storage.codec import dumps, encode_snapshot
from ..storage.store import Batch, CatalogRow, CommandRecord, EventRow, SnapshotRow, Store
from .stats import EngineStats



class Entry:
    """One decision waiting for durability: its events and the waiter to wake."""

    __slots__ = ("events", "rows", "command", "snapshot", "timers_set", "timers_deleted",
                 "_done", "_waiter", "_callback", "on_commit", "error", "result", "catalog", "decided")

    def __init__(self) -> None:
        self.events: list[StoredEvent] = []
        self.rows: list[EventRow] = []
        self.command: CommandRecord | None = None
        self.snapshot: SnapshotRow | None = None
        self.timers_set: list[tuple[str, str, int]] = []
        self.timers_deleted: list[tuple[str, str]] = []
        self._done = False
        self._waiter: trio.lowlevel.Task | None = None
        self._callback: Callable[[], None] | None = None
        self.on_commit: Callable[[], None] | None = None
        self.error: BaseException | None = None
        # The outcome: a `Result`, or for a repeated command_id the `CommandRecord` of its
        # first run (whose events `Ticket.result` reads back from the log); None until decided.
        self.result: Result | CommandRecord | None = None
        self.catalog: CatalogRow | None = None
        self.decided = 0.0  # when it was decided (perf_counter): the start of its commit wait

    @property
    def done(self) -> bool:
        return self._done

    def finish(self) -> None:
        """Mark the entry decided and durable (or failed), waking its waiter or calling back."""
        self._done = True
        waiter, self._waiter = self._waiter, None
        if waiter is not None:
            trio.lowlevel.reschedule(waiter)
        callback, self._callback = self._callback, None
        if callback is not None:
            callback()

    def add_done_callback(self, callback: Callable[[], None]) -> None:
        """Call `callback` when the entry finishes (at once if it has): no task waits.

        It runs inside `finish`, in the committer's task: it must be quick and must not
        raise. One callback per entry.
        """
        if self._done:
            callback()
            return
        if self._callback is not None:
            raise RuntimeError("the entry already has a done callback")
        self._callback = callback

    def raise_error(self) -> None:
        """Raise `StorageError` if the commit failed."""
        if self.error is not None:
            raise StorageError(str(self.error)) from self.error

    async def wait(self) -> None:
        """Until committed; raises `StorageError` if the commit failed.

        One task waits per entry (the ticket holder); parking the task directly is
        cheaper than a `trio.Event` per command.
        """
        if self._done:
            await trio.lowlevel.checkpoint()
        else:
            if self._waiter is not None:
                raise RuntimeError("another task is already waiting for this result")
            self._waiter = trio.lowlevel.current_task()

            def abort(_: Any) -> trio.lowlevel.Abort:
                self._waiter = None
                return trio.lowlevel.Abort.SUCCEEDED

            await trio.lowlevel.wait_task_rescheduled(abort)
        self.raise_error()


class Committer:
    """Owns the global `seq` counter and the write connection's transactions."""

    def __init__(self, store: Store, *, last_seq: int, max_batch: int, max_pending: int,
                 publish: Callable[[list[StoredEvent]], None], stats: EngineStats | None = None) -> None:
        self.store = store
        self.next_seq = last_seq + 1
        self.committed_seq = last_seq
        self.max_batch = max_batch
        self.max_pending = max_pending
        self._publish = publish
        self._queue: deque[Entry] = deque()
        self._wakeup = trio.Event()
        self._room = trio.Event()
        self._committed = trio.Event()
        self.failed: BaseException | None = None
        self._writing = False
        self.batches = 0
        self.batch_events = 0
        self.on_batch: Callable[[int, int, float], None] | None = None  # (entries, events, seconds)
        self.stats = stats or EngineStats()  # (it times the commit stages)

    # -- called by shards (synchronously) ---------------------------------------------
    def new_event(self, entry: Entry, hunt_id: str, version: int, type: str, ts: int,
                  data: dict[str, Any], command_id: str | None, text: str | None = None) -> StoredEvent:
        """Stamp the next `seq` on an event and queue its row with `entry`.

        `text` is `data` encoded already: the engine encodes before it takes a seq, so
        that nothing can fail between taking one and queueing the row.
        """
        if text is None:
            text = dumps(data)
        seq = self.next_seq
        self.next_seq = seq + 1
        event = StoredEvent(seq=seq, hunt_id=hunt_id, version=version, type=type, ts=ts, data=data)
        entry.events.append(event)
        entry.rows.append(EventRow(seq, hunt_id, version, type, ts, text, command_id, shape_of(type)))
        return event

    def append(self, entry: Entry) -> None:
        """Queue an entry; it is resolved once everything before it is committed."""
        if self.failed is not None:
            entry.error = self.failed
            entry.finish()
            return
        self._queue.append(entry)
        self._wakeup.set()

    def has_room(self) -> bool:
        return len(self._queue) < self.max_pending

    async def wait_for_room(self) -> None:
        while len(self._queue) >= self.max_pending and self.failed is None:
            await self._room.wait()

    async def wait_committed(self, seq: int) -> None:
        """Until every event up to `seq` is durable."""
        while self.committed_seq < seq:
            if self.failed is not None:
                raise StorageError(str(self.failed)) from self.failed
            await self._committed.wait()

    async def drain(self) -> None:
        """Until everything queued so far is committed (or the committer failed)."""
        while (self._queue or self._writing) and self.failed is None:
            await self._committed.wait()

    # -- the task ---------------------------------------------------------------------
    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            if not self._queue:
                self._wakeup = trio.Event()
                await self._wakeup.wait()
            await self.flush_once()

    async def flush_once(self) -> None:
        """Commit the next batch, then answer its waiters and publish its events."""
        self._writing = True
        try:
            await self._flush_once()
        finally:
            self._writing = False

    async def _flush_once(self) -> None:
        queue = self._queue
        take = min(len(queue), self.max_batch)
        entries = [queue.popleft() for _ in range(take)]
        batch = Batch()
        last_seq = self.committed_seq
        for entry in entries:
            if entry.rows:
                batch.events.extend(entry.rows)
                last_seq = entry.rows[-1].seq
            if entry.command is not None:
                batch.commands.append(entry.command)
            if entry.snapshot is not None:
                batch.snapshots.append(entry.snapshot)
            if entry.catalog is not None:
                batch.hunts.append(entry.catalog)
            batch.timers_set.extend(entry.timers_set)
            batch.timers_deleted.extend(entry.timers_deleted)
        self._room.set()
        self._room = trio.Event()
        if batch.events or batch.commands or batch.snapshots or batch.timers_set or batch.timers_deleted \
                or batch.hunts:
            stats = self.stats
            started = time.perf_counter()
            wait = stats.commit_wait
            for entry in entries:
                if entry.decided:
                    wait.observe(started - entry.decided)
            try:
                await trio.to_thread.run_sync(self._write, batch)
            except StorageError as exc:
                self._fail(entries, exc)
                raise
            seconds = time.perf_counter() - started
            stats.commit.observe(seconds)
            stats.commit_sync.observe(self.store.last_commit_s)
            if self.on_batch is not None:
                self.on_batch(len(entries), len(batch.events), seconds)
            self.batches += 1
            self.batch_events += len(batch.events)
        self.committed_seq = last_seq
        published: list[StoredEvent] = []
        for entry in entries:
            if entry.events:
                published.extend(entry.events)
            if entry.on_commit is not None:
                entry.on_commit()
            entry.finish()
        self._committed.set()
        self._committed = trio.Event()
        if published:
            self._publish(published)

    def _write(self, batch: Batch) -> None:
        """In the writer thread: encode the batch's snapshots, then write it all."""
        batch.snapshots[:] = [row if isinstance(row.state, bytes) else attrs.evolve(row, state=encode_snapshot(row.state))
                              for row in batch.snapshots]
        self.store.write(batch)

    def fail(self, exc: StorageError) -> None:
        """Fail-stop for a storage fault found outside a commit (e.g. the WAL file deleted)."""
        self._fail([], exc)

    def _fail(self, entries: list[Entry], exc: StorageError) -> None:
        """Fail-stop: every waiter, now and later, gets the storage error."""
        self.failed = exc
        for entry in [*entries, *self._queue]:
            entry.error = exc
            entry.finish()
        self._queue.clear()
        self._room.set()
        self._committed.set()
