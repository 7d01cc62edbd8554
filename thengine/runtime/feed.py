"""Feeds: the newest committed events, kept once and read by many, each reader at its own place.

A `Feed` holds the events of one hunt (or of every hunt) that the engine published
after COMMIT, each transformed once by the feed's ``encode`` (the event itself for
`Engine.subscribe`; its JSON in one view for the server), in ``seq`` order. A `Cursor`
is one reader: a position in that list, not a copy of it, so a thousand readers of a
hunt cost the feed one entry per event, and waking them costs one call per reader per
burst, not per event.

Catch-up-then-live exists here once. A cursor that starts in the past reads the log
from the database (`Cursor.read_log`) up to the feed's ``floor`` (every event of the
feed after the floor is held), then, in the same synchronous step, becomes live: no gap
and no duplicate. A live cursor that falls more than its ``limit`` entries behind is
dropped as too slow (it keeps its ``last_seq``, to resume from); the feed never waits
for a reader, and keeps only what some live reader has not read yet.
"""

from __future__ import annotations

from bisect import bisect_right
from typing import Any, Awaitable, Callable, Generic, TypeVar

from ..domain.events import StoredEvent

T = TypeVar("T")

#: Entries appended between two looks at the readers (trimming, finding slow ones).
TRIM_EVERY = 256

ReadLog = Callable[..., Awaitable[list[StoredEvent]]]


