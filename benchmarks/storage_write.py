"""How fast `Store.write` appends: events/s for batches of 100 and 1000, sync full and normal.

Not a test. Run from the repository:  python benchmarks/storage_write.py [--events N] [--dir D] [--gil]

With --gil, the writes run in a thread while the main thread keeps the GIL busy, as
the engine's event loop does under load: `Store.write` (one statement per table) and
the old `executemany` (a statement step per row, each one winning the GIL back) in
the same run.

Each event carries a realistic ~120-byte JSON payload and every event has a command
record (the worst case: every command sent with a command_id), so the numbers cover
the committer's real transaction, not just the events table.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from thengine.storage.store import Batch, CommandRecord, EventRow, Store

T0 = 1_800_000_000_000


def batches(total: int, size: int, hunts: int = 100) -> list[Batch]:
    """Pre-built batches, so the timing measures storage only."""
    versions = [0] * hunts
    out = []
    for start in range(1, total + 1, size):
        events, commands = [], []
        for seq in range(start, min(start + size, total + 1)):
            hunt = seq % hunts
            versions[hunt] += 1
            command_id = f"req-{seq:08x}-{hash((seq, 'k')) & 0xFFFFFFFF:08x}"
            data = {"player_id": f"player-{seq % 10_000}", "team_id": f"team-{seq % 500}",
                    "clue_id": f"clue-{seq % 20}", "points": 100, "via": "answer"}
            events.append(EventRow(seq=seq, hunt_id=f"hunt-{hunt}", version=versions[hunt], type="clue_solved",
                                   ts=T0 + seq, data=json.dumps(data), command_id=command_id))
            commands.append(CommandRecord(command_id=command_id, fingerprint=f"{seq:064x}", hunt_id=f"hunt-{hunt}",
                                          first_seq=seq, last_seq=seq, ts=T0 + seq))
        out.append(Batch(events=events, commands=commands))
    return out


def run(directory: Path, *, total: int, size: int, sync: str) -> float:
    path = directory / f"bench-{size}-{sync}.db"
    work = batches(total, size)
    with Store.open(path, sync=sync) as store:  # type: ignore[arg-type]
        started = time.perf_counter()
        for batch in work:
            store.write(batch)
        elapsed = time.perf_counter() - started
    return total / elapsed


_OLD_EVENTS = "INSERT INTO events (seq, hunt_id, version, type, ts, data, command_id) VALUES (?, ?, ?, ?, ?, ?, ?)"
_OLD_COMMANDS = ("INSERT INTO commands (command_id, fingerprint, hunt_id, first_seq, last_seq, ts) "
                 "VALUES (?, ?, ?, ?, ?, ?)")


def write_executemany(store: Store, batch: Batch) -> None:
    with store.conn:
        store.conn.executemany(_OLD_EVENTS, batch.events)
        store.conn.executemany(_OLD_COMMANDS, batch.commands)


def against_a_busy_gil(directory: Path, *, size: int, count: int) -> None:
    """Batch write times in a thread while the main thread runs Python non-stop."""
    import threading

    for name, write in (("Store.write", Store.write), ("executemany", write_executemany)):
        path = directory / f"gil-{name}.db"
        work = batches(size * count, size)
        times: list[float] = []
        with Store.open(path, sync="normal") as store:
            def writer() -> None:
                for batch in work:
                    started = time.perf_counter()
                    write(store, batch)
                    times.append(time.perf_counter() - started)
            thread = threading.Thread(target=writer)
            thread.start()
            spins = 0
            while thread.is_alive():
                spins += sum(range(50)) and 1  # pure Python: holds the GIL between switches
            thread.join()
        times.sort()
        print(f"busy GIL, {name:<12} batch={size}: p50 {times[len(times) // 2] * 1000:8.1f} ms, "
              f"max {times[-1] * 1000:8.1f} ms per batch", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000, help="events per run (default 200000)")
    parser.add_argument("--dir", type=Path, default=None, help="where to put the databases (default: a temp dir)")
    parser.add_argument("--gil", action="store_true", help="batch times against a busy GIL instead")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        if args.gil:
            against_a_busy_gil(Path(tmp), size=500, count=10)
            return
        for sync in ("full", "normal"):
            for size in (100, 1000):
                rate = run(Path(tmp), total=args.events, size=size, sync=sync)
                print(f"sync={sync:<6} batch={size:<5} {rate:>10,.0f} events/s", flush=True)


if __name__ == "__main__":
    main()
