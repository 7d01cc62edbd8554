"""Golden logs: what released versions wrote must mean the same to today's code.

Each ``tests/golden/RELEASE/NAME.jsonl`` was written by that release (`make.py`): the
commands it decided, at the times it decided them, with the events it stored or its
rejection. Today's code must decide every command into the same events (a rule that
changed for old hunts without a new rules version shows here), and replay the events
to the state in ``NAME.expect.json`` (a change to `evolve` or to how an event is read
shows there). ``RELEASE/thengine.db`` was made by that release's engine: it must
migrate, verify, recover and replay to ``thengine.expect.json``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from thengine import open_engine
from thengine.cli import main
from thengine.domain import rules
from thengine.domain.commands import EndHunt, Rejection, parse_command
from thengine.domain.events import StoredEvent
from thengine.domain.rules import decide, evolve
from thengine.domain.shapes import upcast
from thengine.domain.state import HuntState
from thengine.domain.timers import decide_timer
from thengine.domain.versions import RULES_VERSION
from thengine.history.golden import differences, parse_expectations
from thengine.storage.store import Store

HERE = Path(__file__).resolve().parent
LOGS = sorted(HERE.glob("*/*.jsonl"))
DATABASES = sorted(HERE.glob("*/thengine.db"))


def read_log(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def expected_hunts(path: Path) -> dict[str, Any]:
    return parse_expectations(path.read_text(encoding="utf-8"), str(path))


def redecide(lines: list[dict[str, Any]]) -> tuple[dict[str, HuntState], list[str]]:
    """Decide every logged command again at its time and fold the logged events; the
    states, and every line where today's decision differs from the logged one."""
    hunts: dict[str, HuntState] = {}
    problems = []
    for n, line in enumerate(lines, start=1):
        # As stored by that release, read as today's code reads it: upcast to today's shapes.
        logged = [StoredEvent.from_json({**e, "data": upcast(e["type"], e.get("shape", 1), e["data"])})
                  for e in line.get("events", ())]
        if "timer" in line:
            hunt_id = logged[0].hunt_id if logged else next(iter(hunts))
            decision: Any = decide_timer(hunts.get(hunt_id), line["timer"], line["at"])
        else:
            command = parse_command(line["command"])
            assert not isinstance(command, Rejection), (n, command)
            hunt_id = command.definition.id if line["command"]["type"] == "create_hunt" else command.hunt_id
            decision = decide(hunts.get(hunt_id), command, now=line["at"])
        if isinstance(decision, Rejection):
            now = {"rejected": {"code": decision.code, "message": decision.message}}
        else:
            now = {"events": [[e.type, _as_created_then(e.data, logged) if e.type == "hunt_created" else e.data]
                              for e in decision]}
        then = ({"rejected": line["rejected"]} if "rejected" in line
                else {"events": [[e.type, e.data] for e in logged]})
        if json.loads(json.dumps(now)) != then:
            problems.append(f"line {n}: {json.dumps(line.get('command') or line['timer'])[:100]}: "
                            f"logged {json.dumps(then)[:300]}, decided now {json.dumps(now)[:300]}")
        for event in logged:
            hunts[hunt_id] = evolve(hunts.get(hunt_id), event)
    return hunts, problems


def _as_created_then(data: dict[str, Any], logged: list[StoredEvent]) -> dict[str, Any]:
    """A hunt created today is under today's rules; the logged one kept its own version,
    which is what the rest of the log is decided under."""
    assert data["rules_version"] == RULES_VERSION
    return {**data, "rules_version": logged[0].data["rules_version"]}


def check_log(path: Path) -> list[str]:
    hunts, problems = redecide(read_log(path))
    return problems + differences(expected_hunts(path.with_suffix(".expect.json")), hunts)


