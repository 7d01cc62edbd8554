"""A partition's database decides only the hunts of its partition: the rest are wrong_partition."""

from __future__ import annotations

from pathlib import Path

from thengine import open_engine
from thengine.cluster.config import load_cluster, partition_of
from thengine.domain.commands import CreateHunt, JoinHunt, Leaderboard
from thengine.domain.definition import parse_definition
from thengine.storage.store import Store

from ..cli.helpers_replay import assert_error, invoke


def hunt(hunt_id: str) -> CreateHunt:
    return CreateHunt(definition=parse_definition({
        "id": hunt_id, "title": hunt_id, "clues": [{"id": "c", "prompt": "?", "points": 1, "answers": ["x"]}]}))


def ids_on(partition: int, count: int, n: int = 2) -> list[str]:
    return [h for h in (f"h-{k}" for k in range(200)) if partition_of(h, count) == partition][:n]


def cluster_of(tmp_path: Path):
    path = tmp_path / "cluster.toml"
    assert invoke("cluster", "init", path, "--partitions", 4, "--node", "a=127.0.0.1:1801",
                  "--node", "b=127.0.0.1:1802").exit_code == 0
    return load_cluster(path)


async def test_a_partition_takes_its_own_hunts_and_refuses_the_others_naming_theirs(tmp_path: Path) -> None:
    cluster = cluster_of(tmp_path)
    mine, theirs = ids_on(0, 4, 1)[0], ids_on(3, 4, 1)[0]
    async with open_engine(cluster.db_path(0)) as engine:
        assert engine.partition == (0, 4)
        assert (await engine.submit(hunt(mine))).ok
        refused = await engine.submit(hunt(theirs))
        assert refused.error.code == "wrong_partition" and "partition 3 of 4" in refused.error.message
        assert (await engine.submit(JoinHunt(hunt_id=theirs, player_id="ann"))).error.code == "wrong_partition"
        assert (await engine.submit(JoinHunt(hunt_id=ids_on(0, 4, 2)[1], player_id="ann"))).error.code \
            == "unknown_hunt"  # ours, and not made yet
        answer = await engine.query(Leaderboard(hunt_id=theirs))
        assert answer.error.code == "wrong_partition"
    async with open_engine(tmp_path / "plain.db") as engine:  # outside a cluster: every hunt is welcome
        assert engine.partition is None and (await engine.submit(hunt(theirs))).ok


def test_hunt_add_to_the_wrong_partition_is_refused(tmp_path: Path) -> None:
    cluster = cluster_of(tmp_path)
    theirs = ids_on(1, 4, 1)[0]
    path = tmp_path / "h.toml"
    path.write_text(f'id = "{theirs}"\ntitle = "T"\n[[clues]]\nid = "c"\nprompt = "?"\npoints = 1\nanswers = ["x"]\n')
    assert_error(invoke("hunt", "add", cluster.db_path(0), path), 2, "wrong_partition")
    result = invoke("hunt", "add", cluster.db_path(1), path)
    assert result.exit_code == 0, result.stderr


def test_hunt_add_with_a_cluster_goes_to_the_hunt_s_partition(tmp_path: Path) -> None:
    cluster = cluster_of(tmp_path)
    hunt_id = ids_on(2, 4, 1)[0]
    path = tmp_path / "h.toml"
    path.write_text(f'id = "{hunt_id}"\ntitle = "T"\n[[clues]]\nid = "c"\nprompt = "?"\npoints = 1\nanswers = ["x"]\n')
    result = invoke("hunt", "add", "--cluster", cluster.path, path, "--start")
    assert result.exit_code == 0, result.stderr
    assert f"partition 2 (node {cluster.owner(2).name})" in result.stderr
    with Store.open(cluster.db_path(2), readonly=True) as store:
        assert store.hunt_ids() == [hunt_id]
    assert_error(invoke("hunt", "add", "--cluster", cluster.path, cluster.db_path(0), path), 2, "only FILE.toml")
