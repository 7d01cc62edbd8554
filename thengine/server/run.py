"""`serve`: an engine, its listener and every connection, on one port.

The accept loop is ours: it takes connections while fewer than
``max_unauthenticated`` of them have not said hello, and otherwise stops accepting
(newcomers wait in the listen backlog; none is refused), so silent sockets cannot
lock real clients out. Each accepted stream gets a `Connection` task.

Shutdown (SIGINT/SIGTERM with ``handle_signals``, or `Running.shutdown`): stop
accepting connections, let every connection answer its requests in flight and close
with 1001, then leave the engine, which finishes what is queued and takes snapshots.
A second signal stops waiting for clients (the engine still closes cleanly).
"""

from __future__ import annotations

import errno
import logging
import signal
import socket
import time
from typing import TYPE_CHECKING, Any, Callable

import attrs
import trio

from .._version import __version__
from ..errors import ThengineError
from ..cluster.config import ClusterError
from ..runtime.engine import Engine, open_engine
from .tokens import SECRET_META_KEY, TokenError, decode_secret
from . import protocol
from .config import ServerConfig

if TYPE_CHECKING:
    from .node import PartitionHost
from .connection import Connection
from .flusher import Flusher
from .http import Endpoints
from .metrics import ServerMetrics
from .partitions import Hosted, Partitions
from .ratelimit import RateLimiter

log = logging.getLogger("thengine.server")

DEFAULT_LISTEN = "127.0.0.1:8765"
#: A client that leaves sent data unacknowledged this long (e.g. stops reading) is cut
#: off by the kernel, so a stuck peer cannot hold a connection task forever.
TCP_USER_TIMEOUT_MS = 30_000
#: accept() errors that mean "out of file descriptors or memory": wait, then go on.
_ACCEPT_CAPACITY_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS})
#: accept() errors about one connection that died in the backlog: take the next.
_ACCEPT_SKIP_ERRNOS = frozenset({errno.ECONNABORTED, errno.EPROTO, errno.EPERM, errno.EINTR})
_ACCEPT_PAUSE_S = 0.1
#: Connections accepted in a row before the accept loop lets other tasks run.
_ACCEPT_STREAK = 32
#: What the kernel may hold unsent for one client (it doubles this). A client that
#: stops reading then backs up into its outbox, which drops it after client_buffer
#: events, instead of into megabytes of autotuned socket buffer first.
SEND_BUFFER_BYTES = 64 * 1024


class ListenError(ThengineError):
    """The server cannot listen where it was told to (bad address, port in use)."""


