"""Subscriptions: catch-up then live, resume from after_seq with no gap and no duplicate."""

from __future__ import annotations

from pathlib import Path

import trio

from thengine.server.config import ServerConfig

from .conftest import WS, Harness, connected, make_hunt, running_server


def join(player: str, hunt: str = "h") -> dict:
    return {"type": "join_hunt", "hunt_id": hunt, "player_id": player}


def wrong(player: str, text: str, hunt: str = "h") -> dict:
    return {"type": "submit_answer", "hunt_id": hunt, "player_id": player, "clue_id": "c1", "answer": text}


async def subscribe(ws: WS, sub: object, **fields: object) -> dict:
    reply = await ws.request({"op": "subscribe", "id": sub, **fields})
    assert reply["op"] == "subscribed", reply
    return reply


async def test_catch_up_then_live_then_resume_without_gap_or_duplicate(server: Harness) -> None:
    async with server.client() as admin:
        await make_hunt(admin)
        await make_hunt(admin, "other")
        for i in range(5):
            assert (await admin.command(join(f"p{i}")))["ok"]
        async with server.client() as ws:
            assert (await subscribe(ws, "s", hunt_id="h", after_seq=0))["after_seq"] == 0
            caught_up = await ws.events("s", 7)
            assert [e["version"] for e in caught_up] == list(range(1, 8))
            assert all(e["hunt_id"] == "h" for e in caught_up)
            await admin.command(join("late"))
            live = await ws.events("s", 1)
            assert (live[0]["version"], live[0]["data"]["player_id"]) == (8, "late")
            last_seq = live[0]["seq"]
        # Away for a while: the hunt goes on (and so does another).
        for i in range(3):
            await admin.command(join(f"q{i}"))
            await admin.command(join(f"q{i}", "other"))
        async with server.client() as ws:
            await subscribe(ws, 1, hunt_id="h", after_seq=last_seq, batch=True)
            resumed = await ws.events(1, 3)
            assert [e["version"] for e in resumed] == [9, 10, 11]
            assert all(e["seq"] > last_seq for e in resumed)
            await admin.command(join("after"))
            assert (await ws.events(1, 1))[0]["version"] == 12


async def test_subscribers_joining_during_a_stream_miss_nothing(server: Harness) -> None:
    total = 400
    async with server.client() as admin:
        await make_hunt(admin)

        async def pump() -> None:
            for i in range(total):
                await admin.send({"op": "command", "id": i, "command": join(f"p{i}")})
                if i % 50 == 49:
                    await trio.sleep(0.01)

        async def watch(delay: float, out: list[list[int]]) -> None:
            await trio.sleep(delay)
            async with server.client() as ws:
                await subscribe(ws, "s", hunt_id="h", after_seq=0, batch=True)
                events = await ws.events("s", total + 2, timeout=20)
                out.append([e["version"] for e in events])

        seen: list[list[int]] = []
        async with trio.open_nursery() as nursery:
            nursery.start_soon(pump)
            for delay in (0.0, 0.01, 0.03, 0.06, 0.1):
                nursery.start_soon(watch, delay, seen)
        assert len(seen) == 5
        for versions in seen:
            assert versions == list(range(1, total + 3))


async def test_without_after_seq_a_subscription_starts_from_now(server: Harness) -> None:
    async with server.client() as admin:
        await make_hunt(admin)
        reply = await subscribe(admin, "now", hunt_id="h")
        assert reply["after_seq"] == 2
        await admin.command(join("p1"))
        events = await admin.events("now", 1)
        assert events[0]["type"] == "player_joined" and events[0]["seq"] == 3


async def test_a_subscription_to_every_hunt(server: Harness) -> None:
    async with server.client() as admin:
        await subscribe(admin, "all", after_seq=0)
        await make_hunt(admin, "a", start=False)
        await make_hunt(admin, "b", start=False)
        events = await admin.events("all", 2)
        assert [(e["hunt_id"], e["type"]) for e in events] == [("a", "hunt_created"), ("b", "hunt_created")]


async def test_after_unsubscribe_no_more_events_arrive(server: Harness) -> None:
    async with server.client() as admin:
        await make_hunt(admin)
        await subscribe(admin, "s", hunt_id="h")
        await admin.command(join("p1"))
        assert len(await admin.events("s", 1)) == 1
        reply = await admin.request({"op": "unsubscribe", "sub": "s"})
        assert (reply["op"], reply["sub"]) == ("unsubscribed", "s")
        await admin.command(join("p2"))
        await trio.sleep(0.1)
        await admin.request({"op": "ping"})
        assert not [f for f in admin.backlog if f.get("sub") == "s"]
        await subscribe(admin, "s", hunt_id="h")  # the id is free again
        again = await admin.request({"op": "subscribe", "id": "s"})
        assert again["code"] == "bad_request"


async def test_a_slow_client_is_dropped_while_others_keep_up(db: Path) -> None:
    """A client that stops reading is closed (1013, with where to resume); nobody waits for it."""
    events = 1500
    async with running_server(db, config=ServerConfig(client_buffer=200)) as server:
        async with server.client() as admin:
            await make_hunt(admin)
            for p in ("p1", "p2", "p3"):
                await admin.command(join(p))
            start_seq = 5
            async with connected(server.url, server.token()) as slow, server.client() as fast:
                await subscribe(slow, "s", hunt_id="h")  # ... and never reads again
                await subscribe(fast, "f", hunt_id="h")
                got: list[dict] = []

                async def keep_up() -> None:
                    got.extend(await fast.events("f", events, timeout=20))

                async with trio.open_nursery() as nursery:
                    nursery.start_soon(keep_up)
                    with trio.fail_after(20):
                        for first in range(0, events, 50):  # within the in-flight limit
                            for i in range(first, first + 50):
                                await admin.send({"op": "command", "id": i,
                                                  "command": wrong(f"p{i % 3 + 1}", f"{i:05d}" + "x" * 250)})
                            for _ in range(50):
                                reply = await admin.recv()
                                assert reply["ok"], reply
                assert [e["seq"] for e in got] == list(range(start_seq + 1, start_seq + events + 1))
                # The slow client gets what was written before the drop, then the close.
                received = []
                reason = None
                from .wsclient import ConnectionClosed
                with trio.fail_after(10):
                    while reason is None:
                        try:
                            frame = await slow.recv()
                        except ConnectionClosed as exc:
                            reason = exc.reason
                        else:
                            if frame.get("sub") == "s":
                                received.append(frame["event"]["seq"])
                assert reason.code == 1013 and reason.reason.startswith("too slow; resume with after_seq=")
                resume_at = int(reason.reason.rsplit("=", 1)[1])
                assert received == list(range(start_seq + 1, resume_at + 1))
                assert len(received) < events
            async with server.client() as again:
                await subscribe(again, "r", hunt_id="h", after_seq=resume_at, batch=True)
                rest = await again.events("r", start_seq + events - resume_at)
                assert [e["seq"] for e in rest] == list(range(resume_at + 1, start_seq + events + 1))
            metrics = server.running.server.metrics
            assert metrics.slow_dropped._value.get() == 1
