"""`thengine demo`: bots play the example hunt; the log is left for `thengine replay`."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from thengine.sim.demo import example_hunt
from thengine.storage.store import Store

from .helpers_replay import assert_error, invoke


def test_the_example_hunt_is_found() -> None:
    assert example_hunt().id == "old-town"


def test_demo_writes_events_and_prints_the_replay_command(tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    result = invoke("demo", "--seconds", 2, "--players", 20, "--db", db)
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    assert f"thengine replay {db} --hunt old-town" in result.stdout
    with Store.open(db, readonly=True) as store:
        assert store.hunt_ids() == ["old-town"]
        events = list(store.read_events())
    types = [e.type for e in events]
    assert types[:2] == ["hunt_created", "hunt_started"] and types[-1] == "hunt_ended"
    assert types.count("player_joined") == 20


def test_a_second_run_reuses_the_database_under_a_new_hunt_id(tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    for _ in range(2):
        assert invoke("demo", "--seconds", 1, "--players", 5, "--db", db).exit_code == 0
    result = invoke("demo", "--seconds", 0.5, "--players", 5, "--db", db)
    assert "--hunt old-town-3" in result.stdout
    with Store.open(db, readonly=True) as store:
        assert store.hunt_ids() == ["old-town", "old-town-2", "old-town-3"]


def test_without_a_terminal_progress_is_a_line_at_a_time(tmp_path: Path) -> None:
    result = invoke("demo", "--seconds", 1, "--players", 5, "--db", tmp_path / "demo.db")
    first = result.stdout.splitlines()[0]
    assert first.startswith("demo old-town: ") and "\x1b" not in result.stdout


def test_bad_values_are_bad_input(tmp_path: Path) -> None:
    assert_error(invoke("demo", "--seconds", 0, "--db", tmp_path / "d.db"), 2, "--seconds")
    assert_error(invoke("demo", "--players", 0, "--db", tmp_path / "d.db"), 2, "--players")


def test_ctrl_c_stops_early_and_still_prints_the_summary(tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    process = subprocess.Popen(
        [sys.executable, "-c", "from thengine.cli import main; main()", "demo", "--seconds", "60",
         "--players", "10", "--db", str(db)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert process.stdout is not None
    first = process.stdout.readline()  # the first progress line: the bots are playing
    assert first.startswith("demo old-town: ")
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert "demo stopped early (Ctrl-C)" in out and "thengine replay" in out
    assert "Traceback" not in err
    with Store.open(db, readonly=True) as store:
        assert list(store.read_events())[-1].type == "hunt_ended"
