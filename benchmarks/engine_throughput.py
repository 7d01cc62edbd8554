"""The engine against its ceiling: group commit alone vs the full engine, and more.

Not a test. Run from the repository:  python benchmarks/engine_throughput.py [--quick] [--dir D]

In one run, on the same disk:

(a) a bare group-commit loop: 100 trio tasks append rows to the events table of a
    thengine database (WAL, synchronous=FULL); one committer takes every waiting row,
    writes them in ONE transaction with ONE thread hop (trio.to_thread.run_sync), and
    acknowledges the tasks after COMMIT. No rules, no JSON, no engine: the ceiling.
(b) the engine with the full game rules, through thengine/sim/bench.py (100 hunts, 10,000
    players, 100 concurrent submitters, sync full). b/a says what the engine costs.

Then: latency at an offered 10,000 and 2,000 commands/s (open loop, measured from each command's
scheduled time), each beside the bare loop offered the same rate in the same run (sync full, and
10,000/s at sync normal), with the p99 ratio engine/bare; full replay speed (thengine/history/replay.py) on the database (b) wrote and
on a larger synthetic log; how long opening a database takes with snapshots and
without; and the memory an active player costs in a 10,000-player hunt.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import apsw
import trio

from thengine.sim.bench import BenchConfig, BenchResult, Workload, hunt_definition, joined_at_setup, percentiles, run_bench
from thengine.domain.commands import CreateHunt, JoinHunt, Rejection, StartHunt
from thengine.domain.events import StoredEvent
from thengine.domain.rules import decide, evolve
from thengine.domain.state import HuntState
from thengine.history.replay import replay
from thengine.runtime.engine import open_engine
from thengine.storage.store import Batch, EventRow, Store

T0 = 1_800_000_000_000
_INSERT = "INSERT INTO events (seq, hunt_id, version, type, ts, data) VALUES (?, ?, ?, ?, ?, ?)"


# -- (a) the bare group-commit loop ----------------------------------------------------------

def write_rows(conn: apsw.Connection, rows: list[tuple[object, ...]]) -> None:
    """One batch, one transaction (in the writer thread)."""
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany(_INSERT, rows)
    conn.execute("COMMIT")


async def group_commit(path: Path, *, tasks: int, appends: int) -> tuple[float, dict[str, float]]:
    """Appends/s and latency percentiles of the bare loop."""
    store = Store.open(path, sync="full")  # thengine's schema and pragmas: WAL, synchronous=FULL
    conn = store.conn
    pending: list[tuple[object, ...]] = []
    waiters: list[trio.Event] = []
    wakeup = trio.Event()
    latencies: list[float] = []
    versions = [0] * tasks
    seq = 0
    data = json.dumps({"player_id": "p1234", "clue_id": "c2", "answer": "the old mill", "attempts": 1})

    async def committer() -> None:
        nonlocal wakeup, pending, waiters
        while True:
            if not pending:
                wakeup = trio.Event()
                await wakeup.wait()
            rows, done = pending, waiters
            pending, waiters = [], []
            await trio.to_thread.run_sync(write_rows, conn, rows)
            for event in done:
                event.set()

    async def appender(k: int, count: int) -> None:
        nonlocal seq
        clock = trio.current_time
        for _ in range(count):
            seq += 1
            versions[k] += 1
            done = trio.Event()
            pending.append((seq, f"h{k}", versions[k], "answer_wrong", T0 + seq, data))
            waiters.append(done)
            wakeup.set()
            started = clock()
            await done.wait()
            latencies.append(clock() - started)

    share, extra = divmod(appends, tasks)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(committer)
            started = trio.current_time()
            async with trio.open_nursery() as appenders:
                for k in range(tasks):
                    appenders.start_soon(appender, k, share + (k < extra))
            elapsed = trio.current_time() - started
            nursery.cancel_scope.cancel()
    finally:
        store.close()
    return appends / elapsed, percentiles(latencies)


async def bare_open_loop(path: Path, *, rate: float, appends: int, sync: str = "full") -> tuple[float, dict[str, float]]:
    """The bare loop offered `rate` appends/s on a fixed timetable (latency from the
    scheduled time, as `thengine bench --rate`): the floor the engine's tail is judged by."""
    store = Store.open(path, sync=sync)
    store.disable_autocheckpoint()  # (as the engine: its checkpoints run beside the commits)
    conn = store.conn
    pending: list[tuple[object, ...]] = []
    due: list[float] = []
    latencies: list[float] = []
    wakeup = trio.Event()
    data = json.dumps({"player_id": "p1234", "clue_id": "c2", "answer": "the old mill", "attempts": 1})

    async def committer() -> None:
        nonlocal wakeup, pending, due
        while True:
            if not pending:
                wakeup = trio.Event()
                await wakeup.wait()
            rows, scheduled = pending, due
            pending, due = [], []
            await trio.to_thread.run_sync(write_rows, conn, rows)
            now = trio.current_time()
            latencies.extend(now - t for t in scheduled)

    interval = 1.0 / rate
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(committer)
            start = trio.current_time()
            i = 0
            while i < appends:
                now = trio.current_time()
                while i < appends and start + i * interval <= now:
                    i += 1
                    pending.append((i, f"h{i % 100}", i, "answer_wrong", T0 + i, data))
                    due.append(start + (i - 1) * interval)
                wakeup.set()
                if i < appends:
                    await trio.sleep_until(start + i * interval)
            while len(latencies) < appends:
                await trio.sleep(0.001)
            elapsed = trio.current_time() - start
            nursery.cancel_scope.cancel()
    finally:
        store.close()
    return appends / elapsed, percentiles(latencies)


