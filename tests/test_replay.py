"""thengine.history.replay: state rebuilt from the log alone, and snapshots checked against it."""

from __future__ import annotations

import json
import random
import zlib
from pathlib import Path
from typing import Any

import apsw
import pytest

from thengine import open_engine
from thengine.history import replay as replay_module
from thengine.sim.bench import BenchConfig, Workload, setup
from thengine.domain.state import to_snapshot
from thengine.history.replay import UnknownHunt, check, replay, verify
from thengine.storage.store import Store

from .cli.helpers_replay import FakeClock, make_log, rewrite_snapshot


def as_json(state: Any) -> dict[str, Any]:
    return json.loads(json.dumps(to_snapshot(state)))


def replayed(path: Path, **kwargs: Any) -> replay_module.ReplayResult:
    with Store.open(path, readonly=True) as store:
        return replay(store, **kwargs)


async def test_replayed_state_equals_the_engines_live_state(tmp_path: Path) -> None:
    path = tmp_path / "live.db"
    clock = FakeClock()
    async with open_engine(str(path), sync="normal", snapshot_every=50, clock=clock) as engine:
        await make_log(path, engine=engine)
        hunts = await setup(engine, BenchConfig(hunts=3, players=60, concurrency=1, commands=1))
        workload = Workload(hunts, range(60), random.Random(5))
        for _ in range(600):
            clock.now += 7
            await engine.submit(workload.next())
        result = replayed(path)
        assert result.seq == engine.committed_seq
        assert set(result.hunts) == set(engine.hunts)
        for hunt_id, state in engine.hunts.items():
            assert as_json(result.hunts[hunt_id]) == as_json(state), hunt_id


async def test_replay_ignores_snapshots(tmp_path: Path) -> None:
    log = await make_log(tmp_path / "t.db")
    honest = as_json(replayed(log.path).hunts["h1"])
    rewrite_snapshot(log.path, "h1", lambda data: data["groups"][0].__setitem__("score", 12345))
    assert as_json(replayed(log.path).hunts["h1"]) == honest


async def test_replay_reads_every_page_of_a_long_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = await make_log(tmp_path / "t.db")
    whole = {h: as_json(s) for h, s in replayed(log.path).hunts.items()}
    monkeypatch.setattr(replay_module, "PAGE_SIZE", 2)
    assert {h: as_json(s) for h, s in replayed(log.path).hunts.items()} == whole
    assert as_json(replayed(log.path, hunt_id="h1").hunts["h1"]) == whole["h1"]


async def test_until_seq_applies_only_events_up_to_it(tmp_path: Path) -> None:
    log = await make_log(tmp_path / "t.db")
    result = replayed(log.path, until_seq=log.seq["p2_solved_a"])
    assert (result.seq, result.events) == (log.seq["p2_solved_a"], log.seq["p2_solved_a"])
    assert result.hunts["h1"].version == 7


async def test_until_ts_stops_before_the_first_later_event(tmp_path: Path) -> None:
    log = await make_log(tmp_path / "t.db")
    result = replayed(log.path, until_ts=log.ts["p1_solved_a"] - 1)
    assert result.seq == log.seq["p2_solved_a"]


async def test_one_hunt_is_replayed_alone(tmp_path: Path) -> None:
    log = await make_log(tmp_path / "t.db")
    result = replayed(log.path, hunt_id="h2")
    assert list(result.hunts) == ["h2"]
    assert result.events == 5  # created, started, joined, clue solved, treasure found
    assert result.hunts["h2"].version == result.events


async def test_unknown_hunt_raises(tmp_path: Path) -> None:
    log = await make_log(tmp_path / "t.db")
    with pytest.raises(UnknownHunt):
        replayed(log.path, hunt_id="nope")


async def test_progress_reaches_the_total(tmp_path: Path) -> None:
    log = await make_log(tmp_path / "t.db")
    calls: list[tuple[int, int]] = []
    replayed(log.path, progress=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (log.last_seq, log.last_seq)


async def test_verify_finds_nothing_in_a_clean_log(tmp_path: Path) -> None:
    log = await make_log(tmp_path / "t.db")
    with Store.open(log.path, readonly=True) as store:
        assert verify(store) is None
        outcome = check(store)
        snapshots = store.stats()["snapshots"]
    assert (outcome.snapshots, outcome.events) == (snapshots, log.last_seq)


async def test_verify_returns_the_first_divergence_in_log_order(tmp_path: Path) -> None:
    log = await make_log(tmp_path / "t.db")
    conn = apsw.Connection(str(log.path))
    # Swap the blobs of h1's first two snapshots: both now disagree.
    (first, early), (second, late) = conn.execute(
        "SELECT version, state FROM snapshots WHERE hunt_id = 'h1' ORDER BY version LIMIT 2").fetchall()
    conn.execute("UPDATE snapshots SET state = ? WHERE hunt_id = 'h1' AND version = ?", (late, first))
    conn.execute("UPDATE snapshots SET state = ? WHERE hunt_id = 'h1' AND version = ?", (early, second))
    conn.close()
    with Store.open(log.path, readonly=True) as store:
        divergence = verify(store)
    assert divergence is not None
    assert (divergence.hunt_id, divergence.version, divergence.field) == ("h1", first, "version")
    assert (divergence.replayed, divergence.stored) == (first, second)


async def test_a_snapshot_beyond_the_end_of_the_log_is_a_divergence(tmp_path: Path) -> None:
    log = await make_log(tmp_path / "t.db")
    conn = apsw.Connection(str(log.path))
    conn.execute("UPDATE snapshots SET version = 99 WHERE hunt_id = 'h2'")
    conn.close()
    with Store.open(log.path, readonly=True) as store:
        divergence = verify(store)
    assert divergence is not None
    assert (divergence.hunt_id, divergence.field, divergence.replayed, divergence.stored) == ("h2", "version", 5, 99)


async def test_a_snapshot_in_a_newer_format_is_a_divergence_and_an_older_one_is_skipped(tmp_path: Path) -> None:
    log = await make_log(tmp_path / "t.db")
    conn = apsw.Connection(str(log.path))
    conn.execute("UPDATE snapshots SET format = 99 WHERE hunt_id = 'h2'")
    conn.close()
    with Store.open(log.path, readonly=True) as store:
        divergence = verify(store)
    assert divergence is not None and (divergence.hunt_id, divergence.field) == ("h2", "format")
    conn = apsw.Connection(str(log.path))
    conn.execute("UPDATE snapshots SET format = 0 WHERE hunt_id = 'h2'")
    conn.close()
    with Store.open(log.path, readonly=True) as store:
        assert verify(store) is None


async def test_a_snapshot_that_is_not_json_is_a_divergence(tmp_path: Path) -> None:
    log = await make_log(tmp_path / "t.db")
    rewrite_snapshot(log.path, "h1", lambda data: zlib.compress(b"{not json"))
    with Store.open(log.path, readonly=True) as store:
        divergence = verify(store, hunt_id="h1")
    assert divergence is not None and divergence.field == "snapshot"
    assert "undecodable" in divergence.stored
