"""The network protocol, pure: a frame's text -> a request value, and replies -> text.

No I/O, no clock, no trio: `connection.py` does the sockets. Every frame is one JSON object
with an ``op``; every request carries a client-chosen ``id`` (an integer or a short
string) that its reply echoes::

    {"op":"hello","token":"..."}                       -> welcome (or close 1008)
    {"op":"command","id":1,"command":{...},"command_id":"k1"}  -> result
    {"op":"query","id":2,"query":{...}}                -> result with data
    {"op":"subscribe","id":3,"hunt_id":"h","after_seq":0,"batch":false}
        -> subscribed, then {"op":"event","sub":3,"event":{...}} (or, with "batch":true,
           {"op":"events","sub":3,"events":[...]})
    {"op":"unsubscribe","id":4,"sub":3}                -> unsubscribed
    {"op":"ping","id":5}                               -> pong
    {"op":"watch","id":6,"hunt_id":"h","limit":10,"interval_ms":250,"around":"p1"}
        -> watching, then {"op":"leaderboard","sub":6,"hunt_id":"h","seq":S,"total":T,
           "entries":[...],"me":{...}|null} at once and on change, at most once per interval

A frame that is not such an object is a `BadRequest` (answered with
``{"op":"error","code":"bad_request",...}``; the connection lives on). A well-formed
command or query request whose command is invalid carries the `Rejection` instead of
the command, and is answered with an ``invalid_command`` result like any other.
"""

from __future__ import annotations

import json
from typing import Any, Union

import attrs

from ..domain import views
from ..domain.commands import COMMAND_TYPES, QUERY_TYPES, Command, Query, Rejection, invalid, parse_command, parse_query
from ..domain.fields import ID_PATTERN, NOT_UTF8, escape_surrogates, is_utf8
from ..domain.events import StoredEvent
from ..domain.result import Result
from ..storage import codec

#: Frames larger than this close the connection with code 1009.
MAX_FRAME_BYTES = 64 * 1024
MAX_ID_LEN = 128
MAX_COMMAND_ID_LEN = 256
MAX_INT_ID = 2**53  # ids must survive a JavaScript number

# WebSocket close codes the server uses.
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001  # the server shuts down
CLOSE_INVALID_DATA = 1007  # a text frame that is not UTF-8
CLOSE_POLICY = 1008  # authentication failed or the token expired
CLOSE_TOO_BIG = 1009  # a frame over the size limit
CLOSE_INTERNAL = 1011  # no answer to keepalive pings, or the server's storage failed
CLOSE_SERVICE_RESTART = 1012  # a partition this connection follows moved to another node
CLOSE_TRY_AGAIN = 1013  # too slow to keep up, or too many connections
MAX_REASON_BYTES = 123  # what fits in a close frame

#: Error frame codes (``{"op":"error","code":...}``), besides a result's rejection codes.
ERROR_CODES = ("bad_request", "unauthorized", "overloaded", "shutting_down", "internal")


def dumps(value: Any) -> str:
    """A frame's JSON text; never fails on a string, whatever a client put in it.

    Frames hold the server's own values and strings that passed validation, so the
    fast codec of the log serves them (every pushed event is encoded with it). Should
    a lone surrogate slip into one anyway (orjson refuses them), it is written as its
    ``\\uXXXX`` escape rather than failing the reply.
    """
    try:
        return codec.dumps(value)
    except TypeError:  # orjson.JSONEncodeError
        return escape_surrogates(json.dumps(value, ensure_ascii=False, separators=(",", ":")))


_dumps = dumps


# -- requests -----------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Hello:
    token: str
    id: Any = None


@attrs.frozen(kw_only=True)
class CommandRequest:
    """A command; `command` is a `Rejection` when the command itself is invalid."""

    id: Any
    type: str  # the command's type if known, else "unknown" (a bounded metrics label)
    command: Command | Rejection
    command_id: str | None = None


@attrs.frozen(kw_only=True)
class QueryRequest:
    id: Any
    type: str
    query: Query | Rejection


@attrs.frozen(kw_only=True)
class SubscribeRequest:
    """Events of one hunt (or all, `hunt_id` None) after `after_seq` (None: from now on)."""

    id: Any
    hunt_id: str | None
    after_seq: int | None
    batch: bool = False


@attrs.frozen(kw_only=True)
class UnsubscribeRequest:
    id: Any
    sub: Any


@attrs.frozen(kw_only=True)
class PingRequest:
    id: Any


@attrs.frozen(kw_only=True)
class WatchRequest:
    """A live leaderboard: the top `limit` of `hunt_id`, at most once per `interval_ms`."""

    id: Any
    hunt_id: str
    limit: int = 10
    interval_ms: int = 250
    around: str | None = None  # whose entry is ``me`` (admins only; a player's is their own)


