"""Hunt definitions: TOML or JSON in, a validated, frozen `HuntDefinition` out.

A hunt file (see ``examples/hunts/``) and the ``definition`` of a ``create_hunt``
command have the same fields; `parse_definition` reads either shape (datetimes as
RFC 3339 strings from JSON, or as ``datetime`` objects from TOML) and reports every
problem at once, each as ``"<path>: <what is wrong>, got <value>"``, so that an author
can fix a file in one pass. `HuntDefinition.to_json` writes the JSON shape back, and
reading that again gives an equal definition (the ``hunt_created`` event relies on it).

Pure: no I/O and no clock; times are integer milliseconds since the epoch (UTC).
"""

from __future__ import annotations

import json
import math
import re
import reprlib
import tomllib
import unicodedata
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

import attrs

from thengine.errors import DefinitionError

ID_PATTERN = re.compile(r"[A-Za-z0-9_.:-]{1,64}", re.ASCII)
"""Hunt and clue ids: 1-64 ASCII letters, digits and ``_ - . :`` (use ``fullmatch``)."""

_SURROGATE = re.compile("[\ud800-\udfff]")
NOT_UTF8 = "must be valid Unicode text (no lone surrogates such as \\ud800)"
"""What a text field says of a string UTF-8 cannot hold (see `is_utf8`)."""


def is_utf8(text: str) -> bool:
    """Whether `text` can be written as UTF-8: in JSON, in SQLite, on the wire.

    Only lone surrogates (U+D800-U+DFFF) cannot: JSON's ``"\\ud800"`` escape makes
    one, and no encoder downstream (orjson, SQLite, a WebSocket) accepts it. Every
    text field (commands, queries, hunt definitions, request ids) checks this, so a
    string that passed validation can always be stored and sent.
    """
    return text.isascii() or _SURROGATE.search(text) is None


def escape_surrogates(text: str) -> str:
    """`text` with any lone surrogate written as a ``\\uXXXX`` escape: safe to put in a message."""
    return text if is_utf8(text) else text.encode("utf-8", "backslashreplace").decode("utf-8")


MAX_CLUES = 500
MAX_ANSWER_LEN = 256
MAX_DEFINITION_BYTES = 1_048_576
"""Largest hunt: the TOML text, or the definition as compact UTF-8 JSON."""

# Integers in a definition stay exact in every JSON client (JavaScript included).
_MAX_INT = 2**53 - 1

_ORDERS = ("sequential", "any")

DISTANCE_HINTS = ("none", "bands")
"""What a ``too_far`` check-in tells the player: nothing (the default) or a coarse band."""

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_ONE_MS = timedelta(milliseconds=1)
_RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r"(?:\.([0-9]+))?(?:([Zz])|([+-])([0-9]{2}):([0-9]{2}))"
)

_HUNT_KEYS = (
    "id",
    "title",
    "order",
    "starts_at",
    "ends_at",
    "max_players",
    "wrong_answer_cooldown_s",
    "distance_hint",
    "clues",
)
_CLUE_KEYS = ("id", "title", "prompt", "points", "answers", "location", "hints")
_LOCATION_KEYS = ("lat", "lon", "radius_m")
_HINT_KEYS = ("text", "penalty", "unlock_after_s")

_show = reprlib.Repr()
_show.maxstring = 100
_show.maxother = 100
_show.maxlevel = 2


def normalize_answer(text: str) -> str:
    """The form answers are compared in: NFKC, casefolded, whitespace trimmed and collapsed.

    So ``"  The  FOUNTAIN "``, ``"the fountain"`` and fullwidth ``"ｔｈｅ ｆｏｕｎｔａｉｎ"``
    are the same answer, and ``"STRASSE"`` matches ``"straße"``.
    """
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


@attrs.frozen(kw_only=True)
class Location:
    """A geofence: a check-in within `radius_m` metres of (`lat`, `lon`) solves the clue."""

    lat: float
    lon: float
    radius_m: float


@attrs.frozen(kw_only=True)
class Hint:
    """A hint a player may reveal for `penalty` points, `unlock_after_s` after the clue opened."""

    text: str
    penalty: int
    unlock_after_s: int = 0


