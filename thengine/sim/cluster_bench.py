"""`thengine bench --cluster FILE`: the benchmark on every node of a cluster at once.

Each node runs as its own process (so a node can have a core), opens the engines of its
partitions, and drives them with the in-process generator of `sim.bench`: its share of
the hunts (ids that hash to its partitions), players, concurrency and commands, in
proportion to the partitions it hosts. A separate load client would take a core of its
own; this way every core runs a node. The processes set up, say ``ready``, and start the
clock together when the parent says ``go``; the cluster's throughput is every command
over the longest node's run.

The nodes must not be serving: the benchmark opens the partition files itself.
"""

from __future__ import annotations

import json
import subprocess
import sys
from contextlib import AsyncExitStack
from typing import Any

import attrs
import trio

from ..cluster.config import Cluster, Node, partition_of
from ..domain.commands import Hunts
from ..domain.views import merge_hunts
from ..runtime.engine import Engine, open_engine
from .bench import BenchConfig, BenchError, BenchResult, measure

READY = "ready"
GO = "go"


class Routed:
    """A node's engines as one for the generator: each command to its hunt's partition."""

    def __init__(self, engines: dict[int, Engine], partitions: int) -> None:
        self._engines = engines
        self._count = partitions
        self.stats = next(iter(engines.values())).stats  # (stages of one partition; GC is the process's)

    def _of(self, command: Any) -> Engine:
        return self._engines[partition_of(command.hunt_id, self._count)]

    async def send(self, command: Any, *, command_id: str | None = None) -> Any:
        return await self._of(command).send(command, command_id=command_id)

    async def submit(self, command: Any, *, command_id: str | None = None) -> Any:
        return await self._of(command).submit(command, command_id=command_id)

    async def query(self, query: Any) -> Any:
        if isinstance(query, Hunts):
            return merge_hunts([await engine.query(query) for engine in self._engines.values()])
        return await self._of(query).query(query)


def share(config: BenchConfig, cluster: Cluster, node: Node) -> BenchConfig:
    """`node`'s part of a cluster-wide `config`, by its share of the partitions."""
    part = len(node.partitions) / cluster.partitions

    def of(n: int) -> int:
        return max(1, round(n * part))

    hunts = of(config.hunts)
    players = max(hunts, of(config.players))
    return attrs.evolve(config, hunts=hunts, players=players, concurrency=min(players, of(config.concurrency)),
                        commands=of(config.commands), rate=None if config.rate is None else config.rate * part,
                        db=None)


async def run_node(cluster: Cluster, node: Node, config: BenchConfig) -> BenchResult:
    """One node's run, in this process: ``ready`` on stdout, then wait for ``go`` on stdin."""
    mine = set(node.partitions)

    async def go() -> None:
        print(READY, flush=True)
        line = await trio.to_thread.run_sync(sys.stdin.readline)
        if line.strip() != GO:
            raise BenchError("the benchmark's parent went away before the start")

    async with AsyncExitStack() as stack:
        engines = {p: await stack.enter_async_context(open_engine(str(cluster.db_path(p)), shards=config.shards,
                                                                  sync=config.sync))
                   for p in node.partitions}
        return await measure(Routed(engines, cluster.partitions), config,
                             accept=lambda hunt_id: partition_of(hunt_id, cluster.partitions) in mine, go=go)


def run_cluster(cluster: Cluster, config: BenchConfig, *, say: Any = None) -> dict[str, Any]:
    """Every node of `cluster` at once, each a `thengine bench --cluster F --node N` process.

    Returns ``{"nodes": {name: node's --json}, "commands", "seconds", "commands_per_s",
    "latency_ms": the worst node's}``. Raises `BenchError` if a node fails.
    """
    procs: dict[str, subprocess.Popen[str]] = {}
    try:
        for name, node in cluster.nodes.items():
            part = share(config, cluster, node)
            args = [sys.executable, "-m", "thengine", "bench", "--cluster", str(cluster.path), "--node", name,
                    "--json", "--hunts", str(part.hunts), "--players", str(part.players),
                    "--concurrency", str(part.concurrency), "--commands", str(part.commands),
                    "--sync", part.sync, "--shards", str(part.shards)]
            if part.rate is not None:
                args += ["--rate", str(part.rate)]
            if not part.command_ids:
                args.append("--no-command-ids")
            procs[name] = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                           stderr=subprocess.PIPE, text=True)
        for name, proc in procs.items():
            assert proc.stdout is not None
            line = proc.stdout.readline().strip()
            if line != READY:
                raise BenchError(f"node {name} did not start: {_failure(proc)}")
            if say is not None:
                say(f"node {name} ready")
        for proc in procs.values():
            assert proc.stdin is not None
            proc.stdin.write(GO + "\n")
            proc.stdin.flush()
        results = {}
        for name, proc in procs.items():
            out, err = proc.communicate()
            if proc.returncode != 0:
                raise BenchError(f"node {name} failed: {err.strip().splitlines()[-1] if err.strip() else proc.returncode}")
            results[name] = json.loads(out.strip().splitlines()[-1])
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    commands = sum(r["commands"] for r in results.values())
    seconds = max(r["seconds"] for r in results.values())
    worst = {key: max(r["latency_ms"][key] for r in results.values()) for key in ("p50", "p99", "p999", "max")}
    return {"nodes": results, "commands": commands, "seconds": seconds,
            "commands_per_s": round(commands / seconds, 1) if seconds else 0.0, "latency_ms": worst}


def _failure(proc: subprocess.Popen[str]) -> str:
    proc.kill()
    _, err = proc.communicate()
    lines = [line for line in err.strip().splitlines() if line.strip()]
    return lines[-1] if lines else f"exit {proc.returncode}"
