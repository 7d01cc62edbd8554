"""`thengine replay`: rebuild state offline from the log, as of any point, read-only."""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any, TextIO

import click

from ..domain import views
from ..domain.commands import Rejection
from ..domain.definition import format_ts, parse_ts
from ..domain.state import HuntState
from ..errors import StorageError
from .._version import __version__
from ..history.golden import MAX_SHOWN, differences, expectations, parse_expectations
from ..history.points import points_of
from ..history.replay import ReplayResult, UnknownHunt, check, replay
from ..storage.store import Store
from ._group import DEFAULT_DB, BadInput, Failure, main

#: On a terminal, show progress for logs at least this long.
PROGRESS_MIN_EVENTS = 100_000
#: Elsewhere (a log file), only for logs at least this long, a line at each quarter.
PROGRESS_MIN_EVENTS_NO_TTY = 1_000_000


@main.command("replay")
@click.argument("db", default=DEFAULT_DB, required=False)
@click.option("--hunt", "hunt_id", metavar="H", help="Only this hunt.")
@click.option("--until", "until_seq", type=click.IntRange(min=0), metavar="SEQ",
              help="Apply only events with seq <= SEQ.")
@click.option("--until-time", "until_time", metavar="RFC3339",
              help="The state as it was at this moment (e.g. 2026-12-01T11:00:00Z).")
@click.option("--player", "player_id", metavar="P", help="Also show this player's progress.")
@click.option("--verify", is_flag=True,
              help="Check every stored snapshot against the replayed state; exit 1 at the first divergence.")
@click.option("--expect", "expect_path", metavar="FILE", type=click.Path(dir_okay=False),
              help="With --verify: also check the replayed statuses, leaderboards and players "
                   "against FILE (written by --save-expect); exit 1 on any difference.")
@click.option("--save-expect", "save_path", metavar="FILE", type=click.Path(dir_okay=False, writable=True),
              help="Write the replayed statuses, leaderboards and players to FILE, to pin this log "
                   "with --verify --expect later (in your CI, after an upgrade).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of tables.")
@click.option("--limit", type=click.IntRange(min=1, max=1000), default=10, show_default=True, metavar="N",
              help="Leaderboard entries to show per hunt.")
@click.option("--offset", type=click.IntRange(min=0), default=0, metavar="N",
              help="Skip the best N leaderboard entries (pages with --limit).")
def replay_command(db: str, hunt_id: str | None, until_seq: int | None, until_time: str | None,
                   player_id: str | None, verify: bool, expect_path: str | None, save_path: str | None,
                   as_json: bool, limit: int, offset: int) -> None:
    """Rebuild hunt state from the log alone and show it, as of any point.

    Reads DB (default ./thengine.db) read-only: it never writes, ignores snapshots,
    and works while an engine runs. Shows each hunt's status and leaderboard.

    \b
    Examples:
      thengine replay thengine.db --hunt old-town
      thengine replay thengine.db --hunt old-town --until 500 --player bot-7
      thengine replay thengine.db --until-time 2026-12-01T11:00:00Z --json
      thengine replay thengine.db --hunt old-town --limit 20 --offset 20
      thengine replay thengine.db --verify
      thengine replay thengine.db --save-expect pinned.json    # then, after an upgrade:
      thengine replay thengine.db --verify --expect pinned.json
    """
    until_ts = _parse_until_time(until_time)
    if verify and (until_seq is not None or until_ts is not None or player_id is not None):
        raise BadInput("--verify checks the whole log; it cannot be combined with --until, --until-time or --player")
    if expect_path is not None and not verify:
        raise BadInput("--expect checks a whole replay: give --verify with it")
    if save_path is not None and verify:
        raise BadInput("--save-expect writes what the log replays to; --verify checks it: give one of them")
    expected = None if expect_path is None else _read_expectations(expect_path, hunt_id)
    store = _open(db)
    progress = _progress()
    try:
        if verify:
            _verify(store, db, hunt_id, as_json, progress, expect_path, expected)
            return
        try:
            result = replay(store, hunt_id=hunt_id, until_seq=until_seq, until_ts=until_ts, progress=progress)
        except UnknownHunt:
            raise BadInput(_unknown_hunt(store, db, hunt_id)) from None
        finally:
            progress.end()
        states = [result.hunts[h] for h in sorted(result.hunts)]
        players = _players(store, states, player_id, hunt_id, result)
        if save_path is not None:
            _save_expectations(save_path, result)
        if as_json:
            click.echo(json.dumps(_as_json(result, states, limit, offset, players), ensure_ascii=False))
        else:
            _print_tables(db, result, states, limit, offset, players, hunt_id, until_ts)
    finally:
        store.close()


