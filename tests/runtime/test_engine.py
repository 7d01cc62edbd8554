"""The engine's promises, tested in-process (crash trials with SIGKILL: test_crash.py)."""

from __future__ import annotations

import json
import zlib

import pytest
import trio
import trio.testing

from thengine import open_engine
from thengine.domain.commands import (
    CreateHunt, EndHunt, ExtendHunt, Hunts, Leaderboard, Player, RemovePlayer, RequestHint,
)
from thengine.domain.events import StoredEvent
from thengine.domain.rules import evolve
from thengine.domain.state import to_snapshot
from thengine.errors import EngineClosed, EngineLocked, SchemaTooNew, StorageError, SubscriberTooSlow
from thengine.runtime.shards import shard_of
from thengine.storage.store import Store

from .harness import T0, FailingStore, GatedStore, answer, definition, join, running_hunt, trio_clock


#: With a mock clock, every periodic engine task wake-up costs a real 0.1 s: keep them rare.
QUIET = {"checkpoint_every_s": 3600.0, "evict_check_s": 3600.0, "lag_probe_s": 0}


@pytest.fixture
def patient_clock():
    """A MockClock that jumps only after 0.1 s of real idleness, so commits (which run
    in a worker thread, invisible to trio's idleness check) finish before time jumps."""
    return trio.testing.MockClock(autojump_threshold=0.1)


def log_of(path) -> list[StoredEvent]:
    with Store.open(path, readonly=True) as store:
        return list(store.read_events())


def replayed(events: list[StoredEvent]) -> dict[str, dict]:
    states: dict = {}
    for event in events:
        states[event.hunt_id] = evolve(states.get(event.hunt_id), event)
    return {hunt_id: to_snapshot(state) for hunt_id, state in states.items()}


async def test_submit_returns_only_once_the_events_are_readable_from_another_connection(tmp_path):
    db = tmp_path / "e.db"
    async with open_engine(db) as engine:
        await running_hunt(engine)
        result = await engine.submit(join("h", "ann"))
        assert result.ok
        on_disk = log_of(db)
        assert on_disk[-1] == result.events[-1]


async def test_shard_routing_is_a_stable_hash_of_the_hunt_id():
    assert shard_of("old-town", 4) == shard_of("old-town", 4)
    # crc32("old-town") is fixed forever, unlike Python's salted hash().
    assert [shard_of(h, 8) for h in ("a", "b", "old-town")] == [zlib.crc32(h.encode()) % 8 for h in ("a", "b", "old-town")]


async def test_a_second_engine_on_the_same_file_fails_at_once_naming_the_holder(tmp_path):
    import os

    db = tmp_path / "e.db"
    async with open_engine(db):
        with pytest.raises(EngineLocked, match=f"pid {os.getpid()}"):
            async with open_engine(db):
                pass  # pragma: no cover


async def test_read_only_store_works_while_an_engine_runs(tmp_path):
    db = tmp_path / "e.db"
    async with open_engine(db) as engine:
        await running_hunt(engine)
        assert [e.type for e in log_of(db)] == ["hunt_created", "hunt_started"]


async def test_a_database_newer_than_the_code_is_refused(tmp_path):
    db = tmp_path / "e.db"
    async with open_engine(db):
        pass
    with Store.open(db) as store:
        store.conn.execute("PRAGMA user_version = 999")
    with pytest.raises(SchemaTooNew, match="999"):
        async with open_engine(db):
            pass  # pragma: no cover


async def test_seq_is_global_and_gapless_and_versions_are_gapless_per_hunt(tmp_path):
    db = tmp_path / "e.db"
    async with open_engine(db, shards=3) as engine:
        async with trio.open_nursery() as nursery:
            for h in ("h1", "h2", "h3", "h4"):
                async def play(h=h):
                    await running_hunt(engine, h)
                    for p in range(20):
                        await engine.submit(join(h, f"p{p}"))
                        await engine.submit(answer(h, f"p{p}", 0, "wrong"))
                nursery.start_soon(play)
    events = log_of(db)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    for h in ("h1", "h2", "h3", "h4"):
        assert [e.version for e in events if e.hunt_id == h] == list(range(1, 43))


