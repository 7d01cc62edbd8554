"""The outbox without sockets: order, batching of catch-up events, latest-board slots, slow-client detection.

(Live subscriptions, read from the hub's shared feeds, are in test_hub.py.)"""

from __future__ import annotations

import json
from typing import Any

import trio
import trio.testing

from thengine.runtime.boards import Board
from thengine.server.flusher import LINGER, NOW, SOON
from thengine.server.hub import SubHandle
from thengine.server.outbox import BoardSlot, Outbox


class Overflows:
    """Counts the outbox's calls to drop its client."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


def outbox(client_buffer: int = 100, reply_limit: int = 100) -> tuple[Outbox, Overflows]:
    overflows = Overflows()
    return Outbox(client_buffer=client_buffer, reply_limit=reply_limit, on_overflow=overflows), overflows


def sub(box: Outbox, sub_id: Any, *, batch: bool = False, after_seq: int = 0) -> SubHandle:
    return SubHandle(box, sub_id, hunt_id="h", view="admin", player_id=None, after_seq=after_seq, batch=batch)


def event(seq: int) -> bytes:
    return json.dumps({"seq": seq}).encode()


def frames(box: Outbox) -> list[dict[str, Any]]:
    return [json.loads(payload) for payload in box.take()]


def test_replies_and_events_leave_in_the_order_queued() -> None:
    box, _ = outbox()
    s = sub(box, "s")
    box.reply(b'{"op":"subscribed","id":"s"}')
    box.push_event(s, 1, event(1))
    box.reply(b'{"op":"pong","id":2}')
    box.push_event(s, 2, event(2))
    assert frames(box) == [{"op": "subscribed", "id": "s"}, {"op": "event", "sub": "s", "event": {"seq": 1}},
                           {"op": "pong", "id": 2}, {"op": "event", "sub": "s", "event": {"seq": 2}}]
    assert s.sent_seq == 2 and box.empty


def test_a_batching_subscription_gets_its_queued_events_in_one_frame_at_the_first_ones_place() -> None:
    box, _ = outbox()
    batched, single = sub(box, "b", batch=True), sub(box, "one")
    box.push_event(batched, 1, event(1))
    box.reply(b'{"op":"pong","id":1}')
    box.push_event(single, 2, event(2))
    box.push_event(batched, 3, event(3))
    assert frames(box) == [{"op": "events", "sub": "b", "events": [{"seq": 1}, {"seq": 3}]},
                           {"op": "pong", "id": 1}, {"op": "event", "sub": "one", "event": {"seq": 2}}]
    assert batched.sent_seq == 3


def test_an_event_already_queued_or_of_an_ended_subscription_is_skipped() -> None:
    box, _ = outbox()
    s = sub(box, "s", after_seq=5)
    box.push_event(s, 5, event(5))  # at or before after_seq: never twice
    box.push_event(s, 6, event(6))
    box.push_event(s, 6, event(6))
    gone = sub(box, "gone")
    box.push_event(gone, 7, event(7))
    gone.closed = True  # unsubscribed before the writer came
    assert frames(box) == [{"op": "event", "sub": "s", "event": {"seq": 6}}]


def test_a_client_client_buffer_events_behind_overflows_once_per_push_beyond() -> None:
    box, overflows = outbox(client_buffer=3)
    s = sub(box, "s")
    for seq in range(1, 4):
        box.push_event(s, seq, event(seq))
    assert overflows.count == 0
    box.push_event(s, 4, event(4))
    assert overflows.count == 1
    assert [f["event"]["seq"] for f in frames(box)] == [1, 2, 3]  # the one beyond was not queued


def test_replies_that_pile_up_overflow_too() -> None:
    box, overflows = outbox(reply_limit=2)
    for i in range(3):
        box.reply(b"{}")
    assert overflows.count == 1


def test_a_watch_keeps_only_the_newest_board_and_shares_its_body() -> None:
    box, _ = outbox()
    me = BoardSlot(box, 1, hunt_id="h", limit=10, interval_s=0.25, whose="p1")
    other = BoardSlot(box, "w", hunt_id="h", limit=10, interval_s=0.25, whose=None)
    entry = {"rank": 1, "id": "p1", "kind": "player", "score": 10, "solved": 1, "reached_ts": 5}
    for seq in (3, 4, 5):
        board = Board("h", seq, 1, [entry])
        me.offer(board, entry)
        other.offer(board, None)
    box.reply(b'{"op":"pong","id":9}')
    got = frames(box)
    assert got == [
        {"op": "pong", "id": 9},
        {"op": "leaderboard", "sub": 1, "hunt_id": "h", "seq": 5, "total": 1, "entries": [entry], "me": entry},
        {"op": "leaderboard", "sub": "w", "hunt_id": "h", "seq": 5, "total": 1, "entries": [entry], "me": None},
    ]
    assert box.take() == []  # no backlog of the older boards


def test_a_closed_watch_sends_nothing_more() -> None:
    box, _ = outbox()
    slot = BoardSlot(box, 1, hunt_id="h", limit=10, interval_s=0.25, whose=None)
    slot.offer(Board("h", 1, 0, []), None)
    slot.close()
    slot.offer(Board("h", 2, 0, []), None)
    assert box.take() == []


def test_discard_drops_the_frames_but_keeps_protocol_bytes() -> None:
    box, _ = outbox()
    box.reply(b"{}")
    box.framed([b"close-frame", b""])
    box.discard()
    box.reply(b"{}")
    assert box.take() == [] and box.take_framed() == [b"close-frame", b""]


def test_the_outbox_says_what_may_linger() -> None:
    signals: list[str] = []
    box = Outbox(client_buffer=4, reply_limit=10, on_overflow=Overflows(), on_ready=signals.append)
    s = sub(box, "s")
    box.push_event(s, 1, event(1))
    box.push_event(s, 2, event(2))  # half the buffer: no more lingering
    box.reply(b"{}")
    box.board_ready(BoardSlot(box, 1, hunt_id="h", limit=1, interval_s=1, whose=None))
    box.framed([b"pong"])
    assert signals == [LINGER, SOON, NOW, SOON, NOW]


async def test_wait_room_blocks_catch_up_until_the_writer_takes(autojump_clock: trio.testing.MockClock) -> None:
    box, _ = outbox(client_buffer=2)
    s = sub(box, "s")
    box.push_event(s, 1, event(1))
    box.push_event(s, 2, event(2))
    done = []

    async def catch_up() -> None:
        await box.wait_room()
        done.append(trio.current_time())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(catch_up)
        await trio.sleep(1)
        assert not done
        box.take()
    assert done == [1.0]
