"""Shared helpers for the tests of init, hunt add, ingest, events, stats, token and backup."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from thengine.cli import main
from thengine.storage.store import Store

ROOT = Path(__file__).resolve().parents[2]

HUNT_TOML = """\
id = "{hunt_id}"
title = "Hunt {hunt_id}"
order = "sequential"

[[clues]]
id = "first"
prompt = "Say hello"
answers = ["hello"]
points = 10

[[clues]]
id = "second"
prompt = "Say world"
answers = ["world"]
points = 20
  [[clues.hints]]
  text = "the planet"
  penalty = 5
"""


def invoke(*args: Any, input: str | bytes | None = None) -> Result:
    """Run `thengine ARGS` in-process (stdout and stderr kept apart)."""
    return CliRunner().invoke(main, [str(a) for a in args], input=input)


def assert_ok(result: Result) -> None:
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)


def assert_error(result: Result, code: int, *fragments: str) -> str:
    """Exit `code`, exactly one `thengine: error:` line on stderr containing `fragments`, no traceback."""
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr, result.exception)
    assert isinstance(result.exception, SystemExit), result.exception
    lines = result.stderr.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("thengine: error: "), lines
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    assert "Traceback" not in result.output
    return lines[0]


def write_hunt(directory: Path, hunt_id: str = "h1") -> Path:
    path = directory / f"{hunt_id}.toml"
    path.write_text(HUNT_TOML.format(hunt_id=hunt_id))
    return path


def definition(hunt_id: str) -> dict[str, Any]:
    """The same hunt as HUNT_TOML, as the JSON `definition` of a create_hunt command."""
    return {
        "id": hunt_id, "title": f"Hunt {hunt_id}", "order": "sequential",
        "clues": [
            {"id": "first", "prompt": "Say hello", "answers": ["hello"], "points": 10},
            {"id": "second", "prompt": "Say world", "answers": ["world"], "points": 20,
             "hints": [{"text": "the planet", "penalty": 5}]},
        ],
    }


def make_db(directory: Path, *hunts: str, start: bool = True, name: str = "h.db") -> Path:
    """`thengine init` a database and `hunt add` each of `hunts` (started)."""
    db = directory / name
    assert_ok(invoke("init", db))
    for hunt_id in hunts:
        assert_ok(invoke("hunt", "add", db, write_hunt(directory, hunt_id), *(["--start"] if start else [])))
    return db


def jsonl(*objects: Any) -> str:
    return "".join((o if isinstance(o, str) else json.dumps(o)) + "\n" for o in objects)


def parse_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def logged_events(db: Path) -> list[dict[str, Any]]:
    """Every event in the log, through `thengine events --json`."""
    result = invoke("events", db, "--json")
    assert_ok(result)
    return parse_lines(result.stdout)


def stored_events(db: Path) -> dict[int, dict[str, Any]]:
    """Every event in the log by seq, read directly (read-only)."""
    with Store.open(db, readonly=True) as store:
        return {e.seq: e.to_json() for e in store.read_events()}


def workload(hunts: int, players: int, *, prefix: str = "") -> list[dict[str, Any]]:
    """Commands with command_ids over several interleaved hunts: create, start, joins, answers, hints."""
    commands: list[dict[str, Any]] = []
    for h in range(hunts):
        commands.append({"type": "create_hunt", "definition": definition(f"w{h}"), "command_id": f"{prefix}create-{h}"})
        commands.append({"type": "start_hunt", "hunt_id": f"w{h}", "command_id": f"{prefix}start-{h}"})
    steps = [
        lambda p, h: {"type": "join_hunt", "hunt_id": h, "player_id": p},
        lambda p, h: {"type": "submit_answer", "hunt_id": h, "player_id": p, "clue_id": "first",
                      "answer": "hello" if int(p[1:]) % 4 else "nope"},
        lambda p, h: {"type": "request_hint", "hunt_id": h, "player_id": p, "clue_id": "second"},
        lambda p, h: {"type": "submit_answer", "hunt_id": h, "player_id": p, "clue_id": "second", "answer": "world"},
    ]
    for s, step in enumerate(steps):
        for i in range(players):
            command = step(f"p{i}", f"w{i % hunts}")
            command["command_id"] = f"{prefix}s{s}-p{i}"
            commands.append(command)
    return commands


def thengine_process(*args: Any, **popen: Any) -> subprocess.Popen[bytes]:
    """`python -m thengine ARGS` as a real process."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-m", "thengine", *map(str, args)], env=env, **popen)


class LineReader:
    """Whole lines from a child's stdout pipe, with a deadline (never hangs a test)."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        self.fd = proc.stdout.fileno()
        self.buffer = b""
        self.lines: list[bytes] = []
        self.closed = False

    def read_until(self, count: int, timeout: float = 20.0) -> list[bytes]:
        """Until `count` lines have arrived in all (or the pipe closes)."""
        deadline = time.monotonic() + timeout
        while len(self.lines) < count and not self.closed:
            left = deadline - time.monotonic()
            assert left > 0, f"only {len(self.lines)} of {count} lines after {timeout} s"
            ready, _, _ = select.select([self.fd], [], [], left)
            if ready:
                self._read_once()
        return self.lines

    def read_all(self, timeout: float = 30.0) -> list[bytes]:
        return self.read_until(sys.maxsize, timeout)

    def _read_once(self) -> None:
        data = os.read(self.fd, 1 << 16)
        if not data:
            self.closed = True
            if self.buffer:
                self.lines.append(self.buffer)
                self.buffer = b""
            return
        parts = (self.buffer + data).split(b"\n")
        self.buffer = parts.pop()
        self.lines.extend(parts)