def load_into(db: Path, lines: list[dict[str, Any]]) -> None:
    """The logged events as rows of a fresh database, exactly as they were stored."""
    with Store.open(str(db)) as store:
        rows = [(e["seq"], e["hunt_id"], e["version"], e["type"], e["ts"], json.dumps(e["data"]))
                for line in lines for e in line.get("events", ())]
        store.conn.execute("BEGIN")
        store.conn.executemany("INSERT INTO events (seq, hunt_id, version, type, ts, data) "
                               "VALUES (?, ?, ?, ?, ?, ?)", rows)
        store.conn.execute("COMMIT")


def cli(*args: Any) -> Any:
    return CliRunner().invoke(main, [str(a) for a in args])


def test_there_are_golden_logs_of_the_release_before_versioned_rules() -> None:
    assert {p.parent.name for p in LOGS} >= {"0.1.0"}
    assert {p.name for p in LOGS if p.parent.name == "0.1.0"} == {"relay.jsonl", "sprint.jsonl"}
    assert [p.parent.name for p in DATABASES] == ["0.1.0"]


@pytest.mark.parametrize("path", LOGS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_a_golden_log_is_decided_and_replayed_as_its_release_did(path: Path) -> None:
    assert check_log(path) == []


@pytest.mark.parametrize("path", LOGS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_replay_verify_passes_on_a_golden_log_with_its_expectations(tmp_path: Path, path: Path) -> None:
    db = tmp_path / "golden.db"
    load_into(db, read_log(path))
    result = cli("replay", db, "--verify", "--expect", path.with_suffix(".expect.json"))
    assert result.exit_code == 0, result.output
    assert "as expected by" in result.output


def test_changing_a_decide_rule_without_a_new_rules_version_fails_the_golden_test(monkeypatch) -> None:
    monkeypatch.setattr(rules, "WRONG_ANSWERS_BEFORE_COOLDOWN", 4)
    problems = check_log(HERE / "0.1.0" / "relay.jsonl")
    assert problems and any("cooldown" in p for p in problems)


def test_changing_an_evolve_rule_without_a_new_rules_version_fails_the_golden_test(monkeypatch) -> None:
    def free_hints(state: HuntState, data: dict[str, Any], ts: int) -> None:
        group = rules._group_of(state, data)
        solved_ts, hints, wrong, cooldown = group.clue(data["clue_id"])
        group.set_clue(data["clue_id"], (solved_ts, hints + 1, wrong, cooldown))  # no penalty

    monkeypatch.setitem(rules._APPLIERS, "hint_revealed", free_hints)
    problems = check_log(HERE / "0.1.0" / "relay.jsonl")
    assert any(".score: replayed" in p for p in problems), problems


@pytest.mark.parametrize("db", DATABASES, ids=lambda p: p.parent.name)
async def test_a_database_of_an_older_release_migrates_verifies_and_recovers(tmp_path: Path, db: Path) -> None:
    copy = tmp_path / "old.db"
    shutil.copyfile(db, copy)
    expect = db.with_name("thengine.expect.json")
    assert cli("init", copy).exit_code == 0
    result = cli("replay", copy, "--verify", "--expect", expect)
    assert result.exit_code == 0, result.output
    assert "no divergence" in result.output and "as expected by" in result.output
    expected = expected_hunts(expect)
    with Store.open(str(copy), readonly=True) as store:
        command_id, first_seq, last_seq, ts = store.conn.execute(
            "SELECT command_id, first_seq, last_seq, ts FROM commands ORDER BY first_seq DESC LIMIT 1").fetchone()
        logged = store.events_in_range(first_seq, last_seq)
    # As if soon after the release made it: within the idempotency window.
    async with open_engine(str(copy), clock=lambda: ts + 60_000) as engine:
        assert differences(expected, engine.hunts) == []  # recovered from its snapshots and log
        before = engine.committed_seq
        assert command_id.startswith("big-")  # the bigger hunt's last command: its end (see make.py)
        again = await engine.submit(EndHunt(hunt_id="big"), command_id=command_id)
        assert again.ok and list(again.events) == logged  # the first result, nothing new
        assert engine.committed_seq == before