# -- input -----------------------------------------------------------------------------

def _parse_until_time(text: str | None) -> int | None:
    if text is None:
        return None
    problems: list[str] = []
    ms = parse_ts(text, "--until-time", problems)
    if ms is None:
        raise BadInput(f"--until-time: must be an RFC 3339 datetime with an offset "
                       f"(e.g. 2026-12-01T11:00:00Z), got {text!r}")
    return ms


def _read_expectations(path: str, hunt_id: str | None) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as file:
            text = file.read()
    except OSError as exc:
        raise BadInput(f"--expect: cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise BadInput(f"--expect: {path} is not UTF-8 text") from None
    try:
        hunts = parse_expectations(text, path)
    except ValueError as exc:
        raise BadInput(f"--expect: {exc}") from None
    if hunt_id is not None:
        if hunt_id not in hunts:
            raise BadInput(f"--expect: {path} has no expectations for hunt {hunt_id!r}")
        hunts = {hunt_id: hunts[hunt_id]}
    return hunts


def _save_expectations(path: str, result: ReplayResult) -> None:
    content = expectations(result.hunts, made_by=f"thengine {__version__}, up to seq {result.seq}")
    try:
        with open(path, "w", encoding="utf-8") as file:
            json.dump(content, file, ensure_ascii=False, indent=1)
            file.write("\n")
    except OSError as exc:
        raise Failure(f"--save-expect: cannot write {path}: {exc.strerror or exc}") from None


def _open(db: str) -> Store:
    if not os.path.exists(db):
        raise BadInput(f"no database at {db}")
    if os.path.isdir(db):
        raise BadInput(f"{db} is a directory, not a thengine database")
    try:
        return Store.open(db, readonly=True)
    except StorageError as exc:
        raise BadInput(str(exc)) from exc


def _unknown_hunt(store: Store, db: str, hunt_id: str | None) -> str:
    known = store.hunt_ids()
    if not known:
        return f"no hunt {hunt_id!r} in {db}: it has no hunts"
    shown = ", ".join(known[:5]) + (f" and {len(known) - 5} more" if len(known) > 5 else "")
    return f"no hunt {hunt_id!r} in {db} (hunts: {shown})"


def _players(store: Store, states: list[HuntState], player_id: str | None, hunt_id: str | None,
             result: ReplayResult) -> dict[str, dict[str, Any] | None]:
    """Each hunt's view of `player_id` (None where they are not in it), with where their
    points came from and their flags (`points_of`); {} without --player."""
    if player_id is None:
        return {}
    views_by_hunt: dict[str, dict[str, Any] | None] = {}
    for state in states:
        answer = views.player(state, player_id)
        if isinstance(answer, Rejection):
            views_by_hunt[state.hunt_id] = None
            continue
        events = store.read_hunt_events(state.hunt_id, until_seq=state.seq)
        views_by_hunt[state.hunt_id] = {**answer, **points_of(state, player_id, events)}
    if not any(views_by_hunt.values()):
        where = f"hunt {hunt_id!r}" if hunt_id is not None else "any hunt"
        raise BadInput(f"player {player_id!r} is not in {where} as of seq {result.seq}")
    return views_by_hunt


# -- verify ----------------------------------------------------------------------------

def _verify(store: Store, db: str, hunt_id: str | None, as_json: bool, progress: _ProgressLine,
            expect_path: str | None, expected: dict[str, Any] | None) -> None:
    try:
        outcome = check(store, hunt_id=hunt_id, progress=progress)
    except UnknownHunt:
        raise BadInput(_unknown_hunt(store, db, hunt_id)) from None
    finally:
        progress.end()
    divergence = outcome.divergence
    unexpected = None if expected is None else differences(expected, outcome.hunts)
    if as_json:
        report: dict[str, Any] = {
            "verified": divergence is None and not unexpected,
            "snapshots": outcome.snapshots,
            "skipped_snapshots": outcome.skipped,
            "events": outcome.events,
            "divergence": None if divergence is None else divergence.to_json(),
        }
        if unexpected is not None:
            report["expectations"] = {"file": expect_path, "hunts": len(expected or ()),
                                      "differences": unexpected}
        click.echo(json.dumps(report, ensure_ascii=False, default=repr))
    else:
        skipped = f" ({outcome.skipped} of an older format skipped)" if outcome.skipped else ""
        if divergence is None:
            click.echo(f"verified {outcome.snapshots} snapshots{skipped} over {outcome.events} events: "
                       "no divergence")
        else:
            click.echo(divergence.describe())
        if unexpected == []:
            click.echo(f"as expected by {expect_path}: {_count(len(expected or ()), 'hunt')}")
        for line in (unexpected or [])[:MAX_SHOWN]:
            click.echo(line)
        if unexpected and len(unexpected) > MAX_SHOWN:
            click.echo(f"... and {len(unexpected) - MAX_SHOWN:,} more differences")
    if divergence is not None:
        raise Failure(f"the snapshot of hunt {divergence.hunt_id!r} at version {divergence.version} "
                      f"disagrees with the log ({divergence.field})")
    if unexpected:
        raise Failure(f"the replay differs from {expect_path} in {_count(len(unexpected), 'place')}")


# -- output ----------------------------------------------------------------------------

def _page(state: HuntState, limit: int, offset: int) -> dict[str, Any]:
    page = views.leaderboard(state, limit, offset=offset)
    assert not isinstance(page, Rejection)  # (only `around` can be refused)
    return page


def _as_json(result: ReplayResult, states: list[HuntState], limit: int, offset: int,
             players: dict[str, dict[str, Any] | None]) -> dict[str, Any]:
    hunts: dict[str, Any] = {}
    for state in states:
        page = _page(state, limit, offset)
        item: dict[str, Any] = {
            "status": state.status,
            "version": state.version,
            "total": page["total"],
            "leaderboard": page["entries"],
        }
        if state.frozen is not None:
            frozen = views.leaderboard(state, limit, offset=offset, frozen=True)
            assert isinstance(frozen, dict)
            item["frozen_leaderboard"] = frozen["entries"]
        if players:
            item["player"] = players.get(state.hunt_id)
        hunts[state.hunt_id] = item
    return {"seq": result.seq, "hunts": hunts}


def _print_tables(db: str, result: ReplayResult, states: list[HuntState], limit: int, offset: int,
                  players: dict[str, dict[str, Any] | None], hunt_id: str | None,
                  until_ts: int | None) -> None:
    point = f"up to seq {result.seq}"
    if until_ts is not None:
        point += f" (as of {format_ts(until_ts)})"
    click.echo(f"{db}: replayed {result.events:,} events, {point}")
    if not states:
        what = f"hunt {hunt_id!r} did not exist yet" if hunt_id is not None else "no hunt existed yet"
        click.echo(f"  {what}")
        return
    for state in states:
        click.echo()
        _print_hunt(state, limit, offset)
        player = players.get(state.hunt_id)
        if player is not None:
            _print_player(state, player)


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}" + ("" if n == 1 else "s")


