"""`thengine demo`: bots play the example hunt, with a live leaderboard in the terminal."""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any, TextIO

import attrs

import click
import trio

from ..client import connect
from ..cluster.config import ClusterError, load_cluster, partition_of
from ..cluster.local import create as create_cluster
from ..cluster.local import free_port, running
from ..server.partitions import node_url
from ..server.tokens import issue
from ..sim.demo import DemoConfig, DemoError, DemoStatus, DemoSummary, run_demo
from ._group import DEFAULT_DB, BadInput, Failure, main
from .bench import check_db_file

#: Without a terminal, one progress line every this many seconds.
LINE_EVERY_S = 2.0
DEMO_PARTITIONS = 4


@main.command("demo")
@click.option("--db", "db", metavar="PATH", default=DEFAULT_DB, show_default=True,
              help="The database to play in (created if missing; reused if it exists).")
@click.option("--seconds", type=float, default=20.0, show_default=True, metavar="S", help="How long the bots play.")
@click.option("--players", type=int, default=300, show_default=True, metavar="N", help="How many bots play.")
@click.option("--cluster", "cluster_dir", type=click.Path(file_okay=False), metavar="DIR",
              help="Play in a 2-node cluster in DIR instead (made there if missing: cluster.toml, 4 partitions, "
                   "nodes on free ports); the bots connect to node a and follow their hunt to its node.")
def demo_command(db: str, seconds: float, players: int, cluster_dir: str | None) -> None:
    """Watch a simulated treasure hunt: bots play the example hunt for a while.

    Needs no set-up: creates ./thengine.db if missing (or plays in it again under a
    new hunt id such as old-town-2), loads the example hunt old-town, starts it and
    lets the bots join, guess, ask for hints and find the treasure through the
    engine. A live leaderboard is redrawn on a terminal; Ctrl-C stops early. At the
    end it prints how to replay the log.

    \b
    Examples:
      thengine demo
      thengine demo --seconds 60 --players 1000
      thengine demo --db /tmp/demo.db && thengine replay /tmp/demo.db --hunt old-town
      thengine demo --cluster /tmp/demo-cluster          # two nodes, four partitions
    """
    try:
        config = DemoConfig(db=db, seconds=seconds, players=players)
    except ValueError as exc:
        raise BadInput(f"--{exc}") from exc
    if cluster_dir is None:
        check_db_file(db)
    stdout = sys.stdout
    display = _Screen(stdout) if stdout.isatty() else _Lines()
    try:
        if cluster_dir is None:
            summary = trio.run(lambda: run_demo(config, on_tick=display))
        else:
            summary = _in_cluster(Path(cluster_dir), config, display)
    except DemoError as exc:
        raise Failure(str(exc)) from exc
    display.end()
    _print_summary(summary)


def _in_cluster(root: Path, config: DemoConfig, display: Any) -> DemoSummary:
    """The demo through a client of a local 2-node cluster in `root` (made if missing)."""
    file = root / "cluster.toml"
    try:
        if file.exists():
            cluster = load_cluster(file)
        else:
            root.mkdir(parents=True, exist_ok=True)
            cluster = create_cluster(file.absolute(), DEMO_PARTITIONS,
                                     [(name, ("127.0.0.1", free_port())) for name in ("a", "b")],
                                     (root / "cluster.secret").absolute())
            click.echo(f"demo: made a cluster of 2 nodes and {DEMO_PARTITIONS} partitions in {root}", err=True)
    except ClusterError as exc:
        raise BadInput("; ".join(exc.problems)) from None
    token = issue(cluster.read_secret(), role="admin", ttl_s=24 * 3600, now_s=int(time.time()))
    first = next(iter(cluster.nodes.values()))

    async def play() -> DemoSummary:
        async with connect(node_url(first), token) as client:
            return await run_demo(config, on_tick=display, engine=client)

    with running(cluster, logs=root / "logs"):
        for node in cluster.nodes.values():
            click.echo(f"demo: node {node.name} serves partitions {', '.join(map(str, node.partitions))} "
                       f"at {node_url(node)}", err=True)
        summary = trio.run(play)
    partition = partition_of(summary.hunt_id, cluster.partitions)
    return attrs.evolve(summary, db=str(cluster.db_path(partition)), cluster=str(cluster.path))


