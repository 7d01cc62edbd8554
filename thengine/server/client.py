"""A client for `thengine serve`, shaped like the embedded `Engine` API.

    async with thengine.client.connect("ws://127.0.0.1:8765/v1", token) as client:
        result = await client.submit(JoinHunt(hunt_id="old-town", player_id="p1"), command_id="k1")
        board = await client.query(Leaderboard(hunt_id="old-town", limit=10))
        async with client.subscribe(hunt_id="old-town", after_seq=0) as events:
            async for event in events: ...

Requests are pipelined on one connection: `send` returns once the frame is written,
with a ticket whose `result()` waits for the reply, so many commands can be in flight
(at most the server's ``max_in_flight``; `send` waits for a free slot). Commands sent
one after another are handed to the engine in that order. `submit` and `query` return
`Result`s like the engine's, so code (such as ``thengine hunt add --url`` and
``thengine ingest --url``) can use either.

The transport (`dialing.py`) is websockets' Sans-I/O `ClientProtocol` on a trio stream (TCP, or TLS
for ``wss://``), with our own read loop: the same library the server speaks through.
"""

from __future__ import annotations

import itertools
import json
from collections import deque
from contextlib import asynccontextmanager
from functools import partial
from typing import Any, AsyncIterator

import trio

from ..domain.commands import Command, Query, Rejection, to_json
from ..domain.fields import escape_surrogates
from ..domain.events import StoredEvent
from ..domain.result import Result
from ..errors import SubscriberTooSlow, UnknownHunt, leaves
from ..runtime.boards import Board, BoardUpdate, BoardWatch
from .dialing import Closed, RequestFailed, ResultUnknown, ServerError, Target, WebSocket, closed_error, dial, redial
from .dialing import dumps as _dumps
from .routing import Routes, hunt_of, merged_hunts, wrong_partition
from .protocol import (
    CLOSE_GOING_AWAY, CLOSE_INVALID_DATA, CLOSE_POLICY, CLOSE_SERVICE_RESTART, CLOSE_TOO_BIG, CLOSE_TRY_AGAIN,
)

__all__ = ["Client", "RemoteSubscription", "RemoteTicket", "RemoteWatch", "RequestFailed", "ResultUnknown",
           "ServerError", "connect"]

DEFAULT_IN_FLIGHT = 64


@asynccontextmanager
async def connect(url: str, token: str, *, timeout: float = 10.0, reconnect: bool = False,
                  give_up_after: float = 60.0, _routed: bool = True) -> AsyncIterator[Client]:
    """Connect to `url` (``ws://HOST:PORT/v1``) and authenticate with `token`.

    With ``reconnect=True`` the client survives the network and server restarts: when
    the connection is lost it reconnects with backoff (for at most `give_up_after`
    seconds in a row, the first connection included), resumes every subscription
    after the last seq it received, restarts every watch, and re-sends the commands
    that were in flight. A command re-sent carries its ``command_id``, so the server
    applies it once whatever happened; a command in flight without one gets
    `ResultUnknown` (it may or may not have been applied), never a silent double.
    Queries in flight are re-sent. A refused token is never retried.

    In a cluster (`url` is a node, or its load balancer with ``?hunt=H``), a request
    answered ``wrong_partition`` is sent once more on a connection to the hunt's node,
    and `hunts` asks every node (see `routing`).

    Raises:
        ServerError: cannot connect, the token is refused (the reason says why), or
            the connection is lost later (with ``reconnect``: and did not come back).
    """
    target = Target.parse(url)
    try:
        async with trio.open_nursery() as nursery:
            if reconnect:
                ws, welcome = await redial(target, token, timeout, give_up_after, None)
            else:
                ws, welcome = await dial(target, token, timeout)
            client = Client(ws, url, welcome, token=token, target=target, timeout=timeout,
                            reconnect=reconnect, give_up_after=give_up_after)
            try:
                nursery.start_soon(client._run)
                if _routed and "cluster" in welcome:
                    client._routes = Routes(client, nursery, partial(
                        connect, token=token, timeout=timeout, reconnect=reconnect,
                        give_up_after=give_up_after, _routed=False))
                yield client
            finally:
                client._closing = True
                with trio.move_on_after(timeout) as scope:
                    scope.shield = True
                    await client._ws.aclose()
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        found = leaves(group)
        if len(found) == 1:
            raise found[0] from None
        raise



