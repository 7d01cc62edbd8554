"""`Engine.subscribe`: a cursor on the engine's feed of events, as an async iterator.

The cursor catches up from the log, then goes live with no gap and no duplicate (see
`feed.Feed`). A subscriber that falls more than its ``buffer`` of events behind is
dropped (`SubscriberTooSlow`, carrying the last seq it received) instead of slowing the
engine; it can resume with ``after_seq``.
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

#: The key of the engine's feeds of plain `StoredEvent`s.
EVENTS = "events"


def _same(event: StoredEvent) -> StoredEvent:
    return event


class Subscription:
    """An async iterator of `StoredEvent`s in `seq` order; use via `Engine.subscribe`."""

    def __init__(self, engine: Engine, *, hunt_id: str | None, after_seq: int, buffer: int) -> None:
        self.hunt_id = hunt_id
        self.last_seq = after_seq  # the last seq handed out
        self._limit = buffer
        self._buffer: deque[StoredEvent] = deque()
        self._wake = trio.Event()
        self._cursor = engine.feed(hunt_id, EVENTS, _same).cursor(after_seq=after_seq, limit=buffer,
                                                                   on_ready=self._ready)

    def _ready(self) -> None:
        self._wake.set()

    def close(self) -> None:
        self._cursor.close()

    def __aiter__(self) -> AsyncIterator[StoredEvent]:
        return self

    async def __anext__(self) -> StoredEvent:
        cursor = self._cursor
        while not self._buffer:
            if cursor.dropped:
                raise SubscriberTooSlow(
                    f"subscriber fell more than {self._limit} events behind and was dropped; "
                    f"resume with after_seq={self.last_seq}", last_seq=self.last_seq)
            if cursor.live:
                start, end = cursor.take(CATCH_UP_CHUNK)
                if end > start:
                    base = cursor.feed.base
                    self._buffer.extend(cursor.feed.items[start - base:end - base])
                    break
                if cursor.closed:
                    raise StopAsyncIteration
                self._wake = trio.Event()
                await self._wake.wait()
            elif cursor.closed:
                raise StopAsyncIteration
            else:
                events, reached = await cursor.read_log(CATCH_UP_CHUNK)
                self._buffer.extend(events)
                cursor.read_to(reached)
        event = self._buffer.popleft()
        self.last_seq = event.seq
        return event
