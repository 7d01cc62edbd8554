"""Judged clues over the network: teams submit, admins judge, nobody else sees an entry."""

from __future__ import annotations

import json

from .conftest import Harness

MEDIA = {"url": "https://photos.example/red.jpg", "sha256": "a" * 64, "content_type": "image/jpeg", "bytes": 2048}


def definition() -> dict:
    return {"id": "j", "title": "Judged", "order": "any",
            "clues": [{"id": "photo", "prompt": "A team photo at the gate", "points": 100, "by": "judged",
                       "max_submissions": 2},
                      {"id": "q", "prompt": "Say yes", "points": 10, "answers": ["yes"]}]}


async def test_a_team_submits_an_admin_judges_and_other_players_see_no_entry(server: Harness) -> None:
    async with server.client() as admin, server.player("ann") as ann, server.player("cy") as cy:
        assert (await admin.command({"type": "create_hunt", "definition": definition()}))["ok"]
        assert (await admin.command({"type": "start_hunt", "hunt_id": "j"}))["ok"]
        assert (await cy.request({"op": "subscribe", "id": "s", "hunt_id": "j", "after_seq": 0,
                                  "batch": True}))["op"] == "subscribed"
        assert (await ann.command({"type": "join_hunt", "hunt_id": "j", "player_id": "ann", "team_id": "red"}))["ok"]
        assert (await cy.command({"type": "join_hunt", "hunt_id": "j", "player_id": "cy", "team_id": "blue"}))["ok"]
        submitted = await ann.command({"type": "submit_entry", "hunt_id": "j", "player_id": "ann",
                                       "clue_id": "photo", "text": "SECRET-TEXT", "media": MEDIA})
        assert submitted["events"][0]["data"]["entry_id"] == "e1"
        assert submitted["events"][0]["data"]["media"] == MEDIA  # their own

        refused = await ann.command({"type": "judge_entry", "hunt_id": "j", "entry_id": "e1", "verdict": "accept"})
        assert refused["error"]["code"] == "forbidden"
        assert (await ann.query({"type": "entries", "hunt_id": "j"}))["error"]["code"] == "forbidden"

        queue = await admin.query({"type": "entries", "hunt_id": "j", "status": "pending"})
        [entry] = queue["data"]["entries"]
        assert (entry["entry_id"], entry["team_id"], entry["text"], entry["media"]) == ("e1", "red", "SECRET-TEXT", MEDIA)
        rejected = await admin.command({"type": "judge_entry", "hunt_id": "j", "entry_id": "e1", "verdict": "reject",
                                        "reason": "SECRET-REASON"})
        assert rejected["events"][0]["type"] == "entry_rejected"
        me = await ann.query({"type": "player", "hunt_id": "j", "player_id": "ann"})
        assert [(e["status"], e["reason"]) for e in me["data"]["entries"]] == [("rejected", "SECRET-REASON")]
        assert (await ann.command({"type": "appeal_entry", "hunt_id": "j", "player_id": "ann", "entry_id": "e1",
                                   "message": "SECRET-APPEAL"}))["ok"]
        accepted = await admin.command({"type": "judge_entry", "hunt_id": "j", "entry_id": "e1", "verdict": "accept"})
        assert accepted["events"][0]["data"]["points"] == 100
        board = await cy.query({"type": "leaderboard", "hunt_id": "j"})
        assert [(e["id"], e["score"]) for e in board["data"]["entries"]] == [("red", 100), ("blue", 0)]

        pushed = await cy.events("s", 8)
        assert [e["type"] for e in pushed][-4:] == ["entry_submitted", "entry_rejected", "entry_appealed",
                                                    "entry_accepted"]
        seen = "\n".join(cy.texts)
        for secret in ("SECRET-TEXT", "SECRET-REASON", "SECRET-APPEAL", MEDIA["url"]):
            assert secret not in seen, secret
        assert "SECRET-TEXT" in json.dumps(await admin.query({"type": "entries", "hunt_id": "j"}))


async def test_bad_entries_are_invalid_command_naming_the_field(server: Harness) -> None:
    async with server.client() as admin:
        assert (await admin.command({"type": "create_hunt", "definition": definition()}))["ok"]
        base = {"type": "submit_entry", "hunt_id": "j", "player_id": "ann", "clue_id": "photo"}
        for extra, field in (({}, "submit_entry"), ({"media": {**MEDIA, "sha256": "xyz"}}, "media.sha256"),
                             ({"media": {**MEDIA, "url": "ftp://x"}}, "media.url"),
                             ({"text": "   "}, "text"), ({"media": {"url": MEDIA["url"]}}, "media.sha256")):
            reply = await admin.command({**base, **extra})
            assert reply["error"]["code"] == "invalid_command", reply
            assert reply["error"]["message"].startswith(field), (field, reply)
        judged = await admin.command({"type": "judge_entry", "hunt_id": "j", "entry_id": "e1", "verdict": "maybe"})
        assert judged["error"]["message"].startswith("verdict: must be one of accept, reject")
