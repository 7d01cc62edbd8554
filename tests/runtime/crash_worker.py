"""A load worker for the crash trials: run it, SIGKILL it, and check what it acknowledged.

    python tests/runtime/crash_worker.py DB --seed S [--retry-seed R] [--snapshot-every N] ...

It opens an engine on DB (``sync="full"``, several shards, a small ``snapshot_every``
so that snapshots are taken while it runs), creates and starts the hunts of `HUNTS`
(with fixed command ids, so a restart gets the first result back), then runs
`--tasks` concurrent players submitting a realistic mix of commands (joins, wrong and
right answers, check-ins, hints, leaving and rejoining), each with a ``command_id``.

For every command `Engine.submit` acknowledged it prints one JSON line, flushed at
once: ``{"command_id", "command", "ok", "events", "error"}`` (``events`` as stored,
``error`` the rejection code or null). A line is printed only after ``submit``
returned, so a line the reader saw is a promise the engine made.

The command stream is a pure function of the seed (each task draws from its own
`random.Random`, never from results), so a test can rebuild it. With
``--retry-seed R`` each task first re-sends the first ``--retry-count`` commands of
seed R's stream with their original command ids: a client retrying after a crash.

Run as a script it imports only `thengine`, never the test package.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections.abc import Iterator
from typing import Any

import trio

from thengine import (
    CheckIn, CreateHunt, JoinHunt, LeaveHunt, RequestHint, Result, StartHunt, SubmitAnswer,
    open_engine, parse_definition,
)
from thengine.domain.commands import Command, to_json

#: Where the check-in clue of "crash-any" is.
PLACE = {"lat": 48.2085, "lon": 16.3731, "radius_m": 40}


def _clue(index: int, *, hints: int = 1, location: dict[str, float] | None = None) -> dict[str, Any]:
    clue: dict[str, Any] = {"id": f"c{index}", "prompt": f"clue {index}", "points": 10 * (index + 1)}
    if location is not None:
        clue["location"] = location
    else:
        clue["answers"] = [f"answer {index}", f"alt-{index}"]
    clue["hints"] = [{"text": f"hint {h} of clue {index}", "penalty": 2 + h} for h in range(hints)]
    return clue


#: The hunts every run plays: sequential with a cooldown, any-order with a check-in,
#: teams, and a small one that fills up (so it is picked less often, see `WEIGHTS`).
HUNTS: list[dict[str, Any]] = [
    {"id": "crash-seq", "title": "Sequential", "order": "sequential", "wrong_answer_cooldown_s": 1,
     "clues": [_clue(i, hints=2) for i in range(5)]},
    {"id": "crash-any", "title": "Any order", "order": "any",
     "clues": [_clue(0), _clue(1, location=PLACE), _clue(2, hints=0), _clue(3)]},
    {"id": "crash-team", "title": "Teams", "order": "sequential",
     "clues": [_clue(i) for i in range(4)]},
    {"id": "crash-small", "title": "Small", "order": "any", "max_players": 25,
     "clues": [_clue(i) for i in range(3)]},
]
WEIGHTS = [3, 3, 3, 1]


def setup_commands() -> list[tuple[str, Command]]:
    """Create and start every hunt, with command ids that are the same in every run."""
    out: list[tuple[str, Command]] = []
    for definition in HUNTS:
        hunt_id = definition["id"]
        out.append((f"create-{hunt_id}", CreateHunt(definition=parse_definition(definition))))
        out.append((f"start-{hunt_id}", StartHunt(hunt_id=hunt_id)))
    return out


def player_script(rng: random.Random, hunt: dict[str, Any], player_id: str) -> Iterator[Command]:
    """One player's session in one hunt: join, play the clues, maybe leave."""
    hunt_id = hunt["id"]
    team_id = f"team-{rng.randrange(4)}" if hunt_id == "crash-team" else None
    yield JoinHunt(hunt_id=hunt_id, player_id=player_id, team_id=team_id)
    clues = list(hunt["clues"])
    if hunt["order"] == "any":
        rng.shuffle(clues)
    for clue in clues:
        if clue["hints"] and rng.random() < 0.3:
            yield RequestHint(hunt_id=hunt_id, player_id=player_id, clue_id=clue["id"])
        if "location" in clue:
            if rng.random() < 0.3:  # too far away first
                yield CheckIn(hunt_id=hunt_id, player_id=player_id, clue_id=clue["id"], lat=48.3, lon=16.5)
            yield CheckIn(hunt_id=hunt_id, player_id=player_id, clue_id=clue["id"],
                          lat=clue["location"]["lat"] + rng.uniform(-1e-4, 1e-4),
                          lon=clue["location"]["lon"] + rng.uniform(-1e-4, 1e-4))
            continue
        for _ in range(rng.choice((0, 0, 1, 1, 2, 3))):
            yield SubmitAnswer(hunt_id=hunt_id, player_id=player_id, clue_id=clue["id"],
                               answer=f"wrong {rng.randrange(1000)}")
        answer = rng.choice(clue["answers"])
        yield SubmitAnswer(hunt_id=hunt_id, player_id=player_id, clue_id=clue["id"],
                           answer=answer.upper() if rng.random() < 0.2 else answer)
        if rng.random() < 0.1:  # leaving keeps progress; rejoin and carry on
            yield LeaveHunt(hunt_id=hunt_id, player_id=player_id)
            yield JoinHunt(hunt_id=hunt_id, player_id=player_id, team_id=team_id)
    if rng.random() < 0.2:
        yield LeaveHunt(hunt_id=hunt_id, player_id=player_id)