class Server:
    """The services every connection shares, and the set of connections: of one engine,
    or of a cluster node's partitions (`partitions.Partitions`, with `host` to release
    and adopt them)."""

    def __init__(self, engine: Engine | None = None, *, config: ServerConfig | None = None,
                 partitions: Partitions | None = None, host: PartitionHost | None = None,
                 secret: Callable[[], bytes] | None = None, clock_s: Callable[[], float] = time.time) -> None:
        self.config = config or ServerConfig()
        self.partitions = partitions if partitions is not None else Partitions()
        self.metrics = ServerMetrics(self.partitions)
        if engine is not None:
            self.partitions.add(Hosted(None, engine, self.metrics))
        self.host = host
        self._cluster_secret = secret
        self.limiter = RateLimiter(self.config.rate, self.config.burst)
        self.flusher = Flusher(self.config.push_linger_s)
        self.endpoints = Endpoints(metrics=lambda: (self.metrics.render(), self.metrics.content_type),
                                   health=self.health)
        self.connections = 0  # WebSocket connections, authenticated or not
        self.unauthenticated = 0  # accepted connections that have not said hello (HTTP ones included)
        self.closing = False
        self._live: set[Connection] = set()
        self._room = trio.Event()  # for the accept loop, under max_unauthenticated again
        self._all_closed = trio.Event()
        self._shutdown = trio.Event()
        self._clock_s = clock_s

    # -- the connections' bookkeeping ---------------------------------------------------
    def connection_opened(self, conn: Connection) -> None:
        self._live.add(conn)
        self.unauthenticated += 1

    def connection_authenticated_or_gone(self) -> None:
        self.unauthenticated -= 1
        if self.unauthenticated < self.config.max_unauthenticated:
            self._room.set()

    def websocket_opened(self) -> bool:
        """Count a new WebSocket, unless there are `max_connections` already."""
        if self.connections >= self.config.max_connections:
            return False
        self.connections += 1
        self.metrics.connections.inc()
        return True

    def websocket_closed(self) -> None:
        self.connections -= 1
        self.metrics.connections.dec()

    def connection_closed(self, conn: Connection) -> None:
        self._live.discard(conn)
        if self.closing and not self._live:
            self._all_closed.set()

    def health(self) -> tuple[dict[str, Any], bool]:
        """The ``/healthz`` report, and whether the server is shutting down (503). A
        cluster's node reports its name and each partition's seq instead of one seq."""
        report: dict[str, Any] = {"status": "shutting_down" if self.closing else "ok"}
        single = self.partitions.single
        if single is not None:
            report["seq"] = single.engine.committed_seq
        else:
            report["node"] = self.partitions.node
            report["partitions"] = self.partitions.seqs()
        report.update(connections=self.connections, version=__version__)
        return report, self.closing

    @property
    def position(self) -> int:
        """The welcome's ``seq``: the engine's last committed seq (0 on a cluster's node,
        whose seqs are per partition)."""
        single = self.partitions.single
        return 0 if single is None else single.engine.committed_seq

    # -- shared services ----------------------------------------------------------------
    async def secret(self) -> bytes | None:
        """The token secret, read afresh (so a rotation takes effect on the next hello):
        a cluster's secret file, or the database's."""
        if self._cluster_secret is not None:
            try:
                return self._cluster_secret()
            except ClusterError as exc:
                raise TokenError(str(exc)) from None
        single = self.partitions.single
        if single is None:
            return None
        text = await single.engine.read_meta(SECRET_META_KEY)
        return None if text is None else decode_secret(text)

    def partition_closed(self, engine: Engine, reason: str) -> None:
        """A partition left this node: connections following its hunts close with 1012,
        so that they reconnect (through the load balancer, to its new node) and resume."""
        for conn in list(self._live):
            if conn.session is not None and conn.session.follows(engine):
                conn.begin_close(protocol.CLOSE_SERVICE_RESTART, reason)

    def now_s(self) -> float:
        return self._clock_s()

    # -- running ------------------------------------------------------------------------
    def request_shutdown(self) -> None:
        """Begin a graceful shutdown (what SIGTERM does)."""
        self._shutdown.set()

    async def serve(self, listener: socket.socket, *,
                    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Accept and serve connections on the listening socket until shutdown; returns
        once every one has closed (or `shutdown_grace_s` has passed: the rest are cancelled)."""
        async with trio.open_nursery() as connections:
            await connections.start(self.flusher.run)
            async with trio.open_nursery() as accepting:
                accepting.start_soon(self._accept_loop, listener, connections)
                task_status.started()
                await self._shutdown.wait()
                accepting.cancel_scope.cancel()
            trio.lowlevel.notify_closing(listener)
            listener.close()
            self.closing = True
            for conn in list(self._live):
                conn.begin_close(protocol.CLOSE_GOING_AWAY, "the server is shutting down")
            if self._live:
                with trio.move_on_after(self.config.shutdown_grace_s):
                    await self._all_closed.wait()
            connections.cancel_scope.cancel()  # (the flusher, and whoever did not close in time)

    async def _accept_loop(self, listener: socket.socket, connections: trio.Nursery) -> None:
        limit = self.config.max_unauthenticated
        streak = 0
        while True:
            while self.unauthenticated >= limit:  # newcomers wait in the listen backlog
                self._room = trio.Event()
                await self._room.wait()
            try:
                sock, _ = listener.accept()
            except BlockingIOError:
                streak = 0
                await trio.lowlevel.wait_readable(listener)
                continue
            except OSError as exc:
                if exc.errno in _ACCEPT_SKIP_ERRNOS:
                    continue
                if exc.errno not in _ACCEPT_CAPACITY_ERRNOS:
                    raise
                log.warning("accepting a connection failed (%s); waiting %g s", exc.strerror, _ACCEPT_PAUSE_S)
                await trio.sleep(_ACCEPT_PAUSE_S)
                continue
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)
            connections.start_soon(Connection(self, sock).run)
            streak += 1
            if streak >= _ACCEPT_STREAK:
                streak = 0
                await trio.lowlevel.checkpoint()


@attrs.frozen(kw_only=True)
class Running:
    """A started server: where it listens, and a handle to stop it gracefully."""

    host: str
    port: int
    server: Server

    @property
    def url(self) -> str:
        """The WebSocket endpoint, ``ws://HOST:PORT/v1``."""
        return f"ws://{self._netloc}/v1"

    @property
    def http_url(self) -> str:
        """``http://HOST:PORT`` (``/metrics``, ``/healthz``, ``/`` the browser client)."""
        return f"http://{self._netloc}"

    @property
    def _netloc(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def shutdown(self) -> None:
        """Begin a graceful shutdown, as SIGTERM does."""
        self.server.request_shutdown()


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT``, ``[IPv6]:PORT`` or ``:PORT`` (every interface) -> (host, port)."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ListenError(f"--listen: expected HOST:PORT (e.g. {DEFAULT_LISTEN}), got {text!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host or "0.0.0.0", int(port_text)


def listen_socket(host: str, port: int, backlog: int = 4096) -> socket.socket:
    """A bound, listening TCP socket. Raises `ListenError` with the reason."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ListenError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if hasattr(socket, "TCP_USER_TIMEOUT"):  # Linux; accepted sockets inherit it
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, TCP_USER_TIMEOUT_MS)
        sock.bind(address)
        sock.listen(backlog)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise ListenError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


async def serve(db: str, *, listen: str = DEFAULT_LISTEN, shards: int = 4, sync: str = "full",
                config: ServerConfig | None = None, engine_options: dict[str, Any] | None = None,
                handle_signals: bool = False,
                task_status: trio.TaskStatus[Running] = trio.TASK_STATUS_IGNORED) -> None:
    """Serve the database `db` on `listen` until shut down; `task_status` gets a `Running`.

    Raises:
        ListenError: cannot listen on `listen`.
        EngineLocked, SchemaTooNew, StorageError: as `open_engine`.
    """
    config = config or ServerConfig()
    host, port = parse_listen(listen)
    sock = listen_socket(host, port, config.backlog)
    bound_host, bound_port = sock.getsockname()[:2]
    try:
        async with open_engine(db, shards=shards, sync=sync, **(engine_options or {})) as engine:
            server = Server(engine, config=config)
            async with trio.open_nursery() as nursery:
                if handle_signals:
                    await nursery.start(_watch_signals, server, nursery.cancel_scope)
                await nursery.start(_serve_then_stop, server, sock, nursery.cancel_scope)
                task_status.started(Running(host=bound_host, port=bound_port, server=server))
    finally:
        sock.close()


async def _serve_then_stop(server: Server, listener: socket.socket, done: trio.CancelScope, *,
                           task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    """The connections until shutdown; then the signal watcher stops too."""
    await server.serve(listener, task_status=task_status)
    done.cancel()


async def _watch_signals(server: Server, everything: trio.CancelScope, *,
                         task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        task_status.started()
        first = True
        async for signum in signals:
            if first:
                log.warning("%s: shutting down gracefully (again to stop waiting for clients)",
                            signal.Signals(signum).name)
                server.request_shutdown()
                first = False
            else:
                log.warning("%s: stopping now", signal.Signals(signum).name)
                everything.cancel()
