"""`thengine bench`: closed and open loop, one JSON object, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

from thengine.cluster.config import load_cluster, partition_of
from thengine.storage.store import Store

from .helpers_replay import assert_error, invoke

SMALL = ("--hunts", 5, "--players", 100)


def bench_json(*args: object) -> dict:
    result = invoke("bench", *SMALL, *args, "--json")
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    assert result.stderr == ""  # no progress display with --json
    return json.loads(result.stdout)


def test_json_is_one_object_with_the_documented_fields() -> None:
    answer = bench_json("--commands", 500, "--concurrency", 10)
    assert set(answer) == {"commands", "seconds", "commands_per_s", "events_per_s", "latency_ms", "rejected",
                           "hunts", "players", "concurrency", "sync", "rate", "command_ids", "stages",
                           "gc_pause_ms"}
    assert set(answer["latency_ms"]) == {"p50", "p90", "p99", "p999", "max"}
    assert (answer["commands"], answer["hunts"], answer["players"], answer["concurrency"]) == (500, 5, 100, 10)
    assert (answer["sync"], answer["rate"], answer["rejected"]) == ("full", None, 0)
    lat = answer["latency_ms"]
    assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["p999"] <= lat["max"]
    assert answer["commands_per_s"] > 0 and answer["events_per_s"] >= answer["commands_per_s"] * 0.9
    # where the time went, stage by stage
    assert set(answer["stages"]) == {"inbox_wait", "decide", "commit_wait", "commit", "commit_sync", "loop_lag"}
    for stage in answer["stages"].values():
        assert set(stage) == {"p50", "p99", "max"} and 0 <= stage["p50"] <= stage["p99"] <= stage["max"]
    assert answer["stages"]["decide"]["max"] > 0 and answer["stages"]["commit_sync"]["max"] > 0
    assert answer["stages"]["commit"]["max"] >= answer["stages"]["commit_sync"]["max"]
    assert set(answer["gc_pause_ms"]) == {"max", "p99", "count"} and answer["gc_pause_ms"]["count"] > 0
    assert answer["command_ids"] is True


def test_commands_carry_ids_unless_told_not_to(tmp_path: Path) -> None:
    def ids(db: Path) -> int:
        with Store.open(db, readonly=True) as store:
            return store.conn.execute("SELECT count(*) FROM commands").fetchone()[0]

    with_ids, without = tmp_path / "ids.db", tmp_path / "none.db"
    assert bench_json("--commands", 200, "--db", with_ids)["command_ids"] is True
    assert bench_json("--commands", 200, "--db", without, "--no-command-ids")["command_ids"] is False
    assert ids(with_ids) >= 200 * 0.9 and ids(without) == 0  # (rejections record no id)


def test_rate_runs_an_open_loop_on_a_fixed_timetable() -> None:
    answer = bench_json("--commands", 300, "--rate", 1000, "--sync", "normal")
    assert (answer["rate"], answer["commands"], answer["sync"]) == (1000, 300, "normal")
    # 300 commands offered at 1,000/s take at least the timetable's 0.299 s.
    assert answer["seconds"] >= 0.299
    assert answer["commands_per_s"] <= 1000 * 1.01


def test_db_keeps_the_log_and_can_be_reused(tmp_path: Path) -> None:
    db = tmp_path / "bench.db"
    bench_json("--commands", 100, "--db", db)
    bench_json("--commands", 100, "--db", db)
    with Store.open(db, readonly=True) as store:
        hunts = store.hunt_ids()
    assert len(hunts) == 10 and {h.split("-")[0] for h in hunts} == {"bench1", "bench2"}


def test_human_summary_and_progress_go_to_stdout_and_stderr() -> None:
    result = invoke("bench", *SMALL, "--commands", 200, "--concurrency", 5)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("200 commands in ")
    assert "latency ms  p50" in result.stdout
    assert "where the time goes" in result.stdout and "COMMIT/fsync" in result.stdout
    assert "gc pauses   max" in result.stdout
    assert "200 of 200 commands" in result.stderr


def test_bad_numbers_are_bad_input() -> None:
    assert_error(invoke("bench", "--commands", 0), 2, "--commands")
    assert_error(invoke("bench", "--rate", -5), 2, "--rate")
    assert_error(invoke("bench", "--players", 10, "--hunts", 5, "--concurrency", 20), 2, "--concurrency")


def test_a_db_that_is_not_a_database_is_bad_input(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_text("not sqlite")
    assert_error(invoke("bench", "--db", junk), 2, "not a thengine database")


def test_cluster_runs_every_node_on_its_own_partitions_at_once(tmp_path: Path) -> None:
    file = tmp_path / "cluster.toml"
    assert invoke("cluster", "init", file, "--partitions", 4, "--node", "a=127.0.0.1:1801",
                  "--node", "b=127.0.0.1:1802").exit_code == 0
    result = invoke("bench", "--cluster", file, "--hunts", 8, "--players", 200, "--concurrency", 8,
                    "--commands", 400, "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert set(report["nodes"]) == {"a", "b"}
    assert [report["nodes"][n]["commands"] for n in ("a", "b")] == [200, 200]  # each its share: 2 of 4 partitions
    assert report["commands"] == 400
    assert report["commands_per_s"] == round(400 / report["seconds"], 1)
    cluster = load_cluster(file)
    made = 0
    for partition in range(4):  # every partition got hunts, only its own
        with Store.open(str(cluster.db_path(partition)), readonly=True) as store:
            hunts = store.hunt_ids()
        assert hunts and all(partition_of(h, 4) == partition for h in hunts)
        made += len(hunts)
    assert made == 8


def test_cluster_and_db_together_is_bad_input(tmp_path: Path) -> None:
    file = tmp_path / "cluster.toml"
    assert invoke("cluster", "init", file, "--partitions", 2, "--node", "a=127.0.0.1:1801").exit_code == 0
    result = invoke("bench", "--cluster", file, "--db", tmp_path / "x.db")
    assert result.exit_code == 2 and "either --db or --cluster" in result.stderr
    result = invoke("bench", "--cluster", tmp_path / "none.toml")
    assert result.exit_code == 2 and "no cluster file" in result.stderr
