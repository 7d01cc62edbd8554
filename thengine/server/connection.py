"""A connection's life, from the TCP accept to the close, as one `State`.

No parser of our own: websockets' Sans-I/O `ServerProtocol` parses the HTTP request
and the frames. The connection owns its socket and, normally, one task:

- The **reader** (the connection's own task) waits until the socket is readable,
  feeds what it reads to the protocol and acts on what it parsed: the HTTP request
  (an upgrade on ``/v1`` is accepted; a plain GET is answered by `http.Endpoints`),
  then the hello, then the requests (`session.Session`). It keeps the connection's
  one deadline (the handshake, the hello, the token's expiry, keepalive pings, the
  close handshake).
- **Writing** never waits: whatever the `Outbox` holds is serialized (the protocol's
  own bytes first: pongs, pings, close frames; then the frames, in order) and sent at
  once, by the reader after each read, or by the server's `Flusher` after a burst of
  replies, pushed events or boards. Only when the socket takes no more (the client
  reads slowly) does a writer task wait for it, for as long as that lasts.

Nothing is cancelled when a client goes: the reader sees the end of the stream and
returns, so many clients can leave at once cheaply. When the whole server is
cancelled (the engine stopped on a storage fault, or a forced shutdown) the reader
tells the client, without waiting: an error frame for each request in flight and a
close frame (1011 or 1001).
"""

from __future__ import annotations

import enum
import errno
import logging
import math
import socket
import struct
from typing import TYPE_CHECKING, Any, Awaitable

import trio
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.protocol import State as WsState
from websockets.server import ServerProtocol

from .._version import __version__
from ..errors import StorageError
from .tokens import TokenError, verify
from . import http, protocol
from .flusher import NOW
from .outbox import Outbox
from .session import Session

if TYPE_CHECKING:
    from .run import Server

log = logging.getLogger("thengine.server")
#: The websockets protocol objects log here (their INFO lines stay quiet by default).
WS_LOG = logging.getLogger("thengine.server.websocket")

RECEIVE_BYTES = 65536


class State(enum.Enum):
    """Where a connection is in its life; the reader's deadline follows from it."""

    HANDSHAKE = "handshake"  # accepted: the HTTP request must arrive within handshake_timeout_s
    HELLO = "hello"  # a WebSocket: the hello must arrive within hello_timeout_s
    OPEN = "open"  # authenticated: requests are read and answered until the token expires
    DRAINING = "draining"  # closing gracefully: new requests are refused, those in flight answered
    CLOSING = "closing"  # our close frame (or HTTP response) is queued: the client has close_timeout_s
    CLOSED = "closed"  # the stream is closed, or about to be


#: Connections in these states count against ``max_unauthenticated``.
UNAUTHENTICATED = frozenset({State.HANDSHAKE, State.HELLO})


class Writing(enum.Enum):
    """How the connection's socket takes what it is given."""

    READY = "ready"  # at once: every write is sent without waiting
    BACKED_UP = "backed up"  # it took no more: a writer task waits for it and sends the rest, in order
    SHUT = "shut"  # half-closed, or the socket failed: nothing more is written


def _extensions(compression: str) -> list[ServerPerMessageDeflateFactory] | None:
    if compression != "deflate":
        return None
    # Small windows and memLevel 5: websockets' own default, a fraction of zlib's memory.
    return [ServerPerMessageDeflateFactory(server_max_window_bits=12, client_max_window_bits=12,
                                           compress_settings={"memLevel": 5})]


