"""`thengine serve`: the standalone network server (WebSocket /v1, /metrics, /healthz)."""

from __future__ import annotations

import gc
import logging
import sys
from contextlib import contextmanager
from functools import partial
from typing import Any, Iterator

import click
import trio

from ..server.config import COMPRESSIONS, ServerConfig
from ..server.protocol import MAX_FRAME_BYTES
from ..server.run import DEFAULT_LISTEN, ListenError, Running, parse_listen
from ..server.node import serve_node
from ..server.run import serve as run_server
from ..cluster.config import Cluster, ClusterError, load_cluster
from ._group import DEFAULT_DB, fail, main
from .admin import Command, ensure_secret, open_store, run_async


@main.command(cls=Command)
@click.argument("db", default=DEFAULT_DB, required=False)
@click.option("--listen", default=DEFAULT_LISTEN, show_default=True, metavar="HOST:PORT",
              help="Where to listen: HOST:PORT, [IPv6]:PORT, or :PORT for every interface.")
@click.option("--shards", type=click.IntRange(1, 1024), default=4, show_default=True,
              help="Shard tasks deciding commands (hunts are spread over them).")
@click.option("--sync", type=click.Choice(["full", "normal"]), default="full", show_default=True,
              help="full: an acknowledged command survives power loss; normal: a crash of the process.")
@click.option("--max-connections", type=click.IntRange(1), default=10_000, show_default=True,
              help="More connections are closed with 1013.")
@click.option("--max-unauthenticated", type=click.IntRange(1), default=1_000, show_default=True,
              help="Connections that have not said hello yet; while this many wait, new clients wait "
                   "in the listen backlog (none is refused).")
@click.option("--max-in-flight", type=click.IntRange(1), default=64, show_default=True,
              help="Commands and queries awaiting results, per connection; more get `overloaded`.")
@click.option("--rate", type=click.FloatRange(0), default=20.0, show_default=True,
              help="Commands per second per player (0: no limit); more get `rate_limited`. Admins are not limited.")
@click.option("--burst", type=click.IntRange(1), default=40, show_default=True,
              help="Commands a player may send at once before --rate applies.")
@click.option("--max-frame", type=click.IntRange(1024, 16 << 20), default=MAX_FRAME_BYTES, show_default=True,
              help="Largest frame in bytes; a bigger one closes the connection with 1009.")
@click.option("--client-buffer", type=click.IntRange(1), default=2000, show_default=True,
              help="Pushed events queued for one client; a client further behind is closed with 1013 "
                   "and resumes with after_seq.")
@click.option("--push-linger", type=click.FloatRange(0, 5), default=0.05, show_default=True,
              help="Seconds a client's pushed events may wait to leave together in fewer frames "
                   "(replies never wait); 0 sends each at once.")
@click.option("--handshake-timeout", type=click.FloatRange(0, min_open=True), default=10.0, show_default=True,
              help="Seconds for a new connection to send its HTTP request.")
@click.option("--hello-timeout", type=click.FloatRange(0, min_open=True), default=10.0, show_default=True,
              help="Seconds for a new WebSocket to say hello; the connection is then closed with 1008.")
@click.option("--ping-interval", type=click.FloatRange(0, min_open=True), default=20.0, show_default=True,
              help="Seconds of silence after which the server pings a client.")
@click.option("--ping-timeout", type=click.FloatRange(0, min_open=True), default=20.0, show_default=True,
              help="Seconds a pinged client has to answer (any frame) before it is closed with 1011.")
@click.option("--compression", type=click.Choice(COMPRESSIONS), default="none", show_default=True,
              help="permessage-deflate for clients that offer it (about 100 KiB more per connection).")
@click.option("--grace", type=click.FloatRange(0), default=10.0, show_default=True,
              help="Seconds to wait at shutdown for clients to get their answers.")
@click.option("--cluster", "cluster_file", type=click.Path(dir_okay=False), metavar="CLUSTER.toml",
              help="Run a cluster's node (with --node) instead of one database: its partitions, on its address.")
@click.option("--node", metavar="NAME", help="Which node of --cluster to run.")
@click.option("--remember-commands", type=click.IntRange(1), default=100_000, show_default=True,
              help="Newest command ids kept in memory for idempotent retries; older ones (within 24 h) "
                   "are looked up in the database.")