@attrs.frozen(kw_only=True)
class Clue:
    """One clue: solved by an answer in `answers` or by a check-in at `location`."""

    id: str
    prompt: str
    points: int
    answers: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    location: Location | None = None
    hints: tuple[Hint, ...] = attrs.field(default=(), converter=tuple)
    normalized_answers: frozenset[str] = attrs.field(init=False, eq=False, repr=False)
    title: str | None = None

    @normalized_answers.default
    def _normalize_answers(self) -> frozenset[str]:
        return frozenset(normalize_answer(answer) for answer in self.answers)

    def to_json(self) -> dict[str, Any]:
        """The clue as written in a definition's ``clues`` list (optional fields omitted)."""
        out: dict[str, Any] = {"id": self.id}
        if self.title is not None:
            out["title"] = self.title
        out["prompt"] = self.prompt
        out["points"] = self.points
        if self.answers:
            out["answers"] = list(self.answers)
        if self.location is not None:
            out["location"] = {
                "lat": self.location.lat,
                "lon": self.location.lon,
                "radius_m": self.location.radius_m,
            }
        if self.hints:
            out["hints"] = [
                {"text": h.text, "penalty": h.penalty, "unlock_after_s": h.unlock_after_s}
                for h in self.hints
            ]
        return out


@attrs.frozen(kw_only=True)
class HuntDefinition:
    """A validated hunt: what `create_hunt` carries and `hunt_created` records."""

    id: str
    title: str
    order: str
    clues: tuple[Clue, ...] = attrs.field(converter=tuple)
    starts_at: int | None = None
    ends_at: int | None = None
    max_players: int | None = None
    wrong_answer_cooldown_s: int | None = None
    distance_hint: str = "none"
    _positions: dict[str, int] = attrs.field(init=False, eq=False, repr=False)

    @_positions.default
    def _index_clues(self) -> dict[str, int]:
        positions: dict[str, int] = {}
        for position, clue in enumerate(self.clues):
            positions.setdefault(clue.id, position)
        return positions

    def clue(self, clue_id: str) -> Clue | None:
        """The clue with this id, or None."""
        position = self._positions.get(clue_id)
        return None if position is None else self.clues[position]

    def clue_position(self, clue_id: str) -> int | None:
        """The clue's index in `clues` (its place in a sequential hunt), or None."""
        return self._positions.get(clue_id)

    def to_json(self) -> dict[str, Any]:
        """The definition as a JSON object with the hunt file's field names.

        Datetimes become RFC 3339 UTC strings; optional fields that are None are left out.
        `parse_definition` of the result gives an equal `HuntDefinition`.
        """
        out: dict[str, Any] = {"id": self.id, "title": self.title, "order": self.order}
        if self.starts_at is not None:
            out["starts_at"] = format_ts(self.starts_at)
        if self.ends_at is not None:
            out["ends_at"] = format_ts(self.ends_at)
        if self.max_players is not None:
            out["max_players"] = self.max_players
        if self.wrong_answer_cooldown_s is not None:
            out["wrong_answer_cooldown_s"] = self.wrong_answer_cooldown_s
        if self.distance_hint != "none":
            out["distance_hint"] = self.distance_hint
        out["clues"] = [clue.to_json() for clue in self.clues]
        return out


# --- time ------------------------------------------------------------------------


def format_ts(ms: int) -> str:
    """Milliseconds since the epoch as RFC 3339 in UTC with ``Z``.

    Milliseconds are written only when non-zero: ``2026-12-01T10:00:00Z``,
    ``2026-12-01T10:00:00.250Z``.
    """
    moment = _EPOCH + timedelta(milliseconds=ms)
    text = (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}"
        f"T{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}"
    )
    if ms % 1000:
        text += f".{ms % 1000:03d}"
    return text + "Z"


def parse_ts(value: object, path: str, problems: list[str]) -> int | None:
    """Milliseconds since the epoch from an RFC 3339 string or an aware ``datetime``.

    A datetime without an offset is ambiguous and refused. Sub-millisecond digits are
    dropped (rounded down). On a problem, appends it to `problems` and returns None.
    """
    moment: datetime | None = None
    if isinstance(value, datetime):
        if value.tzinfo is not None and value.utcoffset() is not None:
            moment = value
    elif isinstance(value, str):
        moment = _parse_rfc3339(value)
    if moment is not None:
        try:
            moment.astimezone(timezone.utc)  # refuses instants outside years 1-9999 UTC
        except (OverflowError, ValueError):
            moment = None
    if moment is None:
        _problem(problems, path, "must be an RFC 3339 datetime with an offset", value)
        return None
    return (moment - _EPOCH) // _ONE_MS