class _TooBig(RequestFailed):
    def __init__(self, message: str) -> None:
        super().__init__("bad_request", message)
        self.args = (message,)

    def __str__(self) -> str:
        return str(self.args[0])


def _answered(reply: dict[str, Any]) -> _Waiter:
    waiter = _Waiter("", slot=False, retry=False)
    waiter.reply = reply
    waiter.done.set()
    return waiter


class _Waiter:
    """A request waiting for its reply: its frame, to send again after a reconnect."""

    __slots__ = ("text", "op", "done", "reply", "error", "slot", "retry")

    def __init__(self, text: str, *, slot: bool, retry: bool, op: str = "") -> None:
        self.text = text
        self.op = op
        self.done = trio.Event()
        self.reply: dict[str, Any] | None = None
        self.error: ServerError | None = None
        self.slot = slot
        self.retry = retry  # safe to send again on a new connection


class RemoteTicket:
    """A command sent to the server: `result` waits for its reply."""

    __slots__ = ("_client", "_waiter")

    def __init__(self, client: Client, waiter: _Waiter) -> None:
        self._client = client
        self._waiter = waiter

    def done(self) -> bool:
        """Whether the reply (or the error) is in."""
        return self._waiter.done.is_set()

    async def result(self) -> Result:
        """The command's `Result`. Raises `ServerError` (`ResultUnknown`) or `RequestFailed`."""
        return _to_result(await self._client._routed_reply(self._waiter))


def _failed(reply: dict[str, Any]) -> RequestFailed:
    """A refused subscription or watch (an error frame, or a result with an error)."""
    error = reply.get("error") or {}
    return RequestFailed(str(reply.get("code") or error.get("code")), str(reply.get("message") or error.get("message")))


def _to_result(reply: dict[str, Any]) -> Result:
    if reply.get("op") == "error":
        raise RequestFailed(str(reply.get("code")), str(reply.get("message")))
    if reply.get("ok"):
        return Result(ok=True, events=tuple(StoredEvent.from_json(e) for e in reply.get("events", ())))
    error = reply.get("error") or {}
    url = error.get("url")
    return Result(ok=False, error=Rejection(code=str(error.get("code")), message=str(error.get("message")),
                                            url=url if isinstance(url, str) else None))


def _retryable(frame: dict[str, Any]) -> bool:
    """Whether a request may be sent again after a reconnect without doing anything twice."""
    op = frame.get("op")
    return op != "unsubscribe" and (op != "command" or frame.get("command_id") is not None)


