"""Commands (what a client asks for), queries (what it wants to know) and rejections.

Each command and query is a frozen attrs class whose ``TYPE`` is its JSON ``type``.
`parse_command` / `parse_query` turn a JSON object into one of them, or into a
`Rejection` with code ``invalid_command`` that names the field and what it got;
``to_json`` goes back. Parsing never raises.
"""

from __future__ import annotations

import math
import re
from typing import Any, ClassVar, Union

import attrs

from ..errors import DefinitionError
from .definition import MAX_ANSWER_LEN, HuntDefinition, definition_problems, format_ts, parse_definition, parse_ts
from .fields import ID_PATTERN, NOT_UTF8, escape_surrogates, is_utf8

#: Every rejection code a `Result` may carry.
REJECTION_CODES = (
    "invalid_command",
    "unknown_hunt",
    "hunt_exists",
    "hunt_not_running",
    "not_joined",
    "already_joined",
    "hunt_full",
    "unknown_clue",
    "clue_locked",
    "already_solved",
    "cooldown",
    "no_more_hints",
    "hint_locked",
    "too_far",
    "inaccurate_fix",
    "entry_pending",
    "no_more_submissions",
    "unknown_entry",
    "not_appealable",
    "wrong_partition",
    "overloaded",
    "rate_limited",
    "forbidden",
)

