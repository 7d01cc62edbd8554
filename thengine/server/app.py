"""The ASGI app of `thengine serve`: WebSocket connections, the event hub, and HTTP.

One port, served by hypercorn's trio worker:

- ``/v1`` (WebSocket): the protocol of `protocol.py`. Each connection has a reader
  (parses frames in order, checks roles and the rate limit, starts queries and
  subscriptions as tasks), a sender (hands commands to the engine in arrival order, so
  a connection's commands for one hunt are decided in the order it sent them), one task
  per request awaiting its result (so a slow command never holds up a query), and one
  writer that owns the socket. Everything bound for the client goes through the
  writer's queue; pushed events in it are bounded (`ServerConfig.client_buffer`), and a
  client that lets them pile up is closed with 1013 and told where to resume.
- ``GET /metrics``, ``GET /healthz``, and ``GET /`` (the browser client).

Pushed events come from ONE engine subscription (the `Hub`): each event is encoded
once per view (admin, player; a player's own private event once more for that player)
and the same text is queued for every subscriber, so the engine publishes to a single
subscriber however many clients listen. A subscription that starts in the past
(``after_seq``) reads the log up to the hub's position from its own read-only database
connection while the hub keeps the newer events for it; it then goes live with no gap
and no duplicate (events are only ever queued in increasing `seq`).
"""

from __future__ import annotations

import logging
import math
import time
from collections import OrderedDict, deque
from importlib import resources
from typing import Any, Awaitable, Callable

import attrs
import trio

from .._version import __version__
from ..domain import views
from ..domain.commands import Player, Rejection
from ..domain.events import StoredEvent
from ..errors import EngineClosed, StorageError, SubscriberTooSlow
from ..runtime.engine import Engine, Ticket
from ..storage.store import Store
from ..tokens import SECRET_META_KEY, Claims, TokenError, decode_secret, verify
from . import protocol
from .metrics import ServerMetrics

log = logging.getLogger("thengine.server")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

#: The view key of a player's own private events (hint texts, their wrong answers).
_OWN = "own"
_PRIVATE_EVENTS = frozenset({"hint_revealed", "answer_wrong"})
HUB_BUFFER = 50_000
HUB_YIELD_EVENTS = 64  # keep well below ServerConfig.client_buffer
HUB_YIELD_DELIVERIES = 4000
ENCODE_CACHE = 4096
MAX_BATCH_EVENTS = 500
MAX_BATCH_CHARS = 256 * 1024
RATE_LIMIT_KEYS = 100_000
CLOSE_TIMEOUT_S = 5.0  # how long a closed connection waits for the client's close


