"""`thengine events`: the log as a table or JSON lines; read-only; follows a running engine."""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import trio

import thengine
from thengine.cli.events import format_time, summarize
from thengine.domain.events import StoredEvent
from thengine.storage.lock import EngineLock

from tests.cli.helpers_admin import (
    ROOT,
    LineReader,
    assert_error,
    assert_ok,
    invoke,
    jsonl,
    make_db,
    parse_lines,
    stored_events,
    thengine_process,
)


def joins(hunt_id: str, *players: str) -> str:
    return jsonl(*({"type": "join_hunt", "hunt_id": hunt_id, "player_id": p} for p in players))


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """Hunts h1 (ann and bob joined) and long-hunt-name (cy joined): 7 events."""
    db = make_db(tmp_path, "h1", "long-hunt-name")
    assert_ok(invoke("ingest", db, "-", input=joins("h1", "ann", "bob") + joins("long-hunt-name", "cy")))
    return db


def test_events_json_prints_every_stored_event_in_seq_order(db: Path) -> None:
    result = invoke("events", db, "--json")
    assert_ok(result)
    printed = parse_lines(result.stdout)
    assert [e["seq"] for e in printed] == [1, 2, 3, 4, 5, 6, 7]
    assert all(set(e) == {"seq", "hunt_id", "version", "type", "ts", "data"} for e in printed)
    assert printed == list(stored_events(db).values())


def test_events_filters_by_hunt_and_resumes_after_a_seq(db: Path) -> None:
    everything = parse_lines(invoke("events", db, "--json").stdout)
    result = invoke("events", db, "--json", "--hunt", "h1", "--after", "2")
    assert_ok(result)
    assert parse_lines(result.stdout) == [e for e in everything if e["hunt_id"] == "h1" and e["seq"] > 2]


def test_events_limit_stops_after_n_events(db: Path) -> None:
    result = invoke("events", db, "--json", "--after", "1", "--limit", "3")
    assert [e["seq"] for e in parse_lines(result.stdout)] == [2, 3, 4]


def test_events_table_aligns_its_columns(db: Path) -> None:
    result = invoke("events", db)
    assert_ok(result)
    header, *rows = result.stdout.splitlines()
    assert header.split() == ["seq", "time", "(UTC)", "hunt", "version", "type", "data"]
    assert len(rows) == 7
    data_column = header.index("data")
    assert all(row[data_column - 2:data_column] == "  " and row[data_column] != " " for row in rows)
    assert sum("player_id=cy" in row for row in rows) == 1
    assert rows[0].split()[:2] == ["1", format_time(stored_events(db)[1]["ts"])]


def test_the_table_shows_times_in_utc_with_milliseconds() -> None:
    assert format_time(1_796_119_200_250) == "2026-12-01T10:00:00.250Z"
    assert format_time(0) == "1970-01-01T00:00:00.000Z"


def test_the_table_summarises_event_data_in_one_short_line() -> None:
    created = StoredEvent(seq=1, hunt_id="h", version=1, type="hunt_created", ts=0,
                          data={"definition": {"title": "Old Town", "order": "any", "clues": [{}, {}]}})
    assert summarize(created) == '"Old Town" (2 clues, any)'
    wrong = StoredEvent(seq=2, hunt_id="h", version=2, type="answer_wrong", ts=0,
                        data={"player_id": "p1", "answer": "x" * 500})
    text = summarize(wrong)
    assert text.startswith("player_id=p1 answer=xxx") and len(text) == 80 and "\n" not in text


def test_events_of_an_unknown_hunt_exits_2(db: Path) -> None:
    assert_error(invoke("events", db, "--hunt", "nope"), 2, "no hunt 'nope'")


def test_events_of_an_empty_log_prints_only_the_header(tmp_path: Path) -> None:
    db = make_db(tmp_path)
    result = invoke("events", db)
    assert_ok(result)
    assert len(result.stdout.splitlines()) == 1


def test_events_of_a_missing_database_exits_2_and_creates_nothing(tmp_path: Path) -> None:
    assert_error(invoke("events", tmp_path / "missing.db"), 2, "no database at")
    assert list(tmp_path.iterdir()) == []


def test_events_with_a_negative_seq_exits_2(tmp_path: Path) -> None:
    db = make_db(tmp_path)
    assert_error(invoke("events", db, "--after", "-1"), 2, "--after")


def digest(db: Path) -> str:
    return hashlib.sha256(db.read_bytes()).hexdigest()


def test_events_and_stats_do_not_write_to_the_database(db: Path) -> None:
    before = digest(db), db.stat().st_mtime_ns
    assert_ok(invoke("events", db))
    assert_ok(invoke("events", db, "--json", "--hunt", "h1"))
    assert_ok(invoke("stats", db))
    assert (digest(db), db.stat().st_mtime_ns) == before


def test_events_works_while_an_engine_holds_the_database(db: Path) -> None:
    with EngineLock.acquire(db):
        result = invoke("events", db, "--json")
    assert_ok(result)
    assert len(parse_lines(result.stdout)) == 7


async def test_events_in_another_process_sees_what_a_running_engine_committed(db: Path) -> None:
    async with thengine.open_engine(db) as engine:
        result = await engine.submit(thengine.JoinHunt(hunt_id="h1", player_id="dee"))
        command = [sys.executable, "-m", "thengine", "events", str(db), "--json", "--after", "7"]
        done = await trio.run_process(command, capture_stdout=True, capture_stderr=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert parse_lines(done.stdout.decode()) == [e.to_json() for e in result.events]


def test_events_follow_prints_new_events_until_ctrl_c_then_exits_0(db: Path) -> None:
    with thengine_process("events", db, "--json", "--follow", "--hunt", "h1",
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE) as follower:
        try:
            lines = LineReader(follower)
            assert len(lines.read_until(4)) == 4  # h1: created, started, ann, bob
            assert_ok(invoke("ingest", db, "-", input=joins("long-hunt-name", "zed") + joins("h1", "eve")))
            new = json.loads(lines.read_until(5)[4])
            assert (new["hunt_id"], new["data"]["player_id"]) == ("h1", "eve")
            follower.send_signal(signal.SIGINT)
            assert follower.wait(timeout=10) == 0
        finally:
            follower.kill()
        assert follower.stderr is not None
        assert b"Traceback" not in follower.stderr.read()
