"""`ServerConfig`: every limit and timeout of `thengine serve`, built once at the edge."""

from __future__ import annotations

import math
from typing import Any

import attrs
from attrs import validators as v

from . import protocol

#: ``--compression``: permessage-deflate, or none (the default: see `ServerConfig.compression`).
COMPRESSIONS = ("none", "deflate")


def _number(low: float, *, above: bool = False) -> Any:
    """A finite int or float `>= low` (`> low` with `above`); the error names the field and value."""

    def check(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) \
            and (value > low if above else value >= low)
        if not ok:
            raise ValueError(f"{attribute.name}: must be a number {'>' if above else '>='} {low:g}, got {value!r}")

    return check


_COUNT = v.and_(v.instance_of(int), v.ge(1))
_SECONDS = _number(0)
_POSITIVE_SECONDS = _number(0, above=True)


@attrs.frozen(kw_only=True)
class ServerConfig:
    """The server's limits; built once by the caller (the CLI's options)."""

    max_frame_bytes: int = attrs.field(default=protocol.MAX_FRAME_BYTES, validator=_COUNT)
    #: WebSocket connections, authenticated or not; more are closed with 1013.
    max_connections: int = attrs.field(default=10_000, validator=_COUNT)
    #: Connections that have not said hello yet (with `hello_timeout_s`). At the limit
    #: the server stops accepting: newcomers wait in the listen backlog, none is closed.
    max_unauthenticated: int = attrs.field(default=1_000, validator=_COUNT)
    max_in_flight: int = attrs.field(default=64, validator=_COUNT)  # commands and queries awaiting results, per connection
    max_subscriptions: int = attrs.field(default=16, validator=_COUNT)  # subscriptions and watches, per connection
    #: Pushed events queued for one client before it is dropped as too slow (1013).
    client_buffer: int = attrs.field(default=2000, validator=_COUNT)
    rate: float = attrs.field(default=20.0, validator=_SECONDS)  # commands/s per player (0: unlimited); admins are not limited
    burst: int = attrs.field(default=40, validator=_COUNT)
    #: The HTTP request must arrive this soon after the TCP accept (slowloris).
    handshake_timeout_s: float = attrs.field(default=10.0, validator=_POSITIVE_SECONDS)
    hello_timeout_s: float = attrs.field(default=10.0, validator=_POSITIVE_SECONDS)
    #: A client silent this long is pinged; silent `ping_timeout_s` more, it is closed
    #: with 1011. Any frame counts, a pong included: a watcher that answers pings stays.
    ping_interval_s: float = attrs.field(default=20.0, validator=_POSITIVE_SECONDS)
    ping_timeout_s: float = attrs.field(default=20.0, validator=_POSITIVE_SECONDS)
    #: After our close frame is written, the client has this long to close its side.
    close_timeout_s: float = attrs.field(default=10.0, validator=_POSITIVE_SECONDS)
    overload_wait_s: float = attrs.field(default=1.0, validator=_SECONDS)  # a command waits this long for inbox room
    shutdown_grace_s: float = attrs.field(default=10.0, validator=_SECONDS)
    catch_up_chunk: int = attrs.field(default=500, validator=_COUNT)
    #: A writer woken by pushed events only (no replies) waits this long for more, so a
    #: busy hunt's events leave in fewer, bigger frames; replies are never held back.
    push_linger_s: float = attrs.field(default=0.05, validator=_SECONDS)
    #: permessage-deflate costs about 100 KiB of RSS per connection and CPU on every
    #: frame, for frames that are mostly small JSON: off unless asked for
    #: (benchmarks/server_load.py --memory).
    compression: str = attrs.field(default="none", validator=v.in_(COMPRESSIONS))
    #: The listen backlog: where clients wait while `max_unauthenticated` is reached.
    backlog: int = attrs.field(default=4096, validator=_COUNT)

    def limits(self) -> dict[str, Any]:
        """What a client is told in ``welcome``."""
        return {"max_frame_bytes": self.max_frame_bytes, "max_in_flight": self.max_in_flight,
                "max_subscriptions": self.max_subscriptions, "client_buffer": self.client_buffer,
                "rate": self.rate, "burst": self.burst, "ping_interval_s": self.ping_interval_s}
