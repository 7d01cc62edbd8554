"""The outbox: everything bound for one client, in order, until its writer takes it.

Three kinds of payload, each a text frame's JSON as bytes:

- **replies** (results, errors, confirmations), never dropped one by one;
- **pushed events** of subscriptions: while a subscription catches up from the log,
  its events are queued here, bounded by ``client_buffer``; once live, it is only
  marked ready, and its frames are read from the hub's shared feed when the writer
  takes them (a subscription that asked for ``batch`` gets what is new in one
  ``events`` frame);
- **leaderboards** of watches: a latest-value slot per watch (`BoardSlot`), so a client
  gets the newest board and never a backlog of old ones.

Besides those, protocol bytes already framed (pongs, pings, close frames) wait in
order ahead of the frames. A client that lets pushed events or replies pile up (it
stops reading) overflows the outbox, which tells its connection to drop it as too
slow. `take` hands the writer everything queued at once, so replies that are ready
together leave in one write.

The outbox does no I/O and never waits: it tells its owner (``on_ready``) that it has
something to write, and how soon it must go (`flusher.NOW` for replies, `SOON` for
boards, `LINGER` for pushed events, which may wait for company).
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any, Callable, Union

import trio

from . import protocol
from .flusher import LINGER, NOW, SOON
from .hub import MAX_BATCH_BYTES, MAX_BATCH_EVENTS, SubHandle

if TYPE_CHECKING:
    from ..runtime.boards import Board


_Item = Union[bytes, tuple[SubHandle, int, bytes]]  # a reply, or (subscription, seq, event JSON)


class BoardSlot:
    """One watch of one connection: the engine's board watcher, keeping the newest board unsent."""

    __slots__ = ("outbox", "id", "hunt_id", "limit", "interval_s", "whose", "frozen_view", "prefix", "board", "me",
                 "closed", "engine")

    def __init__(self, outbox: Outbox, sub_id: Any, *, hunt_id: str, limit: int, interval_s: float,
                 whose: str | None, frozen_view: bool = False) -> None:
        self.outbox = outbox
        self.id = sub_id
        self.hunt_id = hunt_id
        self.limit = limit
        self.interval_s = interval_s
        self.whose = whose  # the player (or team) whose entry is ``me``; None: ``me`` is null
        self.frozen_view = frozen_view  # a player's watch: the frozen board while there is one
        self.prefix = protocol.leaderboard_prefix(sub_id)
        self.board: Board | None = None  # the newest board not yet written
        self.me: dict[str, Any] | None = None
        self.closed = False
        self.engine: Any = None  # the engine whose board this watches (set by the session)

    def offer(self, board: Board, me: dict[str, Any] | None) -> None:
        """From the board feed: the newest board replaces any unsent one."""
        if self.closed:
            return
        self.board, self.me = board, me
        self.outbox.board_ready(self)

    def close(self) -> None:
        """The feed ended (the engine is closing) or the client unwatched."""
        self.closed = True
        self.board = None

    def take_frame(self) -> bytes | None:
        board, self.board = self.board, None
        if board is None or self.closed:
            return None
        return protocol.leaderboard_frame(self.prefix, board.body, self.me)


