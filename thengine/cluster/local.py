"""A cluster made and run on this machine: its files, and its nodes as processes.

`create` writes a cluster file and its partition databases (what `cluster init` does);
`running` starts every node as ``thengine serve --cluster F --node N`` and stops them
gracefully on the way out (the demo's ``--cluster DIR`` uses both).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Iterator

from ..errors import StorageError, ThengineError
from ..server.tokens import SECRET_META_KEY, encode_secret, new_secret
from ..storage.store import Store
from .config import PARTITION_META_KEY, PARTITIONS_DIR, Cluster, ClusterError, Node, spread


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on now (for a node made here)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def read_or_make_secret(path: Path) -> bytes:
    """The secret in `path`, or a new one written there (readable by its owner only)."""
    if path.exists():
        try:
            return bytes.fromhex(path.read_text(encoding="ascii").strip())
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            raise ClusterError([f"{path}: not a secret thengine wrote ({exc})"]) from None
    secret = new_secret()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(encode_secret(secret) + "\n")
    return secret


def create(file: Path, partitions: int, nodes: list[tuple[str, tuple[str, int]]], secret_path: Path) -> Cluster:
    """Write the cluster file `file` and its partition databases; partitions go
    round-robin over `nodes` (name, (host, port)) in order. Raises `ClusterError`."""
    secret = read_or_make_secret(secret_path)
    hosted = spread(partitions, [name for name, _ in nodes])
    made = Cluster(path=file, partitions=partitions, secret_file=secret_path,
                   nodes={name: Node(name=name, host=host, port=port, partitions=hosted[name])
                          for name, (host, port) in nodes})
    (file.parent / PARTITIONS_DIR).mkdir(exist_ok=True)
    for partition in range(partitions):
        try:
            with Store.open(str(made.db_path(partition))) as store:  # creates it, or migrates one left from before
                store.set_meta(SECRET_META_KEY, encode_secret(secret), what="storing the cluster's token secret")
                store.set_meta(PARTITION_META_KEY, f"{partition}/{partitions}", what="storing the partition number")
        except StorageError as exc:
            raise ClusterError([str(exc)]) from exc
    file.write_text(made.to_toml(), encoding="utf-8")
    return made


class NodeFailed(ThengineError):
    """A node of a local cluster did not come up (its log's last line says why)."""


@contextlib.contextmanager
def running(cluster: Cluster, *, logs: Path, timeout: float = 30.0) -> Iterator[dict[str, subprocess.Popen[bytes]]]:
    """Every node of `cluster` as a ``thengine serve`` process (stderr in ``logs/NODE.log``),
    up and answering ``/healthz``; SIGTERM and wait for each on the way out."""
    logs.mkdir(parents=True, exist_ok=True)
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for name in cluster.nodes:
            with open(logs / f"{name}.log", "wb") as log:
                procs[name] = subprocess.Popen(
                    [sys.executable, "-m", "thengine", "serve", "--cluster", str(cluster.path), "--node", name],
                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)
        for name, node in cluster.nodes.items():
            _wait_up(name, node, procs[name], logs / f"{name}.log", timeout)
        yield procs
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs.values():
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _wait_up(name: str, node: Node, proc: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            lines = log.read_text(errors="replace").strip().splitlines()
            raise NodeFailed(f"node {name} stopped: {lines[-1] if lines else f'exit {proc.returncode}'}")
        try:
            with urllib.request.urlopen(f"http://{node.listen}/healthz", timeout=2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise NodeFailed(f"node {name} did not answer on {node.listen} within {timeout:g} s") from None
            time.sleep(0.1)
