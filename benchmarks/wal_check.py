"""What the deleted-WAL check costs a commit: `Store.check_wal` against `Store.write`.

Not a test. Run from the repository:  python benchmarks/wal_check.py [--batches N] [--dir D]

After `watch_wal`, every `Store.write` ends with `check_wal`: one `os.stat` of the
`-wal` file. Timing the check alone, many times, and dividing by the time of the
smallest commit (a one-event batch, as under light load) gives its cost at its
largest; whole-run comparisons drown a microsecond in the disk's noise.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import timeit
from pathlib import Path

from thengine.storage.store import Batch, EventRow, Store

T0 = 1_800_000_000_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=3000, help="one-event batches per sync mode (default 3000)")
    parser.add_argument("--dir", type=Path, default=None, help="where to put the databases (default: a temp dir)")
    args = parser.parse_args()
    data = json.dumps({"player_id": "player-1", "clue_id": "clue-1", "points": 100, "via": "answer"})
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        for sync in ("normal", "full"):
            with Store.open(Path(tmp) / f"wal-{sync}.db", sync=sync) as store:  # type: ignore[arg-type]
                writes = []
                for seq in range(1, args.batches + 1):
                    batch = Batch(events=[EventRow(seq=seq, hunt_id="hunt", version=seq, type="clue_solved",
                                                   ts=T0 + seq, data=data)])
                    started = time.perf_counter()
                    store.write(batch)  # not watched yet: the commit alone
                    writes.append(time.perf_counter() - started)
                store.watch_wal()
                check = min(timeit.repeat(store.check_wal, number=20_000, repeat=5)) / 20_000
            writes.sort()
            median = writes[len(writes) // 2]
            print(f"sync={sync}: check_wal {check * 1e6:.2f} µs; a one-event commit {median * 1e6:.1f} µs "
                  f"(median, fastest {writes[0] * 1e6:.1f}); the check adds {100 * check / median:.2f}% "
                  f"({100 * check / writes[0]:.2f}% of the fastest)")


if __name__ == "__main__":
    main()
