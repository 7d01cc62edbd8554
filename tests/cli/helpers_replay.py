"""Shared helpers for the tests of replay, bench and demo: a hand-made log and a CLI runner."""

from __future__ import annotations

import json
import os
import zlib
from pathlib import Path
from typing import Any

import apsw
import attrs
from click.testing import CliRunner, Result

from thengine import (
    CreateHunt, JoinHunt, RequestHint, StartHunt, SubmitAnswer, open_engine, parse_definition,
)
from thengine.cli import main

T0 = 1_800_000_000_000  # 2027-01-15T08:00:00Z
STEP_MS = 1000

HUNT_1 = {
    "id": "h1", "title": "Hunt one", "order": "sequential",
    "clues": [
        {"id": "a", "prompt": "A?", "answers": ["alpha"], "points": 100,
         "hints": [{"text": "the first letter", "penalty": 10}]},
        {"id": "b", "prompt": "B?", "answers": ["beta"], "points": 200},
    ],
}
HUNT_2 = {
    "id": "h2", "title": "Hunt two", "order": "any",
    "clues": [{"id": "x", "prompt": "X?", "answers": ["ex"], "points": 50}],
}


class FakeClock:
    """Wall-clock milliseconds that move only when told to."""

    def __init__(self, now: int = T0) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


@attrs.frozen(kw_only=True)
class Log:
    """A hand-made log: where it is, and the seq and ts of its moments of interest."""

    path: Path
    seq: dict[str, int]
    ts: dict[str, int]
    last_seq: int


# (name of the moment, command); the clock moves STEP_MS before each command.
SCRIPT: list[tuple[str, Any]] = [
    ("h1_created", CreateHunt(definition=parse_definition(HUNT_1))),
    ("h1_started", StartHunt(hunt_id="h1")),
    ("p1_joined", JoinHunt(hunt_id="h1", player_id="p1")),
    ("p2_joined", JoinHunt(hunt_id="h1", player_id="p2")),
    ("h2_created", CreateHunt(definition=parse_definition(HUNT_2))),
    ("h2_started", StartHunt(hunt_id="h2")),
    ("p3_joined", JoinHunt(hunt_id="h2", player_id="p3")),
    ("p1_wrong", SubmitAnswer(hunt_id="h1", player_id="p1", clue_id="a", answer="gamma")),
    ("p2_hint", RequestHint(hunt_id="h1", player_id="p2", clue_id="a")),
    ("p2_solved_a", SubmitAnswer(hunt_id="h1", player_id="p2", clue_id="a", answer="Alpha")),  # p2 leads, 90
    ("p1_solved_a", SubmitAnswer(hunt_id="h1", player_id="p1", clue_id="a", answer="alpha")),  # p1 leads, 100
    ("p3_solved_x", SubmitAnswer(hunt_id="h2", player_id="p3", clue_id="x", answer="ex")),
    ("p1_solved_b", SubmitAnswer(hunt_id="h1", player_id="p1", clue_id="b", answer="beta")),  # p1 300
]


async def make_log(path: Path, *, snapshot_every: int = 4, engine: Any = None) -> Log:
    """Play SCRIPT through a real engine into `path` (or through `engine`, left open)."""
    seqs: dict[str, int] = {}
    stamps: dict[str, int] = {}

    async def play(target: Any, clock: FakeClock) -> None:
        for name, command in SCRIPT:
            clock.now += STEP_MS
            result = await target.submit(command)
            assert result.ok, (name, result)
            seqs[name] = result.events[-1].seq
            stamps[name] = result.events[-1].ts

    clock = FakeClock()
    if engine is not None:
        await play(engine, engine.config.clock)
    else:
        async with open_engine(str(path), sync="normal", snapshot_every=snapshot_every, clock=clock) as opened:
            await play(opened, clock)
    return Log(path=path, seq=seqs, ts=stamps, last_seq=max(seqs.values()))


def invoke(*args: Any) -> Result:
    """Run `thengine ARGS` in-process (stdout and stderr kept apart)."""
    return CliRunner().invoke(main, [str(a) for a in args])


def replay_json(*args: Any) -> dict[str, Any]:
    """`thengine replay ARGS --json`, parsed; the command must succeed."""
    result = invoke("replay", *args, "--json")
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    return json.loads(result.stdout)


def assert_error(result: Result, code: int, *fragments: str) -> None:
    """Exit `code` with one `thengine: error:` line on stderr holding `fragments`, no traceback."""
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr, result.exception)
    assert isinstance(result.exception, SystemExit), result.exception
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("thengine: error: "), lines
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def rewrite_snapshot(path: Path, hunt_id: str, change: Any) -> int:
    """Replace the newest snapshot blob of `hunt_id`, through a separate apsw connection.

    `change(data)` edits the decoded snapshot in place, or returns bytes to store
    instead. Returns the version of the snapshot rewritten.
    """
    conn = apsw.Connection(os.fspath(path))
    try:
        version, blob = conn.execute(
            "SELECT version, state FROM snapshots WHERE hunt_id = ? ORDER BY version DESC LIMIT 1", (hunt_id,)
        ).fetchall()[0]
        data = json.loads(zlib.decompress(blob))
        replaced = change(data)
        new_blob = replaced if isinstance(replaced, bytes) else zlib.compress(json.dumps(data).encode())
        conn.execute("UPDATE snapshots SET state = ? WHERE hunt_id = ? AND version = ?", (new_blob, hunt_id, version))
    finally:
        conn.close()
    return version


def file_state(path: Path) -> tuple[bytes, int] | None:
    """The bytes and mtime (ns) of `path`, or None if it does not exist."""
    if not path.exists():
        return None
    return path.read_bytes(), path.stat().st_mtime_ns