def _print_hunt(state: HuntState, limit: int, offset: int) -> None:
    definition = state.definition
    frozen = "  (board frozen: players see the frozen board, --json adds it)" if state.frozen is not None else ""
    click.echo(f"{state.hunt_id}  {definition.title}{frozen}")
    click.echo(f"  {state.status}, version {state.version}, {_count(state.active_players, 'player')}, "
               f"{_count(len(definition.clues), 'clue')}")
    page = _page(state, limit, offset)
    board = page["entries"]
    if not board:
        click.echo("  (nobody on the leaderboard yet)" if not page["total"]
                   else f"  ({page['total']:,} on the leaderboard; none past entry {offset:,})")
        return
    width = max(10, *(len(e["id"]) for e in board))
    click.echo(f"  {'rank':>4}  {'id':<{width}}  {'kind':<6}  {'score':>6}  {'solved':>6}  reached")
    for e in board:
        click.echo(f"  {e['rank']:>4}  {e['id']:<{width}}  {e['kind']:<6}  {e['score']:>6}  "
                   f"{e['solved']:>6}  {format_ts(e['reached_ts'])}")
    if page["total"] > len(board):
        shown = f"the top {len(board)}" if not offset else f"ranks {offset + 1}-{offset + len(board)}"
        click.echo(f"  ({page['total']:,} on the leaderboard; showing {shown})")


