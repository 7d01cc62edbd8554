"""The partitions a server decides for, one engine each, and where every other hunt lives.

`thengine serve DB` has one engine and no cluster: every request goes to it (and if DB
is a cluster's partition, its engine refuses other partitions' hunts itself). A
cluster's node (`serve --cluster FILE --node a`) hosts the partitions the cluster file
gives it, each its own engine in the node's nursery. A request for a hunt of a
partition hosted elsewhere is answered ``wrong_partition`` with the URL of the node
that hosts it, and never reaches an engine.

`cluster move` releases a partition on its node (it is no longer routed; its engine
finishes what it has, takes its snapshots and closes, so every acknowledged command is
in the file) and adopts it on the new one. While a partition moves, its hunts are
``wrong_partition`` on the old node, naming the new one. Who hosts what elsewhere is
read from the cluster file, again whenever the file changes.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Iterator

import trio

from ..cluster.config import Cluster, ClusterError, Node, load_cluster, partition_of
from ..domain.commands import Rejection
from .hub import Hub

if TYPE_CHECKING:
    from ..runtime.engine import Engine
    from .metrics import ServerMetrics


class Hosted:
    """One partition a server decides for: its engine and the subscriptions on its feeds."""

    def __init__(self, index: int | None, engine: Engine, metrics: ServerMetrics) -> None:
        self.index = index  # None outside a cluster
        self.engine = engine
        self.hub = Hub(engine, metrics)
        metrics.follow(engine)
        self.release = trio.Event()  # set: stop deciding this partition and close its engine

    @property
    def label(self) -> str:
        return "" if self.index is None else str(self.index)


class Partitions:
    """The engines of one server, by partition, and the routing of a hunt to its engine."""

    def __init__(self, cluster: Cluster | None = None, node: str | None = None) -> None:
        self.cluster = cluster
        self.node = node
        self.hosted: dict[int | None, Hosted] = {}
        self._moving: dict[int, str] = {}  # released partition -> the node it goes to
        self._file_stamp = _stamp(cluster.path) if cluster is not None else None
        self.changed = trio.Event()  # set (and replaced) when a partition comes or goes

    @classmethod
    def of_engine(cls, engine: Engine, metrics: ServerMetrics) -> Partitions:
        """A plain server's: the one engine, for every hunt."""
        partitions = cls()
        partitions.add(Hosted(None, engine, metrics))
        return partitions

    def __iter__(self) -> Iterator[Hosted]:
        return iter(list(self.hosted.values()))

    @property
    def single(self) -> Hosted | None:
        """The engine of a plain server (None on a cluster's node)."""
        return self.hosted.get(None)

    def add(self, hosted: Hosted) -> None:
        self.hosted[hosted.index] = hosted
        if hosted.index is not None:
            self._moving.pop(hosted.index, None)
        self._changed()

    def remove(self, hosted: Hosted, *, to: str | None = None) -> None:
        """Stop routing to `hosted` (its hunts are now `to`'s, or the cluster file's owner's)."""
        if self.hosted.get(hosted.index) is hosted:
            del self.hosted[hosted.index]
        if hosted.index is not None and to is not None:
            self._moving[hosted.index] = to
        self._changed()

    def _changed(self) -> None:
        self.changed.set()
        self.changed = trio.Event()

    # -- routing ------------------------------------------------------------------------
    def route(self, hunt_id: str) -> Hosted | Rejection:
        """The partition deciding `hunt_id` here, or the ``wrong_partition`` answer."""
        single = self.hosted.get(None)
        if single is not None:
            return single
        if self.cluster is None:
            return Rejection(code="shutting_down", message="the server is shutting down")
        index = partition_of(hunt_id, self.cluster.partitions)
        hosted = self.hosted.get(index)
        if hosted is not None:
            return hosted
        owner = self.owner(index)
        if owner is None or owner.name == self.node:
            where = "is starting on this node" if owner is not None else "is hosted by no node"
            return Rejection(code="wrong_partition", message=(
                f"hunt {hunt_id!r} is in partition {index}, which {where}; try again shortly"))
        return Rejection(code="wrong_partition", url=node_url(owner), message=(
            f"hunt {hunt_id!r} is in partition {index}, hosted by node {owner.name} at {owner.listen}, "
            f"not by this node ({self.node}): connect with ?hunt={hunt_id} through the load balancer"))

    def owner(self, index: int) -> Node | None:
        """The node hosting partition `index`: where it is moving, else the cluster file's
        owner (the file is read again when it has changed, as after a move)."""
        assert self.cluster is not None
        self._reload()
        moving = self._moving.get(index)
        if moving is not None:
            return self.cluster.nodes.get(moving)
        for node in self.cluster.nodes.values():
            if index in node.partitions:
                return node
        return None

    def _reload(self) -> None:
        assert self.cluster is not None
        stamp = _stamp(self.cluster.path)
        if stamp == self._file_stamp:
            return
        self._file_stamp = stamp
        try:
            self.cluster = load_cluster(self.cluster.path)
        except ClusterError:
            pass  # (half-written or broken: keep what we knew)

    # -- what a node tells its clients --------------------------------------------------
    def describe(self) -> dict[str, Any] | None:
        """The ``cluster`` part of a welcome: None outside a cluster."""
        if self.cluster is None:
            return None
        self._reload()
        return {"node": self.node, "partitions": self.cluster.partitions,
                "hosts": sorted(index for index in self.hosted if index is not None),
                "nodes": {node.name: node_url(node) for node in self.cluster.nodes.values()}}

    def seqs(self) -> dict[str, int]:
        """Each hosted partition's last committed seq (the key "" outside a cluster)."""
        return {hosted.label: hosted.engine.committed_seq for hosted in self}

    def failed(self) -> BaseException | None:
        """A storage failure that stopped one of the engines, if any did."""
        for hosted in self:
            if hosted.engine.committer.failed is not None:
                return hosted.engine.committer.failed
        return None


def node_url(node: Node) -> str:
    host = f"[{node.host}]" if ":" in node.host else node.host
    return f"ws://{host}:{node.port}/v1"


def _stamp(path: os.PathLike[str]) -> tuple[int, int] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_mtime_ns, info.st_size
