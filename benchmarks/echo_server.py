"""The floor for a JSON-over-WebSocket server: websockets' Sans-I/O ServerProtocol on trio streams.

Not a test. The baseline that benchmarks/server_load.py sets beside `thengine serve`:

    python benchmarks/echo_server.py [--listen 127.0.0.1:0] [--reply-bytes 300] [--deflate]

Prints ``echo: listening at ws://HOST:PORT/v1`` on stderr once it accepts connections,
then serves until killed (SIGTERM or SIGINT end it at once, exit 0).

Each connection is one trio task with our own loop: receive bytes from the stream,
feed them to a `websockets.server.ServerProtocol`, act on the events it parsed, and
write what it has to send in one `send_all`. The handshake is accepted; every text
frame is parsed as JSON (as the server parses a request) and answered with one text
frame the size of a typical command result (``--reply-bytes``, about 300 by default)
that echoes the request's ``id``; a ``hello`` gets a ``welcome`` instead. Pings,
pongs and the close handshake are the protocol object's business. No engine, no
routing, no per-request task: what is left is the cost of the WebSocket and JSON path
per message, which the network server's own cost is compared against.

permessage-deflate is off unless ``--deflate`` (the default of websockets' Sans-I/O
objects); the load client reports the extensions each server negotiated.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from typing import Any

import trio
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.server import ServerProtocol

try:
    import orjson

    def dumps(obj: Any) -> bytes:
        return orjson.dumps(obj)
except ImportError:  # pragma: no cover - thengine depends on orjson
    def dumps(obj: Any) -> bytes:
        return json.dumps(obj, separators=(",", ":")).encode()

RECEIVE_BYTES = 65536
CLOSE_TIMEOUT_S = 5.0


def reply_for(request: Any, size: int, counter: list[int]) -> bytes:
    """A result frame of about `size` bytes echoing the request's id (a welcome for a hello)."""
    rid = request.get("id") if isinstance(request, dict) else None
    if isinstance(request, dict) and request.get("op") == "hello":
        return dumps({"op": "welcome", "role": "player", "player_id": "echo", "seq": counter[0], "limits": {}})
    counter[0] += 1
    frame = {"op": "result", "id": rid, "ok": True, "events": [{
        "seq": counter[0], "hunt_id": "echo", "version": counter[0], "type": "answer_wrong",
        "ts": 1_800_000_000_000 + counter[0], "command_id": None,
        "data": {"player_id": "echo", "clue_id": "c1", "answer": "wrong", "attempts": 1, "pad": ""}}]}
    text = dumps(frame)
    pad = size - len(text)
    if pad > 0:
        frame["events"][0]["data"]["pad"] = "x" * pad
        text = dumps(frame)
    return text


async def serve_connection(stream: trio.SocketStream, *, reply_bytes: int, deflate: bool, counter: list[int]) -> None:
    protocol = ServerProtocol(extensions=[ServerPerMessageDeflateFactory()] if deflate else None,
                              max_size=65536)
    try:
        while True:
            with trio.move_on_after(CLOSE_TIMEOUT_S) if protocol.close_expected() else _no_timeout():
                data = await stream.receive_some(RECEIVE_BYTES)
            if data:
                protocol.receive_data(data)
            else:
                protocol.receive_eof()
            for event in protocol.events_received():
                if isinstance(event, Frame):
                    if event.opcode is Opcode.TEXT:
                        try:
                            request = json.loads(event.data)
                        except ValueError:
                            request = None
                        protocol.send_text(reply_for(request, reply_bytes, counter))
                elif isinstance(event, Request):
                    protocol.send_response(protocol.accept(event))
            eof = False
            chunks = []
            for chunk in protocol.data_to_send():
                if chunk:
                    chunks.append(chunk)
                else:
                    eof = True
            if chunks:
                await stream.send_all(b"".join(chunks))
            if eof or not data:
                return
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        return
    finally:
        await trio.aclose_forcefully(stream)


class _no_timeout:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


async def main_async(host: str, port: int, reply_bytes: int, deflate: bool) -> None:
    counter = [0]

    async def handler(stream: trio.SocketStream) -> None:
        await serve_connection(stream, reply_bytes=reply_bytes, deflate=deflate, counter=counter)

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(lambda task_status: trio.serve_tcp(
            handler, port, host=host, backlog=4096, task_status=task_status))
        bound = listeners[0].socket.getsockname()
        print(f"echo: listening at ws://{bound[0]}:{bound[1]}/v1", file=sys.stderr, flush=True)
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for _ in signals:
                nursery.cancel_scope.cancel()
                return


def main() -> None:
    parser = argparse.ArgumentParser(description="A WebSocket echo server: websockets' ServerProtocol on trio.")
    parser.add_argument("--listen", default="127.0.0.1:0", help="HOST:PORT (port 0: a free one)")
    parser.add_argument("--reply-bytes", type=int, default=300, help="size of each answer frame")
    parser.add_argument("--deflate", action="store_true", help="accept permessage-deflate")
    args = parser.parse_args()
    host, _, port = args.listen.rpartition(":")
    trio.run(main_async, host or "127.0.0.1", int(port), args.reply_bytes, args.deflate)


if __name__ == "__main__":
    main()
