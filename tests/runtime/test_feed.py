"""Feeds without an engine: one list of entries, read by many cursors at their own places."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from thengine.domain.events import StoredEvent
from thengine.runtime.feed import Cursor, Feed


def event(seq: int, hunt: str = "h") -> StoredEvent:
    return StoredEvent(seq=seq, hunt_id=hunt, version=seq, type="answer_wrong", ts=seq, data={"n": seq})


class Log:
    """The committed log as a list, read as `Engine._read_events` reads the database."""

    def __init__(self, events: list[StoredEvent]) -> None:
        self.events = events
        self.reads = 0

    async def __call__(self, *, after_seq: int, hunt_id: str | None, until_seq: int, limit: int) -> list[StoredEvent]:
        self.reads += 1
        found = [e for e in self.events if after_seq < e.seq <= until_seq and hunt_id in (None, e.hunt_id)]
        return found[:limit]


class Wakes:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


def encode(event: StoredEvent) -> bytes:
    return b"E%d" % event.seq


def make(floor: int = 0, log: Log | None = None, **kwargs: Any) -> Feed[bytes]:
    return Feed("h", encode, floor=floor, read_log=log or Log([]), **kwargs)


def read(cursor: Cursor[bytes], limit: int = 1000) -> list[bytes]:
    start, end = cursor.take(limit)
    feed = cursor.feed
    return feed.items[start - feed.base:end - feed.base]


def test_cursors_read_the_same_entries_not_copies_of_them() -> None:
    feed = make()
    a, b = (feed.cursor(after_seq=0, limit=100, on_ready=Wakes()) for _ in range(2))
    assert a.live and b.live
    for seq in (1, 2, 3):
        feed.append(event(seq))
    got_a, got_b = read(a), read(b)
    assert got_a == [b"E1", b"E2", b"E3"]
    assert all(x is y for x, y in zip(got_a, got_b))  # encoded once, shared
    assert a.last_seq == 3 and read(a) == []


def test_a_waiting_cursor_is_woken_once_per_burst_not_per_event() -> None:
    feed = make()
    wakes = Wakes()
    cursor = feed.cursor(after_seq=0, limit=100, on_ready=wakes)
    for seq in range(1, 6):
        feed.append(event(seq))
    assert wakes.count == 1
    assert len(read(cursor)) == 5
    feed.append(event(6))
    assert wakes.count == 2


def test_a_cursor_in_the_past_reads_the_log_up_to_the_floor_then_goes_live_without_gap_or_duplicate() -> None:
    async def run() -> list[int]:
        log = Log([event(s) for s in range(1, 11)])
        feed = make(floor=10, log=log)
        cursor = feed.cursor(after_seq=3, limit=100, on_ready=Wakes())
        assert not cursor.live and cursor.take(10) == (0, 0)
        feed.append(event(11))  # committed while the cursor reads the log
        seen = []
        while not cursor.live:
            events, reached = await cursor.read_log(4)
            seen += [e.seq for e in events]
            cursor.read_to(reached)
        seen += [int(item[1:]) for item in read(cursor)]
        return seen

    assert trio.run(run) == list(range(4, 12))


def test_entries_every_reader_has_read_are_let_go_and_the_floor_moves_up() -> None:
    trimmed: list[int] = []
    feed = make(on_trim=trimmed.append)
    cursor = feed.cursor(after_seq=0, limit=8, on_ready=Wakes())  # a look every 2 appends
    for seq in range(1, 11):
        feed.append(event(seq))
        read(cursor)
    assert len(feed.items) <= 2 and feed.floor >= 8 and trimmed[-1] == feed.floor
    late = feed.cursor(after_seq=5, limit=8, on_ready=Wakes())
    assert not late.live  # what it needs is only in the log now


def test_a_cursor_its_limit_behind_is_dropped_and_keeps_where_to_resume() -> None:
    feed = make()
    slow_wakes = Wakes()
    slow = feed.cursor(after_seq=0, limit=4, on_ready=slow_wakes)
    fast = feed.cursor(after_seq=0, limit=4, on_ready=Wakes())
    feed.append(event(1))
    read(slow)
    for seq in range(2, 8):
        feed.append(event(seq))
        read(fast)
    assert slow.dropped and slow.last_seq == 1 and slow_wakes.count >= 2
    assert slow not in feed.cursors and fast.live and not fast.dropped
    assert read(slow) == []


def test_the_last_cursor_closing_forgets_the_feed_and_closing_the_feed_ends_its_cursors() -> None:
    forgotten: list[Feed[bytes]] = []
    feed = make(on_empty=forgotten.append)
    a = feed.cursor(after_seq=0, limit=10, on_ready=Wakes())
    wakes = Wakes()
    b = feed.cursor(after_seq=0, limit=10, on_ready=wakes)
    a.close()
    assert forgotten == []
    feed.close()
    assert b.closed and wakes.count == 1
    b.close()
    assert forgotten == [feed]


@pytest.mark.parametrize("after", [0, 2])
def test_a_cursor_starting_inside_what_is_held_starts_right_after_its_seq(after: int) -> None:
    feed = make()
    keep = feed.cursor(after_seq=0, limit=100, on_ready=Wakes())  # holds the entries
    for seq in (1, 2, 3):
        feed.append(event(seq))
    cursor = feed.cursor(after_seq=after, limit=100, on_ready=Wakes())
    assert cursor.live and read(cursor) == [b"E%d" % s for s in range(after + 1, 4)]
    assert keep.live


async def test_a_failing_engine_task_ends_open_engine_at_once_with_its_error(tmp_path: Any) -> None:
    """A bug in a feed's encoder (run by the committer) stops the engine; no grace is waited."""
    from thengine import open_engine
    from thengine.sim.bench import hunt_definition
    from thengine.domain.commands import CreateHunt

    def broken(event: StoredEvent) -> bytes:
        raise KeyError("broken encoder")

    with trio.fail_after(20):  # (a hang would wait out shutdown_grace_s)
        with pytest.raises(KeyError, match="broken encoder"):
            async with open_engine(str(tmp_path / "e.db"), shutdown_grace_s=40) as engine:
                engine.feed(None, "broken", broken).cursor(after_seq=0, limit=10, on_ready=Wakes())
                await engine.submit(CreateHunt(definition=hunt_definition("h", clues=1)))
                await trio.sleep_forever()
