"""The flusher: one task that writes, after each burst, what became ready for every connection.

Replies to commands are made in the committer's task (a done callback per command),
pushed events in the hub's, boards in the board feeds'. Waking one writer task per
connection for each of them would cost a task switch per reply; instead each
connection with something to write is marked here, and the flusher, woken once,
writes them all when the burst is over (the committer answers a whole batch before it
yields), each connection's frames in one ``send``. A connection whose socket takes no
more gets a task of its own for as long as that lasts (`Connection.flush`).

Replies (and the protocol's own frames) go first: they are written at the end of the
burst, before anything else. Boards and pushed events, which many connections get at
once (5,000 watchers on one tick), are written a slice at a time, with replies that
became ready meanwhile between the slices, so a command's answer never waits behind
a whole tick of boards. Pushed events alone may wait ``push_linger_s`` for company,
so a busy hunt's events leave in fewer, bigger frames.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Protocol

import trio

#: Connections written in a row before the flusher lets other tasks run (and takes new replies):
#: about a millisecond of boards. With 5,000 watchers, 32 (rather than 128) cut the command
#: latency p50 from about 30 to 10 ms and p99 from about 75 to 45-50 ms (benchmarks/server_load.py
#: --watched), with board staleness p99 still under 300 ms.
FLUSH_STREAK = 32

#: How soon a connection's frames must go: a reply now; a board or a full buffer of
#: events soon (after the replies); pushed events within the linger.
NOW, SOON, LINGER = "now", "soon", "linger"


class Writable(Protocol):
    def flush(self) -> None:
        """Write what is ready now, without waiting."""


class Flusher:
    """Marks connections that have something to write; `run` writes them."""

    def __init__(self, linger_s: float) -> None:
        self._linger_s = linger_s
        self._now: dict[Writable, None] = {}
        self._soon: dict[Writable, None] = {}
        self._lingering: dict[Writable, float] = {}  # connection -> when its pushed events are due
        self._due: deque[tuple[float, Writable]] = deque()  # in due order (the linger is constant)
        self._wake = trio.Event()

    def mark(self, conn: Writable, when: str) -> None:
        """`conn` has something to write: `NOW`, `SOON` or within the `LINGER`."""
        if when == NOW:
            if conn not in self._now:
                self._now[conn] = None
                self._wake.set()
        elif when == SOON or not self._linger_s:
            if conn not in self._soon and conn not in self._now:
                self._soon[conn] = None
                self._wake.set()
        elif conn not in self._lingering and conn not in self._soon and conn not in self._now:
            due = trio.current_time() + self._linger_s
            self._lingering[conn] = due
            self._due.append((due, conn))
            if len(self._due) == 1:
                self._wake.set()  # (a new earliest deadline)

    def forget(self, conn: Writable) -> None:
        """`conn` is closed: nothing more to write for it."""
        self._now.pop(conn, None)
        self._soon.pop(conn, None)
        self._lingering.pop(conn, None)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            if not self._now and not self._soon:
                deadline = self._due[0][0] if self._due else math.inf
                self._wake = trio.Event()
                with trio.move_on_at(deadline):
                    await self._wake.wait()
            self._collect_due(trio.current_time())
            written = 0
            while self._now:  # every reply first
                now, self._now = self._now, {}
                for conn in now:
                    self._write(conn)
                    written += 1
            for _ in range(FLUSH_STREAK - min(written, FLUSH_STREAK - 1)):  # then a slice of the rest
                if not self._soon:
                    break
                conn = next(iter(self._soon))
                self._write(conn)
            await trio.lowlevel.checkpoint()

    def _write(self, conn: Writable) -> None:
        self._now.pop(conn, None)
        self._soon.pop(conn, None)
        self._lingering.pop(conn, None)
        conn.flush()

    def _collect_due(self, now: float) -> None:
        due, lingering, soon = self._due, self._lingering, self._soon
        while due and due[0][0] <= now:
            when, conn = due.popleft()
            if lingering.get(conn) == when:  # (not written meanwhile, nor lingering anew)
                del lingering[conn]
                soon[conn] = None