def _parse_rfc3339(text: str) -> datetime | None:
    match = _RFC3339.fullmatch(text)
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, zulu, sign, off_h, off_m = match.groups()
    try:
        if zulu:
            tz = timezone.utc
        else:
            offset = timedelta(hours=int(off_h), minutes=int(off_m))
            if int(off_m) > 59:
                return None
            tz = timezone(-offset if sign == "-" else offset)
        micros = int((fraction or "0")[:6].ljust(6, "0"))
        return datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second), micros, tz
        )
    except ValueError:  # day 31 of a 30-day month, hour 24, offset of 24h or more...
        return None


# --- validation -------------------------------------------------------------------


def parse_hunt_toml(text: str) -> HuntDefinition:
    """Read a hunt file's text. Raises `DefinitionError` listing every problem."""
    if not isinstance(text, str):
        raise DefinitionError([f"toml: must be text, got {_show.repr(text)}"])
    if len(text) > MAX_DEFINITION_BYTES or _utf8_len(text) > MAX_DEFINITION_BYTES:
        raise DefinitionError(
            [f"definition: must be at most {MAX_DEFINITION_BYTES} bytes, got {_utf8_len(text)}"]
        )
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise DefinitionError([f"toml: {exc}"]) from exc
    except RecursionError as exc:
        raise DefinitionError(["toml: nested too deeply"]) from exc
    return parse_definition(data)


def parse_definition(obj: object) -> HuntDefinition:
    """Validate a definition (a JSON object or parsed TOML) into a `HuntDefinition`.

    Raises `DefinitionError` listing every problem found, and nothing else, whatever
    the input.
    """
    problems: list[str] = []
    definition = _read_hunt(obj, problems)
    if problems or definition is None:
        raise DefinitionError(problems or ["definition: invalid"])
    size = _utf8_len(json.dumps(definition.to_json(), ensure_ascii=False, separators=(",", ":")))
    if size > MAX_DEFINITION_BYTES:
        raise DefinitionError(
            [f"definition: must be at most {MAX_DEFINITION_BYTES} bytes as JSON, got {size}"]
        )
    return definition


def definition_problems(definition: HuntDefinition) -> list[str]:
    """What `parse_definition` would find wrong in `definition`'s JSON, its size aside.

    For definitions built in Python (`CreateHunt` checks them at construction): the
    ``hunt_created`` event stores this JSON and replay reads it back, so it must be
    valid. The size is left to `decide`, which refuses an oversized hunt as a rejection.
    """
    try:
        data = definition.to_json()
    except (TypeError, ValueError, AttributeError, OverflowError) as exc:  # a wrong-typed field
        return [f"definition: cannot be written as JSON: {escape_surrogates(str(exc))}"]
    problems: list[str] = []
    _read_hunt(data, problems)
    return problems


def _read_hunt(obj: object, problems: list[str]) -> HuntDefinition | None:
    table = _table(obj, "definition", problems)
    if table is None:
        return None
    _check_keys(table, "", _HUNT_KEYS, ("id", "title", "clues"), problems)

    hunt_id = _id(table.get("id"), "id", problems) if "id" in table else None
    title = _text(table.get("title"), "title", problems) if "title" in table else None
    order = _optional(table, "order")
    if order is None:
        order = "sequential"
    elif not isinstance(order, str) or order not in _ORDERS:
        _problem(problems, "order", "must be 'sequential' or 'any'", order)
    starts_at = ends_at = None
    if (raw_start := _optional(table, "starts_at")) is not None:
        starts_at = parse_ts(raw_start, "starts_at", problems)
    if (raw_end := _optional(table, "ends_at")) is not None:
        ends_at = parse_ts(raw_end, "ends_at", problems)
    if starts_at is not None and ends_at is not None and ends_at <= starts_at:
        _problem(problems, "ends_at", "must be after starts_at", raw_end)
    max_players = cooldown = None
    if (raw := _optional(table, "max_players")) is not None:
        max_players = _int(raw, "max_players", problems, positive=True)
    if (raw := _optional(table, "wrong_answer_cooldown_s")) is not None:
        cooldown = _int(raw, "wrong_answer_cooldown_s", problems, positive=True)
    distance_hint = _optional(table, "distance_hint")
    if distance_hint is None:
        distance_hint = "none"
    elif not isinstance(distance_hint, str) or distance_hint not in DISTANCE_HINTS:
        _problem(problems, "distance_hint", "must be 'none' or 'bands'", distance_hint)

    clues: list[Clue] = []
    if "clues" in table:
        raw_clues = _list(table["clues"], "clues", problems)
        if raw_clues is not None:
            if not raw_clues:
                _problem(problems, "clues", "must not be empty", raw_clues)
            elif len(raw_clues) > MAX_CLUES:
                problems.append(f"clues: must have at most {MAX_CLUES} clues, got {len(raw_clues)}")
            seen_ids: set[str] = set()
            for n, raw_clue in enumerate(raw_clues):
                clue = _read_clue(raw_clue, f"clues[{n}]", seen_ids, problems)
                if clue is not None:
                    clues.append(clue)

    if problems:
        return None
    assert hunt_id is not None and title is not None
    return HuntDefinition(
        id=hunt_id,
        title=title,
        order=order,
        clues=tuple(clues),
        starts_at=starts_at,
        ends_at=ends_at,
        max_players=max_players,
        wrong_answer_cooldown_s=cooldown,
        distance_hint=distance_hint,
    )


