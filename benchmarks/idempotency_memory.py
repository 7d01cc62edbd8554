"""What remembering command ids costs: memory per id, RSS growth, and throughput.

Not a test. Run from the repository:  python benchmarks/idempotency_memory.py [--commands N] [--dir D]

Each configuration runs in a fresh subprocess (so one run's heap never counts in the
next) and sends N commands (default 200,000) from 100 concurrent submitters to an
embedded engine: 5 hunts, 500 players, sync full. The commands are wrong answers
(hunts without a cooldown, so every one is accepted and writes one event, and the
hunts' state stays the same size), so the RSS growth is what the log's bookkeeping
and the idempotency records cost, not the game. Ids are random (64 random bits after
the player id, as a client would make them), which is the hard case for the index.
RSS (VmRSS) is read after set-up, after the first N/2 commands and after the rest.

Configurations, all in the same run:

- no ids: the baseline;
- ids as before the cap: every id kept in memory, no command_id index on disk;
- ids, every id kept, with the index: what maintaining the index costs alone;
- ids, the default `remember_commands` (100,000): memory fills during the first half;
  in the second, ids leave it, and every new id is looked up on disk first;
- ids, a small `remember_commands`: almost every command's id is looked up.

Printed per configuration: commands/s and its ratio to the baseline and to "before",
and the same as CPU time per command (all threads: steadier than wall time when the
machine is shared);
RSS growth over each half (the target: at most 25 MiB over the second half with the
default cap), the page caches' size at the end, and the RSS cost per command with
an id over the baseline's (in the first half, while memory fills: bytes per
remembered id; in the second: what stays bounded).
"""

from __future__ import annotations

import argparse
import json
from array import array
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import apsw
import trio

from thengine.domain.commands import CreateHunt, JoinHunt, StartHunt, SubmitAnswer
from thengine.domain.definition import Clue, HuntDefinition
from thengine.runtime.engine import open_engine
from thengine.storage.store import Store

HUNTS = 5
PLAYERS = 500
SUBMITTERS = 100
MIB = 1 << 20


def rss_bytes() -> int:
    """This process's resident set size, from /proc/self/status."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


async def page_caches(engine: Any) -> int:
    """Bytes in the page caches of the engine's three SQLite connections."""
    total = 0
    for store in (engine._store, engine._reader, engine._checkpointer):
        while True:
            try:
                total += store.conn.status(apsw.SQLITE_DBSTATUS_CACHE_USED)[0]
                break
            except apsw.ThreadingViolationError:  # in use by an engine thread: ask again shortly
                await trio.sleep(0.001)
    return total


def definition(hunt_id: str) -> HuntDefinition:
    return HuntDefinition(id=hunt_id, title=f"Memory hunt {hunt_id}", order="any",
                          clues=tuple(Clue(id=f"c{k}", prompt=f"clue {k}", points=10, answers=(f"answer-{k}",))
                                      for k in range(3)))