async def test_commands_sent_in_order_for_one_hunt_are_decided_in_that_order(tmp_path):
    async with open_engine(tmp_path / "e.db", shards=2) as engine:
        await running_hunt(engine)
        tickets = [await engine.send(join("h", f"p{i}")) for i in range(300)]
        results = [await t.result() for t in tickets]
    versions = [r.events[0].version for r in results]
    assert versions == sorted(versions) == list(range(3, 303))


async def test_a_repeated_command_id_returns_the_first_result_and_writes_nothing(tmp_path):
    db = tmp_path / "e.db"
    async with open_engine(db) as engine:
        await running_hunt(engine)
        first = await engine.submit(join("h", "ann"), command_id="k1")
        again = await engine.submit(join("h", "ann"), command_id="k1")
        assert again == first
    assert sum(e.type == "player_joined" for e in log_of(db)) == 1


async def test_concurrent_duplicates_of_a_command_id_share_one_result(tmp_path):
    db = tmp_path / "e.db"
    async with open_engine(db) as engine:
        await running_hunt(engine)
        tickets = [await engine.send(join("h", "ann"), command_id="k1") for _ in range(5)]
        results = [await t.result() for t in tickets]
    assert all(r == results[0] and r.ok for r in results)
    assert sum(e.type == "player_joined" for e in log_of(db)) == 1


async def test_a_command_id_reused_for_a_different_command_is_invalid(tmp_path):
    async with open_engine(tmp_path / "e.db") as engine:
        await running_hunt(engine)
        await engine.submit(join("h", "ann"), command_id="k1")
        other = await engine.submit(join("h", "bob"), command_id="k1")
    assert other.error is not None and other.error.code == "invalid_command"
    assert "k1" in other.error.message


async def test_idempotency_holds_across_a_restart(tmp_path):
    db = tmp_path / "e.db"
    async with open_engine(db) as engine:
        await running_hunt(engine)
        first = await engine.submit(join("h", "ann"), command_id="k1")
    async with open_engine(db) as engine:
        again = await engine.submit(join("h", "ann"), command_id="k1")
        other = await engine.submit(join("h", "bob"), command_id="k1")
    assert again == first
    assert other.error is not None and other.error.code == "invalid_command"
    assert sum(e.type == "player_joined" for e in log_of(db)) == 1


async def test_a_rejected_command_id_is_decided_afresh_on_retry(tmp_path):
    async with open_engine(tmp_path / "e.db") as engine:
        await running_hunt(engine)
        early = await engine.submit(answer("h", "ann", 0), command_id="k1")
        await engine.submit(join("h", "ann"))
        retry = await engine.submit(answer("h", "ann", 0), command_id="k1")
    assert early.error is not None and early.error.code == "not_joined"
    assert retry.ok and retry.events[0].type == "clue_solved"


async def test_idempotency_records_older_than_the_window_are_forgotten(tmp_path):
    db = tmp_path / "e.db"
    now = [T0]
    async with open_engine(db, clock=lambda: now[0]) as engine:
        await running_hunt(engine)
        await engine.submit(join("h", "ann"), command_id="k1")
    now[0] += 3 * 3600 * 1000
    async with open_engine(db, clock=lambda: now[0], idempotency_window_s=3600) as engine:
        reused = await engine.submit(join("h", "bob"), command_id="k1")
    assert reused.ok and reused.events[0].data["player_id"] == "bob"


async def test_reopening_rebuilds_every_hunt_exactly(tmp_path):
    db = tmp_path / "e.db"
    async with open_engine(db, snapshot_every=7) as engine:
        for h in ("h1", "h2"):
            await running_hunt(engine, h)
            for p in range(15):
                await engine.submit(join(h, f"p{p}"))
                await engine.submit(answer(h, f"p{p}", 0, "a0" if p % 2 else "nope"))
                await engine.submit(RequestHint(hunt_id=h, player_id=f"p{p}", clue_id="c0"))
        live = {h: to_snapshot(s) for h, s in engine.hunts.items()}
    async with open_engine(db) as engine:
        reopened = {h: to_snapshot(s) for h, s in engine.hunts.items()}
    assert reopened == live == replayed(log_of(db))