def _read_clue(obj: object, path: str, seen: set[str], problems: list[str]) -> Clue | None:
    table = _table(obj, path, problems)
    if table is None:
        return None
    before = len(problems)
    _check_keys(table, path, _CLUE_KEYS, ("id", "prompt", "points"), problems)

    clue_id = None
    if "id" in table:
        clue_id = _id(table["id"], f"{path}.id", problems)
        if clue_id is not None:
            if clue_id in seen:
                problems.append(f"{path}.id: duplicate clue id {clue_id!r}")
            seen.add(clue_id)
    title = None
    if (raw_title := _optional(table, "title")) is not None:
        title = _text(raw_title, f"{path}.title", problems)
    prompt = _text(table["prompt"], f"{path}.prompt", problems) if "prompt" in table else None
    points = None
    if "points" in table:
        points = _int(table["points"], f"{path}.points", problems, positive=True)

    raw_answers = _optional(table, "answers")
    raw_location = _optional(table, "location")
    if raw_answers is None and raw_location is None:
        problems.append(f"{path}: must have answers or location, got neither")
    elif raw_answers is not None and raw_location is not None:
        problems.append(f"{path}: must have answers or location, got both")
    answers: tuple[str, ...] = ()
    location = None
    if raw_answers is not None:
        answers = _read_answers(raw_answers, f"{path}.answers", problems)
    if raw_location is not None:
        location = _read_location(raw_location, f"{path}.location", problems)

    hints: list[Hint] = []
    if (raw_hints := _optional(table, "hints")) is not None:
        hint_list = _list(raw_hints, f"{path}.hints", problems)
        for n, raw_hint in enumerate(hint_list or ()):
            hint = _read_hint(raw_hint, f"{path}.hints[{n}]", points, problems)
            if hint is not None:
                hints.append(hint)

    if len(problems) > before:
        return None
    assert clue_id is not None and prompt is not None and points is not None
    return Clue(
        id=clue_id,
        title=title,
        prompt=prompt,
        points=points,
        answers=answers,
        location=location,
        hints=tuple(hints),
    )


def _read_answers(obj: object, path: str, problems: list[str]) -> tuple[str, ...]:
    items = _list(obj, path, problems)
    if items is None:
        return ()
    if not items:
        _problem(problems, path, "must not be empty", items)
    answers = []
    for n, item in enumerate(items):
        answer = _text(item, f"{path}[{n}]", problems)
        if answer is None:
            continue
        if len(answer) > MAX_ANSWER_LEN:
            what = f"must be at most {MAX_ANSWER_LEN} characters"
            _problem(problems, f"{path}[{n}]", what, answer)
        answers.append(answer)
    return tuple(answers)


def _read_location(obj: object, path: str, problems: list[str]) -> Location | None:
    table = _table(obj, path, problems)
    if table is None:
        return None
    _check_keys(table, path, _LOCATION_KEYS, _LOCATION_KEYS, problems)
    lat = lon = radius = None
    if "lat" in table:
        lat = _number(table["lat"], f"{path}.lat", problems, low=-90, high=90)
    if "lon" in table:
        lon = _number(table["lon"], f"{path}.lon", problems, low=-180, high=180)
    if "radius_m" in table:
        radius = _number(table["radius_m"], f"{path}.radius_m", problems, low=0, open_low=True)
    if lat is None or lon is None or radius is None:
        return None
    return Location(lat=lat, lon=lon, radius_m=radius)


