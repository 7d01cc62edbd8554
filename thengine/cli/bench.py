"""`thengine bench`: drive the full engine with a realistic load and report throughput and latency."""

from __future__ import annotations

import json
import os
import sys
import time
from typing import TextIO

import click
import trio

from ..cluster.config import ClusterError, load_cluster
from ..sim.bench import BenchConfig, BenchError, BenchResult, run_bench
from ..sim.cluster_bench import run_cluster, run_node
from ._group import BadInput, Failure, main
from .admin import run_async


@main.command("bench")
@click.option("--hunts", type=int, default=100, show_default=True, metavar="H", help="Hunts to create.")
@click.option("--players", type=int, default=10_000, show_default=True, metavar="P",
              help="Players, dealt round-robin to the hunts.")
@click.option("--concurrency", type=int, default=100, show_default=True, metavar="C",
              help="Submitter tasks, each waiting for its last command before sending the next (closed loop).")
@click.option("--commands", type=int, default=100_000, show_default=True, metavar="N",
              help="Commands to time (after the set-up).")
@click.option("--sync", type=click.Choice(["full", "normal"]), default="full", show_default=True,
              help="full: every commit survives power loss; normal: survives a process crash.")
@click.option("--rate", type=float, default=None, metavar="R",
              help="Offer R commands/s on a fixed timetable instead (open loop); latency counts from the "
                   "scheduled time, so queueing is not hidden.")
@click.option("--db", "db", metavar="PATH", default=None,
              help="Use (and keep) this database instead of a temporary one.")
@click.option("--shards", type=int, default=4, show_default=True, metavar="N", help="Engine shards.")
@click.option("--command-ids/--no-command-ids", default=True, show_default=True,
              help="Give every measured command a command_id, as networked and ingested commands have.")
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON object and nothing else (with \"stages\" and \"gc_pause_ms\").")
@click.option("--cluster", "cluster_file", type=click.Path(dir_okay=False), metavar="CLUSTER.toml",
              help="Run on a cluster's partition files (its nodes stopped): one process per node, each driving "
                   "its partitions with its share of the load, all started together.")
@click.option("--node", hidden=True, help="(internal) the node process of a --cluster run.")
def bench_command(hunts: int, players: int, concurrency: int, commands: int, sync: str, rate: float | None,
                  db: str | None, shards: int, command_ids: bool, as_json: bool, cluster_file: str | None,
                  node: str | None) -> None:
    """Measure the engine: commands/s and latency percentiles under a realistic game load.

    Creates HUNTS generated hunts in a temporary database, joins most players, then
    times COMMANDS commands (wrong and right answers, hints, joins) with the full game
    rules and durable group commit. Progress goes to stderr.

    The report breaks each command's time into stages (inbox wait, decide, commit
    wait, the commit and its fsync), with the event loop's lag and the GC pauses: a
    bad p99 shows in the stage it comes from.

    \b
    Examples:
      thengine bench                                   # the defaults: 100k commands
      thengine bench --commands 2000 --concurrency 10 --json
      thengine bench --rate 5000 --commands 50000      # latency at 5,000 commands/s
      thengine bench --cluster cluster.toml            # every node at once, one process each
    """
    try:
        config = BenchConfig(hunts=hunts, players=players, concurrency=concurrency, commands=commands,
                             sync=sync, rate=rate, db=db, shards=shards, command_ids=command_ids)
    except ValueError as exc:
        raise BadInput(f"--{exc}") from exc
    if cluster_file is not None:
        _bench_cluster(cluster_file, node, config, db, as_json)
        return
    if db is not None:
        check_db_file(db)
    stderr = sys.stderr
    progress = None if as_json else _Progress(stderr, stderr.isatty())
    if progress is not None:
        mode = f"{rate:,.0f} commands/s offered (open loop)" if rate else f"{concurrency} concurrent (closed loop)"
        click.echo(f"bench: {hunts} hunts, {players:,} players, {commands:,} commands, {mode}, sync={sync}; "
                   "setting up...", err=True)
    try:
        result = trio.run(lambda: run_bench(config, progress=progress))
    except BenchError as exc:
        raise Failure(str(exc)) from exc
    finally:
        if progress is not None:
            progress.end()
    if as_json:
        click.echo(json.dumps(result.to_json()))
    else:
        _print_summary(result)