async def test_deleting_every_snapshot_gives_the_identical_state(tmp_path):
    db = tmp_path / "e.db"
    async with open_engine(db, snapshot_every=5) as engine:
        await running_hunt(engine)
        for p in range(30):
            await engine.submit(join("h", f"p{p}"))
            await engine.submit(answer("h", f"p{p}", 0))
    async with open_engine(db) as engine:
        with_snapshots = to_snapshot(engine.hunts["h"])
    with Store.open(db) as store:
        assert store.delete_snapshots() > 0
    async with open_engine(db) as engine:
        without = to_snapshot(engine.hunts["h"])
    assert with_snapshots == without


async def test_a_snapshot_is_taken_every_k_events_and_on_clean_close(tmp_path):
    db = tmp_path / "e.db"
    async with open_engine(db, snapshot_every=10, snapshot_events_per_player=0) as engine:
        await running_hunt(engine)
        for p in range(14):
            await engine.submit(join("h", f"p{p}"))
        with Store.open(db, readonly=True) as store:
            during = [s.version for s in store.snapshots("h")]
    with Store.open(db, readonly=True) as store:
        after = [s.version for s in store.snapshots("h")]
    assert during == [10]
    assert after[-1] == 16  # the close snapshot covers the head


async def test_a_snapshot_of_an_older_format_or_undecodable_is_ignored(tmp_path):
    db = tmp_path / "e.db"
    async with open_engine(db, snapshot_every=3) as engine:
        await running_hunt(engine)
        for p in range(6):
            await engine.submit(join("h", f"p{p}"))
        live = to_snapshot(engine.hunts["h"])
    with Store.open(db) as store:
        latest = store.latest_snapshot("h")
        bogus = json.loads(zlib.decompress(latest.state))
        bogus["groups"] = []  # a lie: if trusted, every player would vanish
        store.conn.execute("UPDATE snapshots SET format = 0, state = ? WHERE version = ?",
                           (zlib.compress(json.dumps(bogus).encode()), latest.version))
        store.conn.execute("UPDATE snapshots SET state = ? WHERE version < ?", (b"garbage", latest.version))
    async with open_engine(db) as engine:
        assert to_snapshot(engine.hunts["h"]) == live


async def test_queries_answer_from_memory_in_the_documented_shapes(tmp_path):
    async with open_engine(tmp_path / "e.db") as engine:
        await running_hunt(engine)
        await engine.submit(join("h", "ann"))
        await engine.submit(answer("h", "ann", 0))
        board = await engine.query(Leaderboard(hunt_id="h", limit=5))
        me = await engine.query(Player(hunt_id="h", player_id="ann"))
        missing = await engine.query(Leaderboard(hunt_id="nope", limit=5))
    assert board["entries"][0] == {"rank": 1, "id": "ann", "kind": "player", "score": 10, "solved": 1,
                                   "reached_ts": board["entries"][0]["reached_ts"]}
    assert me["score"] == 10 and [c["id"] for c in me["clues"]] == ["c0", "c1"]
    assert missing.error.code == "unknown_hunt"


async def test_no_result_query_or_pushed_event_shows_an_event_before_it_is_committed(tmp_path):
    async with open_engine(tmp_path / "e.db") as engine:
        await running_hunt(engine)
        gated = GatedStore(engine.committer.store)
        engine.committer.store = gated
        seen: list = []
        got: dict = {}

        async def subscriber():
            async with engine.subscribe(hunt_id="h", after_seq=engine.committed_seq) as events:
                async for event in events:
                    seen.append(event)
                    return

        async def submitter():
            got["result"] = await engine.submit(join("h", "ann"))

        async def asker():
            got["board"] = await engine.query(Leaderboard(hunt_id="h", limit=5))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(subscriber)
            await trio.sleep(0.05)
            nursery.start_soon(submitter)
            await trio.to_thread.run_sync(gated.writing.wait, 5)
            nursery.start_soon(asker)  # the state already has ann, the log not yet
            await trio.sleep(0.2)
            assert got == {} and seen == []
            gated.gate.set()
    assert got["result"].ok and seen == list(got["result"].events)
    assert got["board"]["entries"][0]["id"] == "ann"


async def test_overload_rejects_at_once_when_asked_not_to_wait(tmp_path):
    async with open_engine(tmp_path / "e.db", shards=1, inbox_size=2, max_pending=1) as engine:
        await running_hunt(engine)
        gated = GatedStore(engine.committer.store)
        engine.committer.store = gated
        async with trio.open_nursery() as nursery:
            for p in range(8):
                nursery.start_soon(engine.submit, join("h", f"p{p}"))
            await trio.sleep(0.2)
            result = await engine.submit(join("h", "late"), wait=False)
            gated.gate.set()
    assert result.error is not None and result.error.code == "overloaded"