class Client:
    """One authenticated connection (with ``reconnect``: one at a time). Make it with `connect`."""

    def __init__(self, ws: WebSocket, url: str, welcome: dict[str, Any], *, token: str, target: Target,
                 timeout: float, reconnect: bool, give_up_after: float) -> None:
        self._ws = ws
        self.url = url
        self._token = token
        self._target = target
        self._timeout = timeout
        self._reconnect = reconnect
        self._give_up_after = give_up_after
        self._welcomed(welcome)
        self._ids = itertools.count(1)
        self._waiting: dict[int, _Waiter] = {}
        self._subs: dict[int, RemoteSubscription | RemoteWatch] = {}
        self._slots = trio.Semaphore(int(self.limits.get("max_in_flight") or DEFAULT_IN_FLIGHT))
        self._lost: ServerError | None = None
        self._up = trio.Event()  # set while connected
        self._up.set()
        self._closing = False
        self.reconnects = 0  # connections made again after one was lost
        self._routes: Routes | None = None  # in a cluster: the other nodes' connections
        self._owner: Client | None = None  # a peer's: the client whose routes opened it

    def _welcomed(self, welcome: dict[str, Any]) -> None:
        self.welcome = welcome
        self.role: str = welcome.get("role", "")
        self.player_id: str | None = welcome.get("player_id")
        self.limits: dict[str, Any] = welcome.get("limits") or {}

    @property
    def connected(self) -> bool:
        """Whether a connection is up now (with ``reconnect``, it may be coming back)."""
        return self._up.is_set() and self._lost is None

    # -- the Engine-shaped API ----------------------------------------------------------
    async def submit(self, command: Command | dict[str, Any], *, command_id: str | None = None) -> Result:
        """Send `command` and wait for its result (after its events are committed)."""
        ticket = await self.send(command, command_id=command_id)
        return await ticket.result()

    async def send(self, command: Command | dict[str, Any], *, command_id: str | None = None) -> RemoteTicket:
        """Send `command` now (pipelined); the ticket's `result()` waits for the reply."""
        body = command if isinstance(command, dict) else to_json(command)
        frame: dict[str, Any] = {"op": "command", "command": body}
        if command_id is not None:
            frame["command_id"] = command_id
        via = self._route(body)
        try:
            return RemoteTicket(via, await via._send(frame, slot=True))
        except _TooBig as exc:  # bad input, like any invalid command: a result, not an exception
            return RemoteTicket(self, _answered({"op": "result", "ok": False, "error": {
                "code": "invalid_command", "message": str(exc)}}))

    async def query(self, query: Query | dict[str, Any]) -> dict[str, Any] | Result:
        """The answer (a dict), or a `Result` with the error, like `Engine.query`."""
        body = query if isinstance(query, dict) else to_json(query)
        if self._routes is not None and body.get("type") == "hunts":
            return merged_hunts([await node._query(body) for node in await self._routes.every_node()])
        return await self._route(body)._query(body)

    async def _query(self, body: dict[str, Any]) -> dict[str, Any] | Result:
        reply = await self._routed_reply(await self._send({"op": "query", "query": body}, slot=True))
        if reply.get("op") == "result" and reply.get("ok"):
            return reply["data"]
        return _to_result(reply)

    @asynccontextmanager
    async def subscribe(self, *, hunt_id: str | None = None, after_seq: int | None = None,
                        buffer: int = 10_000) -> AsyncIterator[RemoteSubscription]:
        """Events of one hunt (or all) after `after_seq` (None: from now), then live.

        Iteration raises `SubscriberTooSlow` (with ``last_seq``) if we fell behind (the
        server dropped us, or more than `buffer` events waited here), and ends if the
        server shuts down. With ``reconnect``, a lost connection (or the server dropping
        us as too slow) resumes after the last seq received instead.
        """
        via = self._route({"hunt_id": hunt_id})
        rid = next(via._ids)
        sub = RemoteSubscription(via, rid, buffer, after_seq or 0, hunt_id)
        frame: dict[str, Any] = {"op": "subscribe", "hunt_id": hunt_id, "batch": True}
        if after_seq is not None:
            frame["after_seq"] = after_seq
        elsewhere = None
        async with via._subscription(sub, frame) as reply:
            if wrong_partition(reply) and hunt_id is not None and self._routes is not None:
                elsewhere = await self._routes.peer_for(hunt_id, reply, via)
            elif reply.get("op") != "subscribed":
                raise _failed(reply)
            else:
                sub._started(reply.get("after_seq", 0))
                yield sub
        if elsewhere is not None:
            async with elsewhere.subscribe(hunt_id=hunt_id, after_seq=after_seq, buffer=buffer) as sub:
                yield sub

    @asynccontextmanager
    async def watch_leaderboard(self, hunt_id: str, *, limit: int = 10, interval_s: float = 0.25,
                                around: str | None = None) -> AsyncIterator[RemoteWatch]:
        """A live leaderboard, as `Engine.watch_leaderboard`: an async iterator of
        `BoardUpdate`s, the newest only. Raises `UnknownHunt` for no such hunt."""
        via = self._route({"hunt_id": hunt_id})
        watch = RemoteWatch(next(via._ids), around)
        frame: dict[str, Any] = {"op": "watch", "hunt_id": hunt_id, "limit": limit,
                                 "interval_ms": round(interval_s * 1000)}
        if around is not None:
            frame["around"] = around
        watch.frame = frame
        elsewhere = None
        async with via._subscription(watch, frame) as reply:
            if wrong_partition(reply) and self._routes is not None:
                elsewhere = await self._routes.peer_for(hunt_id, reply, via)
            elif reply.get("op") != "watching":
                error = reply.get("error") or {}
                if error.get("code") == "unknown_hunt":
                    raise UnknownHunt(str(error.get("message")))
                raise _failed(reply)
            else:
                yield watch
        if elsewhere is not None:
            async with elsewhere.watch_leaderboard(hunt_id, limit=limit, interval_s=interval_s, around=around) as watch:
                yield watch

    async def request(self, frame: dict[str, Any], *, slot: bool = False) -> dict[str, Any]:
        """Send any request frame (its ``id`` is filled in) and return the reply frame."""
        return await self._reply(await self._send(dict(frame), slot=slot))

    # -- a cluster's partitions --------------------------------------------------------
    def _route(self, body: dict[str, Any]) -> Client:
        """The connection for a command or query `body`: its hunt's node's, if known."""
        hunt_id = hunt_of(body)
        if self._routes is None or hunt_id is None:
            return self
        return self._routes.client_for(hunt_id)

    async def _routed_reply(self, waiter: _Waiter) -> dict[str, Any]:
        """The reply to `waiter`; a ``wrong_partition`` one is followed to the hunt's node."""
        reply = await self._reply(waiter)
        home = self._home
        if home._routes is None or not wrong_partition(reply):
            return reply
        frame = json.loads(waiter.text)
        hunt_id = hunt_of(frame.get("command") or frame.get("query"))
        if hunt_id is None:
            return reply
        frame.pop("id", None)

        async def again(peer: Client) -> dict[str, Any]:
            return await peer._reply(await peer._send(dict(frame), slot=True))

        return await home._routes.follow(hunt_id, reply, self, again)

    @property
    def _home(self) -> Client:
        return self._owner if self._owner is not None else self

    # -- plumbing -----------------------------------------------------------------------
    @asynccontextmanager
    async def _subscription(self, sub: RemoteSubscription | RemoteWatch,
                            frame: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """Subscribe (or watch) as `sub`; yields the reply; unsubscribes on the way out."""
        rid = sub.id
        self._subs[rid] = sub  # before the request: events may follow the reply at once
        try:
            yield await self._reply(await self._send(frame, slot=False, rid=rid))
        finally:
            self._subs.pop(rid, None)
            if self._lost is None and self._up.is_set():
                with trio.CancelScope(shield=True), trio.move_on_after(5):
                    try:
                        await self._send({"op": "unsubscribe", "sub": rid}, slot=False)
                    except ServerError:
                        pass  # gone anyway: nothing to unsubscribe from

    async def _send(self, frame: dict[str, Any], *, slot: bool, rid: int | None = None) -> _Waiter:
        while not self._up.is_set() and self._lost is None:
            await self._up.wait()  # reconnecting: new requests go after the re-sent ones
        if self._lost is not None:
            raise self._lost
        rid = next(self._ids) if rid is None else rid
        frame["id"] = rid
        # A lone surrogate (a caller's dict command) goes as its JSON \uXXXX escape, for
        # the server to refuse with invalid_command: it cannot be sent as UTF-8.
        text = escape_surrogates(_dumps(frame))
        max_frame = self.limits.get("max_frame_bytes")
        size = len(text.encode())
        if max_frame and size > max_frame:
            raise _TooBig(f"the request is {size} bytes, over the server's {max_frame}-byte frame limit "
                          "(see thengine serve --max-frame)")
        if slot:
            await self._slots.acquire()
        if self._lost is not None:
            if slot:
                self._slots.release()
            raise self._lost
        waiter = _Waiter(text, slot=slot, retry=_retryable(frame), op=frame.get("op", ""))
        self._waiting[rid] = waiter
        try:
            await self._ws.send(text)
        except Closed as exc:
            if not self._reconnect:
                self._release(rid)
                self._lose(closed_error(self.url, exc))
                raise self._lost from None  # type: ignore[misc]
            # (the read loop sees the loss too: the request is re-sent or answered then)
        return waiter

    def _release(self, rid: int) -> _Waiter | None:
        waiter = self._waiting.pop(rid, None)
        if waiter is not None and waiter.slot:
            self._slots.release()
        return waiter

    async def _reply(self, waiter: _Waiter) -> dict[str, Any]:
        await waiter.done.wait()
        if waiter.reply is None:
            error = waiter.error or self._lost
            assert error is not None
            raise error
        return waiter.reply

    async def _run(self) -> None:
        """Read frames; when the connection is lost, reconnect (if asked) or give up."""
        while True:
            closed = await self._read_loop()
            error = closed_error(self.url, closed)
            if self._closing or not self._reconnect or closed.code in _FINAL_CLOSES:
                self._lose(error)
                return
            self._down(error)
            await self._ws.abort()
            try:
                ws, welcome = await redial(self._target, self._token, self._timeout, self._give_up_after, error)
            except ServerError as exc:
                self._lose(exc)
                return
            self._ws = ws
            self._welcomed(welcome)
            self.reconnects += 1
            try:
                await self._restore()
            except Closed:
                continue  # lost again at once: the read loop sees it
            self._up.set()

    async def _read_loop(self) -> Closed:
        """Dispatch frames until the connection closes; returns how it closed."""
        ws = self._ws
        try:
            while True:
                frame = json.loads(await ws.receive())
                op = frame.get("op")
                if op == "events" or op == "event" or op == "leaderboard":
                    sub = self._subs.get(frame.get("sub"))
                    if sub is not None:
                        sub._put(frame)
                    continue
                rid = frame.get("id")
                waiter = self._release(rid) if rid is not None else None
                if waiter is None:
                    continue  # e.g. an error about a frame that had no usable id
                waiter.reply = frame
                waiter.done.set()
                if rid in self._subs and waiter.slot is False and frame.get("op") in ("error", "result"):
                    if self._reconnect and wrong_partition(frame):
                        # Resumed on a node its hunt has left (a move): connect again, later, to
                        # wherever the proxy sends us now.
                        await ws.aclose()
                        return Closed(CLOSE_SERVICE_RESTART, "the hunt's partition moved")
                    self._subs[rid]._refused(frame)  # a resumed subscription the server refused
        except Closed as exc:
            return exc

    def _down(self, error: ServerError) -> None:
        """The connection is lost and will be made again: answer what cannot be re-sent."""
        if self._up.is_set():
            self._up = trio.Event()
        for rid, waiter in list(self._waiting.items()):
            if waiter.retry:
                continue
            self._release(rid)
            if waiter.op == "unsubscribe":
                waiter.reply = {"op": "unsubscribed", "id": rid}  # the new connection has no such sub
            else:
                waiter.error = ResultUnknown(
                    f"{self.url}: the connection was lost before the result of a command without a "
                    f"command_id came back ({error}); it may or may not have been applied. Send commands "
                    "with a command_id to have them re-sent safely")
            waiter.done.set()

    async def _restore(self) -> None:
        """On the new connection: resume subscriptions, restart watches, re-send requests."""
        pending = list(self._waiting.items())
        subs = list(self._subs.items())
        ws = self._ws
        for rid, sub in subs:
            if rid not in self._waiting:
                self._waiting[rid] = _Waiter("", slot=False, retry=True)  # (its reply is checked as it comes)
            await ws.send(_dumps({**sub.resume_frame(), "id": rid}))
        for rid, waiter in pending:
            if rid not in self._subs:
                await ws.send(waiter.text)

    def _lose(self, error: ServerError) -> None:
        if self._lost is not None:
            return
        self._lost = error
        self._up.set()  # (wakes senders waiting for a reconnect: they raise)
        for waiter in self._waiting.values():
            waiter.done.set()
        self._waiting.clear()
        for sub in self._subs.values():
            sub._end(error)


#: Close codes after which reconnecting cannot help: a refused or expired token, a frame
#: the server will always refuse, text it cannot read.
_FINAL_CLOSES = frozenset({CLOSE_POLICY, CLOSE_TOO_BIG, CLOSE_INVALID_DATA})


class RemoteSubscription:
    """An async iterator of `StoredEvent`s pushed by the server, in `seq` order."""

    def __init__(self, client: Client, sub_id: int, buffer: int, after_seq: int, hunt_id: str | None) -> None:
        self._client = client
        self.id = sub_id
        self.hunt_id = hunt_id
        self.last_seq = after_seq  # the last seq handed out
        self._received = after_seq  # the last seq received (where a resumed subscription starts)
        self._limit = buffer
        self._buffer: deque[dict[str, Any]] = deque()
        self._wake = trio.Event()
        self._error: BaseException | None = None
        self._ended = False

    def _started(self, after_seq: int) -> None:
        self.last_seq = max(self.last_seq, after_seq)
        self._received = max(self._received, after_seq)

    def resume_frame(self) -> dict[str, Any]:
        return {"op": "subscribe", "hunt_id": self.hunt_id, "batch": True, "after_seq": self._received}

    def _put(self, frame: dict[str, Any]) -> None:
        if self._ended:
            return
        events = frame["events"] if frame.get("op") == "events" else [frame["event"]]
        fresh = [e for e in events if e.get("seq", 0) > self._received]  # (never twice across a resume)
        if not fresh:
            return
        if len(self._buffer) + len(fresh) > self._limit:
            self._end(SubscriberTooSlow(f"fell more than {self._limit} events behind; resume with "
                                        f"after_seq={self.last_seq}", last_seq=self.last_seq))
            return
        self._buffer.extend(fresh)
        self._received = fresh[-1]["seq"]
        self._wake.set()

    def _refused(self, frame: dict[str, Any]) -> None:
        message = frame.get("message") or (frame.get("error") or {}).get("message")
        self._end(RequestFailed(str(frame.get("code") or (frame.get("error") or {}).get("code")), str(message)))

    def _end(self, error: BaseException) -> None:
        if self._ended:
            return
        self._ended = True
        if isinstance(error, ServerError) and error.code == CLOSE_TRY_AGAIN:
            error = SubscriberTooSlow(f"the server dropped us as too slow; resume with after_seq={self.last_seq}",
                                      last_seq=self.last_seq)
        self._error = None if isinstance(error, ServerError) and error.code == CLOSE_GOING_AWAY else error
        self._wake.set()

    def __aiter__(self) -> AsyncIterator[StoredEvent]:
        return self

    async def __anext__(self) -> StoredEvent:
        while not self._buffer:
            if self._ended:
                if self._error is not None:
                    raise self._error
                raise StopAsyncIteration
            self._wake = trio.Event()
            await self._wake.wait()
        event = StoredEvent.from_json(self._buffer.popleft())
        self.last_seq = event.seq
        return event


class RemoteWatch(BoardWatch):
    """A live leaderboard from the server: `BoardUpdate`s, the newest only (see `BoardWatch`)."""

    def __init__(self, sub_id: int, whose: str | None) -> None:
        super().__init__(whose)
        self.id = sub_id
        self.frame: dict[str, Any] = {}
        self._error: BaseException | None = None

    def resume_frame(self) -> dict[str, Any]:
        return self.frame

    def _put(self, frame: dict[str, Any]) -> None:
        self.offer(Board(frame["hunt_id"], frame["seq"], frame["total"], frame["entries"]), frame.get("me"))

    def _refused(self, frame: dict[str, Any]) -> None:
        error = frame.get("error") or {}
        self._end(RequestFailed(str(frame.get("code") or error.get("code")),
                                str(frame.get("message") or error.get("message"))))

    def _end(self, error: BaseException) -> None:
        if not (isinstance(error, ServerError) and error.code == CLOSE_GOING_AWAY):
            self._error = error
        self.close()

    async def __anext__(self) -> BoardUpdate:
        try:
            return await super().__anext__()
        except StopAsyncIteration:
            if self._error is not None:
                raise self._error from None
            raise
