"""The HAProxy config of a cluster: route ``/v1?hunt=H`` to the node hosting ``crc32(H) % P``.

`render` writes ``haproxy.cfg`` and ``partitions.map`` (partition -> the backend of its
node). HAProxy's ``crc32`` converter is ``zlib.crc32``, so the proxy and the engine agree
on every hunt's partition; moving a partition is a change to the map and a hitless
reload. The config runs as written with ``haproxy -f DIR/haproxy.cfg -D -p PIDFILE``
from any directory: absolute paths, no chroot, no ``user`` line, nothing outside DIR.
"""

from __future__ import annotations

from pathlib import Path

from .config import Cluster

MAP_FILE = "partitions.map"
CONFIG_FILE = "haproxy.cfg"
SOCKET_FILE = "haproxy.sock"  # the admin socket: `cluster move` changes the map over it


def backend(node: str) -> str:
    return f"node_{node}"


def partitions_map(cluster: Cluster) -> str:
    """``PARTITION BACKEND`` lines, one per partition."""
    return "".join(f"{p} {backend(cluster.owner(p).name)}\n" for p in range(cluster.partitions))


def config(cluster: Cluster, *, listen: str, out: Path) -> str:
    """The text of ``haproxy.cfg`` for `cluster`, listening on `listen`, its map in `out`."""
    out = out.absolute()
    nodes = list(cluster.nodes.values())
    lines = [
        f"# Written by `thengine cluster haproxy` from {cluster.path}: write it again rather than edit it.",
        "# Run: haproxy -f " + str(out / CONFIG_FILE) + " -D -p PIDFILE",
        "global",
        "    log stderr format short local0 warning",
        f"    stats socket {out / SOCKET_FILE} mode 600 level admin",
        "",
        "defaults",
        "    mode http",
        "    log global",
        "    timeout connect 5s",
        "    timeout client 60s",
        "    timeout server 60s",
        "    timeout tunnel 1h        # an open WebSocket",
        "    timeout client-fin 5s",
        "",
        "frontend thengine",
        f"    bind {listen}",
        "    acl websocket path /v1",
        "    acl metrics path /metrics",
        "    acl has_hunt url_param(hunt) -m found",
        "    acl has_node url_param(node) -m found",
        "    acl has_partition url_param(partition) -m found",
        "    # /metrics?node=a: that node's metrics.",
        "    use_backend node_%[url_param(node)] if metrics has_node",
        f"    # /v1?hunt=H: the node hosting partition crc32(H) % {cluster.partitions}, as {MAP_FILE} says.",
        f"    use_backend %[url_param(hunt),crc32,mod({cluster.partitions}),map({out / MAP_FILE},any)]"
        " if websocket has_hunt",
        "    # /v1?partition=N: the node hosting partition N (clients asking every partition, as for `hunts`).",
        f"    use_backend %[url_param(partition),map({out / MAP_FILE},any)] if websocket has_partition",
        "    default_backend any",
        "",
    ]
    for node in nodes:
        lines += [f"backend {backend(node.name)}",
                  "    option httpchk GET /healthz",
                  f"    server {node.name} {node.listen} check inter 2s fall 2 rise 1",
                  ""]
    lines += ["backend any  # /v1 without ?hunt=, /healthz: any node that is up",
              "    balance roundrobin",
              "    option httpchk GET /healthz"]
    lines += [f"    server {node.name} {node.listen} check inter 2s fall 2 rise 1" for node in nodes]
    return "\n".join(lines) + "\n"


def write(cluster: Cluster, *, listen: str, out: Path) -> list[Path]:
    """Write the config and its map into `out` (made if missing); the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    (out / MAP_FILE).write_text(partitions_map(cluster), encoding="utf-8")
    (out / CONFIG_FILE).write_text(config(cluster, listen=listen, out=out), encoding="utf-8")
    return [out / CONFIG_FILE, out / MAP_FILE]
