"""`thengine cluster move`: a partition from its node to another, losing nothing.

1. **Release** on the old node (the admin ``partition`` op): its hunts are answered
   ``wrong_partition`` naming the new node from then on; its engine commits every
   command it took and closes; the reply carries the partition's last seq.
2. **Ship**: the nodes share the cluster's directory, so the file is already where the
   new node opens it; its last seq must be the released one. (Across machines, restore
   the partition's Litestream replica there first: `litestream restore`.)
3. **Rewrite the cluster file** (atomically), so every node and tool sees the new owner.
4. **Adopt** on the new node, which opens the file and takes commands for its hunts.
5. **Route**: rewrite HAProxy's map and change it in the running proxy over its admin
   socket (``set map``), so new connections go to the new node without a reload.

If the new node cannot adopt it, the file is put back and the old node adopts it
again. The hunts cannot take commands from step 1 to step 4: `MoveReport` says how long.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import attrs
import trio

from ..errors import ThengineError
from ..server.client import connect
from ..server.partitions import node_url
from ..server.tokens import issue
from ..storage.store import Store
from . import haproxy
from .config import Cluster, Node


class MoveError(ThengineError):
    """The move could not be made (and what state it left)."""


class BadMove(MoveError):
    """The move asked for makes no sense: no such partition or node, or no move at all."""


@attrs.frozen(kw_only=True)
class MoveReport:
    partition: int
    source: str
    target: str
    seq: int  # the partition's last seq, the same before and after
    unavailable_s: float  # from the release request to the adoption
    total_s: float
    proxy: str  # what happened at HAProxy


def moved(cluster: Cluster, partition: int, to: str) -> Cluster:
    """`cluster` with `partition` hosted by node `to`."""
    nodes = {}
    for name, node in cluster.nodes.items():
        parts = [p for p in node.partitions if p != partition]
        if name == to:
            parts.append(partition)
        nodes[name] = attrs.evolve(node, partitions=tuple(sorted(parts)))
    return attrs.evolve(cluster, nodes=nodes)


def write_cluster(cluster: Cluster) -> None:
    """Replace the cluster file atomically (readers see the old file or the new one)."""
    temp = cluster.path.with_name(cluster.path.name + ".tmp")
    temp.write_text(cluster.to_toml(), encoding="utf-8")
    os.replace(temp, cluster.path)


async def _partition_op(node: Node, token: str, action: str, partition: int, to: str | None = None) -> int:
    frame = {"op": "partition", "action": action, "partition": partition}
    if to is not None:
        frame["to"] = to
    try:
        async with connect(node_url(node), token, _routed=False) as client:
            reply = await client.request(frame)
    except ThengineError as exc:
        raise MoveError(f"node {node.name}: {exc}") from None
    if reply.get("op") != "partition":
        raise MoveError(f"node {node.name} refused to {action} partition {partition}: {reply.get('message')}")
    return int(reply["seq"])


async def move(cluster: Cluster, partition: int, to: str, *, haproxy_dir: Path | None = None) -> MoveReport:
    """Move `partition` to node `to` (see the module's steps). Raises `MoveError`."""
    if not 0 <= partition < cluster.partitions:
        raise BadMove(f"PARTITION: {partition} is not a partition of {cluster.path} (0-{cluster.partitions - 1})")
    target = cluster.nodes.get(to)
    if target is None:
        raise BadMove(f"--to: no node {to!r} in {cluster.path} (nodes: {', '.join(cluster.nodes)})")
    source = cluster.owner(partition)
    if source.name == to:
        raise BadMove(f"partition {partition} is hosted by node {to} already")
    token = issue(cluster.read_secret(), role="admin", ttl_s=600, now_s=int(time.time()))
    started = time.monotonic()
    seq = await _partition_op(source, token, "release", partition, to=to)
    path = cluster.db_path(partition)
    with Store.open(str(path), readonly=True, migrate=False) as store:
        on_disk = store.last_seq()
    if on_disk != seq:
        await _partition_op(source, token, "adopt", partition)
        raise MoveError(f"{path} ends at seq {on_disk}, but node {source.name} released it at {seq}: "
                        "is the cluster directory shared by both nodes? (partition put back)")
    after = moved(cluster, partition, to)
    write_cluster(after)
    try:
        adopted = await _partition_op(target, token, "adopt", partition)
    except MoveError:
        write_cluster(cluster)
        await _partition_op(source, token, "adopt", partition)
        raise
    available = time.monotonic()
    if adopted != seq:
        raise MoveError(f"node {to} opened partition {partition} at seq {adopted}, not {seq}")
    proxy = "no --haproxy DIR given: route with `thengine cluster haproxy` and a reload"
    if haproxy_dir is not None:
        proxy = await trio.to_thread.run_sync(route, after, haproxy_dir, partition)
    return MoveReport(partition=partition, source=source.name, target=to, seq=seq,
                      unavailable_s=available - started, total_s=time.monotonic() - started, proxy=proxy)


def route(cluster: Cluster, out: Path, partition: int) -> str:
    """Rewrite `out`'s map and tell the running HAProxy (its admin socket) the new owner."""
    out = out.absolute()
    map_file = out / haproxy.MAP_FILE
    temp = map_file.with_name(map_file.name + ".tmp")
    temp.write_text(haproxy.partitions_map(cluster), encoding="utf-8")
    os.replace(temp, map_file)
    backend = haproxy.backend(cluster.owner(partition).name)
    command = f"set map {map_file} {partition} {backend}\n"
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(5)
            sock.connect(str(out / haproxy.SOCKET_FILE))
            sock.sendall(command.encode())
            answer = b""
            while chunk := sock.recv(4096):
                answer += chunk
    except OSError as exc:
        return f"wrote {map_file}; HAProxy's socket did not answer ({exc}): reload HAProxy to use it"
    if answer.strip():
        return f"wrote {map_file}; HAProxy said: {answer.decode(errors='replace').strip()}"
    return f"wrote {map_file} and set it in the running HAProxy"
