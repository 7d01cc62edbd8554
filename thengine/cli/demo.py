"""`thengine demo`: bots play the example hunt, with a live leaderboard in the terminal."""

from __future__ import annotations

import os
import shutil
import sys
from typing import TextIO

import click
import trio

from ..sim.demo import DemoConfig, DemoError, DemoStatus, DemoSummary, run_demo
from ._group import DEFAULT_DB, BadInput, Failure, main
from .bench import check_db_file

#: Without a terminal, one progress line every this many seconds.
LINE_EVERY_S = 2.0


@main.command("demo")
@click.option("--db", "db", metavar="PATH", default=DEFAULT_DB, show_default=True,
              help="The database to play in (created if missing; reused if it exists).")
@click.option("--seconds", type=float, default=20.0, show_default=True, metavar="S", help="How long the bots play.")
@click.option("--players", type=int, default=300, show_default=True, metavar="N", help="How many bots play.")
def demo_command(db: str, seconds: float, players: int) -> None:
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
    """
    try:
        config = DemoConfig(db=db, seconds=seconds, players=players)
    except ValueError as exc:
        raise BadInput(f"--{exc}") from exc
    check_db_file(db)
    stdout = sys.stdout
    display = _Screen(stdout) if stdout.isatty() else _Lines()
    try:
        summary = trio.run(lambda: run_demo(config, on_tick=display))
    except DemoError as exc:
        raise Failure(str(exc)) from exc
    display.end()
    _print_summary(summary)


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
    click.echo(f"the log is in {os.path.abspath(summary.db)} (hunt {summary.hunt_id}); replay it with:")
    click.echo(f"  {summary.replay_command}")
