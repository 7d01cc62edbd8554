"""Requests: pipelining, id echo, idempotency, bad frames and the limits."""

from __future__ import annotations

from pathlib import Path

import trio

from thengine.server.config import ServerConfig

from .conftest import Harness, SlowVFS, connected, make_hunt, running_server


def join(player: str, hunt: str = "h") -> dict:
    return {"type": "join_hunt", "hunt_id": hunt, "player_id": player}


async def test_a_slow_command_does_not_hold_up_a_query(db: Path, slow_vfs: SlowVFS) -> None:
    async with running_server(db, engine_options={"vfs": slow_vfs.name}) as server:
        async with server.client() as ws:
            await make_hunt(ws, "a")
            await make_hunt(ws, "b")
            slow_vfs.delay = 0.2  # every commit now takes 0.2 s or more
            await ws.send({"op": "command", "id": "slow", "command": join("p1", "a")})
            await ws.send({"op": "query", "id": "fast", "query": {"type": "leaderboard", "hunt_id": "b"}})
            await ws.send({"op": "ping", "id": "ping"})
            order = [(await ws.recv())["id"] for _ in range(3)]
            assert order[-1] == "slow", order
            slow_vfs.delay = 0.0


async def test_replies_echo_ids_of_either_kind(server: Harness) -> None:
    async with server.client() as ws:
        await make_hunt(ws)
        for rid in (0, -5, 2**53, "req-7", "ü" * 10):
            await ws.send({"op": "query", "id": rid, "query": {"type": "hunt", "hunt_id": "h"}})
            reply = await ws.recv()
            assert reply["id"] == rid and reply["ok"]


async def test_many_pipelined_commands_each_get_their_own_reply(server: Harness) -> None:
    async with server.client() as ws:
        await make_hunt(ws)
        for i in range(60):
            await ws.send({"op": "command", "id": i, "command": join(f"p{i}")})
        replies = {}
        for _ in range(60):
            reply = await ws.recv()
            replies[reply["id"]] = reply
        assert sorted(replies) == list(range(60))
        assert all(r["ok"] and r["events"][0]["data"]["player_id"] == f"p{i}" for i, r in replies.items())
        # Commands of one connection reach the engine in the order sent.
        versions = [replies[i]["events"][0]["version"] for i in range(60)]
        assert versions == sorted(versions)


async def test_a_command_id_makes_a_retry_return_the_first_result(server: Harness) -> None:
    async with server.client() as admin:
        await make_hunt(admin)
    async with server.player("p1") as p1:
        first = await p1.command(join("p1"), command_id="k1")
        again = await p1.command(join("p1"), command_id="k1")
        assert first["ok"] and again["ok"] and again["events"] == first["events"]
        other = await p1.command({"type": "leave_hunt", "hunt_id": "h", "player_id": "p1"}, command_id="k1")
        assert other["error"]["code"] == "invalid_command" and "k1" in other["error"]["message"]
    async with server.player("p2") as p2:  # players' command ids never collide with each other's
        mine = await p2.command(join("p2"), command_id="k1")
        assert mine["ok"] and mine["events"][0]["data"]["player_id"] == "p2"
    async with server.client() as admin:
        board = await admin.query({"type": "hunt", "hunt_id": "h"})
        assert board["data"]["players"] == 2  # the retry wrote nothing


async def test_malformed_frames_get_bad_request_and_the_connection_lives_on(server: Harness) -> None:
    async with server.client() as ws:
        await ws.send("{not json")
        error = await ws.recv()
        assert (error["op"], error["code"], error["id"]) == ("error", "bad_request", None)
        await ws.send({"op": "teleport", "id": 5})
        error = await ws.recv()
        assert (error["code"], error["id"]) == ("bad_request", 5) and "unknown op" in error["message"]
        await ws.ws.send_message(b"\x00\x01")
        error = await ws.recv()
        assert error["code"] == "bad_request" and "binary" in error["message"]
        await ws.send({"op": "unsubscribe", "id": 6, "sub": 99})
        assert (await ws.recv())["code"] == "bad_request"
        invalid = await ws.command({"type": "join_hunt", "hunt_id": "h", "player_id": "bad id!"})
        assert invalid["error"]["code"] == "invalid_command" and "player_id" in invalid["error"]["message"]
        assert (await ws.command({"type": "join_hunt", "hunt_id": "nohunt", "player_id": "p"}))["error"]["code"] \
            == "unknown_hunt"
        assert (await ws.request({"op": "ping"}))["op"] == "pong"


