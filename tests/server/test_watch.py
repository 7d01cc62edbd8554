"""The ``watch`` op against a real server process: live leaderboards, coalesced per interval."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from .conftest import WS, connected, hunt_definition, init_db
from .process import ServeProcess, assert_no_traceback


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServeProcess]:
    process = ServeProcess(init_db(tmp_path / "hunts.db"), "--rate", "0")
    try:
        yield process
    finally:
        process.kill()


def join(player: str) -> dict:
    return {"type": "join_hunt", "hunt_id": "h", "player_id": player}


def solve(player: str) -> dict:
    return {"type": "submit_answer", "hunt_id": "h", "player_id": player, "clue_id": "c1", "answer": "ANSWER-ONE"}


async def boards(ws: WS, sub: object, seconds: float) -> list[tuple[float, dict]]:
    """The leaderboard frames of `sub` received within `seconds`, with when they came."""
    got: list[tuple[float, dict]] = []
    with trio.move_on_after(seconds):
        while True:
            frame = await ws.recv(timeout=seconds + 5)
            if frame.get("op") == "leaderboard" and frame.get("sub") == sub:
                got.append((trio.current_time(), frame))
    return got


async def hunt_with(server: ServeProcess, players: list[str]) -> None:
    async with connected(server.url, server.token()) as admin:
        assert (await admin.command({"type": "create_hunt", "definition": hunt_definition()}))["ok"]
        assert (await admin.command({"type": "start_hunt", "hunt_id": "h"}))["ok"]
        for player in players:
            assert (await admin.command(join(player)))["ok"]


async def test_the_first_board_comes_at_once_then_at_most_one_per_interval(server: ServeProcess) -> None:
    await hunt_with(server, ["p1", "p2"])
    async with connected(server.url, server.token("player", "p1")) as p1, \
            connected(server.url, server.token()) as admin:
        reply = await p1.request({"op": "watch", "id": 7, "hunt_id": "h", "limit": 3, "interval_ms": 200})
        assert reply == {"op": "watching", "id": 7, "sub": 7}
        asked = trio.current_time()
        first = await boards(p1, 7, 0.15)
        assert len(first) == 1 and first[0][0] - asked < 0.15  # at once, not after an interval
        board = first[0][1]
        assert (board["hunt_id"], board["total"], len(board["entries"])) == ("h", 2, 2)
        assert board["me"]["id"] == "p1" and board["me"]["kind"] == "player"
        # A burst of changes: one board per interval, never a backlog.
        for i in range(40):
            await admin.send({"op": "command", "id": i, "command": join(f"q{i}")})
        for _ in range(40):
            assert (await admin.recv())["ok"]
        last_seq = (await admin.command(solve("p2")))["events"][-1]["seq"]
        burst = await boards(p1, 7, 1.0)
        assert 1 <= len(burst) <= 6
        times = [t for t, _ in burst]
        assert all(later - earlier >= 0.15 for earlier, later in zip(times, times[1:]))
        newest = burst[-1][1]
        assert newest["seq"] >= last_seq and newest["total"] == 42 and len(newest["entries"]) == 3
        assert newest["entries"][0]["id"] == "p2" and newest["me"]["id"] == "p1"
        # Nothing changes: nothing is sent.
        assert await boards(p1, 7, 0.5) == []
        # The watcher's own entry moves: a board comes, with its new `me`.
        assert (await p1.command(solve("p1")))["ok"]
        moved = await boards(p1, 7, 0.5)
        assert moved and moved[-1][1]["me"]["score"] == 10
        # Unsubscribe ends it.
        assert (await p1.request({"op": "unsubscribe", "sub": 7}))["op"] == "unsubscribed"
        assert (await admin.command(solve("q1")))["ok"]
        assert await boards(p1, 7, 0.5) == []
    assert_no_traceback(server.stop())


async def test_around_is_for_admins_and_names_whose_entry_is_me(server: ServeProcess) -> None:
    await hunt_with(server, ["p1", "p2"])
    async with connected(server.url, server.token("player", "p1")) as p1, \
            connected(server.url, server.token()) as admin:
        refused = await p1.request({"op": "watch", "id": 1, "hunt_id": "h", "around": "p2"})
        assert (refused["op"], refused["ok"], refused["error"]["code"]) == ("result", False, "forbidden")
        assert (await p1.request({"op": "watch", "id": 2, "hunt_id": "h", "around": "p1"}))["op"] == "watching"
        assert (await boards(p1, 2, 0.3))[0][1]["me"]["id"] == "p1"
        assert (await admin.request({"op": "watch", "id": 3, "hunt_id": "h", "around": "p2"}))["op"] == "watching"
        assert (await boards(admin, 3, 0.3))[0][1]["me"]["id"] == "p2"
        assert (await admin.request({"op": "watch", "id": 4, "hunt_id": "h"}))["op"] == "watching"
        assert (await boards(admin, 4, 0.3))[0][1]["me"] is None
    assert_no_traceback(server.stop())


async def test_watch_errors(server: ServeProcess) -> None:
    await hunt_with(server, [])
    async with connected(server.url, server.token()) as admin:
        unknown = await admin.request({"op": "watch", "id": 1, "hunt_id": "nope"})
        assert (unknown["op"], unknown["ok"], unknown["error"]["code"]) == ("result", False, "unknown_hunt")
        for bad in ({"interval_ms": 49}, {"interval_ms": 10_001}, {"limit": 0}, {"limit": 101}, {"around": "no spaces"}):
            reply = await admin.request({"op": "watch", "hunt_id": "h", **bad})
            assert reply["code"] == "bad_request", (bad, reply)
        assert (await admin.request({"op": "watch", "id": "w", "hunt_id": "h"}))["op"] == "watching"
        again = await admin.request({"op": "watch", "id": "w", "hunt_id": "h"})
        assert again["code"] == "bad_request"  # the id is taken
        assert (await admin.request({"op": "ping"}))["op"] == "pong"
    assert_no_traceback(server.stop())


async def test_watches_count_against_the_subscription_limit(server: ServeProcess) -> None:
    await hunt_with(server, [])
    async with connected(server.url, server.token()) as admin:
        limit = admin.welcome["limits"]["max_subscriptions"]
        for i in range(limit - 1):
            assert (await admin.request({"op": "watch", "id": f"w{i}", "hunt_id": "h"}))["op"] == "watching"
        assert (await admin.request({"op": "subscribe", "id": "s", "hunt_id": "h"}))["op"] == "subscribed"
        over = await admin.request({"op": "watch", "id": "one-more", "hunt_id": "h"})
        assert over["code"] == "overloaded"
    assert_no_traceback(server.stop())
