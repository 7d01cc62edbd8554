"""Where a command's time goes: cheap histograms of each stage, the event loop's lag, GC pauses.

Every command passes through the same stages, each timed with one clock read at its
edges and one `Histogram.observe` (a bisect into fixed buckets, no lock, no
allocation):

- ``inbox_wait``: from `Engine.send` until a shard takes the command (0 when it is
  decided at once, in the sender's task);
- ``decide``: deciding it, evolving the state and encoding its events;
- ``commit_wait``: from decided until its batch starts to be written (the batch
  before it is being committed);
- ``commit``: one batch's write, in the writer thread (per batch), and ``commit_sync``
  the COMMIT statement within it, where SQLite's fsync happens;
- ``loop_lag``: how late a 10 ms sleep wakes up: anything holding the event loop
  (a long callback, a GC pause) shows here;
- ``gc_pause_gen0`` / ``gen1`` / ``gen2``: each garbage collection, from
  `gc.callbacks` (process-wide).

A p99 that is bad shows in the stage that makes it. `Engine.stats` holds them; the
server exports them at ``/metrics`` and ``thengine bench`` prints them.
"""

from __future__ import annotations

import gc
import math
import sys
import time
from bisect import bisect_left
from typing import Any

#: Bucket upper bounds in seconds: from 1 µs to about 100 s, each 5% above the last, so a
#: percentile read from the buckets is within 5% of the sample's.
BOUNDS: tuple[float, ...] = tuple(1e-6 * 1.05 ** k for k in range(int(math.log(1e8) / math.log(1.05)) + 2))

#: The coarser bounds of the Prometheus exposition (cumulative counts at each).
EXPORT_BOUNDS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                 10.0)

STAGES = ("inbox_wait", "decide", "commit_wait", "commit", "commit_sync", "loop_lag")
GC_STAGES = ("gc_pause_gen0", "gc_pause_gen1", "gc_pause_gen2")

#: A full collection longer than this freezes its survivors (see `GcPauses`).
FREEZE_AFTER_S = 0.002

#: New players between two `GcPauses.collect_and_freeze` (each adds a few tracked objects).
FREEZE_EVERY_JOINS = 1000

#: How often the loop-lag probe sleeps.
LAG_PROBE_S = 0.01


class Histogram:
    """Durations in seconds, counted in `BOUNDS` buckets, with their sum and maximum."""

    __slots__ = ("counts", "count", "sum", "max")

    def __init__(self) -> None:
        self.counts = [0] * (len(BOUNDS) + 1)
        self.count = 0
        self.sum = 0.0
        self.max = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(BOUNDS, seconds)] += 1
        self.count += 1
        self.sum += seconds
        if seconds > self.max:
            self.max = seconds

    def percentile(self, q: float) -> float:
        """The `q` quantile (0..1) in seconds: its bucket's upper bound, never above the max."""
        if not self.count:
            return 0.0
        rank = max(1, math.ceil(q * self.count))
        seen = 0
        for index, n in enumerate(self.counts):
            seen += n
            if seen >= rank:
                return min(self.max, BOUNDS[index]) if index < len(BOUNDS) else self.max
        return self.max

    def summary_ms(self) -> dict[str, float]:
        """``{"p50", "p99", "max", "count"}``, durations in milliseconds."""
        return {"p50": round(self.percentile(0.5) * 1000, 3), "p99": round(self.percentile(0.99) * 1000, 3),
                "max": round(self.max * 1000, 3), "count": self.count}

    def cumulative(self, bounds: tuple[float, ...] = EXPORT_BOUNDS) -> list[tuple[float, int]]:
        """``(bound, samples at or under it)`` for each of `bounds`, then ``(inf, count)``."""
        out = []
        counts, index, seen = self.counts, 0, 0
        for bound in bounds:
            while index < len(BOUNDS) and BOUNDS[index] <= bound:
                seen += counts[index]
                index += 1
            out.append((bound, seen))
        out.append((math.inf, self.count))
        return out

    def reset(self) -> None:
        self.__init__()  # type: ignore[misc]


