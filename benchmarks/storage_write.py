"""How fast `Store.write` appends: events/s for batches of 100 and 1000, sync full and normal.

Not a test. Run from the repository:  python benchmarks/storage_write.py [--events N] [--dir D]

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000, help="events per run (default 200000)")
    parser.add_argument("--dir", type=Path, default=None, help="where to put the databases (default: a temp dir)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        for sync in ("full", "normal"):
            for size in (100, 1000):
                rate = run(Path(tmp), total=args.events, size=size, sync=sync)
                print(f"sync={sync:<6} batch={size:<5} {rate:>10,.0f} events/s", flush=True)


if __name__ == "__main__":
    main()
