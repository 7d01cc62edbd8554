"""`thengine cluster init` and the cluster file: partitions, nodes, the shared token secret."""

from __future__ import annotations

import os
import stat
import time
import zlib
from pathlib import Path

import pytest

from thengine.cluster.config import ClusterError, load_cluster, partition_of
from thengine.server.tokens import SECRET_META_KEY, decode_secret, verify
from thengine.storage.store import Store

from .helpers_replay import assert_error, invoke


def make(tmp_path: Path, *extra: object) -> Path:
    path = tmp_path / "cluster.toml"
    result = invoke("cluster", "init", path, "--partitions", 8, "--node", "a=127.0.0.1:8801",
                    "--node", "b=127.0.0.1:8802", *extra)
    assert result.exit_code == 0, result.stderr
    return path


def test_init_writes_the_file_and_a_database_per_partition_round_robin(tmp_path: Path) -> None:
    cluster = load_cluster(make(tmp_path))
    assert cluster.partitions == 8
    assert {n: (node.listen, node.partitions) for n, node in cluster.nodes.items()} == {
        "a": ("127.0.0.1:8801", (0, 2, 4, 6)), "b": ("127.0.0.1:8802", (1, 3, 5, 7))}
    assert sorted(p.name for p in (tmp_path / "partitions").iterdir()) == [f"p{n:02d}.db" for n in range(8)]
    assert cluster.owner(5).name == "b" and cluster.db_path(5) == tmp_path / "partitions" / "p05.db"
    assert stat.S_IMODE(os.stat(tmp_path / "cluster.secret").st_mode) == 0o600


def test_every_partition_and_the_cluster_token_share_one_secret(tmp_path: Path) -> None:
    cluster = load_cluster(make(tmp_path))
    secret = cluster.read_secret()
    for partition in range(cluster.partitions):
        with Store.open(cluster.db_path(partition), readonly=True) as store:
            assert decode_secret(store.get_meta(SECRET_META_KEY)) == secret
    token = invoke("token", "--cluster", cluster.path, "--role", "player", "--player", "ann").stdout.strip()
    assert verify(secret, token, now_s=int(time.time())).player_id == "ann"


def test_a_given_secret_file_is_named_in_the_cluster_file_and_reused(tmp_path: Path) -> None:
    (tmp_path / "shared.secret").write_text("ab" * 32 + "\n")
    cluster = load_cluster(make(tmp_path, "--secret-file", tmp_path / "shared.secret"))
    assert cluster.secret_file == tmp_path / "shared.secret" and cluster.read_secret() == bytes.fromhex("ab" * 32)
    assert 'secret_file = "shared.secret"' in cluster.path.read_text()


def test_a_hunt_s_partition_is_crc32_of_its_id_as_haproxy_computes_it() -> None:
    for hunt_id in ("old-town", "a", "h-17", "ünïcode"):
        assert partition_of(hunt_id, 16) == zlib.crc32(hunt_id.encode()) % 16


def test_bad_arguments_are_one_line_errors_and_nothing_is_made(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    assert_error(invoke("cluster", "init", path, "--node", "a=127.0.0.1"), 2, "HOST:PORT")
    assert_error(invoke("cluster", "init", path, "--node", "a=h:1", "--node", "a=h:2"), 2, "own name")
    assert_error(invoke("cluster", "init", path, "--partitions", 1, "--node", "a=h:1", "--node", "b=h:2"), 2,
                 "fewer than")
    assert not path.exists() and not (tmp_path / "partitions").exists()
    made = make(tmp_path)
    assert_error(invoke("cluster", "init", made, "--node", "a=h:1"), 2, "already exists")


def test_a_wrong_cluster_file_lists_every_problem(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('partitions = 4\nsecret_file = "s"\n[nodes.a]\nlisten = "h:1"\npartitions = [0, 1, 9]\n'
                    '[nodes.b]\nlisten = "h:1"\npartitions = [1]\n')
    with pytest.raises(ClusterError) as raised:
        load_cluster(path)
    text = "\n".join(raised.value.problems)
    assert "9 is not a partition" in text and "1 is hosted by node a too" in text
    assert "also node a's" in text and "partitions [2, 3] are hosted by no node" in text
    assert_error(invoke("token", "--cluster", tmp_path / "none.toml", "--role", "admin"), 2, "no cluster file")


def test_status_says_which_nodes_are_down_and_still_reads_their_partitions(tmp_path: Path) -> None:
    path = tmp_path / "cluster.toml"
    assert invoke("cluster", "init", path, "--partitions", 2, "--node", "a=127.0.0.1:9",
                  "--node", "b=127.0.0.1:7").exit_code == 0  # (nothing listens on those ports)
    result = invoke("cluster", "status", path, "--window", "0.1")
    assert result.exit_code == 0, result.stderr
    assert "node a at 127.0.0.1:9: DOWN, - commands/s" in result.stdout
    assert "partition   1: 0 hunts, 0 events, seq 0" in result.stdout


def test_status_wait_gives_up_on_nodes_that_never_answer(tmp_path: Path) -> None:
    file = tmp_path / "cluster.toml"
    assert invoke("cluster", "init", file, "--partitions", 2, "--node", "a=127.0.0.1:1", "--node",
                  "b=127.0.0.1:2").exit_code == 0
    started = time.monotonic()
    result = invoke("cluster", "status", file, "--wait", 0.5)
    assert result.exit_code == 1
    assert "after 0.5 s, nodes a, b do not answer on /healthz" in result.stderr
    assert time.monotonic() - started >= 0.5
