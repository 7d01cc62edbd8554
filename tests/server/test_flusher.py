"""The flusher without sockets: one write per connection per burst; pushed events linger."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from thengine.server.flusher import FLUSH_STREAK, LINGER, NOW, SOON, Flusher


class Conn:
    """Records when it was told to write."""

    def __init__(self) -> None:
        self.flushed: list[float] = []

    def flush(self) -> None:
        self.flushed.append(trio.current_time())


async def test_replies_of_one_burst_are_written_once_per_connection_when_it_ends(
        autojump_clock: trio.testing.MockClock) -> None:
    flusher = Flusher(linger_s=0.05)
    a, b = Conn(), Conn()
    async with trio.open_nursery() as nursery:
        await nursery.start(flusher.run)
        for _ in range(10):  # (a committed batch answering many commands of two clients)
            flusher.mark(a, NOW)
            flusher.mark(b, SOON)
        assert a.flushed == [] and b.flushed == []  # not while the burst goes on
        await trio.sleep(0)
        await trio.sleep(0)
        assert a.flushed == [0.0] and b.flushed == [0.0]
        nursery.cancel_scope.cancel()


async def test_pushed_events_alone_wait_the_linger_but_a_reply_cuts_it_short(
        autojump_clock: trio.testing.MockClock) -> None:
    flusher = Flusher(linger_s=0.05)
    quiet, busy = Conn(), Conn()
    async with trio.open_nursery() as nursery:
        await nursery.start(flusher.run)
        flusher.mark(quiet, LINGER)
        flusher.mark(busy, LINGER)
        await trio.sleep(0.01)
        flusher.mark(busy, NOW)  # a reply for the busy one
        await trio.sleep(0.1)
        assert busy.flushed == [pytest.approx(0.01)]
        assert quiet.flushed == [pytest.approx(0.05)]
        nursery.cancel_scope.cancel()


async def test_a_forgotten_connection_is_not_written(autojump_clock: trio.testing.MockClock) -> None:
    flusher = Flusher(linger_s=0.05)
    gone = Conn()
    async with trio.open_nursery() as nursery:
        await nursery.start(flusher.run)
        flusher.mark(gone, LINGER)
        flusher.forget(gone)
        await trio.sleep(0.1)
        assert gone.flushed == []
        nursery.cancel_scope.cancel()


async def test_without_a_linger_every_mark_is_written_at_the_end_of_the_burst(
        autojump_clock: trio.testing.MockClock) -> None:
    flusher = Flusher(linger_s=0)
    conn = Conn()
    async with trio.open_nursery() as nursery:
        await nursery.start(flusher.run)
        flusher.mark(conn, LINGER)
        await trio.sleep(0.001)
        assert conn.flushed == [0.0]
        nursery.cancel_scope.cancel()


async def test_a_reply_is_written_before_the_rest_of_a_big_burst_of_boards(
        autojump_clock: trio.testing.MockClock) -> None:
    flusher = Flusher(linger_s=0.05)
    order: list[str] = []

    class Named:
        def __init__(self, name: str) -> None:
            self.name = name

        def flush(self) -> None:
            order.append(self.name)

    watchers = [Named(f"w{i}") for i in range(3 * FLUSH_STREAK)]
    player = Named("reply")
    async with trio.open_nursery() as nursery:
        await nursery.start(flusher.run)
        for watcher in watchers:  # one tick of a board watched by many
            flusher.mark(watcher, SOON)
        await trio.sleep(0)  # the flusher has written a first slice
        flusher.mark(player, NOW)
        await trio.sleep(0.01)
        nursery.cancel_scope.cancel()
    assert len(order) == len(watchers) + 1
    assert order.index("reply") <= 2 * FLUSH_STREAK  # not behind the whole tick
