"""A client's way around a cluster: which connection serves which partition.

A node says in its welcome which cluster it belongs to (``cluster``: the node's name,
the partition count, the partitions it hosts). `Routes` keeps one connection per
node the client has needed, and knows from their welcomes which partitions each
serves. A command, query, subscription or watch answered ``wrong_partition`` is
sent once more, on a connection to the hunt's node:

- through a load balancer (the client's URL has ``?hunt=``): a new connection to the
  same URL with ``?hunt=`` that hunt, which the proxy sends to the right node;
- connected to a node directly: to the URL the answer names (``error.url``).

It follows once. With ``reconnect=True`` a partition that is moving (each node says
it is the other's, or the new one is still opening it) is tried again with backoff
for up to ``give_up_after`` seconds, over a fresh connection each time. Cross-hunt
reads (`hunts`) ask one connection per node, through the proxy with
``?partition=N``, and merge the answers.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any, Callable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import trio

from ..cluster.config import partition_of
from ..domain.result import Result
from .dialing import RECONNECT_FIRST_S, RECONNECT_MAX_S, RequestFailed

if TYPE_CHECKING:
    from .client import Client

WRONG_PARTITION = "wrong_partition"


def wrong_partition(reply: dict[str, Any]) -> bool:
    """Whether a reply frame is a ``wrong_partition`` result."""
    return reply.get("op") == "result" and (reply.get("error") or {}).get("code") == WRONG_PARTITION


def hunt_of(body: Any) -> str | None:
    """The hunt a command or query body is about (a new hunt's, for ``create_hunt``)."""
    if not isinstance(body, dict):
        return None
    hunt_id = body.get("hunt_id")
    if hunt_id is None and isinstance(body.get("definition"), dict):
        hunt_id = body["definition"].get("id")
    return hunt_id if isinstance(hunt_id, str) else None


def with_param(url: str, **params: str) -> str:
    """`url` with its query parameters `params` set (others kept)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k not in params] + list(params.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


class Routes:
    """The connections of one client in a cluster, by node and by partition."""

    def __init__(self, home: Client, nursery: trio.Nursery, open_peer: Callable[[str], Any]) -> None:
        info = home.welcome["cluster"]
        self.partitions: int = int(info["partitions"])
        self._home = home
        self._nursery = nursery  # the home client's: each peer connection lives in a task of it
        self._open_peer = open_peer  # url -> an async context manager of a Client (no routes of its own)
        self._through_proxy = "hunt" in dict(parse_qsl(urlsplit(home.url).query))
        self._by_node: dict[str, Client] = {}
        self._by_partition: dict[int, Client] = {}
        self._learn(home)

    def _learn(self, client: Client) -> None:
        info = client.welcome.get("cluster") or {}
        node = info.get("node")
        if isinstance(node, str):
            self._by_node.setdefault(node, client)
        for index in info.get("hosts") or ():
            self._by_partition[int(index)] = client

    def _forget(self, index: int, client: Client) -> None:
        if self._by_partition.get(index) is client:
            del self._by_partition[index]

    async def _connect(self, url: str) -> Client:
        client: Client = await self._nursery.start(self._hold, url)
        client._owner = self._home
        node = (client.welcome.get("cluster") or {}).get("node")
        known = self._by_node.get(node) if isinstance(node, str) else None
        if known is not None and known.connected:
            self._learn(known)
            return known  # (this one stays open until the client closes; it is not used)
        self._by_node.pop(node, None)
        self._learn(client)
        return client

    async def _hold(self, url: str, *, task_status: trio.TaskStatus[Client]) -> None:
        """One peer connection, open until the home client closes (cancelling its nursery)."""
        async with self._open_peer(url) as client:
            task_status.started(client)
            await trio.sleep_forever()

    def client_for(self, hunt_id: str) -> Client:
        """The connection to use for `hunt_id` now (the home connection if none is known)."""
        return self._by_partition.get(partition_of(hunt_id, self.partitions), self._home)

    async def follow(self, hunt_id: str, refused: dict[str, Any], via: Client,
                     attempt: Callable[[Client], Any]) -> dict[str, Any]:
        """`refused` (a ``wrong_partition`` reply from `via`) sent again with `attempt`
        on the connection of the hunt's node, once, or with backoff while it moves."""
        index = partition_of(hunt_id, self.partitions)
        deadline = trio.current_time() + self._home._give_up_after
        delay = RECONNECT_FIRST_S
        reply = refused
        while True:
            self._forget(index, via)
            error = reply.get("error") or {}
            url = with_param(self._home.url, hunt=hunt_id) if self._through_proxy else error.get("url")
            if not isinstance(url, str):
                return reply  # (nobody named: the partition is hosted by no node it knows)
            peer = self._by_partition.get(index)
            if peer is None or peer is via:
                peer = await self._connect(url)
            reply = await attempt(peer)
            if not wrong_partition(reply):
                return reply
            via = peer
            if not self._home._reconnect or trio.current_time() + delay > deadline:
                return reply
            await trio.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(RECONNECT_MAX_S, delay * 2)

    async def peer_for(self, hunt_id: str, refused: dict[str, Any], via: Client) -> Client:
        """The connection of `hunt_id`'s node, after `via` said ``wrong_partition``
        (a subscription or watch is then made there, with its own resuming)."""
        index = partition_of(hunt_id, self.partitions)
        self._forget(index, via)
        url = with_param(self._home.url, hunt=hunt_id) if self._through_proxy else (refused.get("error") or {}).get("url")
        if not isinstance(url, str):
            raise RequestFailed(WRONG_PARTITION, str((refused.get("error") or {}).get("message")))
        peer = self._by_partition.get(index)
        return peer if peer is not None and peer is not via else await self._connect(url)

    async def every_node(self) -> list[Client]:
        """A connection to each node, together serving every partition: through the
        proxy one per partition still unknown (``?partition=N``), else one per node the
        welcome names."""
        if self._through_proxy:
            for index in range(self.partitions):
                if index not in self._by_partition:
                    await self._connect(with_param(self._home.url, partition=str(index)))
        else:
            nodes = (self._home.welcome.get("cluster") or {}).get("nodes") or {}
            for name, url in nodes.items():
                if name not in self._by_node:
                    await self._connect(url)
        return list({id(c): c for c in self._by_partition.values()}.values())


def merged_hunts(answers: list[dict[str, Any] | Result]) -> dict[str, Any] | Result:
    """`hunts` answers of every node as one, by hunt id (the first error, if any)."""
    for answer in answers:
        if not isinstance(answer, dict):
            return answer
    by_id = {h["hunt_id"]: h for answer in answers for h in answer["hunts"]}  # type: ignore[index]
    return {"hunts": [by_id[key] for key in sorted(by_id)]}