async def test_submit_waits_for_inbox_room_by_default(tmp_path):
    async with open_engine(tmp_path / "e.db", shards=1, inbox_size=1, max_pending=1) as engine:
        await running_hunt(engine)
        results = []
        async with trio.open_nursery() as nursery:
            for p in range(50):
                async def go(p=p):
                    results.append(await engine.submit(join("h", f"p{p}")))
                nursery.start_soon(go)
    assert len(results) == 50 and all(r.ok for r in results)


async def test_a_failed_commit_fails_the_waiters_and_stops_the_engine(tmp_path):
    db = tmp_path / "e.db"
    errors = []
    with pytest.raises(StorageError, match="disk is full"):
        async with open_engine(db) as engine:
            await running_hunt(engine)
            engine.committer.store = FailingStore(engine.committer.store)
            try:
                await engine.submit(join("h", "ann"))
            except StorageError as exc:
                errors.append(exc)
            await trio.sleep_forever()
    assert len(errors) == 1
    assert [e.type for e in log_of(db)] == ["hunt_created", "hunt_started"]
    async with open_engine(db) as engine:  # reopens from the log: ann was never there
        assert "ann" not in engine.hunts["h"].players


async def test_a_real_io_error_fails_the_submitter_and_the_log_stays_consistent(tmp_path):
    from tests.storage.faults import faulty_vfs

    db = tmp_path / "e.db"
    with faulty_vfs() as vfs:
        with pytest.raises(StorageError):
            async with open_engine(db, vfs=vfs.name) as engine:
                await running_hunt(engine)
                vfs.fail(op="xWrite", file_suffix="-wal")
                with pytest.raises(StorageError):
                    await engine.submit(join("h", "ann"))
                await trio.sleep_forever()
        vfs.heal()
    async with open_engine(db) as engine:
        assert "ann" not in engine.hunts["h"].players
        assert (await engine.submit(join("h", "ann"))).ok


async def test_an_error_in_the_callers_block_reaches_the_caller_unwrapped(tmp_path):
    with pytest.raises(ZeroDivisionError):
        async with open_engine(tmp_path / "e.db"):
            1 / 0


async def test_leaving_the_block_finishes_in_flight_commands(tmp_path):
    db = tmp_path / "e.db"
    tickets = []
    async with open_engine(db) as engine:
        await running_hunt(engine)
        for p in range(200):
            tickets.append(await engine.send(join("h", f"p{p}")))
    results = [await t.result() for t in tickets]
    assert all(r.ok for r in results)
    assert sum(e.type == "player_joined" for e in log_of(db)) == 200


async def test_a_closed_engine_refuses_commands(tmp_path):
    async with open_engine(tmp_path / "e.db") as engine:
        pass
    with pytest.raises(EngineClosed):
        await engine.submit(join("h", "ann"))


async def test_a_subscriber_catches_up_then_goes_live_without_gap_or_duplicate(tmp_path):
    db = tmp_path / "e.db"
    async with open_engine(db, shards=2) as engine:
        for h in ("h1", "h2"):
            await running_hunt(engine, h)
        for p in range(1500):  # more than one catch-up chunk
            await engine.send(join("h1" if p % 2 else "h2", f"p{p}"))
        total = 4 + 1500 + 1500
        seen: list[int] = []

        async def more():
            for p in range(1500, 3000):
                await engine.submit(join("h1" if p % 2 else "h2", f"p{p}"))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(more)
            async with engine.subscribe(after_seq=0) as events:
                async for event in events:
                    seen.append(event.seq)
                    if len(seen) == total:
                        break
    assert seen == list(range(1, total + 1))


async def test_a_hunt_subscription_sees_only_that_hunt(tmp_path):
    async with open_engine(tmp_path / "e.db") as engine:
        await running_hunt(engine, "h1")
        await running_hunt(engine, "h2")
        await engine.submit(join("h2", "ann"))
        async with engine.subscribe(hunt_id="h2") as events:
            got = [await events.__anext__() for _ in range(3)]
    assert [(e.hunt_id, e.type) for e in got] == [("h2", "hunt_created"), ("h2", "hunt_started"),
                                                 ("h2", "player_joined")]


