"""`connect(..., reconnect=True)` against a real server process that is killed and restarted."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest
import trio

from thengine.client import ResultUnknown, ServerError, connect
from thengine.domain.events import StoredEvent
from thengine.storage.store import Store

from .conftest import hunt_definition, init_db
from .process import ServeProcess

pytestmark = pytest.mark.trio


def restarted(old: ServeProcess) -> ServeProcess:
    """A new server process on the old one's database and port."""
    return ServeProcess(old.db, "--rate", "0", port=old.port)


def logged(db: Path) -> list[StoredEvent]:
    with Store.open(db, readonly=True) as store:
        return list(store.read_events(after_seq=0))


async def setup_hunt(client: Any) -> None:
    for command in ({"type": "create_hunt", "definition": hunt_definition("h")},
                    {"type": "start_hunt", "hunt_id": "h"},
                    {"type": "join_hunt", "hunt_id": "h", "player_id": "p1"}):
        assert (await client.submit(command, command_id=f"setup-{command['type']}")).ok


def adjust(n: int) -> dict[str, Any]:
    return {"type": "adjust_score", "hunt_id": "h", "player_id": "p1", "delta": 1, "reason": f"r{n}"}


async def test_a_killed_server_comes_back_and_nothing_is_lost_doubled_or_skipped(tmp_path: Path) -> None:
    server = ServeProcess(init_db(tmp_path / "hunts.db"), "--rate", "0")
    seen: list[int] = []
    boards: list[int] = []
    try:
        async with connect(server.url, server.token(), reconnect=True, give_up_after=60) as client:
            await setup_hunt(client)
            async with trio.open_nursery() as nursery, \
                    client.subscribe(hunt_id="h", after_seq=0) as events, \
                    client.watch_leaderboard("h", limit=5, interval_s=0.05) as board:

                async def follow() -> None:
                    async for event in events:
                        seen.append(event.seq)

                async def follow_board() -> None:
                    async for update in board:
                        boards.append(update.seq)

                nursery.start_soon(follow)
                nursery.start_soon(follow_board)
                tickets = [await client.send(adjust(n), command_id=f"adj-{n}") for n in range(150)]
                server.kill()
                assert sum(not ticket.done() for ticket in tickets) > 0  # in flight when it died
                server = restarted(server)
                tickets += [await client.send(adjust(n), command_id=f"adj-{n}") for n in range(150, 200)]
                results = [await ticket.result() for ticket in tickets]
                last = max(event.seq for result in results for event in result.events)
                with trio.fail_after(30):
                    while not seen or seen[-1] < last or not boards or boards[-1] < last:
                        await trio.sleep(0.02)
                nursery.cancel_scope.cancel()
            assert client.reconnects == 1
    finally:
        server.stop()
    assert all(result.ok for result in results), [r for r in results if not r.ok][:3]
    adjusted = [e for e in logged(server.db) if e.type == "score_adjusted"]
    assert sorted(e.data["reason"] for e in adjusted) == sorted(f"r{n}" for n in range(200))  # each once
    every = [e.seq for e in logged(server.db)]
    assert seen == every  # the subscription: every event, in order, once, across the restart


async def test_a_command_in_flight_without_an_id_fails_clearly_and_one_with_an_id_is_resent(tmp_path: Path) -> None:
    server = ServeProcess(init_db(tmp_path / "hunts.db"), "--rate", "0")
    try:
        async with connect(server.url, server.token(), reconnect=True, give_up_after=60) as client:
            await setup_hunt(client)
            server.proc.send_signal(signal.SIGSTOP)  # it reads nothing more, answers nothing
            without_id = await client.send(adjust(1))
            with_id = await client.send(adjust(2), command_id="two")
            server.proc.send_signal(signal.SIGKILL)
            server.proc.wait(30)
            server = restarted(server)
            with pytest.raises(ResultUnknown, match="without a command_id"):
                await without_id.result()
            assert (await with_id.result()).ok
            assert (await client.query({"type": "player", "hunt_id": "h", "player_id": "p1"}))["score"] == 1
    finally:
        server.stop()


async def test_a_refused_token_is_not_retried(tmp_path: Path) -> None:
    server = ServeProcess(init_db(tmp_path / "hunts.db"))
    try:
        with trio.fail_after(20):  # (retrying would take give_up_after)
            with pytest.raises(ServerError, match="refused"):
                async with connect(server.url, "not-a-token", reconnect=True, give_up_after=600):
                    pass
    finally:
        server.stop()


async def test_without_a_server_to_come_back_the_client_gives_up_with_the_reason(tmp_path: Path) -> None:
    server = ServeProcess(init_db(tmp_path / "hunts.db"))
    async with connect(server.url, server.token(), reconnect=True, give_up_after=1) as client:
        server.kill()
        with pytest.raises(ServerError, match="could not connect within 1 s"):
            with trio.fail_after(20):
                await client.submit(adjust(1), command_id="x")
                await client.submit(adjust(1), command_id="y")