class Outbox:
    """One client's frames waiting for its writer. Every method but the waits is synchronous."""

    def __init__(self, *, client_buffer: int, reply_limit: int, on_overflow: Callable[[], None],
                 on_ready: Callable[[str], None] | None = None) -> None:
        self.client_buffer = client_buffer
        self._reply_limit = reply_limit
        self._flush_at = max(1, client_buffer // 2)  # no lingering once half the buffer is used
        self._on_overflow = on_overflow
        self._on_ready = on_ready  # called with how soon: NOW, SOON or LINGER
        self._items: deque[_Item] = deque()
        self._boards: dict[BoardSlot, None] = {}
        self._live: dict[SubHandle, None] = {}  # live subscriptions with something new to read
        self._taking = False
        self._overflow_pending = False
        self._framed: list[bytes] = []  # protocol bytes, ahead of the frames
        self.events_queued = 0
        self.replies_queued = 0
        self._room = trio.Event()
        self.discarding = False  # frames are no longer kept (dropped, closing, or closed)

    # -- queueing (from any task, synchronously) ---------------------------------------
    def reply(self, data: bytes) -> None:
        """Queue a reply frame. A client that lets `reply_limit` of them pile up overflows."""
        if self.discarding:
            return
        if self.replies_queued >= self._reply_limit:
            self._overflow()
            return
        self._items.append(data)
        self.replies_queued += 1
        self._signal(NOW)

    def push_event(self, handle: SubHandle, seq: int, data: bytes) -> None:
        """Queue a pushed event; a client `client_buffer` events behind overflows."""
        if self.discarding or handle.closed or seq <= handle.last_seq:
            return
        if self.events_queued >= self.client_buffer:
            self._overflow()
            return
        handle.last_seq = seq
        self._items.append((handle, seq, data))
        self.events_queued += 1
        self._signal(SOON if self.events_queued >= self._flush_at else LINGER)

    def events_ready(self, handle: SubHandle) -> None:
        """A live subscription has new events to read (or was dropped as too slow)."""
        if self.discarding or handle.closed:
            return
        cursor = handle.cursor
        assert cursor is not None
        if cursor.dropped:
            self._overflow()
            return
        self._live[handle] = None
        self._signal(SOON if cursor.behind >= self._flush_at else LINGER)

    def board_ready(self, slot: BoardSlot) -> None:
        """`slot` holds a new board (it replaces any unsent one: no backlog)."""
        if self.discarding:
            return
        self._boards[slot] = None
        self._signal(SOON)

    def framed(self, chunks: list[bytes]) -> None:
        """Protocol bytes ready to write (b"" = half-close the stream), kept even when discarding."""
        if chunks:
            self._framed.extend(chunks)
            self._signal(NOW)

    def discard(self) -> None:
        """Drop every frame queued and take no more (protocol bytes still pass)."""
        self.discarding = True
        self._items.clear()
        self._boards.clear()
        self._live.clear()
        self.events_queued = self.replies_queued = 0
        self._room.set()

    def _signal(self, when: str) -> None:
        if self._on_ready is not None:
            self._on_ready(when)

    def _overflow(self) -> None:
        if self._taking:
            self._overflow_pending = True  # after `take`, which then gives nothing
        else:
            self._on_overflow()

    # -- the writer's side ---------------------------------------------------------------
    @property
    def empty(self) -> bool:
        return not (self._items or self._boards or self._framed or self._live)

    def take_framed(self) -> list[bytes]:
        """The protocol bytes queued so far, to write before the frames."""
        framed, self._framed = self._framed, []
        return framed

    def take(self) -> list[bytes]:
        """Every queued frame's payload, in order: replies as they are, events one frame
        each or batched per subscription (at the first event's place), then the live
        subscriptions' new events, then boards."""
        items = list(self._items)
        self._items.clear()
        self.events_queued = self.replies_queued = 0
        self._room.set()
        frames: list[Any] = []
        sent: dict[SubHandle, int] = {}  # the last seq each subscription gets in these frames
        open_batches: dict[SubHandle, list[Any]] = {}  # handle -> [frame index, parts, last seq, bytes]
        batches: list[tuple[SubHandle, list[Any]]] = []
        for item in items:
            if isinstance(item, bytes):
                frames.append(item)
                continue
            handle, seq, data = item
            if handle.closed:
                continue  # unsubscribed (or dropped) since it was queued
            if not handle.batch:
                frames.append(handle.prefix + data + b"}")
                sent[handle] = seq
                continue
            batch = open_batches.get(handle)
            if batch is None or len(batch[1]) >= MAX_BATCH_EVENTS or batch[3] >= MAX_BATCH_BYTES:
                batch = open_batches[handle] = [len(frames), [], seq, 0]
                batches.append((handle, batch))
                frames.append(b"")
            batch[1].append(data)
            batch[2] = seq
            batch[3] += len(data)
        for handle, (index, parts, seq, _) in batches:
            frames[index] = handle.prefix + b",".join(parts) + b"]}"
            sent[handle] = max(sent.get(handle, 0), seq)
        if self._live:
            handles = list(self._live)
            self._live.clear()
            self._taking = True
            try:
                for handle in handles:
                    if not handle.closed and handle.read(frames):
                        sent[handle] = handle.cursor.last_seq  # type: ignore[union-attr]
            finally:
                self._taking = False
            if self._overflow_pending:
                self._overflow_pending = False
                self._on_overflow()  # (it discards: nothing is written but the close)
                return []
        for handle, seq in sent.items():
            if seq > handle.sent_seq:
                handle.sent_seq = seq
        if self._boards:
            slots = list(self._boards)
            self._boards.clear()
            for slot in slots:
                frame = slot.take_frame()
                if frame is not None:
                    frames.append(frame)
        return frames

    async def wait_room(self) -> None:
        """Until the pushed events queued are below `client_buffer` (catch-up's pace)."""
        while self.events_queued >= self.client_buffer and not self.discarding:
            self._room = trio.Event()
            await self._room.wait()
