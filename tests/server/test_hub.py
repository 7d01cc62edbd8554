"""The hub without sockets: each event is encoded once per view and shared by every subscriber."""

from __future__ import annotations

import json
from collections import deque
from typing import Any

from thengine.domain.events import StoredEvent
from thengine.server.hub import Hub, SubHandle
from thengine.server.metrics import ServerMetrics
from thengine.server.outbox import Outbox


class FakeEngine:
    """What `ServerMetrics` reads of an engine."""

    committed_seq = 0

    def inbox_depths(self) -> list[int]:
        return [0]

    def on_commit_batch(self, callback: Any) -> None:
        pass


class RecordingOutbox(Outbox):
    """An outbox that keeps the exact bytes objects it was handed."""

    def __init__(self, client_buffer: int = 100) -> None:
        super().__init__(client_buffer=client_buffer, reply_limit=100, on_overflow=self.overflowed)
        self.pushed: list[bytes] = []
        self.on_full: Any = None

    def push_event(self, handle: SubHandle, seq: int, data: bytes) -> None:
        if len(self.pushed) >= self.client_buffer and self.on_full is not None:
            self.on_full(handle)
            return
        self.pushed.append(data)
        super().push_event(handle, seq, data)

    def overflowed(self) -> None:
        pass


def hub() -> tuple[Hub, ServerMetrics]:
    metrics = ServerMetrics(FakeEngine())  # type: ignore[arg-type]
    return Hub(FakeEngine(), metrics), metrics  # type: ignore[arg-type]


def subscriber(h: Hub, *, view: str = "admin", player: str | None = None, hunt: str | None = "h",
               client_buffer: int = 100) -> tuple[SubHandle, RecordingOutbox]:
    box = RecordingOutbox(client_buffer)
    handle = SubHandle(box, 1, hunt_id=hunt, view=view, player_id=player, after_seq=0, batch=False, limit=100)
    h.add(handle)
    return handle, box


def hint(seq: int, player: str) -> StoredEvent:
    return StoredEvent(seq=seq, hunt_id="h", version=seq, type="hint_revealed", ts=1,
                       data={"player_id": player, "clue_id": "c1", "text": "HINT-ONE", "penalty": 1})


def counter(metrics: ServerMetrics, name: str, view: str) -> float:
    return getattr(metrics, name).labels(view)._value.get()


def test_every_subscriber_of_a_view_gets_the_same_bytes_encoded_once() -> None:
    h, metrics = hub()
    admins = [subscriber(h) for _ in range(3)]
    players = [subscriber(h, view="player", player=f"p{i}") for i in range(3)]
    everything = subscriber(h, hunt=None)
    assert h.dispatch(hint(1, "someone-else")) == 7
    admin_bytes = {id(box.pushed[0]) for _, box in [*admins, everything]}
    player_bytes = {id(box.pushed[0]) for _, box in players}
    assert len(admin_bytes) == 1 and len(player_bytes) == 1
    assert counter(metrics, "encodings", "admin") == 1 and counter(metrics, "encodings", "player") == 1
    assert counter(metrics, "pushed", "admin") == 4 and counter(metrics, "pushed", "player") == 3
    assert b"HINT-ONE" in admins[0][1].pushed[0] and b"HINT-ONE" not in players[0][1].pushed[0]


def test_a_players_own_private_event_is_encoded_once_more_for_that_player() -> None:
    h, metrics = hub()
    _, mine = subscriber(h, view="player", player="p1")
    _, theirs = subscriber(h, view="player", player="p2")
    h.dispatch(hint(1, "p1"))
    assert json.loads(mine.pushed[0])["data"]["text"] == "HINT-ONE"
    assert "text" not in json.loads(theirs.pushed[0])["data"]
    assert counter(metrics, "encodings", "player") == 2


def test_other_hunts_subscribers_get_nothing() -> None:
    h, _ = hub()
    _, other = subscriber(h, hunt="elsewhere")
    assert h.dispatch(hint(1, "p1")) == 0 and other.pushed == []


def test_a_subscriber_removed_while_the_event_is_dispatched_is_forgotten_after_it() -> None:
    h, metrics = hub()
    first, box = subscriber(h, client_buffer=0)
    second, later = subscriber(h)
    box.on_full = h.remove  # the slow client is dropped in the middle of the dispatch
    h.dispatch(hint(1, "p1"))
    assert first.closed and later.pushed  # the others still got it
    assert metrics.subscribers._value.get() == 1
    h.dispatch(hint(2, "p1"))
    assert len(later.pushed) == 2


def test_a_catching_up_subscriber_keeps_live_events_aside_until_its_limit() -> None:
    h, _ = hub()
    handle, box = subscriber(h)
    handle.pending = deque()
    handle.limit = 2
    for seq in (1, 2):
        h.dispatch(hint(seq, "p1"))
    assert [seq for seq, _ in handle.pending] == [1, 2] and box.pushed == []
    h.dispatch(hint(3, "p1"))  # beyond its limit: catch-up reads them from the log instead
    assert handle.overflowed and not handle.pending
