"""Check-ins over the network: a player learns nothing of a clue's place without going there."""

from __future__ import annotations

import re

from .conftest import Harness

PLACE = {"lat": 48.2082, "lon": 16.3738, "radius_m": 30}


async def check_in_hunt(server: Harness, **fields: object) -> None:
    async with server.client() as admin:
        definition = {"id": "geo", "title": "Geo", "order": "any", **fields,
                      "clues": [{"id": "c1", "prompt": "Go there", "points": 10, "location": PLACE}]}
        assert (await admin.command({"type": "create_hunt", "definition": definition}))["ok"]
        assert (await admin.command({"type": "start_hunt", "hunt_id": "geo"}))["ok"]


async def too_far_messages(server: Harness, places: list[tuple[float, float]]) -> list[str]:
    async with server.player("p1") as p1:
        assert (await p1.command({"type": "join_hunt", "hunt_id": "geo", "player_id": "p1"}))["ok"]
        messages = []
        for lat, lon in places:
            reply = await p1.command({"type": "check_in", "hunt_id": "geo", "player_id": "p1",
                                      "clue_id": "c1", "lat": lat, "lon": lon})
            assert reply["error"]["code"] == "too_far", reply
            messages.append(reply["error"]["message"])
        return messages


async def test_three_made_up_check_ins_give_nothing_to_trilaterate(server: Harness) -> None:
    await check_in_hunt(server)
    messages = await too_far_messages(server, [(48.21, 16.37), (48.20, 16.38), (48.22, 16.39)])
    assert len(set(messages)) == 1
    assert re.findall(r"\d+(?:\.\d+)? m\b", messages[0]) == ["30 m"]  # only the radius


async def test_a_hunt_with_bands_tells_warmer_or_colder_and_no_more(server: Harness) -> None:
    await check_in_hunt(server, distance_hint="bands")
    messages = await too_far_messages(server, [(48.2086, 16.3738), (48.2102, 16.3738), (48.30, 16.37)])
    assert [m[m.index("(you are"):] for m in messages] == [
        "(you are under 50 m away)", "(you are under 250 m away)", "(you are 1000 m or more away)"]
