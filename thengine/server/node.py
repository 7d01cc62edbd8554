"""A cluster's node: ``thengine serve --cluster FILE --node NAME``.

One process, one port, the node's partitions: each partition's database has its own
engine (its lock, shards, committer and snapshots), all in the node's nursery and
behind the one `Server`. A partition can leave while the node runs (`release`, sent by
`cluster move`): it stops being routed, its engine finishes every command it has and
closes (so the file holds every acknowledged command and the lock is free), and the
connections following its hunts are closed with 1012 so they reconnect to its new
node. `adopt` opens a partition here.
"""

from __future__ import annotations

from typing import Any

import trio

from ..cluster.config import PARTITION_META_KEY, Cluster, parse_partition
from ..errors import ThengineError
from ..runtime.engine import open_engine
from ..storage.store import Store
from .config import ServerConfig
from .partitions import Hosted, Partitions
from .run import Running, Server, _serve_then_stop, _watch_signals, listen_socket


class PartitionError(ThengineError):
    """A partition cannot be adopted or released here (and why)."""


class PartitionHost:
    """Opens and closes the partitions of one node, each engine a task in `nursery`."""

    def __init__(self, cluster: Cluster, partitions: Partitions, nursery: trio.Nursery,
                 engine_options: dict[str, Any]) -> None:
        self.cluster = cluster
        self.partitions = partitions
        self.server: Server | None = None
        self._nursery = nursery
        self._options = engine_options
        self._closed: dict[int, trio.Event] = {}
        self._to: dict[int, str | None] = {}

    async def adopt(self, index: int) -> int:
        """Open partition `index` here and route its hunts to it; its last seq.

        Raises:
            PartitionError: not a partition of the cluster, already hosted, or its database
                cannot be opened (missing, another cluster's, locked by another node).
        """
        if not 0 <= index < self.cluster.partitions:
            raise PartitionError(f"partition: {index} is not a partition of this cluster (0-{self.cluster.partitions - 1})")
        if index in self.partitions.hosted or index in self._closed:
            raise PartitionError(f"partition: {index} is hosted by this node already")
        path = self.cluster.db_path(index)
        if not path.exists():
            raise PartitionError(f"partition: no database for partition {index} at {path}")
        self._closed[index] = trio.Event()
        try:
            hosted: Hosted = await self._nursery.start(self._host, index)
        except PartitionError:
            raise
        except ThengineError as exc:
            raise PartitionError(f"partition {index}: {exc}") from None
        return hosted.engine.committed_seq

    async def release(self, index: int, *, to: str | None = None) -> int:
        """Stop deciding partition `index` (its hunts are now `to`'s) and close its
        engine once every command it took is committed; its last seq."""
        hosted = self.partitions.hosted.get(index)
        if hosted is None:
            raise PartitionError(f"partition: {index} is not hosted by node {self.partitions.node}")
        if to is not None and to not in self.cluster.nodes:
            raise PartitionError(f"to: no node {to!r} in the cluster (nodes: {', '.join(self.cluster.nodes)})")
        self._to[index] = to
        closed = self._closed[index]
        hosted.release.set()
        await closed.wait()
        return hosted.engine.committed_seq

    async def release_all(self) -> None:
        """Close every partition (shutdown), each after its commands are committed."""
        waits = list(self._closed.values())
        for hosted in self.partitions:
            hosted.release.set()
        for closed in waits:
            await closed.wait()

    async def _host(self, index: int, *, task_status: trio.TaskStatus[Hosted]) -> None:
        assert self.server is not None
        path = str(self.cluster.db_path(index))
        try:
            _check_place(path, index, self.cluster.partitions)
            async with open_engine(path, **self._options) as engine:
                hosted = Hosted(index, engine, self.server.metrics)
                self.partitions.add(hosted)
                task_status.started(hosted)
                await hosted.release.wait()
                self.partitions.remove(hosted, to=self._to.pop(index, None))
        finally:
            self._closed.pop(index).set()
        self.server.partition_closed(engine, f"partition {index} moved to another node; reconnect")


def _check_place(path: str, index: int, count: int) -> None:
    """The database must say it is partition `index` of `count` (not a copy of another)."""
    with Store.open(path, readonly=True, migrate=False) as store:
        place = parse_partition(store.get_meta(PARTITION_META_KEY))
    if place != (index, count):
        said = "no partition" if place is None else f"partition {place[0]} of {place[1]}"
        raise PartitionError(f"{path} says it is {said}, not partition {index} of {count}")


async def serve_node(cluster: Cluster, name: str, *, config: ServerConfig | None = None,
                     engine_options: dict[str, Any] | None = None, handle_signals: bool = False,
                     task_status: trio.TaskStatus[Running] = trio.TASK_STATUS_IGNORED) -> None:
    """Serve node `name` of `cluster` (its partitions, on its address) until shut down.

    Raises:
        ClusterError: no such node.
        ListenError: cannot listen on the node's address.
        PartitionError: a partition cannot be opened.
    """
    config = config or ServerConfig()
    me = cluster.node(name)
    sock = listen_socket(me.host, me.port, config.backlog)
    bound_host, bound_port = sock.getsockname()[:2]
    try:
        partitions = Partitions(cluster, name)
        async with trio.open_nursery() as engines:
            host = PartitionHost(cluster, partitions, engines, engine_options or {})
            server = Server(config=config, partitions=partitions, host=host, secret=cluster.read_secret)
            host.server = server
            try:
                for index in me.partitions:
                    await host.adopt(index)
                async with trio.open_nursery() as nursery:
                    if handle_signals:
                        await nursery.start(_watch_signals, server, nursery.cancel_scope)
                    await nursery.start(_serve_then_stop, server, sock, nursery.cancel_scope)
                    task_status.started(Running(host=bound_host, port=bound_port, server=server))
            finally:
                with trio.CancelScope(shield=True):
                    await host.release_all()
    finally:
        sock.close()
