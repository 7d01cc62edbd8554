"""The shards: N tasks, each deciding the commands of its hunts in the order they came.

A hunt belongs to shard ``crc32(hunt_id) % N`` (`shard_of`: stable in every process
and run, unlike Python's salted `hash`). Each shard has a bounded inbox and a backlog
count (requests queued or in hand, not yet decided): a command whose shard has no
backlog may be decided at once in the sender's task (`idle`), which keeps the hunt's
order and saves a task switch. What a shard does with a request is the engine's:
`handle` decides it if it can right now (no await, no task switch: the common case),
or says what it waits for, which `prepare` then awaits (the committer's room, an
evicted hunt's loading, the disk's answer about a command id); `prepare` may look at
the requests queued behind (`Behind`), so that a burst of command ids costs one trip
to the disk. The shard only takes requests in order, without a schedule point per
request.
"""

from __future__ import annotations

import time
import zlib
from collections import deque
from typing import Any, Awaitable, Callable, Generic, TypeVar

import trio

from ..errors import EngineClosed

#: Requests a shard takes one after another before it yields to the other tasks.
STREAK = 64

R = TypeVar("R")


def shard_of(hunt_id: str, shards: int) -> int:
    """The shard that owns `hunt_id`: stable across processes, runs and machines."""
    return zlib.crc32(hunt_id.encode()) % shards


class Behind(Generic[R]):
    """The requests queued behind the one in hand: taken early, still decided in order."""

    def __init__(self, inbox: trio.MemoryReceiveChannel[R]) -> None:
        self._inbox = inbox
        self._taken: deque[R] = deque()

    def peek(self, up_to: int) -> list[R]:
        """Up to `up_to` of them, taken from the inbox if need be (still counted in the backlog)."""
        taken = self._taken
        while len(taken) < up_to:
            try:
                taken.append(self._inbox.receive_nowait())
            except (trio.WouldBlock, trio.EndOfChannel):
                break
        return list(taken)

    def _next(self) -> R:
        return self._taken.popleft() if self._taken else self._inbox.receive_nowait()


class Shards(Generic[R]):
    """`count` shard tasks and their inboxes; `run` them in a nursery, `close` to drain."""

    def __init__(self, count: int, inbox_size: int, *, handle: Callable[[R], bool],
                 prepare: Callable[[R, Behind[R]], Awaitable[None]],
                 queued_at: Callable[[R, float], None], waited: Callable[[R], None]) -> None:
        self.count = count
        self._handle = handle  # decides a request now, or returns False: `prepare` it first
        self._prepare = prepare
        self._queued_at = queued_at  # stamps a request with when it entered the inbox
        self._waited = waited  # called as a shard takes a request (the inbox wait ends)
        channels = [trio.open_memory_channel[R](inbox_size) for _ in range(count)]
        self._inboxes = [send for send, _ in channels]
        self._receivers = [receive for _, receive in channels]
        self.backlog = [0] * count  # per shard: requests queued or in hand, not yet decided
        self._running = 0
        self._drained = trio.Event()

    def of(self, hunt_id: str) -> int:
        return shard_of(hunt_id, self.count)

    def idle(self, shard: int) -> bool:
        """Whether nothing is queued or in hand in `shard` (a command may be decided at once)."""
        return not self.backlog[shard]

    def depths(self) -> list[int]:
        """Requests waiting in each shard's inbox."""
        return [inbox.statistics().current_buffer_used for inbox in self._inboxes]

    def put_nowait(self, shard: int, request: R) -> bool:
        """Queue `request` without waiting; False if the inbox is full (nothing queued)."""
        self._queued_at(request, time.perf_counter())
        self.backlog[shard] += 1
        try:
            self._inboxes[shard].send_nowait(request)
        except trio.WouldBlock:
            self.backlog[shard] -= 1
            return False
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            self.backlog[shard] -= 1
            raise EngineClosed("the engine is closed") from None
        return True

    async def put(self, shard: int, request: R) -> None:
        """Queue `request`, waiting for room. Raises EngineClosed once the shards are closing."""
        self._queued_at(request, time.perf_counter())
        self.backlog[shard] += 1
        try:
            await self._inboxes[shard].send(request)
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            self.backlog[shard] -= 1
            raise EngineClosed("the engine is closed") from None
        except BaseException:
            self.backlog[shard] -= 1
            raise

    async def start(self, nursery: trio.Nursery) -> None:
        for shard in range(self.count):
            await nursery.start(self._run, shard)

    async def close(self) -> None:
        """Take no more requests; return once every shard has decided what it had."""
        for inbox in self._inboxes:
            await inbox.aclose()
        if self._running:
            await self._drained.wait()

    async def _run(self, shard: int, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        inbox = self._receivers[shard]
        behind: Behind[R] = Behind(inbox)
        handle, prepare, waited, backlog = self._handle, self._prepare, self._waited, self.backlog
        self._running += 1
        task_status.started()
        try:
            async with inbox:
                streak = 0
                while True:
                    try:
                        # Take what is waiting without a schedule point per request,
                        # yielding now and then so the committer and others run.
                        request = behind._next()
                        streak += 1
                        if streak >= STREAK:
                            streak = 0
                            await trio.lowlevel.checkpoint()
                    except trio.WouldBlock:
                        streak = 0
                        try:
                            request = await inbox.receive()
                        except trio.EndOfChannel:
                            break
                    except trio.EndOfChannel:
                        break
                    waited(request)
                    try:
                        while not handle(request):
                            await prepare(request, behind)
                    finally:
                        backlog[shard] -= 1
        finally:
            self._running -= 1
            if self._running == 0:
                self._drained.set()
