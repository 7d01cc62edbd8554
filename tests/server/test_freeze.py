"""The scoreboard freeze over the network: players watch the frozen board, admins the live one."""

from __future__ import annotations

from typing import Any

import trio

from .conftest import Harness


def definition() -> dict:
    return {"id": "f", "title": "Freeze", "order": "any",
            "clues": [{"id": "a", "prompt": "Say a", "points": 100, "answers": ["a"]},
                      {"id": "b", "prompt": "Say b", "points": 50, "answers": ["b"]}]}


async def boards_until(ws: Any, sub: Any, wanted: Any, timeout: float = 5.0) -> dict:
    """The first leaderboard frame of watch `sub` whose (id, score) pairs are `wanted`."""
    with trio.fail_after(timeout):
        for frame in ws.backlog:
            if frame.get("op") == "leaderboard" and frame.get("sub") == sub and pairs(frame) == wanted:
                return frame
        while True:
            frame = await ws.recv()
            if frame.get("op") == "leaderboard" and frame.get("sub") == sub and pairs(frame) == wanted:
                return frame
            ws.backlog.append(frame)


def pairs(frame: dict) -> list[tuple[str, int]]:
    return [(e["id"], e["score"]) for e in frame["entries"]]


async def test_players_watch_the_frozen_board_and_see_no_points_while_admins_see_the_live_one(server: Harness) -> None:
    async with server.client() as admin, server.player("ann") as ann, server.player("bob") as bob:
        assert (await admin.command({"type": "create_hunt", "definition": definition()}))["ok"]
        assert (await admin.command({"type": "start_hunt", "hunt_id": "f"}))["ok"]
        for name, ws in (("ann", ann), ("bob", bob)):
            assert (await ws.command({"type": "join_hunt", "hunt_id": "f", "player_id": name}))["ok"]
        assert (await ann.command({"type": "submit_answer", "hunt_id": "f", "player_id": "ann", "clue_id": "a",
                                   "answer": "a"}))["ok"]
        assert (await admin.command({"type": "freeze_board", "hunt_id": "f"}))["ok"]
        assert (await bob.command({"type": "freeze_board", "hunt_id": "f"}))["error"]["code"] == "forbidden"
        for ws in (admin, ann):
            assert (await ws.request({"op": "watch", "id": "w", "hunt_id": "f", "interval_ms": 50}))["op"] == "watching"
        assert (await ann.request({"op": "subscribe", "id": "s", "hunt_id": "f"}))["op"] == "subscribed"
        for clue in ("a", "b"):
            assert (await bob.command({"type": "submit_answer", "hunt_id": "f", "player_id": "bob", "clue_id": clue,
                                       "answer": clue}))["ok"]
        await boards_until(admin, "w", [("bob", 150), ("ann", 100)])
        frozen = await boards_until(ann, "w", [("ann", 100), ("bob", 0)])
        assert frozen["me"]["rank"] == 1
        board = await ann.query({"type": "leaderboard", "hunt_id": "f"})
        assert pairs(board["data"]) == [("ann", 100), ("bob", 0)] and board["data"]["frozen"] is True
        me = await bob.query({"type": "player", "hunt_id": "f", "player_id": "bob"})
        assert (me["data"]["score"], me["data"]["rank"], me["data"]["board_frozen"]) == (150, 2, True)
        pushed = await ann.events("s", 3)
        assert [e["type"] for e in pushed] == ["clue_solved", "clue_solved", "treasure_found"]
        assert all("points" not in e["data"] and "score" not in e["data"] for e in pushed)

        assert (await admin.command({"type": "unfreeze_board", "hunt_id": "f"}))["ok"]
        await boards_until(ann, "w", [("bob", 150), ("ann", 100)])