async def test_an_oversized_frame_closes_the_connection_with_1009(server: Harness) -> None:
    async with server.client() as ws:
        await ws.send({"op": "ping", "id": 1, "pad": "x" * (70 * 1024)})
        reason = await ws.closed()
        assert reason.code == 1009
    async with server.client() as ws:  # the server is fine
        assert (await ws.request({"op": "ping"}))["op"] == "pong"


async def test_a_player_over_the_rate_limit_is_rate_limited(db: Path) -> None:
    async with running_server(db, config=ServerConfig(rate=2, burst=3)) as server:
        async with server.client() as admin:
            await make_hunt(admin)
        async with server.player("p1") as ws:
            for i in range(8):
                await ws.send({"op": "command", "id": i, "command": join("p1")})
            codes = {}
            for _ in range(8):
                reply = await ws.recv()
                codes[reply["id"]] = "ok" if reply["ok"] else reply["error"]["code"]
            assert [codes[i] for i in range(3)] == ["ok", "already_joined", "already_joined"]
            assert [codes[i] for i in range(4, 8)] == ["rate_limited"] * 4
        async with server.player("p2") as ws:  # the limit is per player
            assert (await ws.command(join("p2")))["ok"]


async def test_requests_beyond_the_in_flight_limit_are_overloaded(db: Path, slow_vfs: SlowVFS) -> None:
    config = ServerConfig(max_in_flight=2)
    async with running_server(db, config=config, engine_options={"vfs": slow_vfs.name}) as server:
        async with server.client() as ws:
            await make_hunt(ws)
            slow_vfs.delay = 0.1
            for i in range(4):
                await ws.send({"op": "command", "id": i, "command": join(f"p{i}")})
            replies = {}
            for _ in range(4):
                reply = await ws.recv()
                replies[reply["id"]] = reply
            slow_vfs.delay = 0.0
            assert replies[0]["ok"] and replies[1]["ok"]
            assert replies[2]["error"]["code"] == replies[3]["error"]["code"] == "overloaded"
            assert "in flight" in replies[2]["error"]["message"]


async def test_connections_beyond_the_limit_are_closed_with_1013(db: Path) -> None:
    async with running_server(db, config=ServerConfig(max_connections=1)) as server:
        async with server.client():
            async with connected(server.url, None) as second:
                reason = await second.closed()
                assert reason.code == 1013 and "too many connections" in reason.reason
        async with server.client() as ws:  # a slot is free again
            assert (await ws.request({"op": "ping"}))["op"] == "pong"


async def test_the_server_closes_a_silent_connection_that_never_says_hello(db: Path) -> None:
    async with running_server(db, config=ServerConfig(hello_timeout_s=0.2)) as server:
        async with connected(server.url, None) as ws:
            with trio.fail_after(3):
                reason = await ws.closed()
            assert reason.code == 1008 and "no hello" in reason.reason



async def test_permessage_deflate_is_negotiated_only_when_the_server_is_told_to(db: Path) -> None:
    async with running_server(db) as server:  # the default: none (memory per connection)
        async with connected(server.url, server.token(), deflate=True) as ws:
            assert ws.ws.extensions == []
    async with running_server(db, config=ServerConfig(compression="deflate")) as server:
        async with connected(server.url, server.token(), deflate=True) as ws:
            assert ws.ws.extensions == ["permessage-deflate"]
            await make_hunt(ws)
            reply = await ws.command(join("p1"))
            assert reply["ok"] and reply["events"][0]["data"]["player_id"] == "p1"