@attrs.frozen(kw_only=True)
class PartitionRequest:
    """A cluster node's partition: stop deciding it (``release``, `to` names the node it
    goes to) or start (``adopt``). Admins only; `cluster move` sends these."""

    id: Any
    action: str
    partition: int
    to: str | None = None


@attrs.frozen(kw_only=True)
class BadRequest:
    """A frame the server cannot act on; `id` is echoed when the frame had a usable one."""

    id: Any
    message: str


Request = Union[Hello, CommandRequest, QueryRequest, SubscribeRequest, UnsubscribeRequest, PingRequest,
                WatchRequest, PartitionRequest]

#: `watch` bounds (the engine's `boards` module enforces the same).
WATCH_LIMITS = (1, 100)
WATCH_INTERVALS_MS = (50, 10_000)

_FIELDS: dict[str, frozenset[str]] = {
    "hello": frozenset({"op", "token", "id"}),
    "command": frozenset({"op", "id", "command", "command_id"}),
    "query": frozenset({"op", "id", "query"}),
    "subscribe": frozenset({"op", "id", "hunt_id", "after_seq", "batch"}),
    "unsubscribe": frozenset({"op", "id", "sub"}),
    "ping": frozenset({"op", "id"}),
    "watch": frozenset({"op", "id", "hunt_id", "limit", "interval_ms", "around"}),
    "partition": frozenset({"op", "id", "action", "partition", "to"}),
}


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _got(value: Any) -> str:
    text = escape_surrogates(json.dumps(value, ensure_ascii=False)) if _jsonable(value) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _jsonable(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool, list, dict))


