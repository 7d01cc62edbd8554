"""The fan-out of committed events to subscribed connections: one buffer per (hunt, view).

Each view of a hunt (admin, player; or of every hunt) is one engine `Feed` whose
entries are the events' JSON in that view, encoded once. A subscription is a `Cursor`
on it, a read position rather than a copy, so an event costs the hub one encoding
per view however many clients listen, and waking the listeners costs one call each
per burst. A batching subscriber reads everything new in one ``events`` frame whose
body (the joined events) is built once and shared by every subscriber at the same
place. A player's own private events (their hint texts, their wrong answers) are
encoded once more for that player and spliced into that player's frames only.

A subscription that starts in the past (``after_seq``) reads the log through its
cursor (`Session` does, pacing itself by the outbox's room), then goes live with no
gap and no duplicate (see `runtime.feed`).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from ..domain import views
from ..domain.events import StoredEvent
from ..runtime.feed import Cursor, Feed
from . import protocol
from .metrics import ServerMetrics

if TYPE_CHECKING:
    from ..runtime.engine import Engine
    from .outbox import Outbox

#: The view key of a player's own private events (hint texts, their wrong answers).
OWN = "own"
ENCODE_CACHE = 4096
MAX_BATCH_EVENTS = 500
MAX_BATCH_BYTES = 256 * 1024
_BODIES = 32  # shared batch bodies kept per feed (readers at different places)


def encode(event: StoredEvent, key: str) -> bytes:
    """`event` as JSON for the view `key` (admin, player, or a player's own); empty for an
    event that view never shows (`views.visible`), which every frame leaves out."""
    if key == OWN:
        return protocol.event_json(event, views.PLAYER, own=True).encode()
    return protocol.event_json(event, key).encode()


def owner(event: StoredEvent) -> str | None:
    """The player whose private event this is (they alone see all of it), or None."""
    return views.private_to(event)


class ViewFeed:
    """The server's side of one engine feed: the view's encodings, private ones, shared bodies."""

    def __init__(self, engine: Engine, hunt_id: str | None, view: str, metrics: ServerMetrics) -> None:
        self.view = view
        self._encodings = metrics.encodings.labels(view)
        self._own_encodings = metrics.encodings.labels(views.PLAYER)
        self.pushed = metrics.pushed.labels(view)
        # player -> {seq: the event, or their own encoding once made} of their private events held
        self.own: dict[str, dict[int, StoredEvent | bytes]] = {}
        self._bodies: OrderedDict[tuple[int, int], tuple[int, bytes]] = OrderedDict()
        self.feed: Feed[bytes] = engine.feed(hunt_id, ("json", view, id(self)), self._encode, on_trim=self._trimmed)

    def _encode(self, event: StoredEvent) -> bytes:
        self._encodings.inc()
        if self.view == views.PLAYER:
            player = owner(event)
            if player is not None:  # its owner's encoding is made when (if) the owner reads it
                self.own.setdefault(player, {})[event.seq] = event
        return encode(event, self.view)

    def _trimmed(self, floor: int) -> None:
        """The feed let go of every entry up to `floor`: so do the private encodings."""
        for player, mine in list(self.own.items()):
            for seq in [seq for seq in mine if seq <= floor]:  # (a player's few, oldest first)
                del mine[seq]
            if not mine:
                del self.own[player]

    def _mine(self, player: str | None, after: int, upto: int) -> dict[int, StoredEvent | bytes] | None:
        """`player`'s private events if one has a seq in ``(after, upto]``, else None."""
        mine = self.own.get(player) if player is not None else None  # type: ignore[arg-type]
        return mine if mine and any(after < seq <= upto for seq in mine) else None

    def _parts(self, start: int, end: int, player: str | None) -> list[bytes]:
        feed = self.feed
        base = feed.base
        parts = feed.items[start - base:end - base]
        seqs = feed.seqs[start - base:end - base]
        mine = self._mine(player, seqs[0] - 1, seqs[-1])
        if mine is not None:
            for i, seq in enumerate(seqs):
                found = mine.get(seq)
                if found is not None:
                    if isinstance(found, StoredEvent):
                        self._own_encodings.inc()
                        found = mine[seq] = encode(found, OWN)
                    parts[i] = found
        return parts

    def _batch_end(self, start: int) -> tuple[int, bytes]:
        """Where a batch read from `start` now ends, and its body: made once for every reader there."""
        feed = self.feed
        key = (start, feed.head)
        hit = self._bodies.get(key)
        if hit is None:
            items, base = feed.items, feed.base
            i = start - base
            stop = min(len(items), i + MAX_BATCH_EVENTS)
            j, size = i, 0
            while j < stop and size < MAX_BATCH_BYTES:
                size += len(items[j])
                j += 1
            hit = self._bodies[key] = (j + base, b",".join([item for item in items[i:j] if item]))
            if len(self._bodies) > _BODIES:
                self._bodies.popitem(last=False)
        return hit

    def read(self, handle: SubHandle, frames: list[bytes]) -> None:
        """Append `handle`'s frames for what it has not read yet (its cursor is live)."""
        cursor = handle.cursor
        player = handle.player_id
        if not handle.batch:
            start, end = cursor.take(cursor.limit)
            if end > start:
                prefix = handle.prefix
                frames.extend([prefix + data + b"}" for data in self._parts(start, end, player) if data])
                self.pushed.inc(end - start)
            return
        while cursor.pos is not None and cursor.pos < self.feed.head:
            end, body = self._batch_end(cursor.pos)
            after = cursor.last_seq
            start, end = cursor.take(end - cursor.pos)
            if end <= start:
                return
            if player is not None and self._mine(player, after, cursor.last_seq):
                body = b",".join([part for part in self._parts(start, end, player) if part])
            frames.append(handle.prefix + body + b"]}")
            self.pushed.inc(end - start)


class SubHandle:
    """One subscription of one connection: its cursor, and how its frames look."""

    __slots__ = ("outbox", "id", "hunt_id", "view", "player_id", "batch", "prefix", "last_seq", "sent_seq",
                 "cursor", "source", "closed", "hub")

    def __init__(self, outbox: Outbox, sub_id: Any, *, hunt_id: str | None, view: str, player_id: str | None,
                 after_seq: int, batch: bool) -> None:
        self.outbox = outbox
        self.id = sub_id
        self.hunt_id = hunt_id
        self.view = view
        self.player_id = player_id
        self.batch = batch
        self.prefix = (protocol.events_prefix(sub_id) if batch else protocol.event_prefix(sub_id)).encode()
        self.last_seq = after_seq  # the last seq queued for the client while catching up
        self.sent_seq = after_seq  # the last seq handed to the socket
        self.cursor: Cursor[bytes] | None = None
        self.source: ViewFeed | None = None
        self.closed = False
        self.hub: Hub | None = None  # (set by `Hub.add`)

    def view_key(self, event: StoredEvent) -> str:
        """Which encoding of `event` this subscriber gets."""
        if self.player_id is not None and owner(event) == self.player_id:
            return OWN
        return self.view

    def ready(self) -> None:
        """From the cursor: something new to read, or dropped (too slow), or the feed closed."""
        if not self.closed:
            self.outbox.events_ready(self)

    def read(self, frames: list[bytes]) -> bool:
        """Append the frames of what is new; whether there was anything."""
        assert self.source is not None and self.cursor is not None
        if not self.cursor.live:
            return False
        before = len(frames)
        self.source.read(self, frames)
        return len(frames) > before


class Hub:
    """Subscriptions on the engine's feeds, one `ViewFeed` per (hunt, view) in use."""

    def __init__(self, engine: Engine, metrics: ServerMetrics) -> None:
        self._engine = engine
        self._metrics = metrics
        self._feeds: dict[tuple[str | None, str], ViewFeed] = {}
        self._encoded: OrderedDict[tuple[int, str], bytes] = OrderedDict()

    @property
    def engine(self) -> Engine:
        return self._engine

    @property
    def position(self) -> int:
        """The last seq committed: a subscription from now starts after it."""
        return self._engine.committed_seq

    def add(self, handle: SubHandle, *, limit: int) -> Cursor[bytes]:
        """Start `handle`'s cursor after its ``last_seq``; it is live at once if that is now."""
        key = (handle.hunt_id, handle.view)
        source = self._feeds.get(key)
        if source is None or not source.feed.cursors:  # (a feed without readers is gone)
            source = self._feeds[key] = ViewFeed(self._engine, handle.hunt_id, handle.view, self._metrics)
        handle.source = source
        handle.hub = self
        handle.cursor = source.feed.cursor(after_seq=handle.last_seq, limit=limit, on_ready=handle.ready)
        self._metrics.subscribers.inc()
        return handle.cursor

    def remove(self, handle: SubHandle) -> None:
        """Stop delivering to `handle` (idempotent); the outbox skips what it still holds."""
        if handle.closed:
            return
        handle.closed = True
        if handle.cursor is None or handle.source is None:
            return
        handle.cursor.close()
        self._metrics.subscribers.dec()
        key = (handle.hunt_id, handle.view)
        if not handle.source.feed.cursors and self._feeds.get(key) is handle.source:
            del self._feeds[key]

    def encoded(self, event: StoredEvent, key: str) -> bytes:
        """`encode` with a small cache, for clients catching up from the same place."""
        cache_key = (event.seq, key)
        data = self._encoded.get(cache_key)
        if data is None:
            data = self._encoded[cache_key] = encode(event, key)
            if len(self._encoded) > ENCODE_CACHE:
                self._encoded.popitem(last=False)
        return data
