"""Two `thengine serve --cluster F --node N` processes hosting 8 partitions, behind the real
HAProxy: routing, following `wrong_partition`, a node killed with SIGKILL, and a
partition moved while a client plays through the proxy."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Iterator

import attrs
import pytest
import trio

from thengine.client import connect
from thengine.cluster.config import load_cluster, partition_of
from thengine.domain.commands import Hunts, JoinHunt, StartHunt, SubmitAnswer
from thengine.storage.store import Store

from ..cli.helpers_replay import invoke
from .test_haproxy import ROOT, free_port, hunt, wait_http

P = 8


@attrs.define
class Cluster:
    file: Path
    lb: str  # ws://127.0.0.1:PORT/v1
    lb_dir: Path
    ports: dict[str, int]
    procs: dict[str, subprocess.Popen[bytes]]
    token: str

    def start(self, name: str) -> None:
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-m", "thengine", "serve", "--cluster", str(self.file), "--node", name],
            stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(ROOT)})
        wait_http(f"http://127.0.0.1:{self.ports[name]}/healthz")

    def routed(self, name: str) -> None:
        """Wait until the proxy has seen node `name` up (its health check) and routes to it."""
        wait_http(self.lb.replace("ws://", "http://").removesuffix("/v1") + f"/metrics?node={name}")

    def health(self, name: str) -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.ports[name]}/healthz", timeout=5) as answer:
            return json.loads(answer.read())


def hunts_on(partitions: set[int], count: int, prefix: str = "h") -> list[str]:
    found = []
    n = 0
    while len(found) < count:
        if partition_of(f"{prefix}{n}", P) in partitions:
            found.append(f"{prefix}{n}")
        n += 1
    return found


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    if shutil.which("haproxy") is None:
        pytest.fail("the cluster tests need HAProxy: apt-get install -y haproxy", pytrace=False)
    ports = {"a": free_port(), "b": free_port()}
    file = tmp_path / "cluster.toml"
    made = invoke("cluster", "init", file, "--partitions", P,
                  *[arg for name, port in ports.items() for arg in ("--node", f"{name}=127.0.0.1:{port}")])
    assert made.exit_code == 0, made.stderr
    lb_port = free_port()
    lb_dir = tmp_path / "lb"
    assert invoke("cluster", "haproxy", file, "--listen", f"127.0.0.1:{lb_port}", "--out", lb_dir).exit_code == 0
    token = invoke("token", "--cluster", file, "--role", "admin").stdout.strip()
    running = Cluster(file=file, lb=f"ws://127.0.0.1:{lb_port}/v1", lb_dir=lb_dir, ports=ports, procs={},
                      token=token)
    pidfile = tmp_path / "haproxy.pid"
    try:
        for name in ports:
            running.start(name)
        subprocess.run(["haproxy", "-f", str(lb_dir / "haproxy.cfg"), "-D", "-p", str(pidfile)], check=True,
                       cwd="/", timeout=30)
        wait_http(f"http://127.0.0.1:{lb_port}/healthz")
        yield running
    finally:
        if pidfile.exists():
            os.kill(int(pidfile.read_text().split()[0]), signal.SIGTERM)
        for proc in running.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in running.procs.values():
            proc.wait(timeout=30)


async def test_commands_for_many_hunts_through_the_proxy_land_in_their_partitions(cluster: Cluster) -> None:
    hunt_ids = [f"city-{n}" for n in range(24)]
    assert {partition_of(h, P) for h in hunt_ids} == set(range(P))
    first = hunt_ids[0]
    async with connect(f"{cluster.lb}?hunt={first}", cluster.token) as client:
        assert client.welcome["cluster"]["partitions"] == P
        for hunt_id in hunt_ids:  # one connection: the others are reached by following wrong_partition
            assert (await client.submit(hunt(hunt_id))).ok, hunt_id
            assert (await client.submit(JoinHunt(hunt_id=hunt_id, player_id="ann"))).ok
        listed = await client.query(Hunts())
        assert [h["hunt_id"] for h in listed["hunts"]] == sorted(hunt_ids)  # every node's, merged
    cl = load_cluster(cluster.file)
    for partition in range(P):
        with Store.open(str(cl.db_path(partition)), readonly=True) as store:
            assert sorted(store.hunt_ids()) == sorted(h for h in hunt_ids if partition_of(h, P) == partition)
    for name in ("a", "b"):
        seqs = cluster.health(name)["partitions"]
        assert sorted(map(int, seqs)) == list(cl.node(name).partitions)
        assert all(seq == 2 * sum(1 for h in hunt_ids if partition_of(h, P) == int(p)) for p, seq in seqs.items())


async def test_a_node_answers_another_nodes_hunt_with_wrong_partition_and_its_url(cluster: Cluster) -> None:
    [theirs] = hunts_on({1}, 1)  # partition 1 is node b's
    direct = f"ws://127.0.0.1:{cluster.ports['a']}/v1"
    async with connect(direct, cluster.token, _routed=False) as raw:
        reply = await raw.request({"op": "command", "command": {"type": "join_hunt", "hunt_id": theirs,
                                                                "player_id": "ann"}})
        assert reply["error"]["code"] == "wrong_partition"
        assert reply["error"]["url"] == f"ws://127.0.0.1:{cluster.ports['b']}/v1"
        refused = await raw.request({"op": "subscribe", "hunt_id": theirs})
        assert refused["error"]["code"] == "wrong_partition"
        every = await raw.request({"op": "subscribe"})
        assert every["op"] == "error" and every["code"] == "bad_request" and "one hunt" in every["message"]
    with Store.open(str(load_cluster(cluster.file).db_path(0)), readonly=True) as store:
        assert store.last_seq() == 0  # nothing was decided on a for b's hunt
    async with connect(direct, cluster.token) as client:  # connected to a, following to b by the URL
        assert (await client.submit(hunt(theirs))).ok
        async with client.watch_leaderboard(theirs) as board:
            assert (await board.__anext__()).board.hunt_id == theirs


async def test_a_killed_node_leaves_the_other_serving_and_loses_nothing_it_acknowledged(cluster: Cluster) -> None:
    cl = load_cluster(cluster.file)
    on_a = hunts_on(set(cl.node("a").partitions), 3, "a")
    on_b = hunts_on(set(cl.node("b").partitions), 3, "b")
    acked: dict[str, int] = {}
    async with connect(f"{cluster.lb}?hunt={on_b[0]}", cluster.token) as client:
        for hunt_id in on_a + on_b:
            assert (await client.submit(hunt(hunt_id))).ok
            assert (await client.submit(StartHunt(hunt_id=hunt_id))).ok
        for n in range(30):
            hunt_id = on_b[n % 3]
            result = await client.submit(JoinHunt(hunt_id=hunt_id, player_id=f"p{n}"), command_id=f"join-{n}")
            assert result.ok
            acked[f"join-{n}"] = result.events[-1].seq
    cluster.procs["b"].send_signal(signal.SIGKILL)
    cluster.procs["b"].wait(timeout=10)
    async with connect(f"{cluster.lb}?hunt={on_a[0]}", cluster.token) as client:
        for n, hunt_id in enumerate(on_a):  # a's hunts still take commands, b down or not
            assert (await client.submit(JoinHunt(hunt_id=hunt_id, player_id=f"q{n}"))).ok
    cluster.start("b")
    cluster.routed("b")
    joined = 0
    for partition in cl.node("b").partitions:
        with Store.open(str(cl.db_path(partition)), readonly=True) as store:
            joined += sum(1 for e in store.read_events(after_seq=0) if e.type == "player_joined")
    assert joined == len(acked)
    async with connect(f"{cluster.lb}?hunt={on_b[0]}", cluster.token) as client:
        for n in range(30):  # each acknowledged command is remembered: its first result, nothing new
            again = await client.submit(JoinHunt(hunt_id=on_b[n % 3], player_id=f"p{n}"), command_id=f"join-{n}")
            assert again.ok and again.events[-1].seq == acked[f"join-{n}"]


async def test_a_partition_moves_under_load_and_no_acknowledged_command_is_lost(cluster: Cluster) -> None:
    cl = load_cluster(cluster.file)
    partition = cl.node("a").partitions[0]
    [moving] = hunts_on({partition}, 1, "m")
    acked: list[str] = []
    async with connect(f"{cluster.lb}?hunt={moving}", cluster.token, reconnect=True, give_up_after=30) as client:
        assert (await client.submit(hunt(moving))).ok
        assert (await client.submit(StartHunt(hunt_id=moving))).ok
        moved = trio.Event()
        report: list[str] = []

        async def play() -> None:
            n = after = 0
            while after < 20:  # until 20 more commands after the move
                after += moved.is_set()
                player = f"p{n}"
                result = await client.submit(JoinHunt(hunt_id=moving, player_id=player), command_id=f"j{n}")
                assert result.ok, result.error
                acked.append(player)
                n += 1
                if n == 20:
                    started.set()

        async def mover() -> None:
            await started.wait()
            done = await trio.to_thread.run_sync(lambda: invoke("cluster", "move", cluster.file, partition,
                                                                "--to", "b", "--haproxy", cluster.lb_dir))
            report.append(done.stdout + done.stderr)
            assert done.exit_code == 0, done.stderr
            moved.set()

        seen: list[int] = []
        joins: list[str] = []

        async def follow() -> None:  # a subscriber of the moving hunt, through the proxy
            async with client.subscribe(hunt_id=moving, after_seq=0) as events:
                async for event in events:
                    seen.append(event.seq)
                    if event.type == "player_joined":
                        joins.append(event.data["player_id"])

        started = trio.Event()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(follow)
            async with trio.open_nursery() as playing:
                playing.start_soon(play)
                playing.start_soon(mover)
            with trio.fail_after(30):  # every acknowledged join reaches the subscriber
                while len(joins) < len(acked):
                    await trio.sleep(0.05)
            nursery.cancel_scope.cancel()
    assert seen == list(range(1, len(seen) + 1))  # across the move: no gap, no duplicate
    assert sorted(joins) == sorted(acked)
    assert "set it in the running HAProxy" in report[0], report[0]
    assert str(partition) in cluster.health("b")["partitions"]
    assert str(partition) not in cluster.health("a")["partitions"]
    assert load_cluster(cluster.file).owner(partition).name == "b"
    with Store.open(str(cl.db_path(partition)), readonly=True) as store:
        joined = [e.data["player_id"] for e in store.read_events(after_seq=0) if e.type == "player_joined"]
    assert sorted(joined) == sorted(acked) and len(joined) == len(set(joined))  # each once, none lost
    async with connect(f"{cluster.lb}?hunt={moving}", cluster.token) as client:  # the proxy sends new ones to b
        assert client.welcome["cluster"]["node"] == "b"
        assert (await client.submit(SubmitAnswer(hunt_id=moving, player_id="p0", clue_id="c", answer="x"))).ok


def test_serve_cluster_refuses_bad_arguments_in_one_line(tmp_path: Path) -> None:
    file = tmp_path / "cluster.toml"
    assert invoke("cluster", "init", file, "--partitions", 2, "--node", "a=127.0.0.1:1901").exit_code == 0
    for args, says in [(("--cluster", file), "--cluster and --node go together"),
                       (("--cluster", file, "--node", "zz"), "no node 'zz'"),
                       (("x.db", "--cluster", file, "--node", "a"), "either DB or --cluster")]:
        result = invoke("serve", *args)
        assert result.exit_code == 2 and says in result.stderr and len(result.stderr.strip().splitlines()) == 1
    for args, says in [(("9", "--to", "a"), "not a partition"), (("0", "--to", "q"), "no node 'q'"),
                       (("0", "--to", "a"), "hosted by node a already")]:
        result = invoke("cluster", "move", file, *args)
        assert result.exit_code == 2 and says in result.stderr, result.stderr