async def test_a_slow_subscriber_is_dropped_and_can_resume_from_its_last_seq(tmp_path):
    async with open_engine(tmp_path / "e.db") as engine:
        await running_hunt(engine)
        received: list[int] = []
        async with engine.subscribe(after_seq=0, buffer=10) as events:
            received.append((await events.__anext__()).seq)
            received.append((await events.__anext__()).seq)  # now live
            for p in range(30):  # the engine does not wait for the subscriber
                await engine.submit(join("h", f"p{p}"))
            with pytest.raises(SubscriberTooSlow) as caught:
                while True:
                    received.append((await events.__anext__()).seq)
        assert caught.value.last_seq == received[-1]
        async with engine.subscribe(after_seq=caught.value.last_seq) as events:
            while received[-1] < engine.committed_seq:
                received.append((await events.__anext__()).seq)
    assert received == list(range(1, 33))


async def test_subscriptions_end_when_the_engine_closes(tmp_path):
    ended = trio.Event()
    async with trio.open_nursery() as outer:
        async with open_engine(tmp_path / "e.db") as engine:
            await running_hunt(engine)

            async def listen():
                async with engine.subscribe() as events:
                    async for _ in events:
                        pass
                ended.set()

            outer.start_soon(listen)
            await trio.sleep(0.1)
        with trio.fail_after(5):
            await ended.wait()


async def test_timers_start_and_end_a_hunt_through_logged_commands(tmp_path, patient_clock):
    db = tmp_path / "e.db"
    async with open_engine(db, clock=trio_clock, **QUIET) as engine:
        created = await engine.submit(CreateHunt(definition=definition(
            starts_at=T0 + 60_000, ends_at=T0 + 120_000)))
        assert created.ok
        await trio.sleep(30)
        assert engine.hunts["h"].status == "created"
        await trio.sleep(31)
        assert engine.hunts["h"].status == "running"
        await engine.submit(join("h", "ann"))
        await trio.sleep(60)
        assert engine.hunts["h"].status == "ended"
    events = log_of(db)
    assert [(e.type, e.data.get("by")) for e in events if e.type.startswith("hunt_")] == [
        ("hunt_created", None), ("hunt_started", "timer"), ("hunt_ended", "timer")]
    assert [e.ts for e in events if e.type in ("hunt_started", "hunt_ended")] == [T0 + 60_000, T0 + 120_000]
    with Store.open(db, readonly=True) as store:
        assert store.timers() == []


async def test_timers_that_fell_due_while_the_engine_was_down_fire_on_open_in_order(tmp_path):
    db = tmp_path / "e.db"
    now = [T0]
    async with open_engine(db, clock=lambda: now[0]) as engine:
        await engine.submit(CreateHunt(definition=definition(starts_at=T0 + 60_000, ends_at=T0 + 120_000)))
    now[0] = T0 + 500_000
    async with open_engine(db, clock=lambda: now[0]) as engine:
        with trio.fail_after(5):
            while engine.hunts["h"].status != "ended":
                await trio.sleep(0.01)
    assert [e.type for e in log_of(db)] == ["hunt_created", "hunt_started", "hunt_ended"]


async def test_extending_a_hunt_moves_its_end_timer(tmp_path, patient_clock):
    db = tmp_path / "e.db"
    async with open_engine(db, clock=trio_clock, **QUIET) as engine:
        await running_hunt(engine, ends_at=T0 + 60_000)
        assert (await engine.submit(ExtendHunt(hunt_id="h", ends_at=T0 + 600_000))).ok
        await trio.sleep(120)
        assert engine.hunts["h"].status == "running"
        await trio.sleep(600)
        assert engine.hunts["h"].status == "ended"
    assert [e.type for e in log_of(db)].count("hunt_ended") == 1


async def test_a_manually_ended_hunt_ignores_its_end_timer(tmp_path, patient_clock):
    db = tmp_path / "e.db"
    async with open_engine(db, clock=trio_clock, **QUIET) as engine:
        await running_hunt(engine, ends_at=T0 + 60_000)
        assert (await engine.submit(EndHunt(hunt_id="h"))).ok
        await trio.sleep(120)
    assert [e.type for e in log_of(db)] == ["hunt_created", "hunt_started", "hunt_ended"]


