"""A cluster behind the real HAProxy: `/v1?hunt=H` reaches the node hosting H's partition.

Each node here hosts one partition, served by a plain `thengine serve` of that partition's
database; the proxy's config and map come from `thengine cluster haproxy`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest
import trio

from thengine.client import connect
from thengine.cluster.config import load_cluster, partition_of
from thengine.domain.commands import CreateHunt, JoinHunt
from thengine.domain.definition import parse_definition
from thengine.storage.store import Store

from ..cli.helpers_replay import invoke

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@pytest.fixture
def proxied(tmp_path: Path) -> Iterator[tuple[str, Path, dict[str, int]]]:
    """Two nodes (one partition each) and HAProxy in front: (proxy ws URL, cluster file, node ports)."""
    if shutil.which("haproxy") is None:
        pytest.fail("the cluster tests need HAProxy: apt-get install -y haproxy", pytrace=False)
    ports = {"a": free_port(), "b": free_port()}
    cluster_file = tmp_path / "cluster.toml"
    result = invoke("cluster", "init", cluster_file, "--partitions", 2,
                    *[arg for name, port in ports.items() for arg in ("--node", f"{name}=127.0.0.1:{port}")])
    assert result.exit_code == 0, result.stderr
    cluster = load_cluster(cluster_file)
    nodes = []
    for name, node in cluster.nodes.items():
        [partition] = node.partitions
        nodes.append(subprocess.Popen(
            [sys.executable, "-m", "thengine", "serve", str(cluster.db_path(partition)), "--listen", node.listen],
            stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(ROOT)}))
    lb_port = free_port()
    out = tmp_path / "lb"
    assert invoke("cluster", "haproxy", cluster_file, "--listen", f"127.0.0.1:{lb_port}", "--out", out).exit_code == 0
    pidfile = tmp_path / "haproxy.pid"
    try:
        for port in ports.values():
            wait_http(f"http://127.0.0.1:{port}/healthz")
        subprocess.run(["haproxy", "-f", str(out / "haproxy.cfg"), "-D", "-p", str(pidfile)], check=True,
                       cwd="/", timeout=30)
        wait_http(f"http://127.0.0.1:{lb_port}/healthz")
        yield f"ws://127.0.0.1:{lb_port}/v1", cluster_file, ports
    finally:
        if pidfile.exists():
            os.kill(int(pidfile.read_text().split()[0]), signal.SIGTERM)
        for proc in nodes:
            proc.send_signal(signal.SIGTERM)
        for proc in nodes:
            proc.wait(timeout=30)


def hunt(hunt_id: str) -> CreateHunt:
    return CreateHunt(definition=parse_definition({
        "id": hunt_id, "title": hunt_id, "clues": [{"id": "c", "prompt": "?", "points": 1, "answers": ["x"]}]}))


async def test_each_hunt_lands_in_its_partition_through_the_proxy(proxied) -> None:
    url, cluster_file, ports = proxied
    cluster = load_cluster(cluster_file)
    token = invoke("token", "--cluster", cluster_file, "--role", "admin").stdout.strip()
    hunt_ids = [f"h-{n}" for n in range(12)]
    assert {partition_of(h, 2) for h in hunt_ids} == {0, 1}
    for hunt_id in hunt_ids:
        async with connect(f"{url}?hunt={hunt_id}", token) as client:
            assert (await client.submit(hunt(hunt_id))).ok
            assert (await client.submit(JoinHunt(hunt_id=hunt_id, player_id="ann"))).ok  # (the lobby is open)
    for partition in range(2):
        with Store.open(cluster.db_path(partition), readonly=True) as store:
            assert sorted(store.hunt_ids()) == sorted(h for h in hunt_ids if partition_of(h, 2) == partition)


async def test_metrics_of_one_node_through_the_proxy(proxied) -> None:
    url, cluster_file, ports = proxied
    token = invoke("token", "--cluster", cluster_file, "--role", "admin").stdout.strip()
    on = {0: [h for h in (f"m-{n}" for n in range(20)) if partition_of(h, 2) == 0][:2],
          1: [h for h in (f"m-{n}" for n in range(20)) if partition_of(h, 2) == 1][:1]}
    for hunt_ids in on.values():
        for hunt_id in hunt_ids:
            async with connect(f"{url}?hunt={hunt_id}", token) as client:
                assert (await client.submit(hunt(hunt_id))).ok
    lb = url.replace("ws://", "http://").removesuffix("/v1")
    cluster = load_cluster(cluster_file)
    for name in ports:
        [partition] = cluster.node(name).partitions
        with urllib.request.urlopen(f"{lb}/metrics?node={name}", timeout=10) as through:
            text = through.read().decode()
        created = re.search(r'^thengine_commands_total\{outcome="ok",type="create_hunt"\} (\S+)$', text, re.M)
        assert created is not None and float(created.group(1)) == len(on[partition]), (name, text[:500])


def test_the_config_runs_from_any_directory_and_names_nothing_outside_its_own(tmp_path: Path) -> None:
    cluster_file = tmp_path / "cluster.toml"
    assert invoke("cluster", "init", cluster_file, "--partitions", 4, "--node", "a=127.0.0.1:1801",
                  "--node", "b=127.0.0.1:1802").exit_code == 0
    out = tmp_path / "lb"
    assert invoke("cluster", "haproxy", cluster_file, "--listen", "127.0.0.1:1800", "--out", out).exit_code == 0
    text = (out / "haproxy.cfg").read_text()
    assert "chroot" not in text and "\n    user " not in text
    directives = "\n".join(line.split("#", 1)[0] for line in text.splitlines())
    paths = re.findall(r"(/[^\s,)]+)", directives)
    assert paths and all(p.startswith(str(out)) or p in ("/v1", "/metrics", "/healthz") for p in paths), paths
    assert (out / "partitions.map").read_text() == "0 node_a\n1 node_b\n2 node_a\n3 node_b\n"
    checked = subprocess.run(["haproxy", "-c", "-f", str(out / "haproxy.cfg")], capture_output=True, text=True,
                             cwd="/")
    assert checked.returncode == 0, checked.stderr


async def test_a_command_for_a_hunt_of_another_node_is_wrong_partition(proxied) -> None:
    url, cluster_file, _ = proxied
    token = invoke("token", "--cluster", cluster_file, "--role", "admin").stdout.strip()
    here = next(h for h in (f"w-{n}" for n in range(50)) if partition_of(h, 2) == 0)
    there = next(h for h in (f"w-{n}" for n in range(50)) if partition_of(h, 2) == 1)
    async with connect(f"{url}?hunt={here}", token) as client:  # routed to partition 0's node
        refused = await client.submit(hunt(there))
        assert refused.error is not None and refused.error.code == "wrong_partition"
        assert f"?hunt={there}" in refused.error.message
        assert (await client.submit(hunt(here))).ok


async def test_status_shows_each_node_its_partitions_hunts_and_commands_per_second(proxied) -> None:
    url, cluster_file, ports = proxied
    token = invoke("token", "--cluster", cluster_file, "--role", "admin").stdout.strip()
    made = [f"s-{n}" for n in range(6)]
    for hunt_id in made:
        async with connect(f"{url}?hunt={hunt_id}", token) as client:
            assert (await client.submit(hunt(hunt_id))).ok
    result = await trio.to_thread.run_sync(lambda: invoke("cluster", "status", cluster_file, "--json",
                                                          "--window", "0.3"))
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["partitions"] == 2 and set(report["nodes"]) == {"a", "b"}
    for name, node in report["nodes"].items():
        assert node["up"] is True and node["commands_per_s"] is not None and node["commands_per_s"] >= 0
        [part] = node["partitions"]
        assert part["hunts"] == sum(1 for h in made if partition_of(h, 2) == part["partition"])
        assert node["seqs"] == {str(part["partition"]): part["last_seq"]} and part["last_seq"] > 0
    table = invoke("cluster", "status", cluster_file, "--window", "0.1").stdout
    assert re.search(r"^node a at 127\.0\.0\.1:\d+: up, [\d.,]+ commands/s$", table, re.M), table