def task_stream(seed: int, task: int) -> Iterator[tuple[str, Command]]:
    """Task `task`'s endless command stream for `seed`: `(command_id, command)` pairs.

    Most players are new to this seed; some come from a small pool shared by every
    seed, so that a later run continues their game.
    """
    rng = random.Random(f"{seed}/{task}")
    n = 0
    session = 0
    while True:
        hunt = rng.choices(HUNTS, WEIGHTS)[0]
        if rng.random() < 0.2:
            player_id = f"t{task}-shared{rng.randrange(3)}"
        else:
            player_id = f"s{seed}-t{task}-p{session}"
        session += 1
        for command in player_script(rng, hunt, player_id):
            yield f"s{seed}-t{task}-c{n}", command
            n += 1


def report(command_id: str, command: Command, result: Result) -> None:
    """Print one acknowledged command as a JSON line, flushed at once."""
    line = json.dumps({
        "command_id": command_id,
        "command": to_json(command),
        "ok": result.ok,
        "events": [event.to_json() for event in result.events],
        "error": None if result.error is None else result.error.code,
    }, separators=(",", ":"))
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def run_task(engine: Any, args: argparse.Namespace, task: int) -> None:
    if args.retry_seed is not None:
        retry = task_stream(args.retry_seed, task)
        for _ in range(args.retry_count):
            command_id, command = next(retry)
            report(command_id, command, await engine.submit(command, command_id=command_id))
    stream = task_stream(args.seed, task)
    for _ in range(args.commands):
        command_id, command = next(stream)
        report(command_id, command, await engine.submit(command, command_id=command_id))


async def main(args: argparse.Namespace) -> None:
    async with open_engine(args.db, shards=args.shards, sync="full",
                           snapshot_every=args.snapshot_every, snapshot_events_per_player=0) as engine:
        for command_id, command in setup_commands():
            report(command_id, command, await engine.submit(command, command_id=command_id))
        async with trio.open_nursery() as nursery:
            for task in range(args.tasks):
                nursery.start_soon(run_task, engine, args, task)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("db")
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--retry-seed", type=int, default=None)
    parser.add_argument("--retry-count", type=int, default=30)
    parser.add_argument("--snapshot-every", type=int, default=50)
    parser.add_argument("--shards", type=int, default=3)
    parser.add_argument("--tasks", type=int, default=20)
    parser.add_argument("--commands", type=int, default=1_000_000, help="per task")
    return parser.parse_args(argv)


if __name__ == "__main__":
    trio.run(main, parse_args())
