"""What an authenticated client asks, and how it is answered: commands, queries,
subscriptions and watches of one connection (`connection.py` owns its life).

A command is checked (role, rate limit, requests in flight) and handed to the engine
at once with `Engine.send_nowait`, in the frame reader's task, so a connection's
commands reach the engine in the order sent. Its result comes back through
`Ticket.add_done_callback` (in the committer's task) and is queued in the outbox:
no task and no channel per command. Only when the engine's inbox is full do commands
wait, in order, in a task of their own (for `overload_wait_s` each, then
``overloaded``). A query runs in a task of its own, so a slow commit never holds up
the rest. Every reply goes through the outbox; replies echo the request's ``id``.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import TYPE_CHECKING, Any, Union

import trio

from ..domain import views
from ..domain.commands import Hunts, Player, Rejection
from ..errors import EngineClosed, StorageError, UnknownHunt
from ..runtime.engine import Engine, Ticket
from .tokens import Claims
from . import protocol
from .hub import SubHandle
from .outbox import BoardSlot

if TYPE_CHECKING:
    from .connection import Connection

log = logging.getLogger("thengine.server")

_Sub = Union[SubHandle, BoardSlot]


class Session:
    """The requests of one authenticated connection."""

    def __init__(self, conn: Connection, claims: Claims) -> None:
        self.conn = conn
        server = conn.server
        self.server = server
        self.partitions = server.partitions
        self.config = server.config
        self.metrics = server.metrics
        self.outbox = conn.outbox
        self.role = claims.role
        self.player_id = claims.player_id
        self.view = views.ADMIN if claims.role == "admin" else views.PLAYER
        self._subs: dict[Any, _Sub] = {}
        self._in_flight: dict[Any, int] = {}  # request id -> how many with that id await their answer
        self._in_flight_count = 0
        self._waiting: deque[tuple[protocol.CommandRequest, Engine, str | None, float]] = deque()  # for inbox room
        self._sender_running = False
        self.stopped = False  # no more pushed events or boards (closing)

    # -- dispatch -----------------------------------------------------------------------
    def handle(self, request: protocol.Request | protocol.BadRequest) -> Any:
        """Act on one request; returns an awaitable for the reader to await, or None."""
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
        elif isinstance(request, protocol.WatchRequest):
            return self._on_watch(request)
        elif isinstance(request, protocol.PartitionRequest):
            self._on_partition(request)
        elif isinstance(request, protocol.Hello):
            self.bad(request.id, "already authenticated: hello is only the first frame")
        else:
            self.bad(request.id, request.message)
        return None

    def reply(self, text: str) -> None:
        self.outbox.reply(text.encode())

    def bad(self, rid: Any, message: str) -> None:
        self.metrics.bad_frames.inc()
        self.reply(protocol.error(rid, "bad_request", message))

    # -- requests in flight --------------------------------------------------------------
    @property
    def idle(self) -> bool:
        """No command or query awaits its answer."""
        return not self._in_flight_count

    def _start(self, rid: Any) -> bool:
        """Count one more request in flight, unless at the limit."""
        if self._in_flight_count >= self.config.max_in_flight:
            return False
        self._in_flight_count += 1
        self._in_flight[rid] = self._in_flight.get(rid, 0) + 1
        return True

    def _answer(self, rid: Any, text: str) -> None:
        """The answer to a request in flight: queued, and the request no longer counts."""
        left = self._in_flight.get(rid)
        if left is None:
            return  # abandoned (the connection's last words answered it)
        if left > 1:
            self._in_flight[rid] = left - 1
        else:
            del self._in_flight[rid]
        self._in_flight_count -= 1
        self.reply(text)
        if not self._in_flight_count:
            self.conn.on_idle()

    def abandon(self, code: str, message: str) -> None:
        """The connection is going now: an error frame for every request still in flight."""
        for rid, count in self._in_flight.items():
            for _ in range(count):
                self.reply(protocol.error(rid, code, message))
        self._in_flight.clear()
        self._in_flight_count = 0
        self._waiting.clear()

    # -- commands -----------------------------------------------------------------------
    def _on_command(self, request: protocol.CommandRequest) -> None:
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
                    f"more than {self.config.rate:g} commands per second; slow down"))
        route = self.partitions.route(command.hunt_id) if refusal is None else refusal  # type: ignore[union-attr]
        if isinstance(route, Rejection):
            refusal = route
        elif not self._start(request.id):
            refusal = Rejection(code="overloaded", message=(
                f"more than {self.config.max_in_flight} requests in flight on this connection"))
        if refusal is not None:
            self.metrics.command(request.type, refusal.code)
            self.reply(protocol.rejected(request.id, refusal))
            return
        engine = route.engine  # type: ignore[union-attr]
        command_id = request.command_id
        if command_id is not None and self.role != "admin":
            command_id = f"{self.player_id}/{command_id}"  # players cannot collide with each other
        started = trio.current_time()
        if self._waiting:  # behind commands that wait for room: keep the order
            self._wait_for_room(request, engine, command_id, started)
            return
        try:
            ticket = engine.send_nowait(request.command, command_id=command_id)  # type: ignore[arg-type]
        except EngineClosed:
            self._answer(request.id, protocol.error(request.id, "shutting_down", "the server is shutting down"))
            return
        if ticket is None:
            self._wait_for_room(request, engine, command_id, started)
        else:
            self._follow(request, ticket, started)

    def _follow(self, request: protocol.CommandRequest, ticket: Ticket, started: float) -> None:
        ticket.add_done_callback(lambda done: self._on_result(request, started, done))

    def _on_result(self, request: protocol.CommandRequest, started: float, ticket: Ticket) -> None:
        """In the committer's task: the command is durable (or failed); queue its reply."""
        try:
            try:
                result = ticket.result_nowait()
            except StorageError as exc:
                self._answer(request.id, protocol.error(request.id, "internal", f"storage failure: {exc}"))
                return
            if result is None:  # a repeat: its first result is read back from the log
                if self.conn.accepting_tasks:
                    self.conn.start_task(self._read_back, request, ticket, started)
                return
            self._result(request, started, result)
        except Exception:  # a bug must not reach the committer
            log.exception("answering a command failed")
            self._answer(request.id, protocol.error(request.id, "internal", "internal error"))

    def _result(self, request: protocol.CommandRequest, started: float, result: Any) -> None:
        outcome = "ok" if result.ok else (result.error.code if result.error else "error")
        self.metrics.command(request.type, outcome, trio.current_time() - started)
        self._answer(request.id, protocol.command_result(request.id, result, self.view))

    async def _read_back(self, request: protocol.CommandRequest, ticket: Ticket, started: float) -> None:
        try:
            result = await ticket.result()
        except EngineClosed:
            self._answer(request.id, protocol.error(request.id, "shutting_down", "the server is shutting down"))
        except StorageError as exc:
            self._answer(request.id, protocol.error(request.id, "internal", f"storage failure: {exc}"))
        else:
            self._result(request, started, result)

    def _wait_for_room(self, request: protocol.CommandRequest, engine: Engine, command_id: str | None,
                       started: float) -> None:
        self._waiting.append((request, engine, command_id, started))
        if not self._sender_running and self.conn.accepting_tasks:
            self._sender_running = True
            self.conn.start_task(self._send_waiting)

    async def _send_waiting(self) -> None:
        """The engine's inbox was full: hand the waiting commands over in order, each
        waiting `overload_wait_s` for room, then ``overloaded``."""
        wait = self.config.overload_wait_s
        try:
            while self._waiting:
                request, engine, command_id, started = self._waiting[0]  # (stays first while it waits: order)
                ticket: Ticket | None = None
                closed = False
                try:
                    with trio.move_on_after(wait):
                        ticket = await engine.send(request.command, command_id=command_id)  # type: ignore[arg-type]
                except EngineClosed:
                    closed = True
                if not self._waiting or self._waiting[0][0] is not request:
                    break  # abandoned meanwhile: the connection is gone
                self._waiting.popleft()
                if closed:
                    self._answer(request.id, protocol.error(request.id, "shutting_down", "the server is shutting down"))
                elif ticket is None:
                    self.metrics.command(request.type, "overloaded")
                    self._answer(request.id, protocol.rejected(request.id, Rejection(
                        code="overloaded", message="the engine is overloaded: try again shortly")))
                else:
                    self._follow(request, ticket, started)
        finally:
            self._sender_running = False

    # -- queries ------------------------------------------------------------------------
    def _on_query(self, request: protocol.QueryRequest) -> None:
        query = request.query
        refusal: Rejection | None = None
        if isinstance(query, Rejection):
            refusal = query
        elif self.role != "admin" and isinstance(query, Player) and query.player_id != self.player_id:
            refusal = Rejection(code="forbidden", message=f"a player token sees only its own player {self.player_id!r}")
        engines: list[Engine] = []
        if refusal is None and isinstance(query, Hunts):
            engines = [hosted.engine for hosted in self.partitions]  # (a node: the hunts of its partitions)
        elif refusal is None:
            route = self.partitions.route(query.hunt_id)  # type: ignore[union-attr]
            if isinstance(route, Rejection):
                refusal = route
            else:
                engines = [route.engine]
        if refusal is None and not self._start(request.id):
            refusal = Rejection(code="overloaded", message=(
                f"more than {self.config.max_in_flight} requests in flight on this connection"))
        if refusal is not None:
            self.metrics.queries.labels(request.type, refusal.code).inc()
            self.reply(protocol.rejected(request.id, refusal))
            return
        self.conn.start_task(self._query, request, engines)

    async def _query(self, request: protocol.QueryRequest, engines: list[Engine]) -> None:
        assert not isinstance(request.query, Rejection)
        try:
            if len(engines) == 1:
                answer = await engines[0].query(request.query, view=self.view)
            else:
                answer = views.merge_hunts([await engine.query(request.query, view=self.view)
                                            for engine in engines])
        except EngineClosed:
            text = protocol.error(request.id, "shutting_down", "the server is shutting down")
        except StorageError as exc:
            text = protocol.error(request.id, "internal", f"storage failure: {exc}")
        else:
            outcome = answer.error.code if not isinstance(answer, dict) and answer.error else "ok"
            self.metrics.queries.labels(request.type, outcome).inc()
            text = protocol.query_result(request.id, answer)
        self._answer(request.id, text)

    # -- subscriptions and watches -------------------------------------------------------
    def _room_for_sub(self, rid: Any) -> bool:
        if rid in self._subs:
            self.bad(rid, f"id: subscription {rid!r} is active; unsubscribe it or use another id")
            return False
        if len(self._subs) >= self.config.max_subscriptions:
            self.reply(protocol.error(rid, "overloaded",
                                      f"at most {self.config.max_subscriptions} subscriptions and watches "
                                      "per connection"))
            return False
        return True

    def _on_subscribe(self, request: protocol.SubscribeRequest) -> None:
        if request.hunt_id is None and self.partitions.single is None:
            self.bad(request.id, "hunt_id: a cluster's node has a seq for each partition, so subscribe to one "
                                 "hunt (thengine.client subscribes to every hunt over every node for you)")
            return
        route = self.partitions.route(request.hunt_id or "")
        if isinstance(route, Rejection):
            self.reply(protocol.rejected(request.id, route))
            return
        if not self._room_for_sub(request.id):
            return
        hub = route.hub
        after = hub.position if request.after_seq is None else request.after_seq
        handle = SubHandle(self.outbox, request.id, hunt_id=request.hunt_id, view=self.view,
                           player_id=self.player_id, after_seq=after, batch=request.batch)
        try:
            cursor = hub.add(handle, limit=self.config.client_buffer)
        except EngineClosed:
            self.reply(protocol.error(request.id, "shutting_down", "the server is shutting down"))
            return
        self._subs[request.id] = handle
        self.reply(protocol.subscribed(request.id, hunt_id=request.hunt_id, after_seq=after))
        if not cursor.live:
            self.conn.start_task(self._catch_up, handle)

    async def _catch_up(self, handle: SubHandle) -> None:
        """Read the log through `handle`'s cursor, at the client's pace, until it is live."""
        hub, outbox, cursor = handle.hub, self.outbox, handle.cursor
        assert cursor is not None and hub is not None
        chunk = self.config.catch_up_chunk
        try:
            while not (handle.closed or cursor.closed):
                events, reached = await cursor.read_log(chunk)
                for event in events:
                    await outbox.wait_room()
                    if handle.closed:
                        return
                    data = hub.encoded(event, handle.view_key(event))
                    if data:  # (empty: an event this view never shows)
                        outbox.push_event(handle, event.seq, data)
                if cursor.read_to(reached):
                    return  # live: the hub's feed has every later event
        except StorageError as exc:
            log.error("subscription catch-up failed: %s", exc)
            self.reply(protocol.error(handle.id, "internal", f"storage failure: {exc}"))
            self._subs.pop(handle.id, None)
            hub.remove(handle)

    async def _on_watch(self, request: protocol.WatchRequest) -> None:
        if not self._room_for_sub(request.id):
            return
        around = request.around
        if self.role != "admin" and around is not None and around != self.player_id:
            self.reply(protocol.rejected(request.id, Rejection(
                code="forbidden", message=f"a player token watches only its own entry ({self.player_id!r})")))
            return
        whose = self.player_id if self.role != "admin" else around
        route = self.partitions.route(request.hunt_id)
        if isinstance(route, Rejection):
            self.reply(protocol.rejected(request.id, route))
            return
        interval_s = request.interval_ms / 1000
        slot = BoardSlot(self.outbox, request.id, hunt_id=request.hunt_id, limit=request.limit,
                         interval_s=interval_s, whose=whose, frozen_view=self.role != "admin")
        slot.engine = route.engine
        try:
            await route.engine.start_watch(slot, request.hunt_id, limit=request.limit, interval_s=interval_s)
        except UnknownHunt as exc:
            self.reply(protocol.rejected(request.id, Rejection(code="unknown_hunt", message=str(exc))))
            return
        except EngineClosed:
            self.reply(protocol.error(request.id, "shutting_down", "the server is shutting down"))
            return
        if self.stopped:  # the connection began closing while the hunt was loaded
            self._unwatch(slot)
            return
        self._subs[request.id] = slot
        self.reply(protocol.watching(request.id))  # (queued before the first board can be)

    def _on_unsubscribe(self, request: protocol.UnsubscribeRequest) -> None:
        sub = self._subs.pop(request.sub, None)
        if sub is None:
            self.bad(request.id, f"sub: no active subscription or watch {request.sub!r}")
            return
        self._end(sub)
        self.reply(protocol.unsubscribed(request.id, request.sub))

    def _end(self, sub: _Sub) -> None:
        if isinstance(sub, SubHandle):
            if sub.hub is not None:
                sub.hub.remove(sub)  # the outbox skips its queued events from now on
        else:
            self._unwatch(sub)

    def _unwatch(self, slot: BoardSlot) -> None:
        slot.close()
        slot.engine.boards.remove(slot, slot.hunt_id, limit=slot.limit, interval_s=slot.interval_s)

    def follows(self, engine: Engine) -> bool:
        """Whether a subscription or watch of this connection reads `engine`'s hunts."""
        for sub in self._subs.values():
            if (sub.hub is not None and sub.hub.engine is engine) if isinstance(sub, SubHandle) else sub.engine is engine:
                return True
        return False

    # -- a cluster node's partitions ------------------------------------------------------
    def _on_partition(self, request: protocol.PartitionRequest) -> None:
        host = self.server.host
        if self.role != "admin":
            self.reply(protocol.rejected(request.id, Rejection(code="forbidden", message="partition is for admins only")))
        elif host is None:
            self.bad(request.id, "partition: this server is not a cluster's node (serve --cluster FILE --node NAME)")
        elif self._start(request.id):
            self.conn.start_task(self._partition, request)
        else:
            self.reply(protocol.error(request.id, "overloaded",
                                      f"more than {self.config.max_in_flight} requests in flight on this connection"))

    async def _partition(self, request: protocol.PartitionRequest) -> None:
        from .node import PartitionError  # (node imports the server, which imports us)

        host = self.server.host
        assert host is not None
        try:
            if request.action == "release":
                seq = await host.release(request.partition, to=request.to)
            else:
                seq = await host.adopt(request.partition)
        except PartitionError as exc:
            self.metrics.bad_frames.inc()
            self._answer(request.id, protocol.error(request.id, "bad_request", str(exc)))
        except StorageError as exc:
            self._answer(request.id, protocol.error(request.id, "internal", f"storage failure: {exc}"))
        else:
            self._answer(request.id, protocol.partition_done(request.id, action=request.action,
                                                             partition=request.partition, seq=seq))

    def resume_seq(self) -> int:
        """Where a dropped client resumes: the oldest last-written seq of its subscriptions."""
        seqs = [sub.sent_seq for sub in self._subs.values() if isinstance(sub, SubHandle)]
        return min(seqs) if seqs else 0

    def stop(self) -> None:
        """No more pushed events or boards: every subscription and watch ends."""
        if self.stopped:
            return
        self.stopped = True
        for sub in self._subs.values():
            self._end(sub)