@attrs.frozen(kw_only=True)
class ServerConfig:
    """The server's limits; built once by the caller (the CLI's options)."""

    max_frame_bytes: int = protocol.MAX_FRAME_BYTES
    max_connections: int = 10_000
    max_in_flight: int = 64  # commands and queries awaiting their result, per connection
    max_subscriptions: int = 16  # per connection
    client_buffer: int = 2000  # pushed events queued for one client before it is dropped as too slow
    rate: float = 20.0  # commands per second per player (0: unlimited); admins are not limited
    burst: int = 40
    hello_timeout_s: float = 10.0
    overload_wait_s: float = 1.0  # a command waits this long for inbox room, then gets `overloaded`
    shutdown_grace_s: float = 10.0
    catch_up_chunk: int = 500
    # A writer woken by pushed events (no replies) waits this long for more, so a busy
    # hunt's events leave in fewer, bigger frames; replies are never held back.
    push_linger_s: float = 0.05

    def __attrs_post_init__(self) -> None:
        for name in ("max_frame_bytes", "max_connections", "max_in_flight", "max_subscriptions",
                     "client_buffer", "burst", "catch_up_chunk"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be >= 1, got {getattr(self, name)}")
        for name in ("rate", "hello_timeout_s", "overload_wait_s", "shutdown_grace_s", "push_linger_s"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"{name}: must be a number >= 0, got {value!r}")

    def limits(self) -> dict[str, Any]:
        """What a client is told in ``welcome``."""
        return {"max_frame_bytes": self.max_frame_bytes, "max_in_flight": self.max_in_flight,
                "max_subscriptions": self.max_subscriptions, "client_buffer": self.client_buffer,
                "rate": self.rate, "burst": self.burst}


class RateLimiter:
    """A token bucket per key (player id): `rate` per second, up to `burst` at once."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = trio.current_time) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._buckets: dict[str, list[float]] = {}  # key -> [tokens, last refill]

    def allow(self, key: str) -> bool:
        if self.rate <= 0:
            return True
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= RATE_LIMIT_KEYS:
                self._prune(now)
            self._buckets[key] = [self.burst - 1.0, now]
            return True
        tokens = min(float(self.burst), bucket[0] + (now - bucket[1]) * self.rate)
        bucket[1] = now
        if tokens < 1.0:
            bucket[0] = tokens
            return False
        bucket[0] = tokens - 1.0
        return True

    def _prune(self, now: float) -> None:
        """Forget buckets that are full again: forgetting them changes nothing."""
        full = [k for k, (tokens, last) in self._buckets.items() if tokens + (now - last) * self.rate >= self.burst]
        for key in full:
            del self._buckets[key]


class SubHandle:
    """One subscription of one connection, as the hub and the writer see it."""

    __slots__ = ("conn", "id", "hunt_id", "view", "player_id", "batch", "prefix", "last_seq", "sent_seq",
                 "pending", "overflowed", "closed")

    def __init__(self, conn: Connection, sub_id: Any, hunt_id: str | None, after_seq: int, batch: bool) -> None:
        self.conn = conn
        self.id = sub_id
        self.hunt_id = hunt_id
        self.view = conn.view
        self.player_id = conn.player_id
        self.batch = batch
        self.prefix = protocol.events_prefix(sub_id) if batch else protocol.event_prefix(sub_id)
        self.last_seq = after_seq  # the last seq queued for the client
        self.sent_seq = after_seq  # the last seq written to the socket
        # While catching up from the log: the hub's newer events, kept for the hand-over.
        self.pending: deque[tuple[int, str]] | None = None
        self.overflowed = False
        self.closed = False

    def view_key(self, event: StoredEvent) -> str:
        """Which encoding of `event` this subscriber gets."""
        if (self.player_id is not None and event.type in _PRIVATE_EVENTS
                and event.data.get("player_id") == self.player_id):
            return _OWN
        return self.view

    def deliver(self, seq: int, text: str) -> None:
        """From the hub: a live event (synchronous, never blocks)."""
        pending = self.pending
        if pending is None:
            self.conn.push_event(self, seq, text)
        elif not self.overflowed:
            if len(pending) >= self.conn.server.config.client_buffer:
                # Catch-up will read these from the log instead.
                self.overflowed = True
                pending.clear()
            else:
                pending.append((seq, text))


def encode(event: StoredEvent, key: str) -> str:
    """`event` as text for the view `key` (admin, player, or a player's own)."""
    if key == _OWN:
        return protocol.event_json(event, views.PLAYER, own=True)
    return protocol.event_json(event, key)


class Hub:
    """Fans the engine's committed events out to subscribers, encoding once per view."""

    def __init__(self, engine: Engine, metrics: ServerMetrics) -> None:
        self._engine = engine
        self._metrics = metrics
        self.position = 0  # the last seq the hub has dispatched
        self._by_hunt: dict[str, dict[SubHandle, None]] = {}
        self._everything: dict[SubHandle, None] = {}
        self._dispatching = False
        self._doomed: list[SubHandle] = []

    def add(self, handle: SubHandle) -> int:
        """Register `handle`; returns the hub's position: every later event reaches it."""
        group = self._everything if handle.hunt_id is None else self._by_hunt.setdefault(handle.hunt_id, {})
        group[handle] = None
        self._metrics.subscribers.inc()
        return self.position

    def remove(self, handle: SubHandle) -> None:
        handle.closed = True
        if self._dispatching:
            self._doomed.append(handle)  # not while iterating its group
            return
        self._forget(handle)

    def _forget(self, handle: SubHandle) -> None:
        if handle.hunt_id is None:
            removed = self._everything.pop(handle, False) is None
        else:
            group = self._by_hunt.get(handle.hunt_id)
            removed = group is not None and group.pop(handle, False) is None
            if group is not None and not group:
                del self._by_hunt[handle.hunt_id]
        if removed:
            self._metrics.subscribers.dec()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Follow the log from the engine's current seq until the engine closes."""
        self.position = self._engine.committed_seq
        task_status.started()
        dispatched = deliveries = 0
        while True:
            try:
                async with self._engine.subscribe(after_seq=self.position, buffer=HUB_BUFFER) as events:
                    async for event in events:
                        delivered = self._dispatch(event)
                        self.position = event.seq
                        if delivered:
                            dispatched += 1
                            deliveries += delivered
                        # The subscription does not yield while it has events. Yielding
                        # now and then lets writers take their queues, so a burst of
                        # events (one big commit) never fills a healthy client's buffer.
                        if dispatched >= HUB_YIELD_EVENTS or deliveries >= HUB_YIELD_DELIVERIES:
                            dispatched = deliveries = 0
                            await trio.lowlevel.checkpoint()
                return
            except SubscriberTooSlow:
                continue  # fell behind the engine: resume from the log, nothing lost
            except EngineClosed:
                return

    def _dispatch(self, event: StoredEvent) -> int:
        targets = self._by_hunt.get(event.hunt_id)
        everything = self._everything
        if not targets and not everything:
            return 0
        texts: dict[str, str] = {}
        counts: dict[str, int] = {}
        self._dispatching = True
        try:
            for group in (targets, everything):
                if not group:
                    continue
                for handle in group:
                    if handle.closed:
                        continue
                    key = handle.view_key(event)
                    text = texts.get(key)
                    if text is None:
                        text = texts[key] = encode(event, key)
                        counts[key] = 0
                    counts[key] += 1
                    handle.deliver(event.seq, text)
        finally:
            self._dispatching = False
            doomed, self._doomed = self._doomed, []
            for handle in doomed:
                self._forget(handle)
        metrics = self._metrics
        total = 0
        for key, n in counts.items():
            view = views.PLAYER if key == _OWN else key
            metrics.encodings.labels(view).inc()
            metrics.pushed.labels(view).inc(n)
            total += n
        return total


class Server:
    """The ASGI app. Make one per engine; `run_hub` must run beside it (see `run.serve`)."""

    def __init__(self, engine: Engine, *, reader: Store, config: ServerConfig | None = None,
                 metrics: ServerMetrics | None = None, clock_s: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self.config = config or ServerConfig()
        self.metrics = metrics or ServerMetrics(engine)
        self.hub = Hub(engine, self.metrics)
        self.limiter = RateLimiter(self.config.rate, self.config.burst)
        self.connections = 0
        self.closing = False
        self._closing = trio.Event()
        self._shutdown_requested = trio.Event()
        self._reader = reader
        self._reader_lock = trio.Lock()
        self._clock_s = clock_s
        self._encoded: OrderedDict[tuple[int, str], str] = OrderedDict()
        self._html = resources.files("thengine.server").joinpath("static/client.html").read_bytes()

    # -- lifecycle ----------------------------------------------------------------------
    async def run_hub(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        await self.hub.run(task_status=task_status)

    def request_shutdown(self) -> None:
        """Begin a graceful shutdown (what SIGTERM does)."""
        self._shutdown_requested.set()

    async def shutdown_trigger(self) -> None:
        """For hypercorn: returns when shutdown is requested; connections then close with 1001."""
        await self._shutdown_requested.wait()
        self.closing = True
        self._closing.set()

    async def wait_closing(self) -> None:
        await self._closing.wait()

    # -- shared services of the connections --------------------------------------------
    async def secret(self) -> bytes | None:
        """The token secret, read afresh (so a rotation takes effect on the next hello)."""
        async with self._reader_lock:
            text = await trio.to_thread.run_sync(self._reader.get_meta, SECRET_META_KEY)
        return None if text is None else decode_secret(text)

    async def read_events(self, after_seq: int, hunt_id: str | None, until_seq: int, limit: int) -> list[StoredEvent]:
        """Committed events from the log (subscription catch-up), off the event loop."""
        reader = self._reader

        def read() -> list[StoredEvent]:
            return list(reader.read_events(after_seq=after_seq, hunt_id=hunt_id, until_seq=until_seq, limit=limit))

        async with self._reader_lock:
            return await trio.to_thread.run_sync(read)

    def encoded(self, event: StoredEvent, key: str) -> str:
        """`encode` with a small cache, for clients catching up from the same place."""
        cache_key = (event.seq, key)
        text = self._encoded.get(cache_key)
        if text is None:
            text = self._encoded[cache_key] = encode(event, key)
            if len(self._encoded) > ENCODE_CACHE:
                self._encoded.popitem(last=False)
        return text

    def now_s(self) -> float:
        return self._clock_s()

    # -- ASGI ---------------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "websocket":
            await self._websocket(scope, receive, send)
        elif kind == "http":
            await self._http(scope, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, send: Send) -> None:
        path, method = scope["path"], scope["method"]
        headers: list[tuple[bytes, bytes]] = []
        if method not in ("GET", "HEAD"):
            status, body, ctype = 405, b"method not allowed\n", b"text/plain; charset=utf-8"
            headers.append((b"allow", b"GET, HEAD"))
        elif path == "/metrics":
            status, body, ctype = 200, self.metrics.render(), self.metrics.content_type.encode()
        elif path == "/healthz":
            report = {"status": "shutting_down" if self.closing else "ok", "seq": self.engine.committed_seq,
                      "connections": self.connections, "version": __version__}
            status, body, ctype = (503 if self.closing else 200), protocol.dumps(report).encode(), b"application/json"
        elif path in ("/", "/client", "/client.html"):
            status, body, ctype = 200, self._html, b"text/html; charset=utf-8"
        elif path == "/v1":
            status, body, ctype = 426, b"/v1 is a WebSocket endpoint\n", b"text/plain; charset=utf-8"
            headers.append((b"upgrade", b"websocket"))
        else:
            status, body, ctype = 404, b"not found\n", b"text/plain; charset=utf-8"
        headers += [(b"content-type", ctype), (b"content-length", str(len(body)).encode()),
                    (b"cache-control", b"no-store")]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body if method != "HEAD" else b""})

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        if scope["path"] != "/v1":
            await send({"type": "websocket.close", "code": protocol.CLOSE_POLICY})  # (an HTTP 403)
            return
        await send({"type": "websocket.accept"})
        if self.closing:
            await _close(send, protocol.CLOSE_GOING_AWAY, "the server is shutting down")
            return
        if self.connections >= self.config.max_connections:
            await _close(send, protocol.CLOSE_TRY_AGAIN, "too many connections; try again later")
            return
        self.connections += 1
        self.metrics.connections.inc()
        try:
            conn = Connection(self, send)
            claims = await conn.hello(receive)
            if claims is not None:
                await conn.run(receive, claims)
            if not conn.gone:
                await _until_disconnect(receive)
        finally:
            self.connections -= 1
            self.metrics.connections.dec()


async def _until_disconnect(receive: Receive) -> None:
    """After our close frame: discard what the client still sends until it is gone.

    hypercorn hands frames over through a small queue; an app that stops taking them
    would leave hypercorn unable to see the client's close (and the TCP EOF) at all.
    """
    with trio.move_on_after(CLOSE_TIMEOUT_S):
        while (await receive())["type"] != "websocket.disconnect":
            pass


async def _close(send: Send, code: int, reason: str) -> None:
    await send({"type": "websocket.close", "code": code, "reason": protocol.close_reason(reason)})


class Connection:
    """One authenticated WebSocket client."""

    def __init__(self, server: Server, send: Send) -> None:
        self.server = server
        self._send = send
        self.view = views.ADMIN
        self.player_id: str | None = None
        self.role = "admin"
        self._queue: deque[Any] = deque()  # reply texts and (handle, seq, text) events
        self._events_queued = 0
        self._replies_queued = 0
        self._flush_at = max(1, server.config.client_buffer // 2)
        self._reply_limit = 4 * server.config.max_in_flight + 4096
        self._wake = trio.Event()
        self._reply_wake = trio.Event()
        self._room = trio.Event()
        self._subs: dict[Any, SubHandle] = {}
        self._in_flight = 0
        self._idle = trio.Event()
        self._idle.set()
        self._close: tuple[int, str] | None = None
        self._abort = False  # dropped: discard what is queued and close at once
        self._drained = False  # closing gracefully: in-flight requests are answered
        self._reading = trio.CancelScope()
        self._nursery: trio.Nursery | None = None
        self.gone = False  # the client disconnected
        send_commands, self._commands = trio.open_memory_channel[tuple[protocol.CommandRequest, float]](
            server.config.max_in_flight)
        self._command_sender = send_commands

    # -- hello --------------------------------------------------------------------------
    async def hello(self, receive: Receive) -> Claims | None:
        """Authenticate with the first frame; on failure close with 1008 and a reason."""
        server = self.server
        message = None
        with trio.move_on_after(server.config.hello_timeout_s):
            message = await receive()
        if message is None:
            await self._refuse(f"no hello within {server.config.hello_timeout_s:g} s")
            return None
        if message["type"] != "websocket.receive":
            self.gone = message["type"] == "websocket.disconnect"
            return None
        request = protocol.parse_frame(message["text"]) if message.get("text") is not None else None
        if not isinstance(request, protocol.Hello):
            if isinstance(request, protocol.BadRequest) and request.message.startswith("token:"):
                await self._refuse("unauthorized: hello needs a token (see `thengine token`)")
            else:
                await self._refuse('the first frame must be {"op":"hello","token":"..."}')
            return None
        try:
            secret = await server.secret()
        except (StorageError, TokenError) as exc:
            log.error("cannot read the token secret: %s", exc)
            await self._refuse("unauthorized: the server cannot read its token secret")
            return None
        if secret is None:
            await self._refuse("unauthorized: the server has no token secret; make one with `thengine token`")
            return None
        now = server.now_s()
        try:
            claims = verify(secret, request.token, now_s=int(now))
        except TokenError as exc:
            await self._refuse(f"unauthorized: {exc}")
            return None
        self.role = claims.role
        self.player_id = claims.player_id
        self.view = views.ADMIN if claims.role == "admin" else views.PLAYER
        self._reading.deadline = trio.current_time() + max(0.0, claims.exp - now)
        await self._send({"type": "websocket.send", "text": protocol.welcome(
            role=claims.role, player_id=claims.player_id, seq=server.engine.committed_seq,
            version=__version__, limits=server.config.limits())})
        return claims

    async def _refuse(self, reason: str) -> None:
        self.server.metrics.auth_failures.inc()
        code = "unauthorized" if reason.startswith("unauthorized") else "bad_request"
        await self._send({"type": "websocket.send", "text": protocol.error(None, code, reason)})
        await _close(self._send, protocol.CLOSE_POLICY, reason)

    # -- the connection's life ----------------------------------------------------------
    async def run(self, receive: Receive, claims: Claims) -> None:
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                nursery.start_soon(self._write_loop)
                nursery.start_soon(self._send_loop)
                nursery.start_soon(self._watch_server)
                gone = False
                with self._reading:
                    gone = await self._read_loop(receive)
                if gone:
                    self.gone = True
                    nursery.cancel_scope.cancel()
                elif self._close is None:  # the reading deadline: the token's expiry
                    self.begin_close(protocol.CLOSE_POLICY, "unauthorized: token expired")
        finally:
            self._unsubscribe_all()

    async def _watch_server(self) -> None:
        await self.server.wait_closing()
        self.begin_close(protocol.CLOSE_GOING_AWAY, "the server is shutting down")

    def begin_close(self, code: int, reason: str) -> None:
        """Stop reading, answer what is in flight, then close with `code`."""
        if self._close is not None:
            return
        self._close = (code, reason)
        self._unsubscribe_all()
        self._reading.cancel()
        self._command_sender.close()
        assert self._nursery is not None
        self._nursery.start_soon(self._drain)

    async def _drain(self) -> None:
        while self._in_flight:
            await self._idle.wait()
        self._drained = True
        self._wake.set()

    def drop_slow(self) -> None:
        """The client fell `client_buffer` events behind: close at once with a resume hint."""
        if self._close is not None:
            return
        self._close = (protocol.CLOSE_TRY_AGAIN, "too slow")  # the writer adds where to resume
        self._abort = True
        self.server.metrics.slow_dropped.inc()
        self._unsubscribe_all()
        self._reading.cancel()
        self._command_sender.close()
        self._wake.set()
        self._reply_wake.set()
        self._room.set()

    def _unsubscribe_all(self) -> None:
        hub = self.server.hub
        for handle in self._subs.values():
            if not handle.closed:
                hub.remove(handle)

    # -- reading ------------------------------------------------------------------------
    async def _read_loop(self, receive: Receive) -> bool:
        """Handle frames in order until the client goes away (True) or reading is stopped."""
        while True:
            message = await receive()
            kind = message["type"]
            if kind == "websocket.disconnect":
                return True
            if kind != "websocket.receive":
                continue
            text = message.get("text")
            if text is None:
                self._bad(None, "binary frames are not supported: send JSON text frames")
                continue
            request = protocol.parse_frame(text)
            if self._close is not None:
                # (A frame already on its way to us when the close began.)
                self.reply(protocol.error(getattr(request, "id", None), "shutting_down", "the connection is closing"))
                continue
            try:
                self._dispatch(request)
            except Exception:  # a bug must not take the connection down with it
                log.exception("handling a frame failed")
                self.reply(protocol.error(getattr(request, "id", None), "internal", "internal error"))

    def _bad(self, rid: Any, message: str) -> None:
        self.server.metrics.bad_frames.inc()
        self.reply(protocol.error(rid, "bad_request", message))

    def _dispatch(self, request: protocol.Request | protocol.BadRequest) -> None:
        if isinstance(request, protocol.CommandRequest):
            self._on_command(request)
        elif isinstance(request, protocol.QueryRequest):
            self._on_query(request)
        elif isinstance(request, protocol.SubscribeRequest):
            self._on_subscribe(request)
        elif isinstance(request, protocol.UnsubscribeRequest):
            self._on_unsubscribe(request)
        elif isinstance(request, protocol.PingRequest):
            self.reply(protocol.pong(request.id))
        elif isinstance(request, protocol.Hello):
            self._bad(request.id, "already authenticated: hello is only the first frame")
        else:
            self._bad(request.id, request.message)

    def _start(self) -> bool:
        """Count one more request in flight, unless at the limit."""
        if self._in_flight >= self.server.config.max_in_flight:
            return False
        if self._in_flight == 0:
            self._idle = trio.Event()
        self._in_flight += 1
        return True

    def _finish(self) -> None:
        self._in_flight -= 1
        if self._in_flight == 0:
            self._idle.set()

    def _on_command(self, request: protocol.CommandRequest) -> None:
        metrics = self.server.metrics
        command = request.command
        refusal: Rejection | None = None
        if isinstance(command, Rejection):
            refusal = command
        elif self.role != "admin":
            if type(command).ADMIN:
                refusal = Rejection(code="forbidden", message=f"{command.TYPE} is for admins only")
            elif getattr(command, "player_id", None) != self.player_id:
                refusal = Rejection(code="forbidden",
                                    message=f"a player token acts only as its own player {self.player_id!r}")
            elif not self.server.limiter.allow(self.player_id or ""):
                refusal = Rejection(code="rate_limited", message=(
                    f"more than {self.server.config.rate:g} commands per second; slow down"))
        if refusal is None and not self._start():
            refusal = Rejection(code="overloaded", message=(
                f"more than {self.server.config.max_in_flight} requests in flight on this connection"))
        if refusal is not None:
            metrics.commands.labels(request.type, refusal.code).inc()
            self.reply(protocol.rejected(request.id, refusal))
            return
        try:
            self._command_sender.send_nowait((request, trio.current_time()))
        except (trio.WouldBlock, trio.ClosedResourceError):  # (the channel holds max_in_flight)
            self._finish()
            self.reply(protocol.error(request.id, "shutting_down", "the connection is closing"))

    async def _send_loop(self) -> None:
        """Hand commands to the engine in the order they arrived; results come back concurrently."""
        engine = self.server.engine
        wait = self.server.config.overload_wait_s
        assert self._nursery is not None
        async with self._commands:
            async for request, started in self._commands:
                assert not isinstance(request.command, Rejection)
                command_id = request.command_id
                if command_id is not None and self.role != "admin":
                    command_id = f"{self.player_id}/{command_id}"  # players cannot collide with each other
                ticket: Ticket | None = None
                try:
                    with trio.move_on_after(wait):
                        ticket = await engine.send(request.command, command_id=command_id)
                except EngineClosed:
                    self._finish()
                    self.reply(protocol.error(request.id, "shutting_down", "the server is shutting down"))
                    continue
                if ticket is None:
                    self._finish()
                    self.server.metrics.commands.labels(request.type, "overloaded").inc()
                    self.reply(protocol.rejected(request.id, Rejection(
                        code="overloaded", message="the engine is overloaded: try again shortly")))
                    continue
                self._nursery.start_soon(self._await_result, request, ticket, started)

    async def _await_result(self, request: protocol.CommandRequest, ticket: Ticket, started: float) -> None:
        metrics = self.server.metrics
        text: str | None = None
        try:
            result = await ticket.result()
            outcome = "ok" if result.ok else (result.error.code if result.error else "error")
            metrics.commands.labels(request.type, outcome).inc()
            metrics.command_latency.labels(request.type).observe(trio.current_time() - started)
            text = protocol.command_result(request.id, result, self.view)
        except StorageError as exc:
            text = protocol.error(request.id, "internal", f"storage failure: {exc}")
        finally:
            if text is not None:
                self.reply(text)  # (queued before the drain can see the connection idle)
            self._finish()

    def _on_query(self, request: protocol.QueryRequest) -> None:
        query = request.query
        refusal: Rejection | None = None
        if isinstance(query, Rejection):
            refusal = query
        elif self.role != "admin" and isinstance(query, Player) and query.player_id != self.player_id:
            refusal = Rejection(code="forbidden", message=f"a player token sees only its own player {self.player_id!r}")
        elif not self._start():
            refusal = Rejection(code="overloaded", message=(
                f"more than {self.server.config.max_in_flight} requests in flight on this connection"))
        if refusal is not None:
            self.server.metrics.queries.labels(request.type, refusal.code).inc()
            self.reply(protocol.rejected(request.id, refusal))
            return
        assert self._nursery is not None
        self._nursery.start_soon(self._answer, request)

    async def _answer(self, request: protocol.QueryRequest) -> None:
        assert not isinstance(request.query, Rejection)
        text: str | None = None
        try:
            answer = await self.server.engine.query(request.query, view=self.view)
            outcome = answer.error.code if not isinstance(answer, dict) and answer.error else "ok"
            self.server.metrics.queries.labels(request.type, outcome).inc()
            text = protocol.query_result(request.id, answer)
        except EngineClosed:
            text = protocol.error(request.id, "shutting_down", "the server is shutting down")
        except StorageError as exc:
            text = protocol.error(request.id, "internal", f"storage failure: {exc}")
        finally:
            if text is not None:
                self.reply(text)
            self._finish()

    # -- subscriptions ------------------------------------------------------------------
    def _on_subscribe(self, request: protocol.SubscribeRequest) -> None:
        if request.id in self._subs:
            self._bad(request.id, f"id: subscription {request.id!r} is active; unsubscribe it or use another id")
            return
        if len(self._subs) >= self.server.config.max_subscriptions:
            self.reply(protocol.error(request.id, "overloaded",
                                      f"at most {self.server.config.max_subscriptions} subscriptions per connection"))
            return
        hub = self.server.hub
        position = hub.position
        after = position if request.after_seq is None else request.after_seq
        handle = SubHandle(self, request.id, request.hunt_id, after, request.batch)
        self._subs[request.id] = handle
        self.reply(protocol.subscribed(request.id, hunt_id=request.hunt_id, after_seq=after))
        if after < position:
            handle.pending = deque()
            hub.add(handle)
            assert self._nursery is not None
            self._nursery.start_soon(self._catch_up, handle, position)
        else:
            hub.add(handle)

    def _on_unsubscribe(self, request: protocol.UnsubscribeRequest) -> None:
        handle = self._subs.pop(request.sub, None)
        if handle is None:
            self._bad(request.id, f"sub: no active subscription {request.sub!r}")
            return
        self.server.hub.remove(handle)  # the writer skips its queued events from now on
        self.reply(protocol.unsubscribed(request.id, request.sub))

    async def _catch_up(self, handle: SubHandle, until: int) -> None:
        """Read the log up to the hub's position, then take over the hub's events for `handle`."""
        server = self.server
        chunk = server.config.catch_up_chunk
        try:
            while True:
                after = handle.last_seq
                while after < until and not handle.closed:
                    events = await server.read_events(after, handle.hunt_id, until, chunk)
                    for event in events:
                        await self._wait_room()
                        if handle.closed:
                            return
                        self.push_event(handle, event.seq, server.encoded(event, handle.view_key(event)))
                    after = events[-1].seq if len(events) == chunk else until
                # Hand over: the hub's events kept meanwhile, then live.
                while not handle.closed:
                    pending = handle.pending
                    assert pending is not None
                    if handle.overflowed:
                        break
                    if not pending:
                        handle.pending = None  # live from here: no await since the check
                        return
                    await self._wait_room()
                    if handle.closed or handle.overflowed:
                        continue
                    seq, text = pending.popleft()
                    self.push_event(handle, seq, text)
                if handle.closed:
                    return
                # The hub's buffer overflowed while we read: read further from the log.
                handle.overflowed = False
                handle.pending = deque()
                until = server.hub.position
        except StorageError as exc:
            log.error("subscription catch-up failed: %s", exc)
            self.reply(protocol.error(handle.id, "internal", f"storage failure: {exc}"))
            self._subs.pop(handle.id, None)
            server.hub.remove(handle)

    async def _wait_room(self) -> None:
        while self._events_queued >= self.server.config.client_buffer and not self._abort:
            self._room = trio.Event()
            await self._room.wait()

    # -- writing ------------------------------------------------------------------------
    def reply(self, text: str) -> None:
        """Queue a reply frame. Replies are never dropped one by one; a client that lets
        them pile up (pings or bad frames, and never reading) is dropped as too slow."""
        if self._replies_queued >= self._reply_limit:
            self.drop_slow()
            return
        self._queue.append(text)
        self._replies_queued += 1
        self._wake.set()
        self._reply_wake.set()

    def push_event(self, handle: SubHandle, seq: int, text: str) -> None:
        """Queue a pushed event; a client this far behind is dropped."""
        if seq <= handle.last_seq or handle.closed:
            return
        if self._events_queued >= self.server.config.client_buffer:
            self.drop_slow()
            return
        handle.last_seq = seq
        self._queue.append((handle, seq, text))
        self._events_queued += 1
        self._wake.set()
        if self._events_queued >= self._flush_at:
            self._reply_wake.set()  # no more lingering: half the buffer is used

    async def _write_loop(self) -> None:
        send = self._send
        linger = self.server.config.push_linger_s
        try:
            while True:
                while not self._queue and not self._abort and not self._drained:
                    self._wake = trio.Event()
                    await self._wake.wait()
                if self._abort or not self._queue:
                    break
                if linger and not self._replies_queued and not self._drained:
                    self._reply_wake = trio.Event()
                    with trio.move_on_after(linger):
                        await self._reply_wake.wait()
                    if self._abort:
                        break
                for text, handle, seq in self._take_frames():
                    await send({"type": "websocket.send", "text": text})
                    if handle is not None:
                        handle.sent_seq = seq
                    if self._abort:
                        break
            assert self._close is not None
            code, reason = self._close
            if self._abort:  # what was written is known now: resume right after it
                seqs = [handle.sent_seq for handle in self._subs.values()]
                reason = f"too slow; resume with after_seq={min(seqs) if seqs else 0}"
            await _close(send, code, reason)
        finally:
            assert self._nursery is not None
            self._nursery.cancel_scope.cancel()

    def _take_frames(self) -> list[tuple[str, SubHandle | None, int]]:
        """Everything queued, as frames: replies as they are, events one frame each, or
        batched per subscription for those that asked (at the first event's place)."""
        queue = self._queue
        items = list(queue)
        queue.clear()
        self._events_queued = 0
        self._replies_queued = 0
        self._room.set()
        frames: list[Any] = []
        open_batches: dict[SubHandle, list[Any]] = {}  # handle -> [frame index, texts, last seq, chars]
        batches: list[tuple[SubHandle, list[Any]]] = []
        for item in items:
            if isinstance(item, str):
                frames.append((item, None, 0))
                continue
            handle, seq, text = item
            if handle.closed:
                continue  # unsubscribed (or dropped) since it was queued
            if not handle.batch:
                frames.append((protocol.event_frame(handle.prefix, text), handle, seq))
                continue
            batch = open_batches.get(handle)
            if batch is None or len(batch[1]) >= MAX_BATCH_EVENTS or batch[3] >= MAX_BATCH_CHARS:
                batch = open_batches[handle] = [len(frames), [], seq, 0]
                batches.append((handle, batch))
                frames.append(None)
            batch[1].append(text)
            batch[2] = seq
            batch[3] += len(text)
        for handle, (index, texts, seq, _) in batches:
            frames[index] = (protocol.events_frame(handle.prefix, texts), handle, seq)
        return frames