def serve(db: str, listen: str, shards: int, sync: str, max_connections: int, max_in_flight: int, rate: float,
          burst: int, max_frame: int, client_buffer: int, push_linger: float, max_unauthenticated: int,
          handshake_timeout: float, hello_timeout: float, ping_interval: float, ping_timeout: float, compression: str, grace: float,
          remember_commands: int, cluster_file: str | None, node: str | None) -> None:
    """Serve DB to game clients and servers over WebSocket at ws://HOST:PORT/v1.

    Clients authenticate with a token from `thengine token DB` (admin: anything;
    player: only as itself, and only the player's view). The same port answers
    GET /metrics (Prometheus), GET /healthz, and GET / (a browser client).

    With --cluster FILE --node NAME it runs one node of a cluster (`thengine cluster
    init`): every partition the file gives the node, one engine each, on the node's
    address (--listen is not used). Hunts of other nodes' partitions are answered
    `wrong_partition` with their node's URL.

    Ctrl-C or SIGTERM stops gracefully: no new connections, requests in flight are
    answered, clients are closed with 1001, snapshots are taken; exit 0. DB must
    exist (`thengine init`); it gets a token secret if it has none.

    \b
    Examples:
      thengine serve hunts.db --listen 0.0.0.0:8765
      TOKEN=$(thengine token hunts.db --role admin)
      thengine hunt add --url ws://127.0.0.1:8765/v1 --token "$TOKEN" old-town.toml --start
      thengine serve --cluster cluster.toml --node a
    """
    cluster = None
    if cluster_file is not None or node is not None:
        cluster = _node_of(cluster_file, node, db)
    try:
        parse_listen(listen)
    except ListenError as exc:
        fail(str(exc))
    config = ServerConfig(max_connections=max_connections, max_in_flight=max_in_flight, rate=rate, burst=burst,
                          max_frame_bytes=max_frame, client_buffer=client_buffer, push_linger_s=push_linger,
                          max_unauthenticated=max_unauthenticated, handshake_timeout_s=handshake_timeout,
                          hello_timeout_s=hello_timeout, ping_interval_s=ping_interval, ping_timeout_s=ping_timeout,
                          compression=compression,
                          shutdown_grace_s=grace)
    options = {"shards": shards, "sync": sync, "remember_commands": remember_commands}
    _log_to_stderr()
    if cluster is not None:
        assert node is not None
        run_async(_serve_node, cluster, node, config, options)
        click.echo(f"thengine: node {node} stopped", err=True)
        return
    with open_store(db, readonly=False) as store:
        _, made = ensure_secret(store)
    if made:
        click.echo(f"thengine: {db} had no token secret; made one (issue tokens with `thengine token`)", err=True)
    run_async(_serve, db, listen, config, options)
    click.echo("thengine: stopped", err=True)


def _node_of(cluster_file: str | None, node: str | None, db: str) -> Cluster:
    """The cluster of ``--cluster F --node N``, checked: both given, no DB, a known node
    whose partition databases all exist."""
    if cluster_file is None or node is None:
        fail("--cluster and --node go together: thengine serve --cluster cluster.toml --node a")
    if db != DEFAULT_DB:
        fail(f"give either DB or --cluster, not both (got {db} and --cluster {cluster_file})")
    try:
        cluster = load_cluster(cluster_file)
        me = cluster.node(node)
        cluster.read_secret()
    except ClusterError as exc:
        fail("; ".join(exc.problems))
    missing = [str(cluster.db_path(p)) for p in me.partitions if not cluster.db_path(p).exists()]
    if missing:
        fail(f"node {node}'s partition databases are missing: {', '.join(missing)} (see `thengine cluster init`)")
    return cluster


#: The server's process holds many long-lived objects (hunts, thousands of connections),
#: which every full collection walks; collecting less often keeps those pauses rare
#: (benchmarks/server_load.py --watched, 5,000 watchers: command latency p99 ~400 -> ~80 ms).
SERVE_GC_THRESHOLDS = (20_000, 20, 20)


async def _serve(db: str, listen: str, config: ServerConfig, options: dict[str, Any]) -> None:
    options = dict(options)
    shards, sync = options.pop("shards"), options.pop("sync")
    with _serving_gc():
        async with trio.open_nursery() as nursery:
            running: Running = await nursery.start(partial(
                run_server, db, listen=listen, shards=shards, sync=sync, config=config, handle_signals=True,
                engine_options=options))
            click.echo(f"thengine: serving {db} at {running.url} (browser client {running.http_url}/, "
                       f"metrics {running.http_url}/metrics); Ctrl-C stops", err=True)


async def _serve_node(cluster: Cluster, node: str, config: ServerConfig, options: dict[str, Any]) -> None:
    with _serving_gc():
        async with trio.open_nursery() as nursery:
            running: Running = await nursery.start(partial(
                serve_node, cluster, node, config=config, handle_signals=True, engine_options=options))
            hosted = ", ".join(map(str, cluster.node(node).partitions))
            click.echo(f"thengine: node {node} serving partitions {hosted} of {cluster.partitions} at {running.url} "
                       f"(metrics {running.http_url}/metrics); Ctrl-C stops", err=True)


@contextmanager
def _serving_gc() -> Iterator[None]:
    previous = gc.get_threshold()
    gc.set_threshold(*SERVE_GC_THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*previous)


def _log_to_stderr() -> None:
    """The server's warnings and errors, one line each, on stderr."""
    logger = logging.getLogger("thengine")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("thengine: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.WARNING)