def _read_hint(obj: object, path: str, points: int | None, problems: list[str]) -> Hint | None:
    table = _table(obj, path, problems)
    if table is None:
        return None
    _check_keys(table, path, _HINT_KEYS, ("text", "penalty"), problems)
    text = _text(table["text"], f"{path}.text", problems) if "text" in table else None
    penalty = None
    if "penalty" in table:
        penalty = _int(table["penalty"], f"{path}.penalty", problems, positive=False)
        if penalty is not None and points is not None and penalty > points:
            what = f"must not exceed the clue's points ({points})"
            _problem(problems, f"{path}.penalty", what, penalty)
            penalty = None
    unlock_after_s: int | None = 0
    if (raw := _optional(table, "unlock_after_s")) is not None:
        unlock_after_s = _int(raw, f"{path}.unlock_after_s", problems, positive=False)
    if text is None or penalty is None or unlock_after_s is None:
        return None
    return Hint(text=text, penalty=penalty, unlock_after_s=unlock_after_s)


# --- small readers: each returns the value, or None after recording a problem ----------


def _problem(problems: list[str], path: str, what: str, value: object) -> None:
    problems.append(f"{path}: {what}, got {_show.repr(value)}")


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _optional(table: Mapping[Any, Any], key: str) -> object:
    """An optional field's value; JSON ``null`` counts as absent."""
    return table.get(key)


def _table(obj: object, path: str, problems: list[str]) -> Mapping[Any, Any] | None:
    if not isinstance(obj, Mapping):
        _problem(problems, path, "must be an object", obj)
        return None
    return obj


def _check_keys(
    table: Mapping[Any, Any],
    path: str,
    known: tuple[str, ...],
    required: tuple[str, ...],
    problems: list[str],
) -> None:
    for key in table:
        if not isinstance(key, str):
            _problem(problems, path or "definition", "keys must be strings", key)
        elif key not in known:
            problems.append(f"{_join(path, escape_surrogates(key))}: unknown key")
    for key in required:
        if key not in table:
            problems.append(f"{_join(path, key)}: required")


def _list(obj: object, path: str, problems: list[str]) -> list[object] | None:
    if not isinstance(obj, (list, tuple)):
        _problem(problems, path, "must be a list", obj)
        return None
    return list(obj)


def _text(obj: object, path: str, problems: list[str]) -> str | None:
    if not isinstance(obj, str):
        _problem(problems, path, "must be a string", obj)
        return None
    if not obj.strip():
        _problem(problems, path, "must not be blank", obj)
        return None
    if not is_utf8(obj):
        _problem(problems, path, NOT_UTF8, obj)
        return None
    return obj


def _id(obj: object, path: str, problems: list[str]) -> str | None:
    if not isinstance(obj, str):
        _problem(problems, path, "must be a string", obj)
        return None
    if ID_PATTERN.fullmatch(obj) is None:
        _problem(problems, path, "must be 1-64 letters, digits, '_', '-', '.' or ':'", obj)
        return None
    return obj


def _int(obj: object, path: str, problems: list[str], *, positive: bool) -> int | None:
    if not isinstance(obj, int) or isinstance(obj, bool):
        _problem(problems, path, "must be an integer", obj)
        return None
    if positive and obj <= 0:
        _problem(problems, path, "must be > 0", obj)
        return None
    if obj < 0:
        _problem(problems, path, "must be >= 0", obj)
        return None
    if obj > _MAX_INT:
        _problem(problems, path, f"must be <= {_MAX_INT}", obj)
        return None
    return obj


def _number(
    obj: object,
    path: str,
    problems: list[str],
    *,
    low: float,
    high: float = _MAX_INT,
    open_low: bool = False,
) -> float | None:
    if not isinstance(obj, (int, float)) or isinstance(obj, bool):
        _problem(problems, path, "must be a number", obj)
        return None
    if isinstance(obj, float) and not math.isfinite(obj):
        _problem(problems, path, "must be a finite number", obj)
        return None
    if obj < low or (open_low and obj == low):
        _problem(problems, path, f"must be {'>' if open_low else '>='} {low}", obj)
        return None
    if obj > high:
        _problem(problems, path, f"must be <= {high}", obj)
        return None
    return float(obj)


def _utf8_len(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))
