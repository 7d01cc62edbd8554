"""A client's connection to `thengine serve`: dial (TCP or TLS), the WebSocket handshake,
hello, and frames, on websockets' Sans-I/O `ClientProtocol` with our own read loop;
and the errors a client sees. `client.Client` builds on it (and reconnects with it).
"""

from __future__ import annotations

import json
import random
import ssl
from collections import deque
from typing import Any
from urllib.parse import urlsplit

import attrs
import trio

from websockets.client import ClientProtocol
from websockets.exceptions import InvalidHandshake, InvalidURI
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.uri import parse_uri

from ..errors import ThengineError, leaves
from .protocol import CLOSE_POLICY

MAX_MESSAGE_BYTES = 64 << 20
RECEIVE_BYTES = 65536
RECONNECT_FIRST_S = 0.05  # the first wait before reconnecting; it doubles up to:
RECONNECT_MAX_S = 2.0

dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


class ServerError(ThengineError):
    """The server could not be reached, refused us, or closed the connection.

    `code` is the WebSocket close code when there was one, `reason` its reason.
    """

    def __init__(self, message: str, *, code: int | None = None, reason: str = "") -> None:
        self.code = code
        self.reason = reason
        super().__init__(message)


class ResultUnknown(ServerError):
    """The connection was lost while a command without a ``command_id`` was in flight.

    It may or may not have been applied; it is not re-sent, since that could apply it
    twice. Commands sent with a ``command_id`` are re-sent safely instead.
    """


class _Refused(ServerError):
    """The server refused the token: retrying would not help."""


class RequestFailed(ThengineError):
    """The server answered a request with an error frame (bad_request, overloaded...)."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(f"{code}: {message}")


class Closed(Exception):
    """The WebSocket is closed: the server's close code and reason (1006: none)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"closed ({code})")
        self.code = code
        self.reason = reason


class WebSocket:
    """One client WebSocket: websockets' `ClientProtocol` fed from a trio stream.

    `receive` reads the stream (answering the server's pings as it goes) until a whole
    message is there; `send` writes one text frame. One task receives, any may send.
    """

    def __init__(self, stream: trio.abc.Stream, protocol: ClientProtocol) -> None:
        self._stream = stream
        self._protocol = protocol
        self._messages: deque[str] = deque()
        self._fragments: list[bytes] = []
        self._closed: Closed | None = None
        self._closed_event = trio.Event()
        self._receiving = False  # a task is in `_receive_some` (the client's read loop)
        self._send_lock = trio.Lock()
        self.response: Response | None = None

    async def handshake(self) -> None:
        """The opening handshake; raises `Closed` or the protocol's handshake error."""
        protocol = self._protocol
        protocol.send_request(protocol.connect())
        await self._flush()
        while self.response is None:
            await self._receive_some()
        if protocol.handshake_exc is not None:
            raise protocol.handshake_exc

    async def send(self, text: str) -> None:
        if self._protocol.state is not State.OPEN:
            raise self._closed or Closed(1006, "")
        self._protocol.send_text(text.encode())
        await self._flush()

    async def receive(self) -> str:
        """The next text message; raises `Closed` once the connection is closed."""
        while not self._messages:
            if self._closed is not None:
                raise self._closed
            await self._receive_some()
        return self._messages.popleft()

    async def aclose(self) -> None:
        """Say goodbye (briefly waiting for the server's answer), then close the stream."""
        if self._protocol.state is State.OPEN:
            self._protocol.send_close(1000)
            await self._flush()
            with trio.move_on_after(2):
                while self._closed is None:
                    if self._receiving:  # the read loop will see the server's close
                        await self._closed_event.wait()
                    else:
                        await self._receive_some()
        await trio.aclose_forcefully(self._stream)

    async def abort(self) -> None:
        """Close the stream without a goodbye (the connection is already lost)."""
        await trio.aclose_forcefully(self._stream)

    async def _receive_some(self) -> None:
        protocol = self._protocol
        self._receiving = True
        try:
            data = await self._stream.receive_some(RECEIVE_BYTES)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            data = b""
        finally:
            self._receiving = False
        if data:
            protocol.receive_data(data)
        else:
            protocol.receive_eof()
        for event in protocol.events_received():
            if isinstance(event, Response):
                self.response = event
            elif isinstance(event, Frame):
                self._on_frame(event)
        await self._flush()  # pongs, the echo of a close
        if not data and self._closed is None:
            self._closed = Closed(1006, "")
        if self._closed is not None:
            self._closed_event.set()
            if self.response is None:
                raise self._closed

    def _on_frame(self, frame: Frame) -> None:
        if frame.opcode is Opcode.CLOSE:
            close = self._protocol.close_rcvd
            if self._closed is None:
                self._closed = Closed(close.code, close.reason) if close else Closed(1005, "")
        elif frame.opcode is Opcode.TEXT or frame.opcode is Opcode.CONT:
            self._fragments.append(frame.data)
            if frame.fin:
                data = b"".join(self._fragments)
                self._fragments = []
                self._messages.append(data.decode(errors="replace"))

    async def _flush(self) -> None:
        chunks = self._protocol.data_to_send()
        if not chunks:
            return
        async with self._send_lock:
            try:
                payload = b"".join(chunks)
                if payload:
                    await self._stream.send_all(payload)
                if b"" in chunks and isinstance(self._stream, trio.abc.HalfCloseableStream):
                    await self._stream.send_eof()
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                if self._closed is None:
                    self._closed = Closed(1006, "")
                    self._closed_event.set()