# -- a larger synthetic log, written directly ----------------------------------------------

def synthetic_log(path: Path, *, hunts: int, players: int, events: int) -> int:
    """A valid log of about `events` events, decided by the real rules but written in big batches."""
    definitions = [hunt_definition(f"syn-{i:03d}", clues=5) for i in range(hunts)]
    states: dict[str, HuntState] = {}
    rows: list[EventRow] = []
    seq = 0
    now = T0
    with Store.open(path, sync="normal") as store:

        def apply(command: object) -> None:
            nonlocal seq, now
            now += 1
            hunt_id = command.hunt_id  # type: ignore[attr-defined]
            state = states.get(hunt_id)
            decision = decide(state, command, now=now)  # type: ignore[arg-type]
            if isinstance(decision, Rejection):
                return
            version = state.version if state is not None else 0
            for new in decision:
                seq += 1
                version += 1
                text = json.dumps(new.data, separators=(",", ":"))
                state = evolve(state, StoredEvent(seq=seq, hunt_id=hunt_id, version=version, type=new.type,
                                                  ts=now, data=new.data))
                rows.append(EventRow(seq=seq, hunt_id=hunt_id, version=version, type=new.type, ts=now, data=text))
            states[hunt_id] = state  # type: ignore[assignment]
            if len(rows) >= 20_000:
                store.write(Batch(events=rows))
                rows.clear()

        for definition in definitions:
            apply(CreateHunt(definition=definition))
            apply(StartHunt(hunt_id=definition.id))
        for i in range(players):
            if joined_at_setup(i):
                apply(JoinHunt(hunt_id=definitions[i % hunts].id, player_id=f"p{i}"))
        workload = Workload(definitions, range(players), random.Random(7))
        while seq < events:
            apply(workload.next())
        if rows:
            store.write(Batch(events=rows))
    return seq


# -- measurements ---------------------------------------------------------------------------

def replay_rate(path: Path) -> tuple[str, float, float]:
    """(what was replayed, events/s wall, events/s CPU) of a full replay from scratch; best of three."""
    best_wall = best_cpu = 0.0
    with Store.open(path, readonly=True) as store:
        for _ in range(3):
            wall, cpu = time.perf_counter(), time.process_time()
            result = replay(store)
            best_wall = max(best_wall, result.events / (time.perf_counter() - wall))
            best_cpu = max(best_cpu, result.events / (time.process_time() - cpu))
    players = sum(len(state.players) for state in result.hunts.values())
    what = f"{result.events:,} events, {len(result.hunts)} hunts of {players // len(result.hunts):,} players"
    return what, best_wall, best_cpu


async def open_seconds(path: Path) -> float:
    """Time until `open_engine` is ready (hunts rebuilt); closing is not counted."""
    started = time.perf_counter()
    async with open_engine(str(path), sync="normal"):
        ready = time.perf_counter() - started
    return ready


def open_times(path: Path, directory: Path) -> tuple[float, float, int]:
    """(seconds with snapshots, seconds without, snapshots) for opening `path`."""
    trio.run(open_seconds, path)  # the engine snapshots every hunt at close: now every hunt has one
    bare = directory / f"{path.stem}-no-snapshots.db"
    with Store.open(path, readonly=True) as store:
        store.backup_to(bare)
        snapshots = store.stats()["snapshots"]
    with Store.open(bare) as store:
        store.delete_snapshots()
    with_snapshots = min(trio.run(open_seconds, path) for _ in range(2))
    without = trio.run(open_seconds, bare)
    return with_snapshots, without, snapshots


def memory_per_player(players: int = 10_000) -> float:
    """Bytes of hunt state per active player: one hunt, `players` joined, each a little way in."""
    definition = hunt_definition("mem", clues=5)
    workload = Workload([definition], range(players), random.Random(3))
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    state: HuntState | None = None
    seq = 0
    commands = [CreateHunt(definition=definition), StartHunt(hunt_id="mem")]
    commands += [JoinHunt(hunt_id="mem", player_id=f"p{i}") for i in range(players) if joined_at_setup(i)]
    commands += [workload.next() for _ in range(players * 3)]
    del workload
    for now, command in enumerate(commands, start=T0):
        decision = decide(state, command, now=now)
        if isinstance(decision, Rejection):
            continue
        for new in decision:
            seq += 1
            state = evolve(state, StoredEvent(seq=seq, hunt_id="mem", version=seq, type=new.type, ts=now,
                                              data=new.data))
    del commands, decision
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert state is not None
    return (after - before) / len(state.players)


