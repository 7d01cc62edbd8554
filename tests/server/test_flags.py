"""Implausible moves over the network: organisers see flags, players never do."""

from __future__ import annotations

from .conftest import Harness

NEAR = {"lat": 48.2082, "lon": 16.3738, "radius_m": 30}
FAR = {"lat": 48.3082, "lon": 16.3738, "radius_m": 30}  # 11 km north


def definition() -> dict:
    return {"id": "geo", "title": "Geo", "order": "any", "max_speed_kmh": 120, "max_accuracy_m": 40,
            "clues": [{"id": "c1", "prompt": "Go here", "points": 10, "location": NEAR},
                      {"id": "c2", "prompt": "Go there", "points": 10, "location": FAR},
                      {"id": "c3", "prompt": "And answer", "points": 10, "answers": ["x"]}]}


def check_in(player: str, clue: str, place: dict, **extra: float) -> dict:
    return {"type": "check_in", "hunt_id": "geo", "player_id": player, "clue_id": clue,
            "lat": place["lat"], "lon": place["lon"], **extra}


async def test_a_teleport_is_flagged_for_admins_and_invisible_to_players(server: Harness) -> None:
    async with server.client() as admin, server.player("p1") as p1, server.player("p2") as p2:
        assert (await admin.command({"type": "create_hunt", "definition": definition()}))["ok"]
        assert (await admin.command({"type": "start_hunt", "hunt_id": "geo"}))["ok"]
        for ws in (p1, p2):
            assert (await ws.request({"op": "subscribe", "id": "s", "hunt_id": "geo", "after_seq": 0,
                                      "batch": ws is p2}))["op"] == "subscribed"
        for player, ws in (("p1", p1), ("p2", p2)):
            assert (await ws.command({"type": "join_hunt", "hunt_id": "geo", "player_id": player}))["ok"]

        inaccurate = await p1.command(check_in("p1", "c1", NEAR, accuracy_m=55))
        assert inaccurate["error"]["code"] == "inaccurate_fix"
        assert (await p1.command(check_in("p1", "c1", NEAR, accuracy_m=5)))["ok"]
        teleport = await p1.command(check_in("p1", "c2", FAR))  # 11 km a moment later
        assert [e["type"] for e in teleport["events"]] == ["clue_solved"]  # not even in their own result
        assert teleport["events"][0]["data"]["lat"] == FAR["lat"]  # their own fix, theirs to see

        flags = await admin.query({"type": "flags", "hunt_id": "geo"})
        [flag] = flags["data"]["flags"]
        assert flag["player_id"] == "p1" and flag["clue_id"] == "c2" and flag["max_speed_kmh"] == 120
        assert flag["distance_m"] > 10_000 and flag["seq"] == teleport["events"][0]["seq"] - 1
        refused = await p1.query({"type": "flags", "hunt_id": "geo"})
        assert refused["error"]["code"] == "forbidden"

        # A later event reaches both players' subscriptions, single and batched; the flag never does.
        assert (await p2.command({"type": "submit_answer", "hunt_id": "geo", "player_id": "p2",
                                  "clue_id": "c3", "answer": "x"}))["ok"]
        p1_events = await p1.events("s", 7)
        p2_events = await p2.events("s", 7)
        for seen in (p1_events, p2_events):
            assert [e["type"] for e in seen] == ["hunt_created", "hunt_started", "player_joined", "player_joined",
                                                 "clue_solved", "clue_solved", "clue_solved"]
        assert p1_events[5]["data"]["lat"] == FAR["lat"]  # p1's own fix
        assert "lat" not in p2_events[5]["data"] and "accuracy_m" not in p2_events[4]["data"]
        for ws in (p1, p2):
            assert "implausible_move" not in "\n".join(ws.texts)
            assert "max_speed_kmh" not in "\n".join(ws.texts)

        # A player catching up from the log sees no flag either.
        async with server.player("p3") as p3:
            assert (await p3.request({"op": "subscribe", "id": "late", "hunt_id": "geo",
                                      "after_seq": 0}))["op"] == "subscribed"
            late = await p3.events("late", 7)
            assert "implausible_move" not in [e["type"] for e in late]
            assert "lat" not in late[5]["data"]