def _bench_cluster(cluster_file: str, node: str | None, config: BenchConfig, db: str | None, as_json: bool) -> None:
    if db is not None:
        raise BadInput("give either --db or --cluster, not both")
    try:
        cluster = load_cluster(cluster_file)
        node_of = cluster.node(node) if node is not None else None
    except ClusterError as exc:
        raise BadInput("; ".join(exc.problems)) from None
    if node_of is not None:  # one node's process of a cluster run
        try:
            result = run_async(run_node, cluster, node_of, config)
        except BenchError as exc:
            raise Failure(str(exc)) from exc
        click.echo(json.dumps(result.to_json()))
        return
    if not as_json:
        click.echo(f"bench: {len(cluster.nodes)} nodes, {cluster.partitions} partitions, {config.hunts} hunts, "
                   f"{config.players:,} players, {config.commands:,} commands; setting up...", err=True)
    try:
        report = run_cluster(cluster, config, say=None if as_json else lambda text: click.echo(text, err=True))
    except BenchError as exc:
        raise Failure(str(exc)) from exc
    if as_json:
        click.echo(json.dumps(report))
        return
    lat = report["latency_ms"]
    click.echo(f"{report['commands']:,} commands in {report['seconds']:.2f} s on {len(cluster.nodes)} nodes: "
               f"{report['commands_per_s']:,.0f} commands/s")
    for name, one in report["nodes"].items():
        click.echo(f"  node {name:<8} {one['commands']:>9,} commands  {one['commands_per_s']:>9,.0f}/s  "
                   f"p99 {one['latency_ms']['p99']:.2f} ms  max {one['latency_ms']['max']:.2f} ms")
    click.echo(f"  worst node  p50 {lat['p50']:.2f}  p99 {lat['p99']:.2f}  p99.9 {lat['p999']:.2f}  max {lat['max']:.2f} ms")


def check_db_file(path: str) -> None:
    """A --db that exists must be a SQLite file (the engine creates a missing one)."""
    if not os.path.exists(path):
        return
    if not os.path.isfile(path):
        raise BadInput(f"--db: {path} is not a file")
    with open(path, "rb") as file:
        header = file.read(16)
    if header and header != b"SQLite format 3\x00":
        raise BadInput(f"--db: {path} is not a thengine database")


class _Progress:
    """'12,345 of 100,000 commands  9,876 commands/s' on stderr."""

    def __init__(self, stream: TextIO, tty: bool) -> None:
        self.stream = stream
        self.tty = tty
        self._last_line = 0.0

    def __call__(self, done: int, total: int, elapsed: float) -> None:
        rate = done / elapsed if elapsed > 0 else 0.0
        text = f"{done:,} of {total:,} commands  {rate:,.0f} commands/s"
        if self.tty:
            self.stream.write(f"\r{text}\x1b[K")
        else:
            now = time.monotonic()
            if now - self._last_line < 5 and done < total:
                return  # a log file gets a line every few seconds, not twice a second
            self._last_line = now
            self.stream.write(text + "\n")
        self.stream.flush()

    def end(self) -> None:
        if self.tty:
            self.stream.write("\r\x1b[K")
            self.stream.flush()


def _print_summary(result: BenchResult) -> None:
    config = result.config
    lat = result.latency_ms
    loop = f"open loop at {config.rate:,.0f}/s offered" if config.rate else f"{config.concurrency} concurrent"
    click.echo(f"{result.commands:,} commands in {result.seconds:.2f} s ({loop}, sync={config.sync}, "
               f"{config.hunts} hunts, {config.players:,} players; set-up {result.setup_seconds:.1f} s)")
    click.echo(f"  throughput  {result.commands_per_s:,.0f} commands/s, {result.events_per_s:,.0f} events/s")
    click.echo(f"  latency ms  p50 {lat['p50']:.2f}  p90 {lat['p90']:.2f}  p99 {lat['p99']:.2f}  "
               f"p99.9 {lat['p999']:.2f}  max {lat['max']:.2f}")
    if result.rejected:
        codes = ", ".join(f"{code} {n}" for code, n in sorted(result.rejections.items()))
        click.echo(f"  rejected    {result.rejected:,} ({codes})")
    else:
        click.echo("  rejected    0")
    click.echo("  where the time goes (ms)      p50       p99       max")
    for name, label in _STAGE_LABELS:
        stage = result.stages.get(name)
        if stage:
            click.echo(f"    {label:<26}{stage['p50']:>8.3f}  {stage['p99']:>8.3f}  {stage['max']:>8.3f}")
    gc = result.gc_pause_ms
    if gc:
        click.echo(f"  gc pauses   max {gc['max']:.2f} ms, p99 {gc['p99']:.2f} ms, {gc['count']:,} collections "
                   "(set-up included)")


_STAGE_LABELS = (
    ("inbox_wait", "inbox wait"),
    ("decide", "decide + evolve"),
    ("commit_wait", "waiting for its commit"),
    ("commit", "commit (per batch)"),
    ("commit_sync", "  of which COMMIT/fsync"),
    ("loop_lag", "event-loop lag"),
)