MAX_REASON_LEN = 1000
MAX_LEADERBOARD_LIMIT = 1000
MAX_ACCURACY_M = 100_000
MAX_ENTRY_TEXT_LEN = 2000
MAX_URL_LEN = 2048
ENTRY_STATUSES = ("pending", "accepted", "rejected")
VERDICTS = ("accept", "reject")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_CONTENT_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]{0,62}/[a-z0-9][a-z0-9!#$&^_.+-]{0,62}", re.ASCII)


@attrs.frozen(kw_only=True)
class Rejection:
    """Why a command was refused: a code from `REJECTION_CODES` and a human message."""

    code: str
    message: str
    #: ``wrong_partition`` from a cluster's node: the WebSocket URL of the node that
    #: hosts the hunt (None where unknown).
    url: str | None = None

    def to_json(self) -> dict[str, str]:
        if self.url is None:
            return {"code": self.code, "message": self.message}
        return {"code": self.code, "message": self.message, "url": self.url}


def invalid(message: str) -> Rejection:
    return Rejection(code="invalid_command", message=message)


# Field kinds, kept in each attrs field's metadata: `_parse_field` turns JSON into the
# field's value, and `_validate` checks values given from Python (a command built in
# Python with a wrong value raises ValueError at construction, naming the field).
def _id(optional: bool = False) -> Any:
    if optional:
        return attrs.field(default=None, metadata={"kind": "id"}, validator=_validate_optional)
    return attrs.field(metadata={"kind": "id"}, validator=_validate)


def _kind(kind: str, **kwargs: Any) -> Any:
    return attrs.field(metadata={"kind": kind}, validator=_validate, **kwargs)


def _optional_kind(kind: str) -> Any:
    return attrs.field(default=None, metadata={"kind": kind}, validator=_validate_optional)


def _validate(instance: Any, attribute: Any, value: Any) -> None:
    kind = attribute.metadata["kind"]
    if kind == "ts":
        if isinstance(value, bool) or not isinstance(value, int):
            raise _Bad(f"{attribute.name}: must be integer milliseconds since the epoch, got {_got(value)}")
    elif kind == "definition":
        if not isinstance(value, HuntDefinition):
            raise _Bad(f"{attribute.name}: must be a HuntDefinition, got {_got(value)}")
        _check_definition(value)
    else:
        _parse_field(kind, attribute.name, value)


def _validate_optional(instance: Any, attribute: Any, value: Any) -> None:
    if value is not None:
        _validate(instance, attribute, value)


def _check_definition(definition: HuntDefinition) -> None:
    """A definition built in Python must be one `parse_definition` accepts (its size
    aside, which `decide` checks): ``hunt_created`` stores its JSON, replay reads it back."""
    problems = definition_problems(definition)
    if problems:
        raise _Bad("definition: " + "; ".join(problems))


@attrs.frozen(kw_only=True)
class CreateHunt:
    TYPE: ClassVar[str] = "create_hunt"
    ADMIN: ClassVar[bool] = True
    definition: HuntDefinition = _kind("definition")

    @property
    def hunt_id(self) -> str:
        return self.definition.id


@attrs.frozen(kw_only=True)
class StartHunt:
    TYPE: ClassVar[str] = "start_hunt"
    ADMIN: ClassVar[bool] = True
    hunt_id: str = _id()


@attrs.frozen(kw_only=True)
class EndHunt:
    TYPE: ClassVar[str] = "end_hunt"
    ADMIN: ClassVar[bool] = True
    hunt_id: str = _id()


@attrs.frozen(kw_only=True)
class JoinHunt:
    TYPE: ClassVar[str] = "join_hunt"
    ADMIN: ClassVar[bool] = False
    hunt_id: str = _id()
    player_id: str = _id()
    team_id: str | None = _id(optional=True)


@attrs.frozen(kw_only=True)
class LeaveHunt:
    TYPE: ClassVar[str] = "leave_hunt"
    ADMIN: ClassVar[bool] = False
    hunt_id: str = _id()
    player_id: str = _id()


@attrs.frozen(kw_only=True)
class SubmitAnswer:
    TYPE: ClassVar[str] = "submit_answer"
    ADMIN: ClassVar[bool] = False
    hunt_id: str = _id()
    player_id: str = _id()
    clue_id: str = _id()
    answer: str = _kind("answer")


@attrs.frozen(kw_only=True)
class CheckIn:
    TYPE: ClassVar[str] = "check_in"
    ADMIN: ClassVar[bool] = False
    hunt_id: str = _id()
    player_id: str = _id()
    clue_id: str = _id()
    lat: float = _kind("lat")
    lon: float = _kind("lon")
    #: The fix's accuracy radius in metres (a phone's reported accuracy); None: exact.
    accuracy_m: float | None = _optional_kind("accuracy")


@attrs.frozen(kw_only=True)
class RequestHint:
    TYPE: ClassVar[str] = "request_hint"
    ADMIN: ClassVar[bool] = False
    hunt_id: str = _id()
    player_id: str = _id()
    clue_id: str = _id()


@attrs.frozen(kw_only=True)
class ExtendHunt:
    TYPE: ClassVar[str] = "extend_hunt"
    ADMIN: ClassVar[bool] = True
    hunt_id: str = _id()
    ends_at: int = _kind("ts")


@attrs.frozen(kw_only=True)
class RemovePlayer:
    TYPE: ClassVar[str] = "remove_player"
    ADMIN: ClassVar[bool] = True
    hunt_id: str = _id()
    player_id: str = _id()
    reason: str = _kind("reason")


@attrs.frozen(kw_only=True)
class AdjustScore:
    """Add ``delta`` (may be negative) to a player's or a team's score; give exactly one."""

    TYPE: ClassVar[str] = "adjust_score"
    ADMIN: ClassVar[bool] = True
    hunt_id: str = _id()
    player_id: str | None = _id(optional=True)
    team_id: str | None = _id(optional=True)
    delta: int = _kind("delta")
    reason: str = _kind("reason")


@attrs.frozen(kw_only=True)
class SubmitEntry:
    """An entry for a judged clue: a text, a reference to a photo or video, or both.

    ``media`` is ``{"url", "sha256", "content_type", "bytes"}``, a reference only: the
    engine never stores or fetches the file.
    """

    TYPE: ClassVar[str] = "submit_entry"
    ADMIN: ClassVar[bool] = False
    hunt_id: str = _id()
    player_id: str = _id()
    clue_id: str = _id()
    text: str | None = _optional_kind("entry_text")
    media: dict[str, Any] | None = _optional_kind("media")


@attrs.frozen(kw_only=True)
class JudgeEntry:
    """A judge's verdict on a pending entry: ``accept`` (the clue is solved) or ``reject``."""

    TYPE: ClassVar[str] = "judge_entry"
    ADMIN: ClassVar[bool] = True
    hunt_id: str = _id()
    entry_id: str = _id()
    verdict: str = _kind("verdict")
    reason: str | None = _optional_kind("reason")


@attrs.frozen(kw_only=True)
class AppealEntry:
    """Put a rejected entry back in the judges' queue, once."""

    TYPE: ClassVar[str] = "appeal_entry"
    ADMIN: ClassVar[bool] = False
    hunt_id: str = _id()
    player_id: str = _id()
    entry_id: str = _id()
    message: str = _kind("reason")


@attrs.frozen(kw_only=True)
class FreezeBoard:
    """Freeze the public scoreboard: players see it as it stands now, admins the live one."""

    TYPE: ClassVar[str] = "freeze_board"
    ADMIN: ClassVar[bool] = True
    hunt_id: str = _id()


@attrs.frozen(kw_only=True)
class UnfreezeBoard:
    """Show players the live scoreboard again."""

    TYPE: ClassVar[str] = "unfreeze_board"
    ADMIN: ClassVar[bool] = True
    hunt_id: str = _id()


Command = Union[
    CreateHunt, StartHunt, EndHunt, JoinHunt, LeaveHunt, SubmitAnswer, CheckIn,
    RequestHint, ExtendHunt, RemovePlayer, AdjustScore, SubmitEntry, JudgeEntry, AppealEntry, FreezeBoard,
    UnfreezeBoard,
]
COMMAND_TYPES: dict[str, type] = {
    cls.TYPE: cls
    for cls in (CreateHunt, StartHunt, EndHunt, JoinHunt, LeaveHunt, SubmitAnswer, CheckIn,
                RequestHint, ExtendHunt, RemovePlayer, AdjustScore, SubmitEntry, JudgeEntry, AppealEntry,
                FreezeBoard, UnfreezeBoard)
}


@attrs.frozen(kw_only=True)
class Leaderboard:
    """The best ``limit`` entries of a hunt's ranking."""

    TYPE: ClassVar[str] = "leaderboard"
    ADMIN: ClassVar[bool] = False
    hunt_id: str = _id()
    limit: int = _kind("limit", default=10)
    offset: int = _kind("offset", default=0)
    around: str | None = _id(optional=True)


@attrs.frozen(kw_only=True)
class Player:
    """One player's progress, score, rank and the clues open to them."""

    TYPE: ClassVar[str] = "player"
    ADMIN: ClassVar[bool] = False
    hunt_id: str = _id()
    player_id: str = _id()


@attrs.frozen(kw_only=True)
class Hunt:
    """A hunt's status, times, counts and clue list."""

    TYPE: ClassVar[str] = "hunt"
    ADMIN: ClassVar[bool] = False
    hunt_id: str = _id()


@attrs.frozen(kw_only=True)
class Hunts:
    """Every hunt with its status and player count."""

    TYPE: ClassVar[str] = "hunts"
    ADMIN: ClassVar[bool] = False


@attrs.frozen(kw_only=True)
class Flags:
    """A hunt's ``implausible_move`` flags, oldest first: admins only."""

    TYPE: ClassVar[str] = "flags"
    ADMIN: ClassVar[bool] = True
    hunt_id: str = _id()


@attrs.frozen(kw_only=True)
class Entries:
    """The judges' queue: a hunt's entries (of one status, or all), oldest first; admins only."""

    TYPE: ClassVar[str] = "entries"
    ADMIN: ClassVar[bool] = True
    hunt_id: str = _id()
    status: str | None = _optional_kind("entry_status")


Query = Union[Leaderboard, Player, Hunt, Hunts, Flags, Entries]
QUERY_TYPES: dict[str, type] = {cls.TYPE: cls for cls in (Leaderboard, Player, Hunt, Hunts, Flags, Entries)}


class _Bad(ValueError):
    """A field's value is wrong; the message names the field and what it got."""


def _got(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _parse_id(name: str, value: Any) -> str:
    if not isinstance(value, str) or not ID_PATTERN.fullmatch(value):
        raise _Bad(f"{name}: must be an id of 1-64 letters, digits or _-.:, got {_got(value)}")
    return value


def _parse_text(name: str, value: Any, limit: int) -> str:
    if not isinstance(value, str):
        raise _Bad(f"{name}: must be a string, got {_got(value)}")
    if len(value) > limit:
        raise _Bad(f"{name}: must be at most {limit} characters, got {len(value)}")
    if not is_utf8(value):
        raise _Bad(f"{name}: {NOT_UTF8}, got {_got(value)}")
    return value


def _parse_number(name: str, value: Any, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _Bad(f"{name}: must be a number, got {_got(value)}")
    if isinstance(value, float) and not math.isfinite(value):  # (a huge int has no float)
        raise _Bad(f"{name}: must be a number, got {_got(value)}")
    if not low <= value <= high:
        raise _Bad(f"{name}: must be between {low:g} and {high:g}, got {_got(value)}")
    return float(value)


def _parse_int(name: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Bad(f"{name}: must be an integer, got {_got(value)}")
    if not low <= value <= high:
        raise _Bad(f"{name}: must be between {low} and {high}, got {_got(value)}")
    return value


def _parse_choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise _Bad(f"{name}: must be one of {', '.join(choices)}, got {_got(value)}")
    return value


def _parse_media(name: str, value: Any) -> dict[str, Any]:
    """``{"url", "sha256", "content_type", "bytes"}``: a reference to a file kept elsewhere."""
    if not isinstance(value, dict):
        raise _Bad(f"{name}: must be an object {{url, sha256, content_type, bytes}}, got {_got(value)}")
    for key in value:
        if key not in ("url", "sha256", "content_type", "bytes"):
            raise _Bad(f"{name}.{escape_surrogates(str(key))}: unknown field")
    for key in ("url", "sha256", "content_type", "bytes"):
        if key not in value:
            raise _Bad(f"{name}.{key}: required, got nothing")
    url = _parse_text(f"{name}.url", value["url"], MAX_URL_LEN)
    if not url.startswith(("https://", "http://")) or len(url) < 9 or not url.isascii() or " " in url:
        raise _Bad(f"{name}.url: must be an http(s) URL, got {_got(url)}")
    sha = value["sha256"]
    if not isinstance(sha, str) or not _SHA256.fullmatch(sha):
        raise _Bad(f"{name}.sha256: must be 64 lowercase hex digits, got {_got(sha)}")
    content_type = value["content_type"]
    if not isinstance(content_type, str) or not _CONTENT_TYPE.fullmatch(content_type):
        raise _Bad(f"{name}.content_type: must be a MIME type such as image/jpeg, got {_got(content_type)}")
    size = _parse_int(f"{name}.bytes", value["bytes"], 0, 2**53 - 1)
    return {"url": url, "sha256": sha, "content_type": content_type, "bytes": size}


def _parse_field(kind: str, name: str, value: Any) -> Any:
    if kind == "id":
        return _parse_id(name, value)
    if kind == "answer":
        return _parse_text(name, value, MAX_ANSWER_LEN)
    if kind == "reason":
        return _parse_text(name, value, MAX_REASON_LEN)
    if kind == "lat":
        return _parse_number(name, value, -90, 90)
    if kind == "lon":
        return _parse_number(name, value, -180, 180)
    if kind == "entry_text":
        text = _parse_text(name, value, MAX_ENTRY_TEXT_LEN)
        if not text.strip():
            raise _Bad(f"{name}: must not be blank, got {_got(value)}")
        return text
    if kind == "media":
        return _parse_media(name, value)
    if kind == "verdict":
        return _parse_choice(name, value, VERDICTS)
    if kind == "entry_status":
        return _parse_choice(name, value, ENTRY_STATUSES)
    if kind == "accuracy":
        return _parse_number(name, value, 0, MAX_ACCURACY_M)
    if kind == "delta":
        return _parse_int(name, value, -1_000_000_000, 1_000_000_000)
    if kind == "limit":
        return _parse_int(name, value, 1, MAX_LEADERBOARD_LIMIT)
    if kind == "offset":
        return _parse_int(name, value, 0, 1_000_000_000)
    if kind == "ts":
        problems: list[str] = []
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            raise _Bad(f"{name}: must be an RFC 3339 datetime string, got {_got(value)}")
        ms = parse_ts(value, name, problems)
        if problems or ms is None:
            raise _Bad(problems[0] if problems else f"{name}: must be an RFC 3339 datetime, got {_got(value)}")
        return ms
    if kind == "definition":
        try:
            return parse_definition(value)
        except DefinitionError as exc:
            raise _Bad("definition: " + "; ".join(exc.problems)) from None
    raise AssertionError(f"unknown field kind {kind}")  # pragma: no cover


def _parse(obj: Any, registry: dict[str, type], what: str) -> Any:
    if not isinstance(obj, dict):
        return invalid(f"{what}: must be a JSON object, got {_got(obj)}")
    type_name = obj.get("type")
    cls = registry.get(type_name) if isinstance(type_name, str) else None
    if cls is None:
        known = ", ".join(sorted(registry))
        return invalid(f"type: unknown {what} type {_got(type_name)}; expected one of {known}")
    fields = attrs.fields(cls)
    known_names = {f.name for f in fields} | {"type"}
    for key in obj:
        if key not in known_names:
            return invalid(f"{escape_surrogates(str(key))}: unknown field for {type_name}")
    kwargs: dict[str, Any] = {}
    try:
        for field in fields:
            if field.name in obj and not (obj[field.name] is None and field.default is None):
                kwargs[field.name] = _parse_field(field.metadata["kind"], field.name, obj[field.name])
            elif field.default is attrs.NOTHING:
                raise _Bad(f"{field.name}: required for {type_name}, got nothing")
    except _Bad as exc:
        return invalid(str(exc))
    if cls is AdjustScore and (kwargs.get("player_id") is None) == (kwargs.get("team_id") is None):
        return invalid("adjust_score: give exactly one of player_id or team_id")
    if cls is SubmitEntry and kwargs.get("text") is None and kwargs.get("media") is None:
        return invalid("submit_entry: give a text, a media reference, or both")
    if cls is Leaderboard and kwargs.get("offset") and kwargs.get("around") is not None:
        return invalid("leaderboard: give offset or around, not both")
    with attrs.validators.disabled():  # every field was just parsed, which validates it: once is enough
        return cls(**kwargs)


def parse_command(obj: Any) -> Command | Rejection:
    """A command from its JSON object, or an ``invalid_command`` `Rejection`."""
    return _parse(obj, COMMAND_TYPES, "command")


def parse_query(obj: Any) -> Query | Rejection:
    """A query from its JSON object, or an ``invalid_command`` `Rejection`."""
    return _parse(obj, QUERY_TYPES, "query")


def to_json(value: Command | Query) -> dict[str, Any]:
    """The JSON object of a command or query (`parse_command` of it gives it back)."""
    out: dict[str, Any] = {"type": value.TYPE}
    for field in attrs.fields(type(value)):
        item = getattr(value, field.name)
        if item is None:
            continue
        kind = field.metadata["kind"]
        if kind == "definition":
            item = item.to_json()
        elif kind == "ts":
            item = format_ts(item)
        out[field.name] = item
    return out
