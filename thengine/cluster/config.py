"""The cluster file (``cluster.toml``): P partitions, the nodes, and who hosts what.

A hunt belongs to partition ``crc32(hunt_id) % P`` for ever (HAProxy's ``crc32``
converter computes the same). Each partition is its own database file, next to the
cluster file (``partitions/p03.db``); a node is one ``thengine serve`` process hosting
some partitions. Every node and tool reads the same file::

    # thengine cluster
    partitions = 8
    secret_file = "cluster.secret"        # token secret shared by every node

    [nodes.a]
    listen = "127.0.0.1:8801"
    partitions = [0, 2, 4, 6]

    [nodes.b]
    listen = "127.0.0.1:8802"
    partitions = [1, 3, 5, 7]

`load_cluster` reports every problem at once; relative paths are relative to the file.
"""

from __future__ import annotations

import os
import tomllib
import zlib
from pathlib import Path

import attrs

from ..domain.fields import ID_PATTERN
from ..errors import ThengineError

#: Partitions of a new cluster unless told otherwise.
DEFAULT_PARTITIONS = 16
MAX_PARTITIONS = 1024
PARTITIONS_DIR = "partitions"


class ClusterError(ThengineError):
    """A cluster file is missing or wrong; `problems` lists every problem, one line each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


#: The meta key a partition's database keeps its place in: ``"N/P"`` (partition N of P).
PARTITION_META_KEY = "cluster_partition"


def parse_partition(text: str | None) -> tuple[int, int] | None:
    """``(N, P)`` from a `PARTITION_META_KEY` value; None for a database outside a cluster."""
    if text is None:
        return None
    number, _, count = text.partition("/")
    if not (number.isdigit() and count.isdigit() and 0 <= int(number) < int(count)):
        raise ValueError(f"meta {PARTITION_META_KEY} must be N/P, got {text!r}")
    return int(number), int(count)


def partition_of(hunt_id: str, partitions: int) -> int:
    """The partition that owns `hunt_id`: ``crc32(hunt_id) % partitions``, as HAProxy computes it."""
    return zlib.crc32(hunt_id.encode()) % partitions


@attrs.frozen(kw_only=True)
class Node:
    name: str
    host: str
    port: int
    partitions: tuple[int, ...]

    @property
    def listen(self) -> str:
        return f"{self.host}:{self.port}"


@attrs.frozen(kw_only=True)
class Cluster:
    """A loaded cluster file."""

    path: Path  # the cluster file, absolute
    partitions: int
    secret_file: Path  # absolute
    nodes: dict[str, Node]

    @property
    def root(self) -> Path:
        return self.path.parent

    def db_path(self, partition: int) -> Path:
        """The database file of `partition`."""
        width = max(2, len(str(self.partitions - 1)))
        return self.root / PARTITIONS_DIR / f"p{partition:0{width}d}.db"

    def owner(self, partition: int) -> Node:
        return next(node for node in self.nodes.values() if partition in node.partitions)

    def node_of(self, hunt_id: str) -> Node:
        return self.owner(partition_of(hunt_id, self.partitions))

    def node(self, name: str) -> Node:
        found = self.nodes.get(name)
        if found is None:
            raise ClusterError([f"{self.path}: no node {name!r} (nodes: {', '.join(self.nodes)})"])
        return found

    def read_secret(self) -> bytes:
        """The token secret every node shares."""
        try:
            text = self.secret_file.read_text(encoding="ascii").strip()
            secret = bytes.fromhex(text)
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            raise ClusterError([f"{self.secret_file}: cannot read the cluster's token secret ({exc})"]) from None
        if len(secret) < 16:
            raise ClusterError([f"{self.secret_file}: the token secret is too short ({len(secret)} bytes)"])
        return secret

    def to_toml(self) -> str:
        lines = ["# thengine cluster: every node and tool reads this file.",
                 "# A hunt belongs to partition crc32(hunt_id) % partitions, for ever.",
                 f"partitions = {self.partitions}",
                 f"secret_file = {_quote(os.path.relpath(self.secret_file, self.root))}", ""]
        for node in self.nodes.values():
            lines += [f"[nodes.{node.name}]", f"listen = {_quote(node.listen)}",
                      f"partitions = [{', '.join(map(str, node.partitions))}]", ""]
        return "\n".join(lines)


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def parse_listen(text: str, where: str, problems: list[str]) -> tuple[str, int] | None:
    """``HOST:PORT`` (IPv4 or a name; port 1-65535)."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        problems.append(f"{where}: must be HOST:PORT with a port of 1-65535, got {text!r}")
        return None
    return host, int(port)