class Feed(Generic[T]):
    """The tail of the log for one hunt (``hunt_id`` None: every hunt), in one encoding."""

    def __init__(self, hunt_id: str | None, encode: Callable[[StoredEvent], T], *, floor: int,
                 read_log: ReadLog, on_empty: Callable[[Feed[T]], None] | None = None,
                 on_trim: Callable[[int], None] | None = None) -> None:
        self.hunt_id = hunt_id
        self.encode = encode
        self.floor = floor  # every event of this feed with a greater seq is in `items` (or yet to come)
        self.seqs: list[int] = []
        self.items: list[T] = []
        self.base = 0  # the position of items[0]; positions only grow
        self.cursors: dict[Cursor[T], None] = {}
        self.closed = False
        self._waiting: list[Cursor[T]] = []
        self._read_log = read_log
        self._on_empty = on_empty
        self._on_trim = on_trim  # called with the new floor
        self._trim_every = TRIM_EVERY
        self._appended = 0

    @property
    def head(self) -> int:
        """The position after the newest entry."""
        return self.base + len(self.items)

    def cursor(self, *, after_seq: int, limit: int, on_ready: Callable[[], None]) -> Cursor[T]:
        """A new reader of the events after `after_seq`; ``on_ready`` is called (synchronously)
        when it has something new to read, was dropped, or the feed closed."""
        cursor = Cursor(self, after_seq=after_seq, limit=limit, on_ready=on_ready)
        self.cursors[cursor] = None
        self._trim_every = max(1, min(self._trim_every, limit // 4))
        if self.closed:
            cursor.closed = True
        else:
            cursor.go_live()
        return cursor

    # -- from the engine (synchronously, on the trio loop, after COMMIT) ---------------------
    def append(self, event: StoredEvent) -> None:
        self.seqs.append(event.seq)
        self.items.append(self.encode(event))
        if self._waiting:
            waiting, self._waiting = self._waiting, []
            for cursor in waiting:
                cursor.waiting = False
                if not (cursor.closed or cursor.dropped):
                    cursor.on_ready()
        self._appended += 1
        if self._appended >= self._trim_every:
            self._appended = 0
            self._look_at_readers()

    def close(self) -> None:
        """The engine closed: every cursor ends once it has read what is held."""
        self.closed = True
        for cursor in list(self.cursors):
            cursor.closed = True
            cursor.on_ready()

    def _look_at_readers(self) -> None:
        """Drop live readers beyond their limit, wake those halfway there, trim what all have read."""
        head = self.head
        lowest = head
        for cursor in list(self.cursors):
            pos = cursor.pos
            if pos is None:
                continue  # still reading the log
            behind = head - pos
            if behind > cursor.limit:
                cursor.drop()
            else:
                if pos < lowest:
                    lowest = pos
                if behind * 2 >= cursor.limit:
                    cursor.on_ready()  # (its owner may hurry, rather than linger)
        cut = lowest - self.base
        if cut > 0:
            self.floor = self.seqs[cut - 1]
            del self.seqs[:cut]
            del self.items[:cut]
            self.base = lowest
            if self._on_trim is not None:
                self._on_trim(self.floor)

    def _forget(self, cursor: Cursor[T]) -> None:
        if self.cursors.pop(cursor, False) is None and not self.cursors and self._on_empty is not None:
            self._on_empty(self)


class Cursor(Generic[T]):
    """One reader of a `Feed`: reading the log until it catches up, then live."""

    __slots__ = ("feed", "last_seq", "pos", "limit", "on_ready", "waiting", "dropped", "closed")

    def __init__(self, feed: Feed[T], *, after_seq: int, limit: int, on_ready: Callable[[], None]) -> None:
        self.feed = feed
        self.last_seq = after_seq  # the last seq read (handed on by the reader)
        self.pos: int | None = None  # live: the position of the next entry to read
        self.limit = limit
        self.on_ready = on_ready
        self.waiting = False
        self.dropped = False  # too slow: fell more than `limit` entries behind
        self.closed = False  # the feed closed, or the reader did

    @property
    def live(self) -> bool:
        return self.pos is not None

    @property
    def behind(self) -> int:
        """Entries held that this live cursor has not read."""
        return 0 if self.pos is None else self.feed.head - self.pos

    def go_live(self) -> bool:
        """Read from the feed from now on, if it holds everything after `last_seq`."""
        feed = self.feed
        if self.pos is not None:
            return True
        if self.last_seq < feed.floor:
            return False
        self.pos = feed.base + bisect_right(feed.seqs, self.last_seq)
        if self.pos == feed.head:
            self._wait()
        else:
            self.on_ready()
        return True

    async def read_log(self, limit: int) -> tuple[list[StoredEvent], int]:
        """The next events after `last_seq` from the database, up to the feed's floor, and the
        seq read up to (to pass to `read_to` once they are handed on)."""
        feed = self.feed
        until = feed.floor
        events = await feed._read_log(after_seq=self.last_seq, hunt_id=feed.hunt_id, until_seq=until,
                                      limit=limit)
        return events, events[-1].seq if len(events) == limit else until

    def read_to(self, seq: int) -> bool:
        """Everything up to `seq` was read from the log; goes live if that reaches the floor."""
        if seq > self.last_seq:
            self.last_seq = seq
        return self.go_live()

    def take(self, limit: int) -> tuple[int, int]:
        """Positions ``(start, end)`` of at most `limit` entries to read now (live only): read
        them from ``feed.items[start - feed.base:end - feed.base]`` before anything else runs."""
        pos = self.pos
        feed = self.feed
        if pos is None or self.dropped:
            return 0, 0
        if feed.head - pos > self.limit:  # (a live position is never trimmed: it is the lowest kept)
            self.drop()
            return 0, 0
        end = min(feed.head, pos + limit)
        if end > pos:
            self.pos = end
            self.last_seq = feed.seqs[end - 1 - feed.base]
        if end == feed.head:
            self._wait()
        return pos, end

    def drop(self) -> None:
        """Too slow: no more events; the owner learns it from ``dropped`` (via ``on_ready``)."""
        if self.dropped:
            return
        self.dropped = True
        self.pos = None
        self.feed._forget(self)
        self.on_ready()

    def close(self) -> None:
        """The reader is done with it (idempotent)."""
        self.closed = True
        self.pos = None
        self.feed._forget(self)

    def _wait(self) -> None:
        if not self.waiting:
            self.waiting = True
            self.feed._waiting.append(self)


class Feeds:
    """An engine's feeds by (hunt, key): each made on first use and forgotten when its last
    cursor closes. `publish` hands every committed event to the feeds of its hunt and to
    those of every hunt."""

    def __init__(self, read_log: ReadLog) -> None:
        self._read_log = read_log
        self._by_key: dict[tuple[str | None, Any], Feed[Any]] = {}
        self._by_hunt: dict[str | None, list[Feed[Any]]] = {}  # hunt_id (None: every hunt) -> its feeds

    def __len__(self) -> int:
        return len(self._by_key)

    def get(self, hunt_id: str | None, key: Any, encode: Callable[[StoredEvent], Any], *, floor: int,
            on_trim: Callable[[int], None] | None = None) -> Feed[Any]:
        """The feed for (`hunt_id`, `key`); a new one holds the events after `floor`."""
        feed = self._by_key.get((hunt_id, key))
        if feed is None:
            feed = Feed(hunt_id, encode, floor=floor, read_log=self._read_log,
                        on_empty=lambda gone: self._forget(key, gone), on_trim=on_trim)
            self._by_key[(hunt_id, key)] = feed
            self._by_hunt.setdefault(hunt_id, []).append(feed)
        return feed

    def _forget(self, key: Any, feed: Feed[Any]) -> None:
        if self._by_key.get((feed.hunt_id, key)) is feed:
            del self._by_key[(feed.hunt_id, key)]
            feeds = self._by_hunt[feed.hunt_id]
            feeds.remove(feed)
            if not feeds:
                del self._by_hunt[feed.hunt_id]

    def publish(self, events: list[StoredEvent]) -> None:
        """From the committer, after COMMIT (synchronously)."""
        by_hunt = self._by_hunt
        if not by_hunt:
            return
        everything = by_hunt.get(None, ())
        for event in events:
            for feed in by_hunt.get(event.hunt_id, ()):
                feed.append(event)
            for feed in everything:
                feed.append(event)

    def close(self) -> None:
        for feed in list(self._by_key.values()):
            feed.close()
