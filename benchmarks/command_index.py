"""What the command_id index costs the write path, and what a lookup through it costs.

Not a test. Run from the repository:  python benchmarks/command_index.py [--rows N] [--dir D]

The engine keeps only the newest command ids in memory; older ones are found on disk
through the `commands_command_id` index (migration 0003). Random keys make every insert
into that index a write to a random b-tree page, so this measures, in one run and on
the same disk:

- `Store.write` of N events that each carry a command record (every command sent with
  an id: the worst case), in batches of 100 (a busy engine's group commits), sync
  full, with a checkpointer beside the writer as the engine runs one: once without the
  index (schema 2, the baseline) and once with it. Rates are shown per fifth of N, so
  the trend as the index outgrows the page cache is visible, and as ratios;
- `Store.find_commands` on the indexed database, 256 ids per call as the engine
  batches them: ids that are there (a repeat) and ids that are not (every new id, once
  ids have left memory).

Ids are random (64 bits after a player id), as clients make them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import tempfile
import threading
import time
from pathlib import Path

import apsw

from thengine.storage.store import Batch, CommandRecord, EventRow, Store

T0 = 1_800_000_000_000
BATCH = 100
LOOKUP_BATCH = 256


def command_id(rng: random.Random, seq: int) -> str:
    return f"p{seq % 500}/{rng.getrandbits(64):016x}"


def write(path: Path, *, rows: int, index: bool) -> tuple[list[float], list[str]]:
    """Rows/s over each fifth of `rows`, and a sample of the ids written."""
    rng = random.Random(1)
    data = json.dumps({"player_id": "p123", "clue_id": "c1", "answer": "the old mill", "attempts": 2})
    sample: list[str] = []
    with Store.open(path, sync="full") as store:
        if not index:
            store.conn.execute("DROP INDEX commands_command_id")
        store.disable_autocheckpoint()
        stop = threading.Event()

        def checkpoints() -> None:
            with Store.open(path, sync="full", migrate=False) as checkpointer:
                while not stop.wait(1.0):
                    checkpointer.checkpoint()

        thread = threading.Thread(target=checkpoints)
        thread.start()
        rates = []
        try:
            fifth = rows // 5
            seq = 0
            for _ in range(5):
                started = time.perf_counter()
                for _ in range(fifth // BATCH):
                    events, commands = [], []
                    for _ in range(BATCH):
                        seq += 1
                        cid = command_id(rng, seq)
                        if seq % 97 == 0:
                            sample.append(cid)
                        events.append(EventRow(seq=seq, hunt_id=f"h{seq % 5}", version=seq, type="answer_wrong",
                                               ts=T0 + seq, data=data, command_id=cid))
                        commands.append(CommandRecord(command_id=cid, fingerprint=f"{seq:032x}", hunt_id=f"h{seq % 5}",
                                                      first_seq=seq, last_seq=seq, ts=T0 + seq))
                    store.write(Batch(events=events, commands=commands))
                rates.append(fifth / (time.perf_counter() - started))
        finally:
            stop.set()
            thread.join()
    return rates, sample


def lookups(path: Path, ids: list[str]) -> float:
    """Microseconds per id found by `find_commands`, `LOOKUP_BATCH` ids per call."""
    with Store.open(path, readonly=True) as reader:
        started = time.perf_counter()
        for start in range(0, len(ids), LOOKUP_BATCH):
            reader.find_commands(ids[start:start + LOOKUP_BATCH], T0)
        return (time.perf_counter() - started) / len(ids) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="events with command records (default 1000000)")
    parser.add_argument("--dir", type=Path, default=None, help="where to put the databases (default: a temp dir)")
    args = parser.parse_args()
    print(f"thengine command_id index: {args.rows:,} events with command records, batches of {BATCH}, sync full; "
          f"{os.cpu_count()} cores, Python {platform.python_version()}, SQLite {apsw.sqlite_lib_version()}",
          flush=True)
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="thengine-cmdindex-") as tmp:
        without, _ = write(Path(tmp) / "without.db", rows=args.rows, index=False)
        print("without the index (baseline): " + ", ".join(f"{r:,.0f}" for r in without) + " rows/s per fifth",
              flush=True)
        path = Path(tmp) / "with.db"
        with_index, sample = write(path, rows=args.rows, index=True)
        print("with the index:               " + ", ".join(f"{r:,.0f}" for r in with_index) + " rows/s per fifth",
              flush=True)
        print("ratio with/without:           " + ", ".join(f"{a / b:.2f}" for a, b in zip(with_index, without))
              + f"; overall {len(with_index) / sum(1 / r for r in with_index) / (len(without) / sum(1 / r for r in without)):.2f}",
              flush=True)
        rng = random.Random(2)
        rng.shuffle(sample)
        hits = lookups(path, sample)
        misses = lookups(path, [command_id(rng, seq) for seq in range(10_000)])
        size = {name: os.path.getsize(Path(tmp) / f"{name}.db") for name in ("without", "with")}
        print(f"lookups: {hits:.1f} us per id found, {misses:.1f} us per id not found "
              f"({LOOKUP_BATCH} per call); database {size['without'] / 2**20:,.0f} MiB without the index, "
              f"{size['with'] / 2**20:,.0f} MiB with it")


if __name__ == "__main__":
    main()
