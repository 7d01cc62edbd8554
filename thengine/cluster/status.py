"""`thengine cluster status`: each node's partitions, hunts, liveness and commands/s.

Read-only: the partition databases are opened read-only (they may be served while this
runs), and each node is asked for ``/healthz`` and, twice a `window` apart, ``/metrics``.
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from typing import Any

from ..errors import StorageError
from ..storage.store import Store
from .config import Cluster, Node

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


def status(cluster: Cluster, *, window: float = 1.0, timeout: float = 2.0) -> dict[str, Any]:
    """``{"partitions": P, "nodes": {name: {"listen", "up", "seq", "commands_per_s", "partitions":
    [{"partition", "hunts", "events", "last_seq", "db_bytes"}]}}}``."""
    nodes: dict[str, Any] = {}
    first = {name: _commands_total(node, timeout) for name, node in cluster.nodes.items()}
    started = time.monotonic()
    for name, node in cluster.nodes.items():
        health = _get(f"http://{node.listen}/healthz", timeout)
        parts = []
        for partition in node.partitions:
            row: dict[str, Any] = {"partition": partition, "db": str(cluster.db_path(partition))}
            try:
                with Store.open(cluster.db_path(partition), readonly=True) as store:
                    stats = store.stats()
                row.update(hunts=stats["hunts"], events=stats["events"], last_seq=stats["last_seq"],
                           db_bytes=stats["db_bytes"] + stats["wal_bytes"])
            except StorageError as exc:
                row["error"] = str(exc)
            parts.append(row)
        nodes[name] = {"listen": node.listen, "up": health is not None,
                       "seq": json.loads(health).get("seq") if health else None, "partitions": parts}
    time.sleep(max(0.0, window - (time.monotonic() - started)))
    elapsed = time.monotonic() - started
    for name, node in cluster.nodes.items():
        before, after = first[name], _commands_total(node, timeout) if first[name] is not None else None
        nodes[name]["commands_per_s"] = (None if before is None or after is None
                                         else round((after - before) / elapsed, 1))
    return {"cluster": str(cluster.path), "partitions": cluster.partitions, "nodes": nodes}
