"""A small WebSocket test client: websockets' Sans-I/O `ClientProtocol` over a trio stream.

Independent of the server's code (a third-party parser, our own few lines of I/O), and
pull-based: the socket is read only while a test waits for a message, so a client
that stops reading really stops, and the server sees it fall behind. Pings from the
server are answered whenever the client reads.
"""

from __future__ import annotations

from collections import deque
from contextlib import asynccontextmanager
from typing import AsyncIterator
from urllib.parse import urlsplit

import attrs
import trio
from websockets.client import ClientProtocol
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.uri import parse_uri

MAX_MESSAGE_BYTES = 1 << 26


@attrs.frozen
class CloseReason:
    """How the server closed: its close code and reason (1006: no close frame at all)."""

    code: int
    reason: str


class ConnectionClosed(Exception):
    def __init__(self, reason: CloseReason) -> None:
        super().__init__(f"closed {reason.code} {reason.reason!r}")
        self.reason = reason


class HandshakeFailed(Exception):
    """The server did not switch protocols; `response` is what it said instead."""

    def __init__(self, response: Response | None) -> None:
        super().__init__(f"handshake failed: {response.status_code if response else 'no response'}")
        self.response = response


class WebSocket:
    """One client connection: `send_message`, `get_message`, `aclose`."""

    def __init__(self, stream: trio.SocketStream, protocol: ClientProtocol) -> None:
        self.stream = stream
        self.protocol = protocol
        self.response: Response | None = None
        self._messages: deque[str | bytes] = deque()
        self._fragments: list[bytes] = []
        self._text = False
        self._closed: CloseReason | None = None
        self._send_lock = trio.Lock()
        self._eof = False

    @property
    def extensions(self) -> list[str]:
        return [extension.name for extension in self.protocol.extensions]

    async def _flush(self) -> None:
        data = self.protocol.data_to_send()
        payload = b"".join(chunk for chunk in data if chunk)
        async with self._send_lock:
            try:
                if payload:
                    await self.stream.send_all(payload)
                if b"" in data:
                    await self.stream.send_eof()
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self._gone()

    def _gone(self) -> None:
        if self._closed is None:
            self._closed = CloseReason(1006, "")

    async def _receive(self) -> None:
        """Read once from the socket and take in what it brings."""
        try:
            data = await self.stream.receive_some(65536)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            data = b""
        if data:
            self.protocol.receive_data(data)
        else:
            self._eof = True
            self.protocol.receive_eof()
        for event in self.protocol.events_received():
            if isinstance(event, Response):
                self.response = event
            elif isinstance(event, Frame):
                self._on_frame(event)
        await self._flush()  # pongs, the echo of a close
        if self._eof:
            self._gone()

    def _on_frame(self, frame: Frame) -> None:
        if frame.opcode is Opcode.CLOSE:
            close = self.protocol.close_rcvd
            if self._closed is None:
                self._closed = CloseReason(close.code, close.reason) if close else CloseReason(1005, "")
            return
        if frame.opcode in (Opcode.TEXT, Opcode.BINARY):
            self._text = frame.opcode is Opcode.TEXT
            self._fragments = []
        elif frame.opcode is not Opcode.CONT:
            return
        self._fragments.append(frame.data)
        if frame.fin:
            data = b"".join(self._fragments)
            self._fragments = []
            self._messages.append(data.decode() if self._text else data)

    async def handshake(self) -> None:
        self.protocol.send_request(self.protocol.connect())
        await self._flush()
        while self.response is None and not self._eof:
            await self._receive()
        if self.response is None or self.response.status_code != 101 or self.protocol.handshake_exc is not None:
            raise HandshakeFailed(self.response)  # (a close frame may follow at once: it is kept)

    async def send_message(self, message: str | bytes) -> None:
        if self.protocol.state is not State.OPEN:
            raise ConnectionClosed(self._closed or CloseReason(1006, ""))
        if isinstance(message, str):
            self.protocol.send_text(message.encode())
        else:
            self.protocol.send_binary(message)
        await self._flush()

    async def send_raw_text(self, payload: bytes) -> None:
        """A text frame with any payload, even one that is not UTF-8 (what a bad client sends)."""
        self.protocol.send_text(payload)
        await self._flush()

    async def get_message(self) -> str | bytes:
        """The next message; raises `ConnectionClosed` once the server closed."""
        while not self._messages:
            if self._closed is not None:
                raise ConnectionClosed(self._closed)
            await self._receive()
        return self._messages.popleft()

    async def aclose(self) -> None:
        """Close the handshake politely (briefly), then the socket."""
        if self.protocol.state is State.OPEN:
            self.protocol.send_close(1000)
            await self._flush()
        with trio.move_on_after(2):
            while not self._eof and self._closed is None:
                await self._receive()
        await trio.aclose_forcefully(self.stream)


@asynccontextmanager
async def open_websocket(url: str, *, deflate: bool = False) -> AsyncIterator[WebSocket]:
    """A connected WebSocket to `url` (ws://HOST:PORT/PATH); closed on leaving."""
    parts = urlsplit(url)
    stream = await trio.open_tcp_stream(parts.hostname, parts.port)
    try:
        protocol = ClientProtocol(parse_uri(url), max_size=MAX_MESSAGE_BYTES,
                                  extensions=[ClientPerMessageDeflateFactory()] if deflate else None)
        ws = WebSocket(stream, protocol)
        with trio.fail_after(10):
            await ws.handshake()
        yield ws
        await ws.aclose()
    finally:
        await trio.aclose_forcefully(stream)
