"""Roles: a player acts only as itself and sees only the player's view; an admin does anything."""

from __future__ import annotations

import json

from .conftest import SECRETS, Harness, hunt_definition, make_hunt


async def test_a_player_cannot_act_as_another_player(server: Harness) -> None:
    async with server.client() as admin:
        await make_hunt(admin)
    async with server.player("p1") as ws:
        reply = await ws.command({"type": "join_hunt", "hunt_id": "h", "player_id": "p2"})
        assert reply["error"]["code"] == "forbidden" and "p1" in reply["error"]["message"]
        assert (await ws.command({"type": "join_hunt", "hunt_id": "h", "player_id": "p1"}))["ok"]


async def test_a_player_cannot_use_admin_commands(server: Harness) -> None:
    async with server.client() as admin:
        await make_hunt(admin, start=False)
    async with server.player("p1") as ws:
        for command in (
            {"type": "create_hunt", "definition": hunt_definition("other")},
            {"type": "start_hunt", "hunt_id": "h"},
            {"type": "end_hunt", "hunt_id": "h"},
            {"type": "extend_hunt", "hunt_id": "h", "ends_at": "2099-01-01T00:00:00Z"},
            {"type": "remove_player", "hunt_id": "h", "player_id": "p1", "reason": "x"},
            {"type": "adjust_score", "hunt_id": "h", "player_id": "p1", "delta": 100, "reason": "x"},
        ):
            reply = await ws.command(command)
            assert reply["error"]["code"] == "forbidden", (command, reply)
        hunt = await ws.query({"type": "hunt", "hunt_id": "h"})
        assert hunt["data"]["status"] == "created"  # nothing was changed


async def test_a_player_sees_only_their_own_progress(server: Harness) -> None:
    async with server.client() as admin:
        await make_hunt(admin)
        assert (await admin.command({"type": "join_hunt", "hunt_id": "h", "player_id": "p2"}))["ok"]
    async with server.player("p1") as ws:
        reply = await ws.query({"type": "player", "hunt_id": "h", "player_id": "p2"})
        assert reply["error"]["code"] == "forbidden"
        board = await ws.query({"type": "leaderboard", "hunt_id": "h", "limit": 5})
        assert board["ok"] and [e["id"] for e in board["data"]["entries"]] == ["p2"]


async def test_a_player_never_sees_answers_hidden_hints_or_locked_prompts(server: Harness) -> None:
    async with server.player("p1") as p1, server.client() as admin:
        # Subscribed before the hunt exists: hunt_created is pushed to the player too.
        for sub in ("all", "h"):
            frame = {"op": "subscribe", "id": sub, "after_seq": 0, "batch": sub == "h"}
            if sub == "h":
                frame["hunt_id"] = "h"
            assert (await p1.request(frame))["op"] == "subscribed"
        await make_hunt(admin)
        assert (await p1.command({"type": "join_hunt", "hunt_id": "h", "player_id": "p1"}))["ok"]
        # Another player takes a hint and solves a clue: pushed to p1 without the hint's text.
        await admin.command({"type": "join_hunt", "hunt_id": "h", "player_id": "p2"})
        assert (await admin.command({"type": "request_hint", "hunt_id": "h", "player_id": "p2", "clue_id": "c1"}))["ok"]
        await admin.command({"type": "submit_answer", "hunt_id": "h", "player_id": "p2", "clue_id": "c1",
                             "answer": "answer-one"})
        wrong = await p1.command({"type": "submit_answer", "hunt_id": "h", "player_id": "p1", "clue_id": "c1",
                                  "answer": "nope"})
        assert wrong["events"][0]["data"]["answer"] == "nope"  # their own answer, in their own result
        hunt = await p1.query({"type": "hunt", "hunt_id": "h"})
        assert "definition" not in hunt["data"]
        me = await p1.query({"type": "player", "hunt_id": "h", "player_id": "p1"})
        assert [c["prompt"] for c in me["data"]["clues"]] == ["PROMPT-ONE"]
        events = await p1.events("all", 7) + await p1.events("h", 7)
        types = [e["type"] for e in events]
        assert types.count("hunt_created") == 2 and types.count("hint_revealed") == 2
        assert (await p1.query({"type": "hunts"}))["ok"]
        received = "\n".join(p1.texts)
        for secret in SECRETS:
            assert secret not in received, secret
        # The admin saw everything.
        admin_hunt = await admin.query({"type": "hunt", "hunt_id": "h"})
        assert "ANSWER-ONE" in json.dumps(admin_hunt)


async def test_a_players_own_hint_is_theirs_to_see(server: Harness) -> None:
    async with server.client() as admin:
        await make_hunt(admin)
    async with server.player("p1") as p1:
        assert (await p1.request({"op": "subscribe", "id": "s", "hunt_id": "h"}))["op"] == "subscribed"
        await p1.command({"type": "join_hunt", "hunt_id": "h", "player_id": "p1"})
        reply = await p1.command({"type": "request_hint", "hunt_id": "h", "player_id": "p1", "clue_id": "c1"})
        assert reply["events"][0]["data"]["text"] == "HINT-ONE"
        pushed = await p1.events("s", 2)
        assert pushed[1]["data"]["text"] == "HINT-ONE"
        solved = await p1.command({"type": "submit_answer", "hunt_id": "h", "player_id": "p1", "clue_id": "c1",
                                   "answer": "Answer-One"})
        assert [e["type"] for e in solved["events"]] == ["clue_solved"]
        me = await p1.query({"type": "player", "hunt_id": "h", "player_id": "p1"})
        assert "PROMPT-TWO" in json.dumps(me)  # open now
        assert "ANSWER-TWO" not in "\n".join(p1.texts)


async def test_an_admin_may_do_anything_and_sees_everything(server: Harness) -> None:
    async with server.client() as admin:
        assert (await admin.request({"op": "subscribe", "id": 1}))["op"] == "subscribed"
        await make_hunt(admin)
        for command in (
            {"type": "join_hunt", "hunt_id": "h", "player_id": "p1"},
            {"type": "request_hint", "hunt_id": "h", "player_id": "p1", "clue_id": "c1"},
            {"type": "adjust_score", "hunt_id": "h", "player_id": "p1", "delta": 5, "reason": "bonus"},
            {"type": "remove_player", "hunt_id": "h", "player_id": "p1", "reason": "cheating"},
            {"type": "end_hunt", "hunt_id": "h"},
        ):
            assert (await admin.command(command))["ok"], command
        events = await admin.events(1, 7)
        assert events[0]["type"] == "hunt_created"
        assert events[0]["data"]["definition"]["clues"][0]["answers"] == ["ANSWER-ONE"]
        assert events[3]["data"]["text"] == "HINT-ONE"
        me = await admin.query({"type": "player", "hunt_id": "h", "player_id": "p1"})
        assert me["data"]["status"] == "removed"
