"""Subscriptions: catch up from the log, then go live, with no gap and no duplicate.

A subscription reads committed events from the database in chunks until it reaches
the engine's committed `seq`; in the same synchronous step it registers for live
events, which the committer publishes only after COMMIT. Its live buffer is bounded:
a subscriber that falls behind is dropped (`SubscriberTooSlow`, carrying the last seq
it received) instead of slowing the engine; it can resume with ``after_seq``.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, AsyncIterator

import trio

from ..domain.events import StoredEvent
from ..errors import SubscriberTooSlow

if TYPE_CHECKING:
    from .engine import Engine

CATCH_UP_CHUNK = 1000


class Subscription:
    """An async iterator of `StoredEvent`s in `seq` order; use via `Engine.subscribe`."""

    def __init__(self, engine: Engine, *, hunt_id: str | None, after_seq: int, buffer: int) -> None:
        self._engine = engine
        self.hunt_id = hunt_id
        self.last_seq = after_seq
        self._read_to = after_seq
        self._limit = buffer
        self._buffer: deque[StoredEvent] = deque()
        self._wake = trio.Event()
        self._live = False
        self._dropped = False
        self._closed = False

    # -- called by the engine (synchronously, on the trio loop) -------------------------
    def offer(self, events: list[StoredEvent]) -> bool:
        """Take live events; returns False when this subscriber must be dropped."""
        hunt_id = self.hunt_id
        buffer = self._buffer
        for event in events:
            if hunt_id is None or event.hunt_id == hunt_id:
                buffer.append(event)
        if len(buffer) > self._limit:
            buffer.clear()
            self._dropped = True
            self._wake.set()
            return False
        if buffer:
            self._wake.set()
        return True

    def close(self) -> None:
        self._closed = True
        self._wake.set()

    # -- the consumer side -------------------------------------------------------------
    def __aiter__(self) -> AsyncIterator[StoredEvent]:
        return self

    async def __anext__(self) -> StoredEvent:
        while not self._buffer:
            if self._dropped:
                raise SubscriberTooSlow(
                    f"subscriber fell more than {self._limit} events behind and was dropped; "
                    f"resume with after_seq={self.last_seq}", last_seq=self.last_seq)
            if self._closed:
                raise StopAsyncIteration
            if not self._live:
                await self._catch_up()
                continue
            self._wake = trio.Event()
            await self._wake.wait()
        event = self._buffer.popleft()
        self.last_seq = event.seq
        if not self._live and not self._buffer and self._read_to >= self._engine.committed_seq:
            self._go_live()
        return event

    def _go_live(self) -> None:
        self._live = True
        self._engine._register(self)

    async def _catch_up(self) -> None:
        """Read the next chunk of the log, or go live once everything committed is read."""
        engine = self._engine
        until = engine.committed_seq
        if self._read_to >= until:
            self._go_live()
            return
        events = await engine._read_events(after_seq=self._read_to, hunt_id=self.hunt_id,
                                           until_seq=until, limit=CATCH_UP_CHUNK)
        self._read_to = events[-1].seq if len(events) == CATCH_UP_CHUNK else until
        self._buffer.extend(events)
