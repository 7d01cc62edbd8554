"""The fan-out of committed events to every subscribed connection, encoded once per view.

ONE engine subscription feeds the `Hub`; each event is encoded once per view (admin,
player; a player's own private event once more for that player) and the same bytes
are queued for every subscriber of that view, so the engine publishes to a single
subscriber however many clients listen. A subscription that starts in the past
(``after_seq``) is caught up from the log by its connection while the hub keeps the
newer events for it (`SubHandle.pending`); it then goes live with no gap and no
duplicate, because events are only ever queued in increasing `seq`.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from typing import TYPE_CHECKING, Any

import trio

from ..domain import views
from ..domain.events import StoredEvent
from ..errors import EngineClosed, SubscriberTooSlow
from . import protocol
from .metrics import ServerMetrics

if TYPE_CHECKING:
    from ..runtime.engine import Engine
    from .outbox import Outbox

#: The view key of a player's own private events (hint texts, their wrong answers).
OWN = "own"
_PRIVATE_EVENTS = frozenset({"hint_revealed", "answer_wrong"})
HUB_BUFFER = 50_000
HUB_YIELD_EVENTS = 64  # keep well below ServerConfig.client_buffer
HUB_YIELD_DELIVERIES = 4000
ENCODE_CACHE = 4096


def encode(event: StoredEvent, key: str) -> bytes:
    """`event` as JSON for the view `key` (admin, player, or a player's own)."""
    if key == OWN:
        return protocol.event_json(event, views.PLAYER, own=True).encode()
    return protocol.event_json(event, key).encode()


class SubHandle:
    """One subscription of one connection, as the hub and the outbox see it."""

    __slots__ = ("outbox", "id", "hunt_id", "view", "player_id", "batch", "prefix", "last_seq", "sent_seq",
                 "pending", "limit", "overflowed", "closed")

    def __init__(self, outbox: Outbox, sub_id: Any, *, hunt_id: str | None, view: str, player_id: str | None,
                 after_seq: int, batch: bool, limit: int) -> None:
        self.outbox = outbox
        self.id = sub_id
        self.hunt_id = hunt_id
        self.view = view
        self.player_id = player_id
        self.batch = batch
        self.prefix = (protocol.events_prefix(sub_id) if batch else protocol.event_prefix(sub_id)).encode()
        self.last_seq = after_seq  # the last seq queued for the client
        self.sent_seq = after_seq  # the last seq handed to the socket
        # While catching up from the log: the hub's newer events, kept for the hand-over.
        self.pending: deque[tuple[int, bytes]] | None = None
        self.limit = limit  # events kept in `pending` before catch-up reads them from the log instead
        self.overflowed = False
        self.closed = False

    def view_key(self, event: StoredEvent) -> str:
        """Which encoding of `event` this subscriber gets."""
        if (self.player_id is not None and event.type in _PRIVATE_EVENTS
                and event.data.get("player_id") == self.player_id):
            return OWN
        return self.view

    def deliver(self, seq: int, data: bytes) -> None:
        """From the hub: a live event (synchronous, never blocks)."""
        pending = self.pending
        if pending is None:
            self.outbox.push_event(self, seq, data)
        elif not self.overflowed:
            if len(pending) >= self.limit:
                self.overflowed = True  # catch-up reads these from the log instead
                pending.clear()
            else:
                pending.append((seq, data))


class Hub:
    """Fans the engine's committed events out to subscribers, encoding once per view."""

    def __init__(self, engine: Engine, metrics: ServerMetrics) -> None:
        self._engine = engine
        self._metrics = metrics
        self.position = 0  # the last seq the hub has dispatched
        self._by_hunt: dict[str, dict[SubHandle, None]] = {}
        self._everything: dict[SubHandle, None] = {}
        self._dispatching = False
        self._doomed: list[SubHandle] = []
        self._encoded: OrderedDict[tuple[int, str], bytes] = OrderedDict()

    def add(self, handle: SubHandle) -> int:
        """Register `handle`; returns the hub's position: every later event reaches it."""
        group = self._everything if handle.hunt_id is None else self._by_hunt.setdefault(handle.hunt_id, {})
        group[handle] = None
        self._metrics.subscribers.inc()
        return self.position

    def remove(self, handle: SubHandle) -> None:
        """Stop delivering to `handle` (idempotent); the outbox skips what it still holds."""
        if handle.closed:
            return
        handle.closed = True
        if self._dispatching:
            self._doomed.append(handle)  # not while iterating its group
            return
        self._forget(handle)

    def _forget(self, handle: SubHandle) -> None:
        if handle.hunt_id is None:
            removed = self._everything.pop(handle, False) is None
        else:
            group = self._by_hunt.get(handle.hunt_id)
            removed = group is not None and group.pop(handle, False) is None
            if group is not None and not group:
                del self._by_hunt[handle.hunt_id]
        if removed:
            self._metrics.subscribers.dec()

    def encoded(self, event: StoredEvent, key: str) -> bytes:
        """`encode` with a small cache, for clients catching up from the same place."""
        cache_key = (event.seq, key)
        data = self._encoded.get(cache_key)
        if data is None:
            data = self._encoded[cache_key] = encode(event, key)
            if len(self._encoded) > ENCODE_CACHE:
                self._encoded.popitem(last=False)
        return data

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Follow the log from the engine's current seq until the engine closes."""
        self.position = self._engine.committed_seq
        task_status.started()
        dispatched = deliveries = 0
        while True:
            try:
                async with self._engine.subscribe(after_seq=self.position, buffer=HUB_BUFFER) as events:
                    async for event in events:
                        delivered = self.dispatch(event)
                        self.position = event.seq
                        if delivered:
                            dispatched += 1
                            deliveries += delivered
                        # The subscription does not yield while it has events. Yielding
                        # now and then lets writers take their queues, so a burst of
                        # events (one big commit) never fills a healthy client's buffer.
                        if dispatched >= HUB_YIELD_EVENTS or deliveries >= HUB_YIELD_DELIVERIES:
                            dispatched = deliveries = 0
                            await trio.lowlevel.checkpoint()
                return
            except SubscriberTooSlow:
                continue  # fell behind the engine: resume from the log, nothing lost
            except EngineClosed:
                return

    def dispatch(self, event: StoredEvent) -> int:
        """Hand `event` to every subscriber of its hunt (and of every hunt); returns how many."""
        targets = self._by_hunt.get(event.hunt_id)
        everything = self._everything
        if not targets and not everything:
            return 0
        encoded: dict[str, bytes] = {}
        counts: dict[str, int] = {}
        self._dispatching = True
        try:
            for group in (targets, everything):
                if not group:
                    continue
                for handle in group:
                    if handle.closed:
                        continue
                    key = handle.view_key(event)
                    data = encoded.get(key)
                    if data is None:
                        data = encoded[key] = encode(event, key)
                        counts[key] = 0
                    counts[key] += 1
                    handle.deliver(event.seq, data)
        finally:
            self._dispatching = False
            doomed, self._doomed = self._doomed, []
            for handle in doomed:
                self._forget(handle)
        metrics = self._metrics
        total = 0
        for key, n in counts.items():
            view = views.PLAYER if key == OWN else key
            metrics.encodings.labels(view).inc()
            metrics.pushed.labels(view).inc(n)
            total += n
        return total
