"""`serve`: an engine, its ASGI app and hypercorn's trio worker on one port.

Shutdown (SIGINT/SIGTERM with ``handle_signals``, or `Running.shutdown`): stop
accepting connections, let every connection answer its requests in flight and close
with 1001, then leave the engine, which finishes what is queued and takes snapshots.
A second signal stops waiting for clients (the engine still closes cleanly).
"""

from __future__ import annotations

import logging
import signal
import socket
from typing import Any

import attrs
import hypercorn.config
import hypercorn.trio
import trio

from ..errors import ThengineError
from ..runtime.engine import open_engine
from ..storage.store import Store
from .app import Server, ServerConfig

log = logging.getLogger("thengine.server")

DEFAULT_LISTEN = "127.0.0.1:8765"
#: A client that leaves sent data unacknowledged this long (e.g. stops reading) is cut
#: off by the kernel, so a stuck peer cannot hold a connection task forever.
TCP_USER_TIMEOUT_MS = 30_000


class ListenError(ThengineError):
    """The server cannot listen where it was told to (bad address, port in use)."""


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


def listen_socket(host: str, port: int) -> socket.socket:
    """A bound TCP socket (listened on by hypercorn). Raises `ListenError` with the reason."""
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
    except OSError as exc:
        sock.close()
        raise ListenError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


def _hypercorn_config(config: ServerConfig, fd: int) -> hypercorn.config.Config:
    hc = hypercorn.config.Config()
    hc.bind = [f"fd://{fd}"]
    hc.websocket_max_message_size = config.max_frame_bytes  # bigger frames: close 1009
    hc.graceful_timeout = config.shutdown_grace_s
    hc.backlog = 1024
    hc.accesslog = None
    hc.errorlog = logging.getLogger("thengine.server.http")
    return hc


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
    sock = listen_socket(host, port)
    bound_host, bound_port = sock.getsockname()[:2]
    try:
        async with open_engine(db, shards=shards, sync=sync, **(engine_options or {})) as engine:
            reader = Store.open(db, readonly=True)
            try:
                server = Server(engine, reader=reader, config=config)
                async with trio.open_nursery() as nursery:
                    if handle_signals:
                        await nursery.start(_watch_signals, server, nursery.cancel_scope)
                    await nursery.start(server.run_hub)
                    fd, sock = sock.detach(), None  # hypercorn owns the socket from here
                    await nursery.start(_run_http, server, _hypercorn_config(config, fd), nursery.cancel_scope)
                    task_status.started(Running(host=bound_host, port=bound_port, server=server))
            finally:
                reader.close()
    finally:
        if sock is not None:
            sock.close()


async def _run_http(server: Server, hc: hypercorn.config.Config, done: trio.CancelScope, *,
                    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    """hypercorn until it has shut down; then the hub and the signal watcher stop too."""
    await hypercorn.trio.serve(server, hc, shutdown_trigger=server.shutdown_trigger,  # type: ignore[arg-type]
                               task_status=task_status, mode="asgi")
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
