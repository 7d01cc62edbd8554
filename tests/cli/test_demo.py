"""`thengine demo`: bots play the example hunt; the log is left for `thengine replay`."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

from thengine.cluster.config import load_cluster, partition_of
from thengine.sim import demo
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


async def test_spoofing_bots_are_flagged_and_replay_shows_the_flag_and_awarded_points(tmp_path: Path,
                                                                                       monkeypatch) -> None:
    monkeypatch.setattr(demo, "SPOOFERS", 1.0)  # every bot jumps to the last place at once
    db = tmp_path / "demo.db"
    summary = await demo.run_demo(demo.DemoConfig(db=str(db), seconds=4, players=8, think_s=0.05, seed=7))
    assert summary.treasures and set(summary.flagged) <= {f"bot-{n:03d}" for n in range(1, 9)}
    with Store.open(db, readonly=True) as store:
        events = list(store.read_events())
    flags = [e for e in events if e.type == "implausible_move"]
    judged = [e.type for e in events if e.type in ("entry_accepted", "entry_rejected")]
    assert "entry_accepted" in judged and summary.entries["accepted"] == judged.count("entry_accepted")
    assert [f.data["player_id"] for f in flags] == summary.flagged
    assert all(f.data["clue_id"] == "chest" and (f.data["speed_kmh"] is None or f.data["speed_kmh"] > 60)
               for f in flags)
    bot = summary.flagged[0]
    shown = invoke("replay", db, "--hunt", "old-town", "--player", bot)
    assert shown.exit_code == 0, shown.stderr
    assert "FLAG seq" in shown.stdout and "implausible move to chest" in shown.stdout
    assert re.search(r"\+\d+ +\d+ +\S+ +solved fountain \(\d+(st|nd|rd|th) solver\)", shown.stdout)
    as_json = json.loads(invoke("replay", db, "--hunt", "old-town", "--player", bot, "--json").stdout)
    player = as_json["hunts"]["old-town"]["player"]
    assert [f["seq"] for f in player["flags"]] == [f.seq for f in flags if f.data["player_id"] == bot]
    solved = [item for item in player["history"] if item["type"] == "clue_solved"]
    assert len(solved) == 6 and len([i for i in player["history"] if i["type"] == "entry_accepted"]) == 1
    assert sum(item["points"] for item in player["history"]) == player["score"]
    assert solved[0]["points"] == 100 + (50, 30, 10, 0, 0, 0, 0, 0)[solved[0]["solver"] - 1] - \
        max(0, min(40, 5 * (solved[0]["solver"] - 1)))


def test_demo_cluster_makes_a_two_node_cluster_and_plays_on_the_hunts_node(tmp_path: Path) -> None:
    root = tmp_path / "demo-cluster"
    placed = {}
    for _ in range(2):  # old-town is partition 2's (node a), old-town-2 partition 1's (node b)
        result = invoke("demo", "--cluster", root, "--seconds", 2, "--players", 20)
        assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
        hunt_id = re.search(r"--hunt (\S+)", result.stdout).group(1)
        assert f"thengine replay --cluster {root / 'cluster.toml'} --hunt {hunt_id}" in result.stdout
        placed[hunt_id] = result.stdout
    assert "made a cluster of 2 nodes and 4 partitions" not in result.stderr  # the second run reused it
    cluster = load_cluster(root / "cluster.toml")
    assert set(cluster.nodes) == {"a", "b"} and cluster.partitions == 4
    assert {cluster.owner(partition_of(h, 4)).name for h in placed} == {"a", "b"}
    for hunt_id in placed:
        with Store.open(str(cluster.db_path(partition_of(hunt_id, 4))), readonly=True) as store:
            assert hunt_id in store.hunt_ids()
            kinds = {e.type for e in store.read_events() if e.hunt_id == hunt_id}
        assert {"hunt_created", "hunt_started", "player_joined", "hunt_ended"} <= kinds
    for node in cluster.nodes.values():  # both nodes were stopped again
        with socket.socket() as probe:
            assert probe.connect_ex((node.host, node.port)) != 0