def _valid_id(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return -MAX_INT_ID <= value <= MAX_INT_ID
    return isinstance(value, str) and 0 < len(value) <= MAX_ID_LEN and is_utf8(value)


def parse_frame(text: str) -> Request | BadRequest:
    """The request in a text frame, or a `BadRequest` saying what is wrong with it."""
    try:
        obj = codec.loads(text)  # the fast path: most frames are plain JSON
    except ValueError:
        # Not for orjson (bad JSON, a lone surrogate, a huge integer, deep nesting):
        # the standard library says what is wrong, or reads what orjson cannot.
        obj = _slow_loads(text)
        if isinstance(obj, BadRequest):
            return obj
    return _request(obj)


def _slow_loads(text: str) -> Any:
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        return BadRequest(id=None, message=f"not valid JSON: {exc.msg} at column {exc.colno}")
    except (ValueError, RecursionError) as exc:
        return BadRequest(id=None, message=f"not valid JSON: {exc}" if isinstance(exc, ValueError) else
                          "not valid JSON: nested too deeply")


def _request(obj: Any) -> Request | BadRequest:
    if not isinstance(obj, dict):
        return BadRequest(id=None, message=f"a frame must be a JSON object, got {type(obj).__name__}")
    op = obj.get("op")
    raw_id = obj.get("id")
    rid = raw_id if _valid_id(raw_id) else None
    fields = _FIELDS.get(op) if isinstance(op, str) else None
    if fields is None:
        known = ", ".join(_FIELDS)
        return BadRequest(id=rid, message=f"op: unknown op {_got(op)}; expected one of {known}")
    for key in obj:
        if key not in fields:
            return BadRequest(id=rid, message=f"{escape_surrogates(key)}: unknown field for op {op!r}")
    if op == "hello":
        token = obj.get("token")
        if not isinstance(token, str) or not token:
            return BadRequest(id=rid, message="token: hello needs a token string (see `thengine token`)")
        return Hello(token=token, id=rid)
    if raw_id is None:
        return BadRequest(id=None, message=f"id: every {op} request needs an id (an integer or a string)")
    if rid is None:
        return BadRequest(id=None, message=f"id: must be an integer or a string of 1-{MAX_ID_LEN} characters "
                                           f"(valid Unicode text), got {_got(raw_id)}")
    return _PARSERS[op](rid, obj)


def _type_label(obj: Any, registry: dict[str, type]) -> str:
    name = obj.get("type") if isinstance(obj, dict) else None
    return name if isinstance(name, str) and name in registry else "unknown"


def _command(rid: Any, obj: dict[str, Any]) -> CommandRequest | BadRequest:
    if "command" not in obj:
        return BadRequest(id=rid, message="command: required for op 'command'")
    body = obj["command"]
    label = _type_label(body, COMMAND_TYPES)
    command_id = obj.get("command_id")
    if command_id is not None and not (isinstance(command_id, str) and 1 <= len(command_id) <= MAX_COMMAND_ID_LEN):
        return CommandRequest(id=rid, type=label, command=invalid(
            f"command_id: must be a string of 1-{MAX_COMMAND_ID_LEN} characters, got {_got(command_id)}"))
    if command_id is not None and not is_utf8(command_id):
        return CommandRequest(id=rid, type=label, command=invalid(f"command_id: {NOT_UTF8}, got {_got(command_id)}"))
    return CommandRequest(id=rid, type=label, command=parse_command(body), command_id=command_id)


def _query(rid: Any, obj: dict[str, Any]) -> QueryRequest | BadRequest:
    if "query" not in obj:
        return BadRequest(id=rid, message="query: required for op 'query'")
    body = obj["query"]
    return QueryRequest(id=rid, type=_type_label(body, QUERY_TYPES), query=parse_query(body))


def _subscribe(rid: Any, obj: dict[str, Any]) -> SubscribeRequest | BadRequest:
    hunt_id = obj.get("hunt_id")
    if hunt_id is not None and not (isinstance(hunt_id, str) and ID_PATTERN.fullmatch(hunt_id)):
        return BadRequest(id=rid, message=f"hunt_id: must be a hunt id or null (every hunt), got {_got(hunt_id)}")
    after = obj.get("after_seq")
    if after is not None and (isinstance(after, bool) or not isinstance(after, int) or not 0 <= after < 2**63):
        return BadRequest(id=rid, message=f"after_seq: must be an integer >= 0 (or left out for live events only), "
                                          f"got {_got(after)}")
    batch = obj.get("batch", False)
    if not isinstance(batch, bool):
        return BadRequest(id=rid, message=f"batch: must be true or false, got {_got(batch)}")
    return SubscribeRequest(id=rid, hunt_id=hunt_id, after_seq=after, batch=batch)


def _unsubscribe(rid: Any, obj: dict[str, Any]) -> UnsubscribeRequest | BadRequest:
    sub = obj.get("sub")
    if not _valid_id(sub):
        return BadRequest(id=rid, message=f"sub: must be the id of a subscribe request, got {_got(sub)}")
    return UnsubscribeRequest(id=rid, sub=sub)


def _ping(rid: Any, obj: dict[str, Any]) -> PingRequest:
    return PingRequest(id=rid)


def _bounded_int(obj: dict[str, Any], name: str, default: int, bounds: tuple[int, int]) -> int | str:
    """The integer field `name` within `bounds`, or the message saying what is wrong."""
    value = obj.get(name, default)
    low, high = bounds
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        return f"{name}: must be an integer from {low} to {high}, got {_got(value)}"
    return value


def _watch(rid: Any, obj: dict[str, Any]) -> WatchRequest | BadRequest:
    hunt_id = obj.get("hunt_id")
    if not (isinstance(hunt_id, str) and ID_PATTERN.fullmatch(hunt_id)):
        return BadRequest(id=rid, message=f"hunt_id: must be a hunt id, got {_got(hunt_id)}")
    limit = _bounded_int(obj, "limit", 10, WATCH_LIMITS)
    if isinstance(limit, str):
        return BadRequest(id=rid, message=limit)
    interval = _bounded_int(obj, "interval_ms", 250, WATCH_INTERVALS_MS)
    if isinstance(interval, str):
        return BadRequest(id=rid, message=interval)
    around = obj.get("around")
    if around is not None and not (isinstance(around, str) and ID_PATTERN.fullmatch(around)):
        return BadRequest(id=rid, message=f"around: must be a player or team id, got {_got(around)}")
    return WatchRequest(id=rid, hunt_id=hunt_id, limit=limit, interval_ms=interval, around=around)


PARTITION_ACTIONS = ("release", "adopt")


def _partition(rid: Any, obj: dict[str, Any]) -> PartitionRequest | BadRequest:
    action = obj.get("action")
    if action not in PARTITION_ACTIONS:
        return BadRequest(id=rid, message=f"action: must be release or adopt, got {_got(action)}")
    number = obj.get("partition")
    if isinstance(number, bool) or not isinstance(number, int) or not 0 <= number < 2**31:
        return BadRequest(id=rid, message=f"partition: must be a partition number, got {_got(number)}")
    to = obj.get("to")
    if to is not None and not (isinstance(to, str) and ID_PATTERN.fullmatch(to)):
        return BadRequest(id=rid, message=f"to: must be a node name, got {_got(to)}")
    return PartitionRequest(id=rid, action=action, partition=number, to=to)


_PARSERS: dict[str, Any] = {
    "command": _command,
    "query": _query,
    "subscribe": _subscribe,
    "unsubscribe": _unsubscribe,
    "ping": _ping,
    "watch": _watch,
    "partition": _partition,
}


# -- replies ------------------------------------------------------------------------


def welcome(*, role: str, player_id: str | None, seq: int, version: str, limits: dict[str, Any],
            cluster: dict[str, Any] | None = None) -> str:
    """The reply to a good hello: who the server takes the client to be, and its limits
    (and, from a cluster's node, ``cluster``: its name, the partition count and the
    partitions it hosts)."""
    frame = {"op": "welcome", "role": role, "player_id": player_id, "seq": seq,
             "server": f"thengine {version}", "limits": limits}
    if cluster is not None:
        frame["cluster"] = cluster
    return _dumps(frame)


def partition_done(rid: Any, *, action: str, partition: int, seq: int) -> str:
    """The reply to a `PartitionRequest`: ``released`` or ``adopted``, at `seq`."""
    return _dumps({"op": "partition", "id": rid, "partition": partition,
                   "state": "released" if action == "release" else "adopted", "seq": seq})


def error(rid: Any, code: str, message: str) -> str:
    """An error frame (bad_request, unauthorized, overloaded, shutting_down, internal)."""
    return _dumps({"op": "error", "id": rid, "code": code, "message": message})


def rejected(rid: Any, rejection: Rejection) -> str:
    """A result frame for a command or query that was refused."""
    return _dumps({"op": "result", "id": rid, "ok": False, "error": rejection.to_json()})


def command_result(rid: Any, result: Result, view: str) -> str:
    """A command's result; in the player view its events are the player's own."""
    if not result.ok:
        assert result.error is not None
        return rejected(rid, result.error)
    if view == views.ADMIN:
        events = [event.to_json() for event in result.events]
    else:
        events = [views.event(event, view, own=True) for event in result.events if views.visible(event, view)]
    return _dumps({"op": "result", "id": rid, "ok": True, "events": events})


def query_result(rid: Any, answer: dict[str, Any] | Result) -> str:
    """A query's answer (``data``), or its rejection."""
    if isinstance(answer, Result):
        assert answer.error is not None
        return rejected(rid, answer.error)
    return _dumps({"op": "result", "id": rid, "ok": True, "data": answer})


def subscribed(rid: Any, *, hunt_id: str | None, after_seq: int) -> str:
    """Confirms a subscription: events follow with ``seq > after_seq``."""
    return _dumps({"op": "subscribed", "id": rid, "hunt_id": hunt_id, "after_seq": after_seq})


def unsubscribed(rid: Any, sub: Any) -> str:
    return _dumps({"op": "unsubscribed", "id": rid, "sub": sub})


def pong(rid: Any) -> str:
    return _dumps({"op": "pong", "id": rid})


def watching(rid: Any) -> str:
    """Confirms a watch; its ``leaderboard`` frames carry ``sub`` = the request's id."""
    return _dumps({"op": "watching", "id": rid, "sub": rid})


def leaderboard_prefix(sub: Any) -> bytes:
    """The start of every ``leaderboard`` frame of watch `sub` (see `leaderboard_frame`)."""
    return ('{"op":"leaderboard","sub":' + _dumps(sub) + ",").encode()


def leaderboard_frame(prefix: bytes, body: bytes, me: dict[str, Any] | None) -> bytes:
    """``{"op":"leaderboard","sub":S,"hunt_id":H,"seq":Q,"total":T,"entries":[...],"me":M}``.

    `body` is the board's shared members, encoded once for every watcher of the hunt
    (`runtime.boards.Board.body`); only `me` is encoded per watcher.
    """
    return prefix + body + b',"me":' + _dumps(me).encode() + b"}"


def event_json(event: StoredEvent, view: str, *, own: bool = False) -> str:
    """One event as JSON text in `view`: encoded once, then spliced into many frames.

    An event the view does not show (`views.visible`) is the empty string: never sent.
    """
    if view == views.ADMIN:
        return _dumps(event.to_json())
    if not views.visible(event, view):
        return ""
    return _dumps(views.event(event, view, own=own))


def event_prefix(sub: Any) -> str:
    """The start of a single-event frame for subscription `sub` (see `event_frame`)."""
    return '{"op":"event","sub":' + _dumps(sub) + ',"event":'


def event_frame(prefix: str, event_text: str) -> str:
    """``{"op":"event","sub":S,"event":E}`` from a `event_prefix` and an `event_json`."""
    return prefix + event_text + "}"


def events_prefix(sub: Any) -> str:
    return '{"op":"events","sub":' + _dumps(sub) + ',"events":['


def events_frame(prefix: str, event_texts: list[str]) -> str:
    """``{"op":"events","sub":S,"events":[E1,E2,...]}`` for a batching subscription."""
    return prefix + ",".join(event_texts) + "]}"


def close_reason(text: str) -> str:
    """`text` cut to what a close frame can carry (123 bytes of UTF-8)."""
    text = escape_surrogates(text)
    data = text.encode()
    if len(data) <= MAX_REASON_BYTES:
        return text
    return data[:MAX_REASON_BYTES].decode(errors="ignore")
