"""Durable timers, the in-memory side: which start/end timers are due, and when.

The timers table (written in the same transaction as the lifecycle event that sets
or clears a timer) is the durable record; `TimerQueue` mirrors it as a heap and
fires each timer when its time comes, through the hunt's shard, as an ordinary
logged decision (`domain.timers.decide_timer`), so replay sees it. Timers that fell
due while the engine was down fire at open, in order.
"""

from __future__ import annotations

import heapq
import math
from typing import Awaitable, Callable

import trio

from ..domain.events import StoredEvent
from ..domain.state import HuntState
from ..domain.timers import END, FREEZE, START, timers_for
from .committer import Entry


class TimerQueue:
    """Pending timers as a heap of ``(due_ts, hunt_id, kind)``, and the task firing them."""

    def __init__(self, clock: Callable[[], int]) -> None:
        self._clock = clock
        self._heap: list[tuple[int, str, str]] = []
        self._changed = trio.Event()

    def add(self, due: int, hunt_id: str, kind: str) -> None:
        heapq.heappush(self._heap, (due, hunt_id, kind))
        self._changed.set()

    def track(self, entry: Entry, event: StoredEvent, state: HuntState) -> None:
        """Keep timers in step with a lifecycle event: the rows go in `entry`'s transaction.

        A timer made stale in memory (an extended end) stays in the heap: when it
        falls due, `decide_timer` sees it is stale and decides nothing.
        """
        hunt_id = event.hunt_id
        if event.type == "hunt_created":
            for kind, due in timers_for(state.definition):
                entry.timers_set.append((hunt_id, kind, due))
                self.add(due, hunt_id, kind)
        elif event.type == "hunt_extended" and state.ends_at is not None:
            entry.timers_set.append((hunt_id, END, state.ends_at))
            self.add(state.ends_at, hunt_id, END)
        elif event.type == "hunt_started":
            entry.timers_deleted.append((hunt_id, START))
        elif event.type == "hunt_ended":
            entry.timers_deleted.extend([(hunt_id, START), (hunt_id, END), (hunt_id, FREEZE)])
        elif event.type == "board_frozen":
            entry.timers_deleted.append((hunt_id, FREEZE))

    async def run(self, fire: Callable[[str, str, int], Awaitable[bool]], *,
                  task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Call ``fire(hunt_id, kind, due)`` for each timer as it falls due, soonest first.

        Returns when `fire` returns False (the engine is shutting down; the timer stays
        in the database for the next open).
        """
        task_status.started()
        heap = self._heap
        while True:
            if heap:
                due, hunt_id, kind = heap[0]
                delay = (due - self._clock()) / 1000
                if delay <= 0:
                    heapq.heappop(heap)
                    if not await fire(hunt_id, kind, due):
                        return
                    continue
            else:
                delay = math.inf
            self._changed = trio.Event()
            with trio.move_on_after(delay):
                await self._changed.wait()
