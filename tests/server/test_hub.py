"""The hub without sockets: one feed per (hunt, view), encoded once, read by every subscriber."""

from __future__ import annotations

import json
from typing import Any

from thengine.domain.events import StoredEvent
from thengine.runtime.engine import Engine
from thengine.runtime.feed import Feeds
from thengine.server.hub import Hub, SubHandle
from thengine.server.metrics import ServerMetrics
from thengine.server.outbox import Outbox


class FakeEngine:
    """The engine's feeds (its own code) without shards, storage or a loop."""

    feed = Engine.feed

    def __init__(self) -> None:
        self.committed_seq = 0
        self.closed = False
        self._feeds = Feeds(self._read_events)

    def commit(self, *events: StoredEvent) -> None:
        self.committed_seq = events[-1].seq
        self._feeds.publish(list(events))

    async def _read_events(self, **kwargs: Any) -> list[StoredEvent]:
        raise AssertionError("these subscribers start live")

    def inbox_depths(self) -> list[int]:
        return [0]

    def on_commit_batch(self, callback: Any) -> None:
        pass


class Overflows:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


def hub() -> tuple[Hub, FakeEngine, ServerMetrics]:
    engine = FakeEngine()
    metrics = ServerMetrics(engine)  # type: ignore[arg-type]
    return Hub(engine, metrics), engine, metrics  # type: ignore[arg-type]


def subscriber(h: Hub, *, view: str = "admin", player: str | None = None, hunt: str | None = "h",
               batch: bool = False, client_buffer: int = 100) -> tuple[SubHandle, Outbox, Overflows]:
    overflows = Overflows()
    box = Outbox(client_buffer=client_buffer, reply_limit=100, on_overflow=overflows)
    handle = SubHandle(box, "s", hunt_id=hunt, view=view, player_id=player, after_seq=h.position, batch=batch)
    h.add(handle, limit=client_buffer)
    return handle, box, overflows


def hint(seq: int, player: str, hunt: str = "h") -> StoredEvent:
    return StoredEvent(seq=seq, hunt_id=hunt, version=seq, type="hint_revealed", ts=1,
                       data={"player_id": player, "clue_id": "c1", "text": "HINT-ONE", "penalty": 1})


def pushed(box: Outbox) -> list[dict[str, Any]]:
    """The events of the frames the outbox gives its writer now."""
    events: list[dict[str, Any]] = []
    for payload in box.take():
        frame = json.loads(payload)
        events += frame["events"] if frame["op"] == "events" else [frame["event"]]
    return events


def counter(metrics: ServerMetrics, name: str, view: str) -> float:
    return getattr(metrics, name).labels(view)._value.get()


def test_every_subscriber_of_a_view_reads_one_encoding() -> None:
    h, engine, metrics = hub()
    admins = [subscriber(h, batch=k % 2 == 0) for k in range(4)]
    players = [subscriber(h, view="player", player=f"p{i}", batch=True) for i in range(3)]
    everything = subscriber(h, hunt=None)
    engine.commit(hint(1, "someone-else"), hint(2, "someone-else"))
    # one encoding per event and view (every hunt's subscribers have a feed of their own)
    assert counter(metrics, "encodings", "admin") == 4 and counter(metrics, "encodings", "player") == 2
    for _, box, _ in [*admins, everything]:
        assert [e["data"]["text"] for e in pushed(box)] == ["HINT-ONE", "HINT-ONE"]
    for _, box, _ in players:
        assert [("text" in e["data"]) for e in pushed(box)] == [False, False]
    assert counter(metrics, "pushed", "admin") == 10 and counter(metrics, "pushed", "player") == 6


def test_batching_subscribers_at_the_same_place_share_one_body() -> None:
    h, engine, _ = hub()
    subs = [subscriber(h, batch=True) for _ in range(5)]
    engine.commit(*(hint(seq, "p1") for seq in range(1, 4)))
    frames = [box.take() for _, box, _ in subs]
    assert all(len(f) == 1 for f in frames)
    source = subs[0][0].source
    assert source is not None and len(source._bodies) == 1  # joined once, for all five
    assert [e["seq"] for e in json.loads(frames[0][0])["events"]] == [1, 2, 3]
    assert all(sub.sent_seq == 3 for sub, _, _ in subs)


def test_a_players_own_private_event_is_theirs_alone_single_or_batched() -> None:
    h, engine, metrics = hub()
    mine, mine_box, _ = subscriber(h, view="player", player="p1")
    _, batched_box, _ = subscriber(h, view="player", player="p1", batch=True)
    _, theirs_box, _ = subscriber(h, view="player", player="p2", batch=True)
    engine.commit(hint(1, "p2"), hint(2, "p1"), hint(3, "p2"))
    assert [("text" in e["data"]) for e in pushed(mine_box)] == [False, True, False]
    assert [("text" in e["data"]) for e in pushed(batched_box)] == [False, True, False]
    assert [("text" in e["data"]) for e in pushed(theirs_box)] == [True, False, True]
    assert counter(metrics, "encodings", "player") == 6  # three in the view, one more for each owner


def test_private_encodings_are_let_go_with_the_feeds_entries() -> None:
    h, engine, _ = hub()
    handle, box, _ = subscriber(h, view="player", player="p1", client_buffer=8)
    for seq in range(1, 41):
        engine.commit(hint(seq, "p1" if seq % 2 else "p2"))
        box.take()
    source = handle.source
    assert source is not None and sum(map(len, source.own.values())) <= 4 and len(source.own.get("p1", {})) <= 2


def test_other_hunts_subscribers_get_nothing() -> None:
    h, engine, _ = hub()
    _, other, _ = subscriber(h, hunt="elsewhere")
    engine.commit(hint(1, "p1"))
    assert other.empty and other.take() == []


def test_a_subscriber_its_buffer_behind_overflows_while_the_others_read_on() -> None:
    h, engine, metrics = hub()
    slow, slow_box, slow_overflows = subscriber(h, client_buffer=8)
    fast, fast_box, fast_overflows = subscriber(h, client_buffer=8)
    engine.commit(hint(1, "p1"))
    pushed(slow_box)
    for seq in range(2, 20):
        engine.commit(hint(seq, "p1"))
        pushed(fast_box)
    assert slow_overflows.count >= 1 and fast_overflows.count == 0
    assert slow.sent_seq == 1  # where its client resumes
    h.remove(slow)
    assert metrics.subscribers._value.get() == 1
    engine.commit(hint(20, "p1"))
    assert [e["seq"] for e in pushed(fast_box)] == [20]


def test_after_the_last_subscriber_leaves_a_new_one_gets_a_fresh_feed() -> None:
    h, engine, _ = hub()
    first, _, _ = subscriber(h)
    h.remove(first)
    assert len(engine._feeds) == 0
    engine.commit(hint(1, "p1"))
    _, box, _ = subscriber(h)
    engine.commit(hint(2, "p1"))
    assert [e["seq"] for e in pushed(box)] == [2]