@attrs.frozen
class Target:
    url: str
    scheme: str
    host: str
    port: int
    uri: Any

    @classmethod
    def parse(cls, url: str) -> Target:
        parts = urlsplit(url)
        if parts.scheme not in ("ws", "wss") or not parts.hostname:
            raise ServerError(f"not a WebSocket URL: {url!r} (expected ws://HOST:PORT/v1)")
        try:
            port = parts.port or (443 if parts.scheme == "wss" else 80)
            uri = parse_uri(url)
        except (ValueError, InvalidURI):
            raise ServerError(f"not a WebSocket URL: {url!r} (bad port)") from None
        return cls(url, parts.scheme, parts.hostname, port, uri)


async def dial(target: Target, token: str, timeout: float) -> tuple[WebSocket, dict[str, Any]]:
    """One connection: TCP (or TLS), the WebSocket handshake, hello; its welcome."""
    url = target.url
    try:
        with trio.fail_after(timeout):
            if target.scheme == "wss":
                stream: Any = await trio.open_ssl_over_tcp_stream(target.host, target.port,
                                                                  ssl_context=ssl.create_default_context())
            else:
                stream = await trio.open_tcp_stream(target.host, target.port)
    except (OSError, trio.TooSlowError) as exc:
        raise ServerError(f"cannot connect to {url}: {_describe(exc)}") from None
    ws = WebSocket(stream, ClientProtocol(target.uri, max_size=MAX_MESSAGE_BYTES))
    try:
        try:
            with trio.fail_after(timeout):
                await ws.handshake()
        except (OSError, Closed, trio.TooSlowError, trio.BrokenResourceError, InvalidHandshake) as exc:
            raise ServerError(f"cannot connect to {url}: {_describe(exc)}") from None
        return ws, await _hello(ws, url, token, timeout)
    except BaseException:
        with trio.CancelScope(shield=True):
            await trio.aclose_forcefully(stream)
        raise


async def redial(target: Target, token: str, timeout: float, give_up_after: float,
                  lost: ServerError | None) -> tuple[WebSocket, dict[str, Any]]:
    """`dial` with backoff until it works, the token is refused, or `give_up_after` passes."""
    deadline = trio.current_time() + give_up_after
    delay = RECONNECT_FIRST_S
    while True:
        try:
            return await dial(target, token, min(timeout, max(0.1, deadline - trio.current_time())))
        except _Refused:
            raise
        except ServerError as exc:
            if trio.current_time() + delay > deadline:
                why = f"lost the connection ({lost}) and " if lost is not None else ""
                raise ServerError(f"{target.url}: {why}could not connect within {give_up_after:g} s: {exc}",
                                  code=exc.code, reason=exc.reason) from None
        await trio.sleep(delay * random.uniform(0.5, 1.0))
        delay = min(RECONNECT_MAX_S, delay * 2)


async def _hello(ws: WebSocket, url: str, token: str, timeout: float) -> dict[str, Any]:
    try:
        with trio.fail_after(timeout):
            await ws.send(dumps({"op": "hello", "token": token}))
            frame = json.loads(await ws.receive())
            if frame.get("op") == "error":  # the close frame with the same reason follows
                raise _Refused(f"{url} refused the connection: {frame.get('message')}",
                               reason=frame.get("message", ""))
    except Closed as exc:
        if exc.code == CLOSE_POLICY:
            raise _Refused(f"{url} refused the connection ({exc.code}: {exc.reason})", code=exc.code,
                           reason=exc.reason) from None
        raise closed_error(url, exc) from None
    except trio.TooSlowError:
        raise ServerError(f"{url} did not answer hello within {timeout:g} s") from None
    except ValueError as exc:
        raise ServerError(f"{url} does not speak the thengine protocol: {exc}") from None
    if frame.get("op") != "welcome":
        raise ServerError(f"{url} does not speak the thengine protocol: got {str(frame)[:80]}")
    return frame


def _describe(exc: BaseException) -> str:
    if isinstance(exc, trio.TooSlowError):
        return "timed out"
    if isinstance(exc, OSError):
        cause = exc.__cause__  # trio: "all attempts to connect ... failed", the reasons inside
        if isinstance(cause, BaseExceptionGroup):
            reasons = sorted({leaf.strerror for leaf in leaves(cause) if isinstance(leaf, OSError) and leaf.strerror})
            if reasons:
                return "; ".join(reasons)
        return exc.strerror or str(exc)
    return str(exc) or type(exc).__name__


def closed_error(url: str, closed: Closed) -> ServerError:
    what = f"{url} closed the connection ({closed.code}{': ' + closed.reason if closed.reason else ''})"
    return ServerError(what, code=closed.code, reason=closed.reason)
