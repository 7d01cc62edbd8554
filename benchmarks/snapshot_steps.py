"""How long a big hunt's snapshot holds the event loop: whole, or a step at a time.

Not a test. Run from the repository:  python benchmarks/snapshot_steps.py [--players N]

Builds a hunt of N players (default 10,000) who have each solved a clue, then times,
in the same run: `to_snapshot` plus its encoding (what the engine did in one go: the
loop, then the writer thread holding the GIL), against `SnapshotBuilder` steps of
`SNAPSHOT_SLICE` (the longest single step is what the loop waits for).
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.domain.play import Game, clue, hunt  # noqa: E402
from thengine.domain.commands import JoinHunt, SubmitAnswer  # noqa: E402
from thengine.domain.state import to_snapshot  # noqa: E402
from thengine.runtime.engine import SNAPSHOT_SLICE  # noqa: E402
from thengine.runtime.snapshots import SnapshotBuilder  # noqa: E402
from thengine.storage.codec import encode_snapshot  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--players", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    game = Game(hunt(*[clue(f"c{i}") for i in range(5)]))
    for p in range(args.players):
        game.run(JoinHunt(hunt_id="h", player_id=f"p{p}"))
        game.run(SubmitAnswer(hunt_id="h", player_id=f"p{p}", clue_id="c0", answer="c0"))
    state = game.state
    assert state is not None
    gc.freeze()
    for _ in range(args.rounds):
        started = time.perf_counter()
        data = to_snapshot(state)
        whole = time.perf_counter() - started
        started = time.perf_counter()
        encode_snapshot(data)
        encode = time.perf_counter() - started
        started = time.perf_counter()
        builder = SnapshotBuilder(state)
        steps = [time.perf_counter() - started]  # the first step: the key lists
        while True:
            started = time.perf_counter()
            done = builder.step(SNAPSHOT_SLICE)
            steps.append(time.perf_counter() - started)
            if done:
                break
        steps.sort()
        print(f"{args.players:,} players: whole {whole * 1000:.1f} ms + encode {encode * 1000:.1f} ms | "
              f"{len(steps)} steps of {SNAPSHOT_SLICE}: p50 {steps[len(steps) // 2] * 1000:.2f} ms, "
              f"max {steps[-1] * 1000:.2f} ms, all {sum(steps) * 1000:.1f} ms; "
              f"longest hold of the loop, whole/step: {whole / steps[-1]:.0f}x", flush=True)


if __name__ == "__main__":
    main()