async def measure(path: str, *, commands: int, ids: bool, options: dict[str, Any]) -> dict[str, Any]:
    """One configuration, in this process: rates and RSS at set-up, half-way and the end."""
    hunts = [f"mem-{h}" for h in range(HUNTS)]
    players = [(hunts[p % HUNTS], f"p{p}") for p in range(PLAYERS)]
    bits = random.Random(7).getrandbits
    latencies = array("d", [0.0]) * commands  # allocated before the first RSS reading
    done = 0
    async with open_engine(path, sync="full", **options) as engine:
        for hunt_id in hunts:
            assert (await engine.submit(CreateHunt(definition=definition(hunt_id)))).ok
            assert (await engine.submit(StartHunt(hunt_id=hunt_id))).ok
        for hunt_id, player_id in players:
            assert (await engine.submit(JoinHunt(hunt_id=hunt_id, player_id=player_id))).ok
        marks: list[tuple[float, float, int, int]] = []

        async def half(count: int) -> None:
            share, extra = divmod(count, SUBMITTERS)

            async def submitter(k: int) -> None:
                nonlocal done
                mine = players[k::SUBMITTERS]
                for i in range(share + (k < extra)):
                    hunt_id, player_id = mine[i % len(mine)]
                    command = SubmitAnswer(hunt_id=hunt_id, player_id=player_id, clue_id=f"c{i % 3}",
                                           answer=f"guess {i}")
                    command_id = f"{player_id}/{bits(64):016x}" if ids else None
                    started = trio.current_time()
                    result = await engine.submit(command, command_id=command_id)
                    latencies[done] = trio.current_time() - started
                    done += 1
                    assert result.ok, result

            async with trio.open_nursery() as nursery:
                for k in range(SUBMITTERS):
                    nursery.start_soon(submitter, k)
            marks.append((time.perf_counter(), time.process_time(), rss_bytes(), await page_caches(engine)))

        marks.append((time.perf_counter(), time.process_time(), rss_bytes(), await page_caches(engine)))
        await half(commands // 2)
        await half(commands - commands // 2)
        remembered = len(engine._commands)
    (t0, cpu0, r0, _), (t1, _, r1, _), (t2, cpu2, r2, cache) = marks
    ordered = sorted(latencies)
    return {"rate": commands / (t2 - t0), "cpu_us": (cpu2 - cpu0) / commands * 1e6, "rate2": (commands - commands // 2) / (t2 - t1), "rss0": r0,
            "growth1": r1 - r0, "growth2": r2 - r1, "cache": cache, "remembered": remembered,
            "p50_ms": ordered[len(ordered) // 2] * 1000, "p99_ms": ordered[len(ordered) * 99 // 100] * 1000}


def worker(spec: str) -> None:
    job = json.loads(spec)
    if job["drop_index"]:  # the schema before the command_id index
        with Store.open(job["path"]) as store:
            store.conn.execute("DROP INDEX commands_command_id")
    result = trio.run(lambda: measure(job["path"], commands=job["commands"], ids=job["ids"], options=job["options"]))
    print(json.dumps(result))


def run(directory: Path, name: str, *, commands: int, ids: bool, options: dict[str, Any],
        drop_index: bool) -> dict[str, Any]:
    path = directory / f"{name}.db"
    for leftover in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        leftover.unlink(missing_ok=True)
    job = {"path": str(path), "commands": commands, "ids": ids, "options": options, "drop_index": drop_index}
    out = subprocess.run([sys.executable, __file__, "--worker", json.dumps(job)], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{name} failed:\n{out.stderr}")
    return json.loads(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commands", type=int, default=200_000, help="commands per configuration (default 200000)")
    parser.add_argument("--small", type=int, default=10_000, help="the small remember_commands (default 10000)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per configuration; the median is shown")
    parser.add_argument("--dir", type=Path, default=None, help="where to put the databases (default: a temp dir)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker)
        return
    n, half = args.commands, args.commands // 2
    every = {"remember_commands": 2 * n}
    configs: list[tuple[str, bool, dict[str, Any], bool]] = [
        ("no ids (baseline)", False, {}, False),
        ("ids, before: all in memory, no index", True, every, True),
        ("ids, all in memory, with the index", True, every, False),
        ("ids, default remember_commands", True, {}, False),
        (f"ids, remember_commands={args.small:,}", True, {"remember_commands": args.small}, False),
    ]
    print(f"thengine idempotency memory: {n:,} commands, {HUNTS} hunts, {PLAYERS} players, {SUBMITTERS} submitters, "
          f"sync full; {os.cpu_count()} cores, Python {platform.python_version()}, SQLite {apsw.sqlite_lib_version()}",
          flush=True)
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="thengine-idmem-") as tmp:
        # Round robin, so that a change in the machine's load falls on every configuration alike.
        runs: list[list[dict[str, Any]]] = [[] for _ in configs]
        for repeat in range(args.repeat):
            for index, (name, ids, options, drop_index) in enumerate(configs):
                runs[index].append(run(Path(tmp), f"c{index}", commands=n, ids=ids, options=options,
                                       drop_index=drop_index))
            print(f"  round {repeat + 1} of {args.repeat} done (load average {os.getloadavg()[0]:.2f})", flush=True)
        for (name, ids, _, _), done in zip(configs, runs):
            r = {key: statistics.median(one[key] for one in done) for key in done[0]}
            results.append(r)
            base, before = results[0], results[1] if len(results) > 1 else None
            line = (f"{name:<40} {r['rate']:>7,.0f} commands/s ({r['rate'] / base['rate']:.2f}x baseline"
                    + (f", {r['rate'] / before['rate']:.2f}x before" if before is not None and ids else "")
                    + f"; second half {r['rate2']:,.0f}/s; latency p50 {r['p50_ms']:.1f} ms, "
                    f"p99 {r['p99_ms']:.1f} ms)\n"
                    f"{'':<40} CPU {r['cpu_us']:.1f} us per command, all threads ({base['cpu_us'] / r['cpu_us']:.2f}x "
                    "baseline's commands per CPU-second"
                    + (f", {before['cpu_us'] / r['cpu_us']:.2f}x before's" if before is not None and ids else "")
                    + ")\n"
                    f"{'':<40} RSS {r['rss0'] / MIB:.1f} MiB after set-up, +{r['growth1'] / MIB:.1f} MiB over the "
                    f"first {half:,}, +{r['growth2'] / MIB:.1f} MiB over the second; page caches "
                    f"{r['cache'] / MIB:.1f} MiB; {r['remembered']:,.0f} ids in memory")
            if ids:
                line += (f"\n{'':<40} per command, over the baseline: {(r['growth1'] - base['growth1']) / half:,.0f} B "
                         f"(first half), {(r['growth2'] - base['growth2']) / (n - half):,.0f} B (second)")
            print(line, flush=True)


if __name__ == "__main__":
    main()
