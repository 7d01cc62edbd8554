"""`thengine.client`: the Engine-shaped client of the network server."""

from __future__ import annotations

import pytest
import trio

from thengine.client import ServerError, connect
from thengine.domain.commands import CreateHunt, JoinHunt, Leaderboard, Player, StartHunt
from thengine.domain.definition import parse_definition
from thengine.domain.result import Result

from .conftest import Harness, hunt_definition


async def test_submit_query_and_subscribe_like_the_engine(server: Harness) -> None:
    async with connect(server.url, server.token()) as client:
        assert client.role == "admin"
        created = await client.submit(CreateHunt(definition=parse_definition(hunt_definition())))
        assert created.ok and created.events[0].type == "hunt_created"
        assert (await client.submit(StartHunt(hunt_id="h"))).ok
        async with client.subscribe(hunt_id="h", after_seq=0) as events:
            tickets = [await client.send(JoinHunt(hunt_id="h", player_id=f"p{i}"), command_id=f"j{i}")
                       for i in range(100)]
            results = [await ticket.result() for ticket in tickets]
            assert all(r.ok for r in results)
            seen = []
            async for event in events:
                seen.append(event)
                if len(seen) == 102:
                    break
            assert [e.version for e in seen] == list(range(1, 103))
        again = await client.submit(JoinHunt(hunt_id="h", player_id="p0"), command_id="j0")
        assert again == results[0]
        board = await client.query(Leaderboard(hunt_id="h", limit=3))
        assert isinstance(board, dict) and len(board["entries"]) == 3
        unknown = await client.query(Player(hunt_id="nope", player_id="p0"))
        assert isinstance(unknown, Result) and unknown.error.code == "unknown_hunt"


async def test_a_refused_token_raises_with_the_reason(server: Harness) -> None:
    with pytest.raises(ServerError, match="token expired"):
        async with connect(server.url, server.token(ttl=1, now=1)):
            pass


async def test_no_server_raises_a_clear_error() -> None:
    with pytest.raises(ServerError, match="cannot connect to ws://127.0.0.1:9/v1"):
        async with connect("ws://127.0.0.1:9/v1", "t"):
            pass
    with pytest.raises(ServerError, match="not a WebSocket URL"):
        async with connect("http://example.org/", "t"):
            pass


async def test_a_player_client_gets_forbidden_as_a_result(server: Harness) -> None:
    async with connect(server.url, server.token("admin")) as admin:
        await admin.submit(CreateHunt(definition=parse_definition(hunt_definition())))
    async with connect(server.url, server.token("player", "p1")) as client:
        assert client.player_id == "p1"
        result = await client.submit(JoinHunt(hunt_id="h", player_id="p2"))
        assert result.error.code == "forbidden"


async def test_a_subscription_ends_when_the_server_shuts_down(server: Harness) -> None:
    async with connect(server.url, server.token()) as client:
        async with client.subscribe() as events:
            server.running.shutdown()
            with trio.fail_after(5):
                assert [e async for e in events] == []
        with pytest.raises(ServerError, match="1001"):
            await client.submit(StartHunt(hunt_id="h"))