async def test_hunts_that_ended_long_ago_stay_on_disk_at_open_and_load_on_demand(tmp_path):
    db = tmp_path / "e.db"
    now = [T0]
    async with open_engine(db, clock=lambda: now[0]) as engine:
        for h in ("old", "live"):
            await running_hunt(engine, h)
            await engine.submit(join(h, "ann"))
        await engine.submit(EndHunt(hunt_id="old"))
    now[0] += 2 * 3600 * 1000
    async with open_engine(db, clock=lambda: now[0], evict_after_s=3600) as engine:
        assert set(engine.hunts) == {"live"}
        listed = await engine.query(Hunts())
        assert [(h["hunt_id"], h["status"]) for h in listed["hunts"]] == [("live", "running"), ("old", "ended")]
        board = await engine.query(Leaderboard(hunt_id="old", limit=5))
        assert [e["id"] for e in board["entries"]] == ["ann"]
        assert set(engine.hunts) == {"live", "old"}


async def test_a_running_engine_evicts_ended_hunts_once_a_snapshot_covers_them(tmp_path):
    db = tmp_path / "e.db"
    now = [T0]
    async with open_engine(db, clock=lambda: now[0], evict_after_s=60) as engine:
        await running_hunt(engine, "h")
        await engine.submit(join("h", "ann"))
        await engine.submit(EndHunt(hunt_id="h"))
        assert engine.evict_ended_hunts() == []  # not yet 60 s ago
        now[0] += 61_000
        assert engine.evict_ended_hunts() == []  # queues the covering snapshot first
        await engine.committer.drain()
        assert engine.evict_ended_hunts() == ["h"]
        assert "h" not in engine.hunts
        removed = await engine.submit(RemovePlayer(hunt_id="h", player_id="ann", reason="cheating"))
        assert removed.ok and removed.events[0].version == 5
        assert "h" in engine.hunts
        state = engine.hunts["h"]
    assert replayed(log_of(db))["h"] == to_snapshot(state)


async def test_create_hunt_for_an_evicted_hunt_id_is_hunt_exists(tmp_path):
    db = tmp_path / "e.db"
    now = [T0]
    async with open_engine(db, clock=lambda: now[0]) as engine:
        await running_hunt(engine, "h")
        await engine.submit(EndHunt(hunt_id="h"))
    now[0] += 7200_000
    async with open_engine(db, clock=lambda: now[0], evict_after_s=60) as engine:
        again = await engine.submit(CreateHunt(definition=definition("h")))
    assert again.error is not None and again.error.code == "hunt_exists"


async def test_the_wal_is_checkpointed_beside_commits_not_inside_them(tmp_path):
    db = tmp_path / "e.db"
    async with open_engine(db, checkpoint_every_s=0.05) as engine:
        assert engine._store.conn.execute("PRAGMA wal_autocheckpoint").fetchall() == [(0,)]
        await running_hunt(engine)
        size_before = db.stat().st_size
        for p in range(3000):
            await engine.send(join("h", f"player-{p:05d}"))
        await engine.committer.drain()
        with trio.fail_after(5):
            while db.stat().st_size <= size_before:  # pages reach the main file while running
                await trio.sleep(0.02)


async def test_a_command_never_overtakes_one_queued_ahead_of_it_in_its_shard(tmp_path):
    async with open_engine(tmp_path / "e.db", shards=1, max_pending=3, inbox_size=1000) as engine:
        await running_hunt(engine)
        gated = GatedStore(engine.committer.store)
        engine.committer.store = gated
        tickets = []
        for p in range(20):  # the first few are decided at once, the rest queue in the inbox
            tickets.append(await engine.send(join("h", f"p{p}")))
        assert engine.shards.backlog[0] > 0
        gated.gate.set()
        for p in range(20, 40):  # while the backlog drains, new commands must queue behind it
            tickets.append(await engine.send(join("h", f"p{p}")))
            await trio.sleep(0)
        results = [await t.result() for t in tickets]
    assert [r.events[0].data["player_id"] for r in results] == [f"p{p}" for p in range(40)]
    assert [r.events[0].version for r in results] == list(range(3, 43))