class GcPauses:
    """Every garbage collection's pause, by generation (one per process, from `gc.callbacks`),
    and the policy that keeps full collections short.

    A full (generation 2) collection scans every object that has lived long, so its
    pause grows with the heap: 100-300 ms for a server with 10,000 players. While an
    engine that asked for it (``gc_freeze``, the default) is open, the survivors of a
    full collection that took longer than `FREEZE_AFTER_S` are moved to the permanent
    generation (`gc.freeze`), as is the state recovered at open: the next full
    collections scan only what came since. Frozen objects are still freed by
    reference counting when dropped (the engine's state holds no reference cycles, and a
    closed engine drops its state); only a cycle among them that becomes garbage waits:
    everything is unfrozen when the last such engine closes, and the next full
    collection takes it. A process that ends when its engine closes (the `thengine`
    command) sets `unfreeze_at_release` to False: unfreezing would only make one last
    full collection scan the whole heap (7 ms for a bare interpreter with thengine
    loaded) on the way out.
    """

    def __init__(self) -> None:
        self.by_generation = (Histogram(), Histogram(), Histogram())
        self._started = 0.0
        self._users = 0
        self._freezers = 0
        self.freezes = 0
        self.unfreeze_at_release = True

    def acquire(self, *, freeze: bool = False) -> None:
        """Start measuring (engines in one process share it); `freeze`: the policy too."""
        if self._users == 0:
            gc.callbacks.append(self._callback)
        self._users += 1
        if freeze:
            self._freezers += 1

    def release(self, *, freeze: bool = False) -> None:
        if freeze:
            self._freezers -= 1
            if self._freezers == 0 and self.unfreeze_at_release:
                gc.unfreeze()
        self._users -= 1
        if self._users == 0:
            gc.callbacks.remove(self._callback)

    def freeze(self) -> None:
        """Move every object alive now to the permanent generation (if the policy is on)."""
        if self._freezers:
            gc.freeze()
            self.freezes += 1

    def collect_and_freeze(self) -> None:
        """After a big load (if the policy is on): a full collection now, short because
        it scans only what came since the last freeze, then freeze what survived.

        Without it, the players who join between two freezes pile up until Python's
        own full collection scans them all at once (2,352 new players in a bench run:
        8.6 ms); every `FREEZE_EVERY_JOINS` joins keeps each scan to a few ms.
        """
        if self._freezers:
            gc.collect()
            self.freeze()

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        took = time.perf_counter() - self._started
        generation = info["generation"]
        self.by_generation[generation].observe(took)
        if generation == 2 and took > FREEZE_AFTER_S:
            self.freeze()

    def reset(self) -> None:
        for histogram in self.by_generation:
            histogram.reset()

    def worst(self) -> Histogram:
        """All generations in one histogram (for the bench's ``gc_pause_ms``)."""
        merged = Histogram()
        for histogram in self.by_generation:
            merged.counts = [a + b for a, b in zip(merged.counts, histogram.counts)]
            merged.count += histogram.count
            merged.sum += histogram.sum
            merged.max = max(merged.max, histogram.max)
        return merged


#: The process's GC pauses.
GC_PAUSES = GcPauses()


class SwitchInterval:
    """How long a thread may hold the GIL while another waits (`sys.setswitchinterval`),
    set while engines that ask for it are open, and restored when the last one closes.

    The writer thread gives up the GIL around every SQLite call and must win it back
    from the event loop, which under load holds it until forced to switch: the default
    5 ms, several times per commit. At 10,000 commands/s that wait, not the disk, was
    most of the commit (commit p99 0.5-2.7 s against an fsync p99 of 12-270 ms); at
    1 ms, command p99 fell 3-9x with no loss of throughput.
    """

    def __init__(self) -> None:
        self._users: list[float] = []
        self._previous = 0.0

    def acquire(self, seconds: float | None) -> None:
        if seconds is None:
            return
        if not self._users:
            self._previous = sys.getswitchinterval()
        self._users.append(seconds)
        sys.setswitchinterval(min(self._users))

    def release(self, seconds: float | None) -> None:
        if seconds is None:
            return
        self._users.remove(seconds)
        sys.setswitchinterval(min(self._users) if self._users else self._previous)


#: The process's GIL switch interval, as engines want it.
SWITCH_INTERVAL = SwitchInterval()


class EngineStats:
    """One engine's stage histograms (`STAGES`) plus the process's GC pauses."""

    def __init__(self) -> None:
        self.inbox_wait = Histogram()
        self.decide = Histogram()
        self.commit_wait = Histogram()
        self.commit = Histogram()
        self.commit_sync = Histogram()
        self.loop_lag = Histogram()
        self.gc = GC_PAUSES

    def histograms(self) -> dict[str, Histogram]:
        """Every stage by name, the GC generations included."""
        out = {name: getattr(self, name) for name in STAGES}
        for name, histogram in zip(GC_STAGES, self.gc.by_generation):
            out[name] = histogram
        return out

    def to_json(self) -> dict[str, dict[str, float]]:
        """``{stage: {"p50", "p99", "max", "count"}}`` in milliseconds."""
        return {name: histogram.summary_ms() for name, histogram in self.histograms().items()}

    def reset(self) -> None:
        """Start counting the stages afresh (say, after a warm-up). The GC pauses are the
        process's, not this engine's: ``stats.gc.reset()`` for those."""
        for name in STAGES:
            getattr(self, name).reset()
