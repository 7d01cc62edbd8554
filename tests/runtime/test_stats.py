"""The stage histograms: they exist, they move with the work, and their percentiles are right."""

from __future__ import annotations

import gc
import math

import pytest

from thengine import JoinHunt, open_engine
from thengine.sim.bench import hunt_definition
from thengine.domain.commands import CreateHunt, StartHunt
from thengine.runtime.stats import BOUNDS, GC_PAUSES, STAGES, Histogram


def test_a_percentile_is_within_a_bucket_of_the_samples() -> None:
    histogram = Histogram()
    samples = [k / 1000 for k in range(1, 1001)]  # 1 ms .. 1 s
    for seconds in samples:
        histogram.observe(seconds)
    assert histogram.count == 1000 and histogram.max == 1.0
    for q, exact in ((0.5, 0.5), (0.99, 0.99)):
        assert exact <= histogram.percentile(q) <= exact * 1.051
    assert histogram.summary_ms()["max"] == 1000.0
    cumulative = dict(histogram.cumulative((0.01, 0.1)))
    # (a bucket straddling an exported bound counts above it: at most 5% off)
    assert 9 <= cumulative[0.01] <= 10 and 95 <= cumulative[0.1] <= 100 and cumulative[math.inf] == 1000
    assert BOUNDS[0] == pytest.approx(1e-6) and BOUNDS[-1] > 100


async def test_every_stage_counts_the_commands_that_went_through_it(tmp_path) -> None:
    async with open_engine(str(tmp_path / "e.db"), lag_probe_s=0.001) as engine:
        await engine.submit(CreateHunt(definition=hunt_definition("h", clues=2)))
        await engine.submit(StartHunt(hunt_id="h"))
        tickets = [await engine.send(JoinHunt(hunt_id="h", player_id=f"p{k}"), command_id=f"j{k}")
                   for k in range(200)]
        for ticket in tickets:
            assert (await ticket.result()).ok
        stats = engine.stats
        assert stats.decide.count == 202 and stats.inbox_wait.count == 202
        assert stats.commit_wait.count == 202
        assert 1 <= stats.commit.count <= 202 and stats.commit_sync.count == stats.commit.count
        assert stats.commit.max >= stats.commit_sync.max > 0  # the COMMIT is part of the write
        assert stats.loop_lag.count > 0
        report = stats.to_json()
        assert set(report) == {*STAGES, "gc_pause_gen0", "gc_pause_gen1", "gc_pause_gen2"}
        assert report["decide"]["count"] == 202 and report["decide"]["p99"] <= report["decide"]["max"]
        stats.reset()
        assert stats.decide.count == 0


async def test_gc_pauses_are_measured_by_generation_while_an_engine_is_open(tmp_path) -> None:
    async with open_engine(str(tmp_path / "e.db")):
        before = GC_PAUSES.by_generation[2].count
        gc.collect()
        assert GC_PAUSES.by_generation[2].count == before + 1
    before = GC_PAUSES.by_generation[2].count
    gc.collect()  # no engine open: not measured
    assert GC_PAUSES.by_generation[2].count == before


async def test_the_gil_switch_interval_is_short_while_an_engine_is_open_and_restored_after(tmp_path):
    import sys
    before = sys.getswitchinterval()
    async with open_engine(tmp_path / "a.db", lag_probe_s=0) as _:
        assert sys.getswitchinterval() == pytest.approx(0.001)
        async with open_engine(tmp_path / "b.db", lag_probe_s=0, gil_switch_s=0.0005):
            assert sys.getswitchinterval() == pytest.approx(0.0005)  # the shortest asked for
        assert sys.getswitchinterval() == pytest.approx(0.001)
    assert sys.getswitchinterval() == pytest.approx(before)
    async with open_engine(tmp_path / "c.db", lag_probe_s=0, gil_switch_s=None):
        assert sys.getswitchinterval() == pytest.approx(before)
    with pytest.raises(ValueError, match="gil_switch_s"):
        async with open_engine(tmp_path / "d.db", gil_switch_s=0):
            pass


@pytest.mark.parametrize("policy", [True, False])
async def test_every_so_many_new_players_the_engine_collects_and_freezes_them(tmp_path, monkeypatch, policy):
    """Joins pile up long-lived objects that a full collection would scan all at once."""
    import thengine.runtime.engine as engine_module
    monkeypatch.setattr(engine_module, "FREEZE_EVERY_JOINS", 5)
    async with open_engine(tmp_path / "e.db", lag_probe_s=0, gc_freeze=policy) as engine:
        await engine.submit(CreateHunt(definition=hunt_definition("h", clues=2)))
        await engine.submit(StartHunt(hunt_id="h"))
        before = GC_PAUSES.freezes
        for p in range(12):
            await engine.submit(JoinHunt(hunt_id="h", player_id=f"p{p}"))
        if policy:
            assert GC_PAUSES.freezes - before >= 2  # after the 5th and the 10th join
            assert gc.get_freeze_count() > 0
        else:
            assert GC_PAUSES.freezes == before


async def test_a_closed_engine_drops_its_state_and_unfreezes(tmp_path):
    """Its hunts are freed at close by reference counting (no full collection needed,
    frozen or not), queries say it is closed, and the heap is unfrozen."""
    import weakref

    from thengine.errors import EngineClosed
    from thengine.domain.commands import Hunt

    gc.disable()  # only reference counting may free the state
    try:
        async with open_engine(tmp_path / "e.db", lag_probe_s=0) as engine:
            await engine.submit(CreateHunt(definition=hunt_definition("h", clues=2)))
            await engine.submit(JoinHunt(hunt_id="h", player_id="ann"))
            state = weakref.ref(engine.hunts["h"])
            assert gc.get_freeze_count() > 0
        assert state() is None
        assert gc.get_freeze_count() == 0
        with pytest.raises(EngineClosed):
            await engine.query(Hunt(hunt_id="h"))
    finally:
        gc.enable()


def test_the_thengine_process_keeps_its_heap_frozen_to_the_end(tmp_path):
    """Unfreezing at close would make one last full collection scan everything on the way out."""
    import subprocess
    import sys

    program = ("import atexit, gc, sys\n"
               "from thengine.cli import main\n"
               "atexit.register(lambda: print('frozen', gc.get_freeze_count()))\n"
               "sys.argv = ['thengine', 'bench', '--hunts', '2', '--players', '20', '--concurrency', '5', '--commands', '200']\n"
               "main()\n")
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, cwd=tmp_path,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    frozen = int(done.stdout.rsplit("frozen ", 1)[1])
    assert frozen > 1000
    assert GC_PAUSES.unfreeze_at_release  # (this process is not the command)