# -- the report -------------------------------------------------------------------------------

def lat(latency: dict[str, float]) -> str:
    return f"p50 {latency['p50']:.2f} ms, p99 {latency['p99']:.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short run (about half a minute)")
    parser.add_argument("--dir", type=Path, default=None, help="where to put the databases (default: a temp dir)")
    args = parser.parse_args()
    commands = 20_000 if args.quick else 100_000
    synthetic_events = 300_000 if args.quick else 1_000_000
    rows: list[tuple[str, str]] = []

    def show(name: str, value: str) -> None:
        rows.append((name, value))
        print(f"  {name}: {value}", file=sys.stderr, flush=True)

    print(f"thengine engine throughput ({'quick' if args.quick else 'full'} run; {os.cpu_count()} cores, "
          f"Python {platform.python_version()}, SQLite {apsw.sqlite_lib_version()})", file=sys.stderr)
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="thengine-throughput-") as tmp:
        directory = Path(tmp)
        rate_a, latency_a = trio.run(lambda: group_commit(directory / "bare.db", tasks=100, appends=commands))
        show("(a) bare group commit, 100 tasks, sync full", f"{rate_a:,.0f} appends/s, {lat(latency_a)}")

        engine_db = directory / "engine.db"
        b: BenchResult = trio.run(lambda: run_bench(BenchConfig(commands=commands, db=str(engine_db))))
        show("(b) engine, full rules, 100 hunts / 10,000 players / 100 concurrent, sync full",
             f"{b.commands_per_s:,.0f} commands/s ({b.events_per_s:,.0f} events/s), {lat(b.latency_ms)}")
        show("b/a", f"{b.commands_per_s / rate_a:.2f}")

        for sync, rate in (("full", 10_000), ("full", 2_000), ("normal", 10_000)):
            # The engine's tail against the bare loop's at the same rate, in the same run.
            n = commands if rate >= 10_000 else commands // 5
            bare_rate, bare = trio.run(lambda: bare_open_loop(directory / f"bare-{sync}-{rate}.db", rate=rate,
                                                              appends=n, sync=sync))
            offered = trio.run(lambda: run_bench(BenchConfig(commands=n, rate=rate, sync=sync)))
            q = offered.latency_ms
            show(f"open loop, {rate:,} commands/s offered, sync {sync}, latency from the scheduled time",
                 f"{offered.commands_per_s:,.0f} commands/s achieved; p50 {q['p50']:.1f} / p90 {q['p90']:.1f} / "
                 f"p99 {q['p99']:.1f} / p99.9 {q['p999']:.1f} / max {q['max']:.1f} ms; GC pause max "
                 f"{offered.gc_pause_ms['max']:.1f} ms")
            show(f"  the bare loop at {rate:,}/s, sync {sync}",
                 f"{bare_rate:,.0f} appends/s; p50 {bare['p50']:.1f} / p99 {bare['p99']:.1f} / max {bare['max']:.1f} ms")
            show(f"  p99 engine/bare at {rate:,}/s, sync {sync}", f"{q['p99'] / bare['p99']:.2f} (target <= 2)")

        what, wall, cpu = replay_rate(engine_db)
        show(f"replay from scratch, database (b) ({what})",
             f"{wall:,.0f} events/s ({cpu:,.0f} events per CPU-second)")

        synthetic = directory / "synthetic.db"
        started = time.perf_counter()
        synthetic_log(synthetic, hunts=20, players=50_000, events=synthetic_events)
        made = time.perf_counter() - started
        what, wall, cpu = replay_rate(synthetic)
        show(f"replay from scratch, synthetic log ({what}; made in {made:.0f} s)",
             f"{wall:,.0f} events/s ({cpu:,.0f} events per CPU-second)")

        with_s, without_s, snapshots = open_times(synthetic, directory)
        show(f"open the synthetic database, {snapshots} snapshots", f"{with_s * 1000:,.0f} ms")
        show("open it without snapshots (replay everything)", f"{without_s * 1000:,.0f} ms")
        with_s, without_s, snapshots = open_times(engine_db, directory)
        show(f"open database (b), {snapshots} snapshots", f"{with_s * 1000:,.0f} ms")
        show("open it without snapshots", f"{without_s * 1000:,.0f} ms")

        show("memory per active player (10,000-player hunt, tracemalloc)", f"{memory_per_player():,.0f} bytes")

    width = max(len(name) for name, _ in rows)
    print()
    print(f"{'measure':<{width}}  result")
    print(f"{'-' * width}  {'-' * 40}")
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()