def spread(partitions: int, names: list[str]) -> dict[str, tuple[int, ...]]:
    """Partitions round-robin over `names`, in order: a gets 0, 2, 4...; b gets 1, 3, 5..."""
    return {name: tuple(range(n, partitions, len(names))) for n, name in enumerate(names)}


def load_cluster(path: str | os.PathLike[str]) -> Cluster:
    """Read and check a cluster file. Raises `ClusterError` naming every problem."""
    file = Path(path).absolute()
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ClusterError([f"no cluster file at {file} (make one with `thengine cluster init`)"]) from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ClusterError([f"{file}: {exc}"]) from None
    problems: list[str] = []
    for key in data:
        if key not in ("partitions", "secret_file", "nodes"):
            problems.append(f"{file}: {key}: unknown key")
    count = data.get("partitions")
    if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= MAX_PARTITIONS:
        problems.append(f"{file}: partitions: must be an integer of 1-{MAX_PARTITIONS}, got {count!r}")
        count = None
    secret = data.get("secret_file")
    if not isinstance(secret, str) or not secret:
        problems.append(f"{file}: secret_file: must be a path, got {secret!r}")
    nodes: dict[str, Node] = {}
    raw_nodes = data.get("nodes")
    if not isinstance(raw_nodes, dict) or not raw_nodes:
        problems.append(f"{file}: nodes: must name at least one node ([nodes.a] listen = ..., partitions = [...])")
        raw_nodes = {}
    hosted: dict[int, str] = {}
    listens: dict[tuple[str, int], str] = {}
    for name, table in raw_nodes.items():
        where = f"{file}: nodes.{name}"
        if not ID_PATTERN.fullmatch(name):
            problems.append(f"{where}: a node name is 1-64 letters, digits, '_', '-', '.' or ':'")
        if not isinstance(table, dict):
            problems.append(f"{where}: must be a table with listen and partitions")
            continue
        for key in table:
            if key not in ("listen", "partitions"):
                problems.append(f"{where}.{key}: unknown key")
        listen = table.get("listen")
        address = parse_listen(listen, f"{where}.listen", problems) if isinstance(listen, str) else None
        if not isinstance(listen, str):
            problems.append(f"{where}.listen: must be HOST:PORT, got {listen!r}")
        if address is not None:
            if address in listens:
                problems.append(f"{where}.listen: {listen} is also node {listens[address]}'s")
            listens[address] = name
        parts = table.get("partitions")
        if not isinstance(parts, list) or not all(isinstance(p, int) and not isinstance(p, bool) for p in parts):
            problems.append(f"{where}.partitions: must be a list of partition numbers, got {parts!r}")
            parts = []
        for part in parts:
            if count is not None and not 0 <= part < count:
                problems.append(f"{where}.partitions: {part} is not a partition (0-{count - 1})")
            elif part in hosted:
                problems.append(f"{where}.partitions: {part} is hosted by node {hosted[part]} too")
            hosted[part] = name
        if address is not None:
            nodes[name] = Node(name=name, host=address[0], port=address[1], partitions=tuple(sorted(parts)))
    if count is not None and raw_nodes:
        missing = [p for p in range(count) if p not in hosted]
        if missing:
            problems.append(f"{file}: partitions {missing} are hosted by no node")
    if problems:
        raise ClusterError(problems)
    assert count is not None and isinstance(secret, str)
    return Cluster(path=file, partitions=count, secret_file=(file.parent / secret).absolute(), nodes=nodes)