def _print_player(state: HuntState, player: dict[str, Any]) -> None:
    team = f" (team {player['team_id']})" if player["team_id"] else ""
    rank = f"rank {player['rank']}" if player["rank"] is not None else "not ranked"
    treasure = "treasure found" if player["treasure_found"] else "treasure not found yet"
    click.echo(f"  player {player['player_id']}{team}: {player['status']}, score {player['score']}, {rank}, "
               f"solved {player['solved']} of {len(state.definition.clues)} clues, {treasure}")
    if not player["clues"]:
        click.echo("    (no clue open yet)")
        return
    width = max(8, *(len(c["id"]) for c in player["clues"]))
    click.echo(f"    {'clue':<{width}}  {'state':<6}  {'points':>6}  {'hints':>5}  {'wrong':>5}")
    for clue in player["clues"]:
        hints = f"{len(clue['hints'])}/{len(clue['hints']) + clue['hints_left']}"
        line = (f"    {clue['id']:<{width}}  {'solved' if clue['solved'] else 'open':<6}  {clue['points']:>6}  "
                f"{hints:>5}  {clue['wrong_answers']:>5}")
        if clue["cooldown_until"] is not None and not clue["solved"]:
            line += f"  cooldown until {format_ts(clue['cooldown_until'])}"
        click.echo(line)
    _print_points(player)


_WHY = {"clue_solved": "solved", "entry_accepted": "entry accepted for", "treasure_found": "time bonus", "answer_wrong": "wrong answer",
        "hint_revealed": "hint", "score_adjusted": "adjusted"}


def _print_points(player: dict[str, Any]) -> None:
    """The score's history (what changed it, with the awarded points) and the player's flags."""
    if player["history"]:
        click.echo(f"    {'points':>6}  {'seq':>8}  {'time':<24}  why")
        for item in player["history"]:
            why = _WHY[item["type"]]
            if "clue_id" in item:
                why += f" {item['clue_id']}"
            if "solver" in item:
                why += f" ({_ordinal(item['solver'])} solver)"
            if "reason" in item:
                why += f": {item['reason']}"
            click.echo(f"    {item['points']:>+6}  {item['seq']:>8}  {format_ts(item['ts']):<24}  {why}")
    for flag in player["flags"]:
        speed = "infinite speed" if flag["speed_kmh"] is None else f"{flag['speed_kmh']:g} km/h"
        click.echo(f"    FLAG seq {flag['seq']} at {format_ts(flag['ts'])}: implausible move to {flag['clue_id']}, "
                   f"{flag['distance_m']:g} m in {flag['seconds']:g} s ({speed}; limit {flag['max_speed_kmh']:g})")


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


# -- progress on stderr ----------------------------------------------------------------

class _ProgressLine:
    """'replaying  42%  420,000 of 1,000,000 events' on stderr, never on stdout."""

    def __init__(self, stream: TextIO, tty: bool) -> None:
        self.stream = stream
        self.tty = tty
        self.min_events = PROGRESS_MIN_EVENTS if tty else PROGRESS_MIN_EVENTS_NO_TTY
        self.shown = False
        self._last = 0.0
        self._quarter = 0

    def __call__(self, done: int, total: int) -> None:
        if total < self.min_events:  # a short replay is over before a bar helps
            return
        share = min(1.0, done / total)
        if self.tty:
            now = time.monotonic()
            if now - self._last < 0.2 and done < total:
                return
            self._last = now
            self.stream.write(f"\rreplaying {share:4.0%}  {done:,} of {total:,} events")
        else:
            quarter = int(share * 4)
            if quarter <= self._quarter:
                return
            self._quarter = quarter
            self.stream.write(f"replaying: {share:.0%} ({done:,} of {total:,} events)\n")
        self.stream.flush()
        self.shown = True

    def end(self) -> None:
        if self.shown and self.tty:
            self.stream.write("\r\x1b[K")
            self.stream.flush()


def _progress() -> _ProgressLine:
    """A progress line on stderr, shown only for long replays."""
    return _ProgressLine(sys.stderr, sys.stderr.isatty())
