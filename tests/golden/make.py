"""Write the golden logs of this release: ``python -m tests.golden.make RELEASE``.

Plays each scenario below through the pure domain (`decide`, then `evolve`, stamping
seq, version and ts exactly as the engine does) and writes, into
``tests/golden/RELEASE/``:

- ``NAME.jsonl``: one line per command (or due timer), with the time it was decided
  and either the stored events it produced, verbatim, or its rejection;
- ``NAME.expect.json``: what the log replays to (`thengine.history.golden`);
- ``thengine.db``: a database made by the real engine (snapshots every few events and
  command records included) from the ``relay`` scenario's commands and a bigger
  generated hunt, with ``thengine.expect.json``. Newer releases must migrate it with
  `thengine init`, recover it, and replay it to the same state.

Run it once per release, before that release's rules change, and commit the files.
They are never rewritten: `tests/golden/test_golden.py` demands that today's code
decides the same commands into the same events and replays them to the same state.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path
from typing import Any, Callable, Iterator

import trio

from thengine import open_engine
from thengine._version import __version__
from thengine.domain.commands import Rejection, parse_command
from thengine.domain.definition import format_ts
from thengine.domain.events import StoredEvent
from thengine.domain.rules import decide, evolve
from thengine.domain.state import HuntState
from thengine.domain.timers import decide_timer
from thengine.history.golden import expectations

HERE = Path(__file__).resolve().parent
#: 2026-06-01T10:00:00Z: every scenario's clock starts here.
T0 = 1_780_308_000_000


class Script:
    """A scenario being played: a clock, the state, and the lines written so far."""

    def __init__(self, hunt_id: str) -> None:
        self.hunt_id = hunt_id
        self.now = T0
        self.state: HuntState | None = None
        self.seq = 0
        self.lines: list[dict[str, Any]] = []

    def wait(self, seconds: float) -> None:
        self.now += int(seconds * 1000)

    def send(self, type: str, **fields: Any) -> None:
        """Decide a command (its JSON form, ``hunt_id`` filled in) at `now`."""
        obj = {"type": type, **({} if type == "create_hunt" else {"hunt_id": self.hunt_id}), **fields}
        command = parse_command(obj)
        assert not isinstance(command, Rejection), command
        decision = decide(self.state, command, now=self.now)
        line: dict[str, Any] = {"at": self.now, "command": obj}
        if isinstance(decision, Rejection):
            line["rejected"] = {"code": decision.code, "message": decision.message}
        else:
            line["events"] = self._store(decision)
        self.lines.append(line)

    def timer(self, kind: str, due_ts: int) -> None:
        """A due timer fires at its due time."""
        self.now = due_ts
        line = {"at": self.now, "timer": kind, "events": self._store(decide_timer(self.state, kind, due_ts))}
        self.lines.append(line)

    def _store(self, decision: list[Any]) -> list[dict[str, Any]]:
        stored = []
        for new in decision:
            self.seq += 1
            event = StoredEvent(seq=self.seq, hunt_id=self.hunt_id, version=self.seq, type=new.type,
                                ts=self.now, data=new.data)
            self.state = evolve(self.state, event)
            stored.append(event.to_json())
        return stored


def hints(*penalties: int, unlock_after_s: int = 0) -> list[dict[str, Any]]:
    return [{"text": f"hint {i + 1}", "penalty": p, "unlock_after_s": unlock_after_s * i}
            for i, p in enumerate(penalties)]


def relay(s: Script) -> None:
    """Sequential answers, teams and solo players, hints and their penalties (one score
    goes below zero), wrong answers into a cooldown, leaving, rejoining, removal, score
    adjustments, an extension, the treasure, and the end by command."""
    s.send("create_hunt", definition={
        "id": s.hunt_id, "title": "Relay", "order": "sequential", "wrong_answer_cooldown_s": 60,
        "max_players": 6,
        "clues": [
            {"id": "c1", "title": "Gate", "prompt": "What guards the gate?", "points": 100,
             "answers": ["lion", "a lion"], "hints": hints(10, 20, unlock_after_s=30)},
            {"id": "c2", "prompt": "What ticks in the tower?", "points": 150, "answers": ["clock"],
             "hints": hints(25)},
            {"id": "c3", "prompt": "What rings at noon?", "points": 200, "answers": ["bell"]},
        ]})
    s.send("join_hunt", player_id="early")  # before the start: allowed
    s.send("submit_answer", player_id="early", clue_id="c1", answer="lion")  # not running yet
    s.send("start_hunt")
    s.send("start_hunt")  # already running
    for player, team in [("ann", "red"), ("bob", "red"), ("cat", "blue"), ("dan", None), ("eve", None)]:
        s.wait(2)
        s.send("join_hunt", player_id=player, **({"team_id": team} if team else {}))
    s.send("join_hunt", player_id="fay")  # the sixth: full
    s.send("join_hunt", player_id="gus")  # full
    s.send("join_hunt", player_id="ann", team_id="red")  # already joined
    s.wait(5)
    s.send("request_hint", player_id="dan", clue_id="c1")  # below zero: -10
    s.send("request_hint", player_id="dan", clue_id="c1")  # locked for 30 s
    s.wait(31)
    s.send("request_hint", player_id="dan", clue_id="c1")  # -30
    s.send("request_hint", player_id="dan", clue_id="c1")  # no more hints
    for guess in ("tiger", "bear", "wolf"):
        s.wait(1)
        s.send("submit_answer", player_id="ann", clue_id="c1", answer=guess)  # the third starts a cooldown
    s.send("submit_answer", player_id="bob", clue_id="c1", answer="lion")  # the team is cooling down
    s.send("submit_answer", player_id="cat", clue_id="c2", answer="clock")  # locked: c1 first
    s.send("submit_answer", player_id="cat", clue_id="c1", answer="  A   LION ")
    s.send("submit_answer", player_id="cat", clue_id="c1", answer="lion")  # already solved
    s.send("submit_answer", player_id="dan", clue_id="c9", answer="x")  # unknown clue
    s.send("check_in", player_id="dan", clue_id="c1", lat=1.0, lon=2.0)  # solved by an answer
    s.wait(61)
    s.send("submit_answer", player_id="bob", clue_id="c1", answer="Lion")
    s.send("request_hint", player_id="bob", clue_id="c2")
    s.send("submit_answer", player_id="eve", clue_id="c1", answer="lion")
    s.send("leave_hunt", player_id="eve")
    s.send("submit_answer", player_id="eve", clue_id="c2", answer="clock")  # not joined
    s.wait(3)
    s.send("join_hunt", player_id="eve")  # rejoins with her score
    s.send("join_hunt", player_id="eve", team_id="blue")  # already in: a player stays in one team
    s.send("adjust_score", player_id="dan", delta=15, reason="helped a lost tourist")
    s.send("adjust_score", team_id="blue", delta=-5, reason="late")
    s.send("adjust_score", team_id="green", delta=5, reason="no such team")
    s.send("remove_player", player_id="early", reason="started before the start")
    s.send("join_hunt", player_id="early")  # removed: forbidden
    s.send("extend_hunt", ends_at=format_ts(s.now + 3_600_000))
    for clue_id, answer in (("c2", "clock"), ("c3", "bell")):
        s.wait(20)
        s.send("submit_answer", player_id="ann", clue_id=clue_id, answer=answer)  # red finds the treasure
    s.send("submit_answer", player_id="cat", clue_id="c2", answer="clock")
    s.send("end_hunt")
    s.send("submit_answer", player_id="cat", clue_id="c3", answer="bell")  # ended
    s.send("end_hunt")  # already ended
    s.send("remove_player", player_id="dan", reason="after the end, for a fix")


def sprint(s: Script) -> None:
    """Check-ins in any order, timers that start and end the hunt, distance bands,
    a stale end timer after an extension, and a tie broken by who reached it first."""
    starts_at, ends_at = T0 + 60_000, T0 + 1_800_000
    s.send("create_hunt", definition={
        "id": s.hunt_id, "title": "Sprint", "order": "any", "distance_hint": "bands",
        "starts_at": format_ts(starts_at), "ends_at": format_ts(ends_at),
        "clues": [
            {"id": "fountain", "prompt": "The fountain", "points": 50,
             "location": {"lat": 48.8566, "lon": 2.3522, "radius_m": 30}},
            {"id": "bridge", "prompt": "The bridge", "points": 70,
             "location": {"lat": 48.8530, "lon": 2.3499, "radius_m": 40.5}, "hints": hints(5)},
            {"id": "riddle", "prompt": "Say the word", "points": 30, "answers": ["seine"]},
        ]})
    s.send("join_hunt", player_id="p1")
    s.send("join_hunt", player_id="p2")
    s.send("check_in", player_id="p1", clue_id="fountain", lat=48.8566, lon=2.3522)  # not started
    s.timer("start", starts_at)
    s.wait(10)
    s.send("check_in", player_id="p1", clue_id="fountain", lat=48.8570, lon=2.3522)  # ~44 m: too far
    s.send("check_in", player_id="p1", clue_id="fountain", lat=48.8600, lon=2.3600)  # far: a band
    s.send("check_in", player_id="p1", clue_id="fountain", lat=48.8567, lon=2.3522)
    s.send("submit_answer", player_id="p1", clue_id="fountain", answer="x")  # a check-in clue
    s.send("check_in", player_id="p2", clue_id="bridge", lat=48.8532, lon=2.3499)
    s.send("request_hint", player_id="p1", clue_id="bridge")
    s.send("check_in", player_id="p1", clue_id="bridge", lat=48.8530, lon=2.3499)
    s.send("submit_answer", player_id="p2", clue_id="riddle", answer="SEINE")
    s.send("check_in", player_id="p2", clue_id="fountain", lat=48.8566, lon=2.3521)  # treasure: all three
    s.send("extend_hunt", ends_at=format_ts(ends_at + 600_000))
    s.timer("end", ends_at)  # stale: the hunt was extended
    s.send("submit_answer", player_id="p1", clue_id="riddle", answer="seine")  # treasure too
    s.send("join_hunt", player_id="p3")
    s.timer("end", ends_at + 600_000)
    s.send("check_in", player_id="p3", clue_id="fountain", lat=48.8566, lon=2.3522)  # ended


SCENARIOS: dict[str, Callable[[Script], None]] = {"relay": relay, "sprint": sprint}


def play(name: str) -> Script:
    script = Script(hunt_id=name)
    SCENARIOS[name](script)
    return script


def lines(script: Script) -> Iterator[str]:
    for line in script.lines:
        yield json.dumps(line, ensure_ascii=False, separators=(",", ":"))


async def database(path: Path) -> None:
    """The ``relay`` scenario's commands, then a bigger hunt's, through a real engine."""
    script = play("relay")
    now = [T0]
    async with open_engine(str(path), clock=lambda: now[0], snapshot_every=5, snapshot_events_per_player=0,
                           gc_freeze=False) as engine:
        for n, line in enumerate(script.lines):
            now[0] = line["at"]
            command = parse_command(line["command"])
            assert not isinstance(command, Rejection)
            await engine.submit(command, command_id=f"relay-{n}")
        rng = random.Random(2026)
        now[0] += 1000
        big = {"id": "big", "title": "Big", "order": "sequential", "wrong_answer_cooldown_s": 30,
               "clues": [{"id": f"c{k}", "prompt": f"Clue {k}", "points": 100 + 10 * k,
                          "answers": [f"answer-{k}"], "hints": hints(10, 20)} for k in range(4)]}
        for n, obj in enumerate(_big_hunt(big, rng)):
            now[0] += rng.randrange(50, 3000)
            command = parse_command(obj)
            assert not isinstance(command, Rejection), command
            await engine.submit(command, command_id=f"big-{n}")


def _big_hunt(definition: dict[str, Any], rng: random.Random) -> Iterator[dict[str, Any]]:
    yield {"type": "create_hunt", "definition": definition}
    yield {"type": "start_hunt", "hunt_id": "big"}
    players = [f"bot-{i}" for i in range(40)]
    for i, player in enumerate(players):
        yield {"type": "join_hunt", "hunt_id": "big", "player_id": player,
               **({"team_id": f"t{i % 5}"} if i % 2 else {})}
    for _ in range(400):
        player, k = rng.choice(players), rng.randrange(4)
        roll = rng.random()
        if roll < 0.15:
            yield {"type": "request_hint", "hunt_id": "big", "player_id": player, "clue_id": f"c{k}"}
        else:
            answer = f"answer-{k}" if roll < 0.6 else f"wrong-{rng.randrange(99)}"
            yield {"type": "submit_answer", "hunt_id": "big", "player_id": player, "clue_id": f"c{k}",
                   "answer": answer}
    yield {"type": "end_hunt", "hunt_id": "big"}


def main(release: str) -> None:
    out = HERE / release
    out.mkdir(exist_ok=False)
    for name in SCENARIOS:
        script = play(name)
        (out / f"{name}.jsonl").write_text("".join(line + "\n" for line in lines(script)), encoding="utf-8")
        assert script.state is not None
        expected = expectations({name: script.state}, made_by=f"thengine {__version__}")
        (out / f"{name}.expect.json").write_text(json.dumps(expected, ensure_ascii=False, indent=1) + "\n",
                                                 encoding="utf-8")
        print(f"{out / name}.jsonl: {len(script.lines)} lines, {script.seq} events")
    trio.run(database, out / "thengine.db")
    for leftover in ("thengine.db-wal", "thengine.db-shm", "thengine.db.lock"):  # (checkpointed at close)
        (out / leftover).unlink(missing_ok=True)
    print(f"{out / 'thengine.db'}: made; now run\n"
          f"  thengine replay {out / 'thengine.db'} --save-expect {out / 'thengine.expect.json'}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else __version__)