class _Screen:
    """Redraws the board in place with ANSI escapes (a terminal)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.lines = 0

    def __call__(self, status: DemoStatus) -> None:
        width = max(20, shutil.get_terminal_size().columns - 1)  # a wrapped line would break the redraw
        frame = [line[:width] for line in _frame(status)]
        up = f"\x1b[{self.lines}F" if self.lines else ""
        self.stream.write(up + "\x1b[J" + "\n".join(frame) + "\n")
        self.stream.flush()
        self.lines = len(frame)

    def end(self) -> None:
        pass


class _Lines:
    """One progress line every few seconds (a pipe or a log file)."""

    def __init__(self) -> None:
        self.next_at = 0.0

    def __call__(self, status: DemoStatus) -> None:
        if status.elapsed < self.next_at:
            return
        self.next_at = status.elapsed + LINE_EVERY_S
        leader = status.leaderboard[0] if status.leaderboard else None
        lead = f", leader {leader['id']} ({leader['score']})" if leader else ""
        click.echo(f"demo {status.hunt_id}: {status.elapsed:.0f} s of {status.seconds:g} s, {status.players} players, "
                   f"{status.events:,} events, {status.commands_per_s:,.0f} commands/s{lead}")

    def end(self) -> None:
        pass


def _frame(status: DemoStatus) -> list[str]:
    lines = [
        f"thengine demo  {status.hunt_id} ({status.title})  {status.elapsed:4.1f} of {status.seconds:g} s  "
        "Ctrl-C stops",
        f"{status.players} players  {status.events:,} events  {status.commands_per_s:,.0f} commands/s  "
        f"{status.treasures} found the treasure",
        "",
        f"  {'rank':>4}  {'player':<12}  {'score':>5}  {'solved':>6}",
    ]
    for entry in status.leaderboard:
        lines.append(f"  {entry['rank']:>4}  {entry['id']:<12}  {entry['score']:>5}  {entry['solved']:>6}")
    return lines


def _print_summary(summary: DemoSummary) -> None:
    how = "stopped early (Ctrl-C)" if summary.interrupted else "over"
    click.echo(f"demo {how} after {summary.seconds:.1f} s: {summary.players} bots sent {summary.commands:,} commands "
               f"({summary.commands_per_s:,.0f} commands/s), {summary.events:,} events written, "
               f"p99 latency {summary.p99_ms:.1f} ms, {summary.treasures} found the treasure")
    if summary.leaderboard:
        winner = summary.leaderboard[0]
        click.echo(f"leader: {winner['id']} with {winner['score']} points")
    if summary.entries:
        counts = ", ".join(f"{summary.entries[s]} {s}" for s in ("accepted", "rejected", "pending") if s in summary.entries)
        click.echo(f"the demo's judge saw {sum(summary.entries.values())} photo entries: {counts}")
    if summary.flagged:
        shown = ", ".join(summary.flagged[:3]) + (f" and {len(summary.flagged) - 3} more" if len(summary.flagged) > 3 else "")
        click.echo(f"flagged for an implausible move (faster than the hunt's max_speed_kmh): {shown}; see why with")
        click.echo(f"  {summary.replay_command} --player {summary.flagged[0]}")
    where = f"partition {Path(summary.db).stem} of {summary.cluster}" if summary.cluster else os.path.abspath(summary.db)
    click.echo(f"the log is in {where} (hunt {summary.hunt_id}); replay it with:")
    click.echo(f"  {summary.replay_command}")
