"""The Litestream config of a node: each of its partitions replicated off the machine.

Litestream copies each database's write-ahead log to the replica asynchronously, every
``sync-interval`` (1 s by default here). A machine lost for good loses at most the
commands acknowledged within the last interval; restore with ``litestream restore -config
FILE -o NEW.db PARTITION.db``. Replica URLs: ``file:///DIR`` (here and for tests), or
``s3://BUCKET/PATH`` for S3-compatible stores (credentials from the usual
``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``, and ``endpoint`` for MinIO and others).
"""

from __future__ import annotations

from .config import Cluster, Node

#: How often Litestream ships new WAL frames; what a lost machine may lose at most.
DEFAULT_SYNC_INTERVAL = "1s"


def replica_url(base: str, cluster: Cluster, partition: int) -> str:
    """Partition `partition`'s replica under `base` (one directory or prefix per partition)."""
    return base.rstrip("/") + "/" + cluster.db_path(partition).stem


def config(cluster: Cluster, node: Node, *, replica: str, sync_interval: str = DEFAULT_SYNC_INTERVAL) -> str:
    """The YAML of `node`'s Litestream config: every partition it hosts, each to its replica."""
    lines = [f"# Written by `thengine cluster litestream` for node {node.name} of {cluster.path}.",
             f"# Run: litestream replicate -config THIS_FILE   (replicas ship every {sync_interval})",
             "dbs:"]
    for partition in node.partitions:
        lines += [f"  - path: {cluster.db_path(partition)}",
                  "    replica:",
                  f"      url: {replica_url(replica, cluster, partition)}",
                  f"      sync-interval: {sync_interval}"]
    return "\n".join(lines) + "\n"
