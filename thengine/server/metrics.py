"""Prometheus metrics of one server, in its own `CollectorRegistry` (never the global one).

Served at ``GET /metrics`` in the Prometheus text format::

    thengine_commands_total{type,outcome}     commands by type and outcome (ok or a rejection code)
    thengine_queries_total{type,outcome}      queries likewise
    thengine_command_latency_seconds{type}    frame received -> result ready (includes the commit)
    thengine_commit_latency_seconds           one group-commit transaction
    thengine_commit_batch_size                commands (and timer firings) per committed batch
    thengine_committed_events_total           events made durable
    thengine_committed_seq                    the last durable seq
    thengine_inbox_depth{shard}               commands waiting in each shard's inbox
    thengine_connections                      open WebSocket connections (authenticated or not)
    thengine_subscribers                      active subscriptions
    thengine_events_pushed_total{view}        events handed to subscribers (fan-out count)
    thengine_event_encodings_total{view}      events encoded for pushing (once per view, not per subscriber)
    thengine_slow_clients_dropped_total       connections closed for falling behind
    thengine_bad_frames_total                 frames answered with bad_request
    thengine_auth_failures_total              hellos refused
    thengine_stage_seconds{stage}             where a command's time goes: inbox_wait, decide, commit_wait,
                                              commit (per batch) and commit_sync (its COMMIT, the fsync)
    thengine_loop_lag_seconds                 how late the event loop wakes a 10 ms sleep
    thengine_gc_pause_seconds{generation}     garbage collection pauses
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable, Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric

from ..runtime.stats import Histogram as StageHistogram

if TYPE_CHECKING:
    from ..runtime.engine import Engine
    from .partitions import Hosted

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)


_STAGES = ("inbox_wait", "decide", "commit_wait", "commit", "commit_sync")


def _add(family: HistogramMetricFamily, labels: list[str], histogram: StageHistogram) -> None:
    buckets = [("+Inf" if bound == float("inf") else repr(bound), n) for bound, n in histogram.cumulative()]
    family.add_metric(labels, buckets, histogram.sum)


class _FromEngines:
    """Read from the engines at scrape time (nothing to keep in step): inbox depths, the
    committed seq, and their stage histograms (`runtime.stats`). On a cluster's node
    each has a ``partition`` label; the event loop's lag and GC pauses are the process's."""

    def __init__(self, partitions: Iterable[Hosted]) -> None:
        self._partitions = partitions

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        hosted = list(self._partitions)
        if not hosted:
            return
        labelled = hosted[0].index is not None
        extra = ["partition"] if labelled else []
        depth = GaugeMetricFamily("thengine_inbox_depth", "Commands waiting in each shard's inbox.",
                                  labels=[*extra, "shard"])
        seq = GaugeMetricFamily("thengine_committed_seq", "The last durable seq.", labels=extra)
        stages = HistogramMetricFamily("thengine_stage_seconds", "Where a command's time goes, by stage.",
                                       labels=[*extra, "stage"])
        for one in hosted:
            mine = [one.label] if labelled else []
            for shard, used in enumerate(one.engine.inbox_depths()):
                depth.add_metric([*mine, str(shard)], used)
            seq.add_metric(mine, one.engine.committed_seq)
            for name in _STAGES:
                _add(stages, [*mine, name], getattr(one.engine.stats, name))
        yield depth
        yield seq
        yield stages
        stats = hosted[0].engine.stats
        lag = HistogramMetricFamily("thengine_loop_lag_seconds", "How late the event loop wakes a short sleep.")
        _add(lag, [], stats.loop_lag)
        yield lag
        pauses = HistogramMetricFamily("thengine_gc_pause_seconds", "Garbage collection pauses.",
                                       labels=["generation"])
        for generation, histogram in enumerate(stats.gc.by_generation):
            _add(pauses, [str(generation)], histogram)
        yield pauses


class ServerMetrics:
    """The collectors of one server. `render` gives the ``/metrics`` body."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, partitions: Iterable[Hosted]) -> None:
        self.registry = registry = CollectorRegistry(auto_describe=False)
        self.commands = Counter("thengine_commands_total", "Commands by type and outcome.",
                                ["type", "outcome"], registry=registry)
        self.queries = Counter("thengine_queries_total", "Queries by type and outcome.",
                               ["type", "outcome"], registry=registry)
        self.command_latency = Histogram("thengine_command_latency_seconds",
                                         "From a command frame's arrival to its result (commit included).",
                                         ["type"], buckets=LATENCY_BUCKETS, registry=registry)
        self.commit_latency = Histogram("thengine_commit_latency_seconds", "One group-commit transaction.",
                                        buckets=LATENCY_BUCKETS, registry=registry)
        self.commit_batch = Histogram("thengine_commit_batch_size", "Commands per committed batch.",
                                      buckets=BATCH_BUCKETS, registry=registry)
        self.committed_events = Counter("thengine_committed_events", "Events made durable.", registry=registry)
        self.connections = Gauge("thengine_connections", "Open WebSocket connections.", registry=registry)
        self.subscribers = Gauge("thengine_subscribers", "Active subscriptions.", registry=registry)
        self.pushed = Counter("thengine_events_pushed", "Events handed to subscribers.", ["view"],
                              registry=registry)
        self.encodings = Counter("thengine_event_encodings", "Events encoded for pushing (once per view).",
                                 ["view"], registry=registry)
        self.slow_dropped = Counter("thengine_slow_clients_dropped", "Connections closed for falling behind.",
                                    registry=registry)
        self.bad_frames = Counter("thengine_bad_frames", "Frames answered with bad_request.", registry=registry)
        self.auth_failures = Counter("thengine_auth_failures", "Hellos refused.", registry=registry)
        self._command_counters: dict[tuple[str, str], Any] = {}
        self._latencies: dict[str, Any] = {}
        registry.register(_FromEngines(partitions))  # type: ignore[arg-type]

    def follow(self, engine: Engine) -> None:
        """Count `engine`'s commit batches (each engine of the server, once)."""
        engine.on_commit_batch(self.on_commit_batch)

    def command(self, type: str, outcome: str, seconds: float | None = None) -> None:
        """Count one command's outcome (and its latency, if it reached the engine).

        The labelled children are kept, so a command costs two dict lookups here,
        not two trips through prometheus_client's label lock.
        """
        key = (type, outcome)
        counter = self._command_counters.get(key)
        if counter is None:
            counter = self._command_counters[key] = self.commands.labels(type, outcome)
        counter.inc()
        if seconds is not None:
            latency = self._latencies.get(type)
            if latency is None:
                latency = self._latencies[type] = self.command_latency.labels(type)
            latency.observe(seconds)

    def on_commit_batch(self, entries: int, events: int, seconds: float) -> None:
        self.commit_latency.observe(seconds)
        self.commit_batch.observe(entries)
        self.committed_events.inc(events)

    def render(self) -> bytes:
        return generate_latest(self.registry)
