"""Idempotency with bounded memory: the newest command ids in memory, the rest of the
window found in the database, exactly, in order, also across a restart."""

from __future__ import annotations

import threading

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from thengine import open_engine
from thengine.runtime.committer import Entry
from thengine.runtime.engine import _Request
from thengine.runtime.shards import shard_of
from thengine.storage.store import CommandRecord, Store

from .harness import T0, running_hunt, join

CAP = 10


def log_of(path) -> list:
    with Store.open(path, readonly=True) as store:
        return list(store.read_events())


async def fill(engine, count: int, *, hunt_id: str = "h", prefix: str = "filler") -> None:
    """`count` accepted commands with ids of their own: enough of them push older ids out of memory."""
    for i in range(count):
        assert (await engine.submit(join(hunt_id, f"{prefix}{i}"), command_id=f"{prefix}-{i}")).ok


class GatedReader:
    """Wraps the engine's reader: command id lookups wait until the test opens the gate."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.gate = threading.Event()
        self.looking = threading.Event()
        self.lookups: list[list[str]] = []

    def __getattr__(self, name: str):
        return getattr(self._store, name)

    def find_commands(self, command_ids, since_ts: int) -> dict[str, CommandRecord]:
        self.lookups.append(list(command_ids))
        self.looking.set()
        self.gate.wait(10)
        return self._store.find_commands(command_ids, since_ts)


async def test_memory_never_holds_more_command_ids_than_remember_commands(tmp_path):
    async with open_engine(tmp_path / "e.db", remember_commands=CAP) as engine:
        await running_hunt(engine)
        for i in range(5 * CAP):
            assert (await engine.submit(join("h", f"p{i}"), command_id=f"k{i}")).ok
            assert len(engine._commands) <= CAP
        assert len(engine._commands) == CAP


async def test_remember_commands_must_be_positive(tmp_path):
    with pytest.raises(ValueError, match="remember_commands: must be >= 1, got 0"):
        async with open_engine(tmp_path / "e.db", remember_commands=0):
            pass  # pragma: no cover


async def test_a_command_repeated_after_its_id_left_memory_returns_the_first_result_and_writes_nothing(tmp_path):
    db = tmp_path / "e.db"
    async with open_engine(db, remember_commands=CAP) as engine:
        await running_hunt(engine)
        first = await engine.submit(join("h", "ann"), command_id="k1")
        await fill(engine, 3 * CAP)
        assert "k1" not in engine._commands
        seq = engine.committed_seq
        again = await engine.submit(join("h", "ann"), command_id="k1")
        assert again == first
        assert engine.committed_seq == seq
    assert sum(e.type == "player_joined" and e.data["player_id"] == "ann" for e in log_of(db)) == 1


async def test_an_id_that_left_memory_reused_for_a_different_command_is_invalid(tmp_path):
    async with open_engine(tmp_path / "e.db", remember_commands=CAP) as engine:
        await running_hunt(engine)
        await engine.submit(join("h", "ann"), command_id="k1")
        await fill(engine, 3 * CAP)
        other = await engine.submit(join("h", "bob"), command_id="k1")
    assert other.error is not None and other.error.code == "invalid_command"
    assert "k1" in other.error.message


async def test_ids_beyond_memory_are_recognised_after_a_restart(tmp_path):
    db = tmp_path / "e.db"
    async with open_engine(db, remember_commands=CAP) as engine:
        await running_hunt(engine)
        first = await engine.submit(join("h", "ann"), command_id="k1")
        await fill(engine, 3 * CAP)
    events = len(log_of(db))
    async with open_engine(db, remember_commands=CAP) as engine:
        assert len(engine._commands) == CAP  # the newest, read at open
        assert "k1" not in engine._commands
        again = await engine.submit(join("h", "ann"), command_id="k1")
        other = await engine.submit(join("h", "bob"), command_id="k1")
        recent = await engine.submit(join("h", f"filler{3 * CAP - 1}"), command_id=f"filler-{3 * CAP - 1}")
    assert again == first
    assert other.error is not None and other.error.code == "invalid_command"
    assert recent.ok and recent.events[0].data["player_id"] == f"filler{3 * CAP - 1}"
    assert len(log_of(db)) == events


async def test_ids_older_than_the_window_are_forgotten_in_memory_and_on_disk(tmp_path, monkeypatch):
    monkeypatch.setattr("thengine.runtime.engine._PRUNE_CHUNK", 4)  # pruned a few at a time
    db = tmp_path / "e.db"
    now = [T0]
    async with open_engine(db, clock=lambda: now[0], idempotency_window_s=3600, remember_commands=CAP) as engine:
        await running_hunt(engine)
        await engine.submit(join("h", "ann"), command_id="k1")
        await fill(engine, 3 * CAP)  # k1 and most fillers are only on disk
        now[0] += 2 * 3600 * 1000
        assert await engine.forget_old_commands() == CAP
        reused = await engine.submit(join("h", "bob"), command_id="k1")
        assert reused.ok and reused.events[0].data["player_id"] == "bob"
    with Store.open(db, readonly=True) as store:
        assert [r.command_id for r in store.load_commands(0)] == ["k1"]  # the old records are gone
    now[0] += 2 * 3600 * 1000
    async with open_engine(db, clock=lambda: now[0], idempotency_window_s=3600, remember_commands=CAP) as engine:
        assert len(engine._commands) == 0
        again = await engine.submit(join("h", "cy"), command_id="k1")
    assert again.ok and again.events[0].data["player_id"] == "cy"


async def test_below_the_cap_a_new_id_costs_no_lookup(tmp_path):
    async with open_engine(tmp_path / "e.db", remember_commands=CAP) as engine:
        await running_hunt(engine)
        reader = engine._log._store = GatedReader(engine._log._store)
        reader.gate.set()
        await fill(engine, CAP)
        assert reader.lookups == []
        await fill(engine, 2, prefix="more")  # the first of these pushes an id out of memory
        assert reader.lookups == [["more-1"]]


async def test_a_command_waiting_for_its_lookup_is_decided_before_the_commands_behind_it(tmp_path):
    async with open_engine(tmp_path / "e.db", remember_commands=CAP) as engine:
        await running_hunt(engine)
        await fill(engine, 2 * CAP)
        reader = engine._log._store = GatedReader(engine._log._store)
        looked_up = await engine.send(join("h", "ann"), command_id="new")
        behind = await engine.send(join("h", "bob"))
        await trio.to_thread.run_sync(reader.looking.wait, 5)
        assert not behind._entry._done  # bob waits behind ann's lookup
        reader.gate.set()
        first, second = await looked_up.result(), await behind.result()
    assert first.ok and second.ok
    assert second.events[0].version == first.events[0].version + 1


async def test_the_same_new_id_sent_twice_during_a_lookup_is_decided_once(tmp_path):
    db = tmp_path / "e.db"
    async with open_engine(db, remember_commands=CAP) as engine:
        await running_hunt(engine)
        await fill(engine, 2 * CAP)
        reader = engine._log._store = GatedReader(engine._log._store)
        tickets = [await engine.send(join("h", "ann"), command_id="new") for _ in range(3)]
        await trio.to_thread.run_sync(reader.looking.wait, 5)
        reader.gate.set()
        results = [await t.result() for t in tickets]
    assert results[0].ok and all(r == results[0] for r in results)
    assert sum(e.type == "player_joined" and e.data["player_id"] == "ann" for e in log_of(db)) == 1


async def test_one_new_id_for_two_hunts_in_two_shards_during_lookups_is_decided_once(tmp_path):
    a, b = "h", next(h for h in (f"h{i}" for i in range(100)) if shard_of(h, 2) != shard_of("h", 2))
    db = tmp_path / "e.db"
    async with open_engine(db, shards=2, remember_commands=CAP) as engine:
        await running_hunt(engine, a)
        await running_hunt(engine, b)
        await fill(engine, 2 * CAP)
        reader = engine._log._store = GatedReader(engine._log._store)
        in_a = await engine.send(join(a, "ann"), command_id="new")
        in_b = await engine.send(join(b, "ann"), command_id="new")
        await trio.to_thread.run_sync(reader.looking.wait, 5)
        reader.gate.set()
        results = [await in_a.result(), await in_b.result()]
    assert [r.ok for r in results].count(True) == 1
    rejected = next(r for r in results if not r.ok)
    assert rejected.error is not None and rejected.error.code == "invalid_command"
    assert sum(e.type == "player_joined" and e.data["player_id"] == "ann" for e in log_of(db)) == 1


async def test_a_lookup_does_not_vouch_for_records_committed_after_it_began(tmp_path):
    # A shard may wait (for committer room, say) between a lookup's answer and deciding:
    # if meanwhile a record the lookup could not see left memory, it must look again.
    async with open_engine(tmp_path / "e.db", remember_commands=1) as engine:
        await running_hunt(engine)
        await fill(engine, 3)
        request = _Request(join("h", "ann"), "new", Entry())
        assert engine._must_look_up(request)
        spilled = engine._commands.spilled_seq
        request.checked_seq = spilled  # began once every record out of memory was committed
        assert not engine._must_look_up(request)
        request.checked_seq = spilled - 1  # began before the newest of them was committed
        assert engine._must_look_up(request)


def test_the_fingerprint_is_of_the_value_and_tells_commands_apart() -> None:
    from thengine import AdjustScore, CheckIn, SubmitAnswer
    from thengine.runtime.idempotency import FINGERPRINT_V2, fingerprint

    answer = SubmitAnswer(hunt_id="h", player_id="p1", clue_id="c1", answer="bell")
    assert fingerprint(answer) == fingerprint(SubmitAnswer(hunt_id="h", player_id="p1", clue_id="c1", answer="bell"))
    assert fingerprint(answer).startswith(FINGERPRINT_V2)
    others = [SubmitAnswer(hunt_id="h", player_id="p1", clue_id="c1", answer="Bell"),
              SubmitAnswer(hunt_id="h", player_id="p1", clue_id="c2", answer="bell"),
              AdjustScore(hunt_id="h", player_id="p1", delta=1, reason="bell"),
              CheckIn(hunt_id="h", player_id="p1", clue_id="c1", lat=1.0, lon=2.0),
              CheckIn(hunt_id="h", player_id="p1", clue_id="c1", lat=1.0, lon=2.0000001)]
    assert len({fingerprint(answer), *map(fingerprint, others)}) == 1 + len(others)


async def test_a_record_stored_by_an_older_release_is_still_recognised_and_still_guards_its_id(tmp_path):
    """Records written with the legacy digest (canonical JSON) keep working after the upgrade."""
    from thengine.runtime.idempotency import legacy_fingerprint

    db = tmp_path / "e.db"
    async with open_engine(db) as engine:
        await running_hunt(engine)
        first = await engine.submit(join("h", "ann"), command_id="k1")
    with Store.open(db) as store:  # as an older release stored it
        store.conn.execute("UPDATE commands SET fingerprint = ? WHERE command_id = 'k1'",
                           (legacy_fingerprint(join("h", "ann")),))
    async with open_engine(db) as engine:
        again = await engine.submit(join("h", "ann"), command_id="k1")
        assert again.ok and again.events == first.events  # the first result, nothing new
        other = await engine.submit(join("h", "bob"), command_id="k1")
        assert not other.ok and other.error.code == "invalid_command"
    assert [e.data.get("player_id") for e in log_of(db) if e.type == "player_joined"] == ["ann"]


def test_remembered_records_are_never_scanned_by_a_collection() -> None:
    """The window's dict stays untracked as records come in: a dict holding tuples was
    tracked again with every new one, so each young collection traversed all of it."""
    import gc

    from thengine.runtime.idempotency import RecentCommands

    memory = RecentCommands(100)
    for i in range(150):
        memory.remember(CommandRecord(command_id=f"id{i}", fingerprint="2:ab", hunt_id="h", first_seq=i,
                                      last_seq=i, ts=T0 + i))
        assert not gc.is_tracked(memory._records)
    assert len(memory) == 100 and memory.get("id7") is None
    assert memory.get("id107") == CommandRecord(command_id="id107", fingerprint="2:ab", hunt_id="h",
                                                first_seq=107, last_seq=107, ts=T0 + 107)


@given(st.text(), st.text(), st.text(), st.integers(0, 2**62), st.integers(0, 2**62), st.integers(-2**62, 2**62))
def test_a_remembered_record_comes_back_exactly(command_id: str, fingerprint: str, hunt_id: str,
                                                first_seq: int, last_seq: int, ts: int) -> None:
    from thengine.runtime.idempotency import RecentCommands

    record = CommandRecord(command_id, fingerprint, hunt_id, first_seq, last_seq, ts)
    memory = RecentCommands(1)
    memory.remember(record)
    assert memory.get(command_id) == record
    assert memory.forget_before(ts) == 0 and memory.forget_before(ts + 1) == 1
    memory.remember(record)
    memory.remember(record._replace(command_id=command_id + "x", ts=ts + 1))  # over the cap: spills the first
    assert (memory.spilled_ts, memory.spilled_seq) == (ts, last_seq)