class Connection:
    """One TCP connection of the server: HTTP, then possibly a WebSocket session."""

    def __init__(self, server: Server, sock: socket.socket) -> None:
        self.server = server
        self.sock = sock  # non-blocking; this connection closes it
        config = server.config
        self.protocol = ServerProtocol(extensions=_extensions(config.compression), max_size=config.max_frame_bytes,
                                       logger=WS_LOG)
        self.outbox = Outbox(client_buffer=config.client_buffer, reply_limit=4 * config.max_in_flight + 4096,
                             on_overflow=self.drop_slow, on_ready=self._on_ready)
        self.state = State.HANDSHAKE
        self.session: Session | None = None
        now = trio.current_time()
        self._since = now  # when the current state began
        self.last_seen = now  # when the client last sent anything
        self._ping_sent: float | None = None
        self._pings = 0
        self._expires = math.inf  # the token's expiry, in trio time
        self._close: tuple[int, str] | None = None  # the close frame to send once drained
        self._close_written: float | None = None
        self._scope: trio.CancelScope | None = None  # the reader's current deadline
        self._unsent = b""  # serialized, not yet taken by the socket
        self._close_unsent = False  # our close frame is in `_unsent`
        self._eof_pending = False  # half-close once `_unsent` is sent
        self.writing = Writing.READY
        self._reading = False  # the reader is acting on what it read (it flushes after)
        self._fragments: list[bytes] | None = None  # a fragmented message so far
        self._fragmented_text = False
        self._websocket = False  # upgraded: counted in server.connections
        self._nursery: trio.Nursery | None = None
        server.connection_opened(self)

    # -- the life -----------------------------------------------------------------------
    async def run(self) -> None:
        """The connection's whole life; the socket is closed when it returns."""
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                try:
                    await self._read_loop()
                except trio.Cancelled:
                    self._last_words()
                    raise
                finally:
                    self._end()
                    trio.lowlevel.notify_closing(self.sock)  # (a writer waiting on it gets ClosedResourceError)
                    self.sock.close()
        finally:
            self._set_state(State.CLOSED)

    @property
    def accepting_tasks(self) -> bool:
        """Whether a request may still start a task of the connection's."""
        return self.state is not State.CLOSED and self._nursery is not None

    def start_task(self, fn: Any, *args: Any) -> None:
        """Run `fn(*args)` in the connection's nursery (queries, catch-up, waits for room)."""
        assert self._nursery is not None
        self._nursery.start_soon(fn, *args)

    def _end(self) -> None:
        self._set_state(State.CLOSED)
        if self.session is not None:
            self.session.stop()
        self.outbox.discard()
        self.server.flusher.forget(self)

    def _set_state(self, new: State) -> None:
        old = self.state
        if old is new:
            return
        self.state = new
        self._since = trio.current_time()
        if old in UNAUTHENTICATED and new not in UNAUTHENTICATED:
            self.server.connection_authenticated_or_gone()
        if new is State.CLOSED:
            if self._websocket:
                self._websocket = False
                self.server.websocket_closed()
            self.server.connection_closed(self)
        self._rearm()

    def _rearm(self) -> None:
        if self._scope is not None:
            self._scope.deadline = -math.inf if self.state is State.CLOSED else self._deadline()

    # -- deadlines ----------------------------------------------------------------------
    def _deadline(self) -> float:
        config = self.server.config
        state = self.state
        if state is State.HANDSHAKE:
            return self._since + config.handshake_timeout_s
        if state is State.HELLO:
            return self._since + config.hello_timeout_s
        if state is State.CLOSING and self._close_written is not None:
            return self._close_written + config.close_timeout_s
        if self._ping_sent is not None and self.last_seen <= self._ping_sent:
            keepalive = self._ping_sent + config.ping_timeout_s
        else:
            keepalive = self.last_seen + config.ping_interval_s
        if state is State.OPEN:
            return min(self._expires, keepalive)
        if state is State.DRAINING:
            return min(self._since + config.shutdown_grace_s, keepalive)
        return keepalive  # CLOSING with the close not written yet: the writer is stuck

    def _on_deadline(self) -> None:
        now = trio.current_time()
        if now < self._deadline():
            return  # it moved (data arrived): read on
        config = self.server.config
        state = self.state
        if state is State.HANDSHAKE:
            self._set_state(State.CLOSED)  # no request in time: a slowloris gets no answer
        elif state is State.HELLO:
            self._refuse(f"no hello within {config.hello_timeout_s:g} s")
        elif state is State.OPEN and now >= self._expires:
            self.begin_close(protocol.CLOSE_POLICY, "unauthorized: token expired")
        elif state is State.DRAINING and now >= self._since + config.shutdown_grace_s:
            self._queue_close()
        elif state is State.CLOSING and self._close_written is not None:
            self._set_state(State.CLOSED)  # the client never finished the close handshake
        elif self._ping_sent is not None and self.last_seen <= self._ping_sent:
            if state is State.CLOSING:
                self._set_state(State.CLOSED)  # stuck writing to a peer that reads nothing
            else:  # the peer is gone or stuck: say why, and do not wait for an answer
                self._fail(protocol.CLOSE_INTERNAL, "keepalive ping timeout")
                self.flush()
                self._set_state(State.CLOSED)
        else:
            self._ping(now)

    def _ping(self, now: float) -> None:
        self._ping_sent = now
        if self.protocol.state is WsState.OPEN:
            self._pings += 1
            self.protocol.send_ping(struct.pack("!I", self._pings & 0xFFFFFFFF))
            self.outbox.framed(self.protocol.data_to_send())
            self.flush()
        self._rearm()

    # -- reading ------------------------------------------------------------------------
    async def _read_loop(self) -> None:
        while self.state is not State.CLOSED:
            with trio.CancelScope(deadline=self._deadline()) as scope:
                self._scope = scope
                await self._read()
            self._scope = None
            if scope.cancelled_caught and self.state is not State.CLOSED:
                self._on_deadline()

    async def _read(self) -> None:
        sock, ws, outbox = self.sock, self.protocol, self.outbox
        while self.state is not State.CLOSED:
            try:
                await trio.lowlevel.wait_readable(sock)
                data = sock.recv(RECEIVE_BYTES)
            except BlockingIOError:
                continue
            except (OSError, trio.ClosedResourceError):
                data = b""
            if not data:
                ws.receive_eof()
                outbox.framed(ws.data_to_send())
                self.flush()
                self._set_state(State.CLOSED)
                return
            self.last_seen = trio.current_time()
            ws.receive_data(data)
            events = ws.events_received()
            outbox.framed(ws.data_to_send())  # (pongs, a close echo: ahead of any reply)
            self._reading = True
            try:
                for event in events:
                    pending = self._on_event(event)
                    if pending is not None:
                        self._reading = False  # (others may queue meanwhile: let the flusher write)
                        await pending
                        self._reading = True
            finally:
                self._reading = False
            if ws.close_expected() and self.state is not State.CLOSING and self.state is not State.CLOSED:
                # The protocol closes: the client's close frame, or its error (1002, 1009...).
                self._closing()
            self.flush()  # everything this read produced, in one write

    def _on_event(self, event: Any) -> Awaitable[None] | None:
        if isinstance(event, Request):
            self._on_request(event)
            return None
        assert isinstance(event, Frame)
        opcode = event.opcode
        if opcode is Opcode.TEXT or opcode is Opcode.BINARY or opcode is Opcode.CONT:
            if opcode is not Opcode.CONT:
                self._fragmented_text = opcode is Opcode.TEXT
            if not event.fin:
                if self._fragments is None:
                    self._fragments = []
                self._fragments.append(event.data)
                return None
            data = event.data
            if self._fragments is not None:
                self._fragments.append(data)
                data = b"".join(self._fragments)
                self._fragments = None
            if not self._fragmented_text:
                return self._on_message(None)
            try:
                text = bytes(data).decode()
            except UnicodeDecodeError as exc:
                self._fail(protocol.CLOSE_INVALID_DATA, f"invalid UTF-8 at byte {exc.start}")
                return None
            return self._on_message(text)
        if opcode is Opcode.CLOSE:
            self._closing()
        return None  # pings are answered by the protocol; any frame counts as life

    def _on_message(self, text: str | None) -> Awaitable[None] | None:
        """A whole message (None: a binary one) in the current state."""
        state = self.state
        if state is State.HELLO:
            return self._hello(text)
        if state is State.OPEN:
            assert self.session is not None
            if text is None:
                self.session.bad(None, "binary frames are not supported: send JSON text frames")
                return None
            request = protocol.parse_frame(text)
            try:
                return self.session.handle(request)
            except Exception:  # a bug must not take the connection down with it
                log.exception("handling a frame failed")
                self.session.reply(protocol.error(getattr(request, "id", None), "internal", "internal error"))
                return None
        if state is State.DRAINING and self.session is not None and text is not None:
            # (A frame already on its way to us when the close began.)
            rid = getattr(protocol.parse_frame(text), "id", None)
            self.session.reply(protocol.error(rid, "shutting_down", "the connection is closing"))
        return None

    def _on_request(self, request: Request) -> None:
        """The HTTP request: a WebSocket upgrade on /v1, or a plain GET."""
        server, ws = self.server, self.protocol
        if not http.is_upgrade(request):
            ws.send_response(server.endpoints.respond(request))
            self.outbox.framed(ws.data_to_send())
            self._set_state(State.CLOSING)
            return
        response = ws.accept(request)
        ws.send_response(response)
        self.outbox.framed(ws.data_to_send())
        if response.status_code != 101:
            self._set_state(State.CLOSING)  # a bad handshake: answered with 4xx, closing
            return
        if server.closing:
            self._close_now(protocol.CLOSE_GOING_AWAY, "the server is shutting down")
        elif not server.websocket_opened():
            self._close_now(protocol.CLOSE_TRY_AGAIN, "too many connections; try again later")
        else:
            self._websocket = True
            self._set_state(State.HELLO)

    # -- hello --------------------------------------------------------------------------
    async def _hello(self, text: str | None) -> None:
        """Authenticate with the first frame; on failure close with 1008 and a reason."""
        server = self.server
        request = protocol.parse_frame(text) if text is not None else None
        if not isinstance(request, protocol.Hello):
            if isinstance(request, protocol.BadRequest) and request.message.startswith("token:"):
                self._refuse("unauthorized: hello needs a token (see `thengine token`)")
            else:
                self._refuse('the first frame must be {"op":"hello","token":"..."}')
            return
        try:
            secret = await server.secret()
        except (StorageError, TokenError) as exc:
            log.error("cannot read the token secret: %s", exc)
            self._refuse("unauthorized: the server cannot read its token secret")
            return
        if self.state is not State.HELLO:
            return  # closed while the secret was read (shutdown, the hello deadline)
        if secret is None:
            self._refuse("unauthorized: the server has no token secret; make one with `thengine token`")
            return
        now = server.now_s()
        try:
            claims = verify(secret, request.token, now_s=int(now))
        except TokenError as exc:
            self._refuse(f"unauthorized: {exc}")
            return
        self.session = Session(self, claims)
        self._expires = trio.current_time() + max(0.0, claims.exp - now)
        self.outbox.reply(protocol.welcome(
            role=claims.role, player_id=claims.player_id, seq=server.position,
            version=__version__, limits=server.config.limits(), cluster=server.partitions.describe()).encode())
        self._set_state(State.OPEN)

    def _refuse(self, reason: str) -> None:
        """An error frame, then close 1008 (a hello refused, or none in time)."""
        self.server.metrics.auth_failures.inc()
        code = "unauthorized" if reason.startswith("unauthorized") else "bad_request"
        self.outbox.reply(protocol.error(None, code, reason).encode())
        self._close_now(protocol.CLOSE_POLICY, reason)

    # -- closing ------------------------------------------------------------------------
    def begin_close(self, code: int, reason: str) -> None:
        """Stop taking requests, answer those in flight, then close with `code`."""
        if self.state is State.HANDSHAKE:
            self._set_state(State.CLOSED)
            return
        if self.state is State.HELLO:
            self._close_now(code, reason)
            return
        if self.state is not State.OPEN:
            return
        assert self.session is not None
        self._close = (code, reason)
        self._set_state(State.DRAINING)
        self.session.stop()
        if self.session.idle:
            self._queue_close()

    def on_idle(self) -> None:
        """From the session: nothing is in flight any more."""
        if self.state is State.DRAINING:
            self._queue_close()

    def drop_slow(self) -> None:
        """The client fell `client_buffer` events behind: close at once, saying where to resume."""
        if self.state is not State.OPEN and self.state is not State.DRAINING:
            return
        assert self.session is not None
        self.server.metrics.slow_dropped.inc()
        resume = self.session.resume_seq()  # (nothing more is taken after the discard)
        self.session.stop()
        self.outbox.discard()
        self._close_now(protocol.CLOSE_TRY_AGAIN, f"too slow; resume with after_seq={resume}")

    def _close_now(self, code: int, reason: str) -> None:
        self._close = (code, reason)
        self._queue_close()

    def _queue_close(self) -> None:
        """The close frame goes after whatever is queued; then the client has close_timeout_s."""
        self._set_state(State.CLOSING)
        self._on_ready(NOW)

    def _closing(self) -> None:
        """The protocol is closing (the client closed, or sent what we fail on): no more frames."""
        if self.session is not None:
            self.session.stop()
        self.outbox.discard()
        self._set_state(State.CLOSING)

    def _fail(self, code: int, reason: str) -> None:
        """Close at once with `code` (queued frames are dropped): bad input, a dead peer."""
        if self.protocol.state is WsState.OPEN:
            self.protocol.fail(code, protocol.close_reason(reason))
            self.outbox.framed(self.protocol.data_to_send())
        self._closing()

    def _wrote_close(self) -> None:
        if self._close_written is None:
            self._close_written = trio.current_time()
            self._rearm()

    def _last_words(self) -> None:
        """Cancelled from above: tell the client why, as far as its socket takes it now.

        An error frame for each request in flight, then 1011 if the engine stopped on a
        storage fault, else 1001.
        """
        if self.protocol.state is not WsState.OPEN or self.writing is Writing.SHUT:
            return
        failed = self.server.partitions.failed()
        if failed is not None:
            code, reason = protocol.CLOSE_INTERNAL, "storage failure: the server is stopping"
            error = ("internal", f"storage failure: {failed}")
        else:
            code, reason = protocol.CLOSE_GOING_AWAY, "the server is shutting down"
            error = ("shutting_down", "the server is shutting down")
        if self.session is not None:
            self.session.abandon(*error)
        self._close = (code, reason)
        self._set_state(State.CLOSING)
        self._fill()
        self._send_some()

    # -- writing ------------------------------------------------------------------------
    def _on_ready(self, when: str) -> None:
        """From the outbox: something to write. The reader writes after its read; else the flusher."""
        if not self._reading and self.writing is Writing.READY:
            self.server.flusher.mark(self, when)

    def flush(self) -> None:
        """Write what is ready, now and without waiting; what the socket does not take
        waits for a writer task (then the outbox fills, and may overflow: too slow)."""
        if self.writing is not Writing.READY:
            return
        if self.outbox.empty and not self._close_to_send():
            return  # (most reads produce nothing to write: their answers come later)
        self._fill()
        self._send_some()
        if self._unsent:
            if self.state is not State.CLOSED and self._nursery is not None:
                self.writing = Writing.BACKED_UP
                self._nursery.start_soon(self._write_slowly)
            return
        self._sent_all()

    async def _write_slowly(self) -> None:
        """The socket takes no more: wait until it does, then go on writing, in order."""
        try:
            while self.writing is Writing.BACKED_UP:
                if self._unsent:
                    await trio.lowlevel.wait_writable(self.sock)
                    self._send_some()
                    continue
                self._sent_all()
                self._fill()  # what piled up meanwhile (or the close frame of a drop)
                if not self._unsent:
                    break
        except trio.ClosedResourceError:
            return  # the connection is over
        finally:
            if self.writing is Writing.BACKED_UP:
                self.writing = Writing.READY
        self._sent_all()

    def _fill(self) -> None:
        """Serialize what the outbox holds onto `_unsent` (the protocol's bytes first)."""
        data, eof = self._take_bytes()
        if data:
            self._unsent += data
        if eof:
            self._eof_pending = True

    def _send_some(self) -> None:
        """Send `_unsent` as far as the socket takes it, without waiting."""
        while self._unsent and self.writing is not Writing.SHUT:
            try:
                sent = self.sock.send(self._unsent)
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno == errno.EINTR:
                    continue
                self._lost()
                return
            self._unsent = self._unsent[sent:]

    def _sent_all(self) -> None:
        """Everything serialized is written: note a close frame, half-close after an EOF."""
        if self._unsent or self.writing is Writing.SHUT:
            return
        if self._close_unsent:
            self._close_unsent = False
            self._wrote_close()
        if self._eof_pending:
            self.writing = Writing.SHUT
            try:
                self.sock.shutdown(socket.SHUT_WR)
            except OSError:
                self._lost()
                return
            self._wrote_close()

    def _lost(self) -> None:
        """The socket failed (the peer is gone): write nothing more; the reader stops."""
        self.writing = Writing.SHUT
        self._unsent = b""
        self._set_state(State.CLOSED)

    def _close_to_send(self) -> bool:
        return self._close is not None and self.state is State.CLOSING and self.protocol.state is WsState.OPEN

    def _take_bytes(self) -> tuple[bytes, bool]:
        """What to write now, as one buffer, and whether the stream then half-closes."""
        ws, outbox = self.protocol, self.outbox
        chunks = outbox.take_framed()
        frames = outbox.take()
        if ws.state is WsState.OPEN:
            for payload in frames:
                ws.send_text(payload)
            if self._close_to_send():
                assert self._close is not None
                code, reason = self._close
                ws.send_close(code, protocol.close_reason(reason))
                self._close_unsent = True
        chunks += ws.data_to_send()
        eof = b"" in chunks
        if eof:
            chunks = chunks[:chunks.index(b"")]
        return b"".join(chunks), eof