async def test_a_long_running_engine_forgets_command_ids_older_than_the_window(tmp_path):
    db = tmp_path / "e.db"
    now = [T0]
    async with open_engine(db, clock=lambda: now[0], idempotency_window_s=3600) as engine:
        await running_hunt(engine)
        await engine.submit(join("h", "ann"), command_id="old")
        now[0] += 1800_000
        await engine.submit(join("h", "bob"), command_id="recent")
        now[0] += 2000_000  # "old" is now 3800 s old, "recent" 2000 s
        assert await engine.forget_old_commands() == 1
        reused = await engine.submit(join("h", "cy"), command_id="old")
        repeated = await engine.submit(join("h", "bob"), command_id="recent")
    assert reused.ok and reused.events[0].data["player_id"] == "cy"
    assert repeated.ok and repeated.events[0].version == 4  # the first result, not a new one
    with Store.open(db, readonly=True) as store:
        assert {r.command_id for r in store.load_commands(0)} == {"recent", "old"}  # "old" re-recorded for cy
        assert [r.first_seq for r in store.load_commands(0) if r.command_id == "old"] == [5]


async def test_big_hunts_are_snapshotted_less_often_in_proportion_to_their_players(tmp_path):
    db = tmp_path / "e.db"
    async with open_engine(db, snapshot_every=10, snapshot_events_per_player=2) as engine:
        await running_hunt(engine)
        for p in range(10):  # versions 3..12
            await engine.submit(join("h", f"p{p}"))
        for i in range(40):  # versions 13..52: wrong answers, no new players
            await engine.submit(answer("h", f"p{i % 10}", 0, "wrong"))
        with Store.open(db, readonly=True) as store:
            versions = [s.version for s in store.snapshots("h")]
    # Every max(10, 2 * 10 players) = 20 events, not every 10.
    assert versions == [20, 40]


async def test_a_big_hunt_is_snapshotted_in_slices_while_commands_go_on(tmp_path):
    """700 players is more than one slice: the snapshot is taken a slice at a time,
    commands are decided in between, and what is stored equals a replay to its version."""
    from thengine.runtime.engine import SNAPSHOT_SLICE
    from thengine.storage.codec import decode_snapshot
    db = tmp_path / "e.db"
    players = 700
    assert 2 * players > SNAPSHOT_SLICE
    due = players + 5
    async with open_engine(db, snapshot_every=due, snapshot_events_per_player=0) as engine:
        await running_hunt(engine)
        tickets = [await engine.send(join("h", f"p{p}")) for p in range(players)]
        tickets += [await engine.send(answer("h", f"p{i}", 0, "wrong")) for i in range(300)]
        for ticket in tickets:
            assert (await ticket.result()).ok
        with trio.fail_after(10), Store.open(db, readonly=True) as store:
            while not (snapshots := list(store.snapshots("h"))):  # committed after its last slice
                await trio.sleep(0.01)
        head = engine.hunts["h"].version
    assert len(snapshots) == 1
    snapshot = snapshots[0]
    assert due < snapshot.version <= head  # events were decided while it was being built
    log = [e for e in log_of(db) if e.version <= snapshot.version]
    assert decode_snapshot(snapshot.state) == replayed(log)["h"]
    assert snapshot.seq == log[-1].seq


async def test_freeze_at_freezes_the_board_by_a_durable_timer_that_survives_a_restart(tmp_path, patient_clock):
    db = tmp_path / "e.db"
    async with open_engine(db, clock=trio_clock, **QUIET) as engine:
        await running_hunt(engine, freeze_at=T0 + 60_000, ends_at=T0 + 600_000)
        await engine.submit(join("h", "ann"))
    async with open_engine(db, clock=trio_clock, **QUIET) as engine:  # (the timer came back from disk)
        await trio.sleep(61)
        assert engine.hunts["h"].frozen is not None
        await engine.submit(answer("h", "ann", 0))
        live = await engine.query(Leaderboard(hunt_id="h"))
        shown = await engine.query(Leaderboard(hunt_id="h"), view="player")
        assert [e["score"] for e in live["entries"]] == [10] and [e["score"] for e in shown["entries"]] == [0]
        assert shown["frozen"] is True and "frozen" not in live
    assert [(e.type, e.data.get("by")) for e in log_of(db) if e.type == "board_frozen"] == [("board_frozen", "timer")]
