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
import re
import tomllib
import unicodedata
from datetime import datetime, timedelta, timezone
from typing import Any

import attrs

from thengine.errors import DefinitionError

from .options import NO_OPTIONS, OPTION_KEYS, Options, read_options

from .fields import (
    SHOW, check_keys, escape_surrogates, id_at, int_at, list_at, number_at, optional, problem, table_at, text_at,
    utf8_len,
)

MAX_CLUES = 500
MAX_ANSWER_LEN = 256
MAX_DEFINITION_BYTES = 1_048_576
"""Largest hunt: the TOML text, or the definition as compact UTF-8 JSON."""

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
    "freeze_at",
    "max_players",
    "wrong_answer_cooldown_s",
    "distance_hint",
    *OPTION_KEYS,
    "clues",
)
_CLUE_KEYS = ("id", "title", "prompt", "points", "by", "answers", "location", "max_submissions", "hints")
#: How a clue is solved: by an answer, a check-in at its place, or an entry a judge accepts.
CLUE_KINDS = ("answer", "check_in", "judged", "code")
#: Entries a team may submit on a judged clue, unless the clue says otherwise.
DEFAULT_MAX_SUBMISSIONS = 3
MAX_SUBMISSIONS = 100
_LOCATION_KEYS = ("lat", "lon", "radius_m")
_HINT_KEYS = ("text", "penalty", "unlock_after_s")


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
    #: "answer", "check_in" (it has a `location`), "judged" (an entry a judge accepts) or
    #: "code" (a printed code, scanned: see `thengine.domain.codes`).
    by: str = attrs.field(default=attrs.Factory(lambda self: "check_in" if self.location else "answer",
                                                takes_self=True))
    #: Entries a team may submit (judged clues).
    max_submissions: int = DEFAULT_MAX_SUBMISSIONS

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
        if self.by == "judged":
            out["by"] = "judged"
            out["max_submissions"] = self.max_submissions
        elif self.by == "code":
            out["by"] = "code"
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
    #: When the public scoreboard freezes (players then see it as it stood); None: never by itself.
    freeze_at: int | None = None
    ends_at: int | None = None
    max_players: int | None = None
    wrong_answer_cooldown_s: int | None = None
    distance_hint: str = "none"
    options: Options = NO_OPTIONS
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
        if self.freeze_at is not None:
            out["freeze_at"] = format_ts(self.freeze_at)
        if self.max_players is not None:
            out["max_players"] = self.max_players
        if self.wrong_answer_cooldown_s is not None:
            out["wrong_answer_cooldown_s"] = self.wrong_answer_cooldown_s
        if self.distance_hint != "none":
            out["distance_hint"] = self.distance_hint
        out.update(self.options.to_json())
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
        problem(problems, path, "must be an RFC 3339 datetime with an offset", value)
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
        raise DefinitionError([f"toml: must be text, got {SHOW.repr(text)}"])
    if len(text) > MAX_DEFINITION_BYTES or utf8_len(text) > MAX_DEFINITION_BYTES:
        raise DefinitionError(
            [f"definition: must be at most {MAX_DEFINITION_BYTES} bytes, got {utf8_len(text)}"]
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
    size = utf8_len(json.dumps(definition.to_json(), ensure_ascii=False, separators=(",", ":")))
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
    table = table_at(obj, "definition", problems)
    if table is None:
        return None
    check_keys(table, "", _HUNT_KEYS, ("id", "title", "clues"), problems)

    hunt_id = id_at(table.get("id"), "id", problems) if "id" in table else None
    title = text_at(table.get("title"), "title", problems) if "title" in table else None
    order = optional(table, "order")
    if order is None:
        order = "sequential"
    elif not isinstance(order, str) or order not in _ORDERS:
        problem(problems, "order", "must be 'sequential' or 'any'", order)
    starts_at = ends_at = None
    if (raw_start := optional(table, "starts_at")) is not None:
        starts_at = parse_ts(raw_start, "starts_at", problems)
    if (raw_end := optional(table, "ends_at")) is not None:
        ends_at = parse_ts(raw_end, "ends_at", problems)
    if starts_at is not None and ends_at is not None and ends_at <= starts_at:
        problem(problems, "ends_at", "must be after starts_at", raw_end)
    freeze_at = None
    if (raw_freeze := optional(table, "freeze_at")) is not None:
        freeze_at = parse_ts(raw_freeze, "freeze_at", problems)
        if freeze_at is not None and ends_at is not None and freeze_at >= ends_at:
            problem(problems, "freeze_at", "must be before ends_at", raw_freeze)
        elif freeze_at is not None and starts_at is not None and freeze_at < starts_at:
            problem(problems, "freeze_at", "must not be before starts_at", raw_freeze)
    max_players = cooldown = None
    if (raw := optional(table, "max_players")) is not None:
        max_players = int_at(raw, "max_players", problems, positive=True)
    if (raw := optional(table, "wrong_answer_cooldown_s")) is not None:
        cooldown = int_at(raw, "wrong_answer_cooldown_s", problems, positive=True)
    distance_hint = optional(table, "distance_hint")
    if distance_hint is None:
        distance_hint = "none"
    elif not isinstance(distance_hint, str) or distance_hint not in DISTANCE_HINTS:
        problem(problems, "distance_hint", "must be 'none' or 'bands'", distance_hint)

    clues: list[Clue] = []
    if "clues" in table:
        raw_clues = list_at(table["clues"], "clues", problems)
        if raw_clues is not None:
            if not raw_clues:
                problem(problems, "clues", "must not be empty", raw_clues)
            elif len(raw_clues) > MAX_CLUES:
                problems.append(f"clues: must have at most {MAX_CLUES} clues, got {len(raw_clues)}")
            seen_ids: set[str] = set()
            for n, raw_clue in enumerate(raw_clues):
                clue = _read_clue(raw_clue, f"clues[{n}]", seen_ids, problems)
                if clue is not None:
                    clues.append(clue)

    options = read_options(table, problems, least_points=min((c.points for c in clues), default=None))

    if problems:
        return None
    assert hunt_id is not None and title is not None
    return HuntDefinition(
        options=options,
        id=hunt_id,
        title=title,
        order=order,
        clues=tuple(clues),
        starts_at=starts_at,
        freeze_at=freeze_at,
        ends_at=ends_at,
        max_players=max_players,
        wrong_answer_cooldown_s=cooldown,
        distance_hint=distance_hint,
    )


def _read_clue(obj: object, path: str, seen: set[str], problems: list[str]) -> Clue | None:
    table = table_at(obj, path, problems)
    if table is None:
        return None
    before = len(problems)
    check_keys(table, path, _CLUE_KEYS, ("id", "prompt", "points"), problems)

    clue_id = None
    if "id" in table:
        clue_id = id_at(table["id"], f"{path}.id", problems)
        if clue_id is not None:
            if clue_id in seen:
                problems.append(f"{path}.id: duplicate clue id {clue_id!r}")
            seen.add(clue_id)
    title = None
    if (raw_title := optional(table, "title")) is not None:
        title = text_at(raw_title, f"{path}.title", problems)
    prompt = text_at(table["prompt"], f"{path}.prompt", problems) if "prompt" in table else None
    points = None
    if "points" in table:
        points = int_at(table["points"], f"{path}.points", problems, positive=True)

    raw_answers = optional(table, "answers")
    raw_location = optional(table, "location")
    by = optional(table, "by")
    if by is not None and by not in CLUE_KINDS:
        problem(problems, f"{path}.by", "must be 'answer', 'check_in', 'judged' or 'code'", by)
    if by in ("judged", "code"):
        if raw_answers is not None or raw_location is not None:
            why = "a judge decides" if by == "judged" else "its code comes from the engine's secret"
            problems.append(f"{path}: a {by} clue has no answers or location ({why})")
    elif raw_answers is None and raw_location is None:
        problems.append(f"{path}: must have answers or location, got neither")
    elif raw_answers is not None and raw_location is not None:
        problems.append(f"{path}: must have answers or location, got both")
    elif by == "answer" and raw_answers is None or by == "check_in" and raw_location is None:
        problems.append(f"{path}.by: {by!r} needs {'answers' if by == 'answer' else 'a location'}")
    answers: tuple[str, ...] = ()
    location = None
    if raw_answers is not None:
        answers = _read_answers(raw_answers, f"{path}.answers", problems)
    if raw_location is not None:
        location = _read_location(raw_location, f"{path}.location", problems)
    max_submissions: int | None = DEFAULT_MAX_SUBMISSIONS
    if (raw := optional(table, "max_submissions")) is not None:
        if by != "judged":
            problems.append(f"{path}.max_submissions: only a judged clue (by = 'judged') takes entries")
        else:
            max_submissions = int_at(raw, f"{path}.max_submissions", problems, positive=True)
            if max_submissions is not None and max_submissions > MAX_SUBMISSIONS:
                problem(problems, f"{path}.max_submissions", f"must be at most {MAX_SUBMISSIONS}", max_submissions)

    hints: list[Hint] = []
    if (raw_hints := optional(table, "hints")) is not None:
        hint_list = list_at(raw_hints, f"{path}.hints", problems)
        for n, raw_hint in enumerate(hint_list or ()):
            hint = _read_hint(raw_hint, f"{path}.hints[{n}]", points, problems)
            if hint is not None:
                hints.append(hint)

    if len(problems) > before:
        return None
    assert clue_id is not None and prompt is not None and points is not None and max_submissions is not None
    return Clue(
        id=clue_id,
        title=title,
        prompt=prompt,
        points=points,
        answers=answers,
        location=location,
        hints=tuple(hints),
        by=by if by in ("judged", "code") else "check_in" if location is not None else "answer",
        max_submissions=max_submissions,
    )


def _read_answers(obj: object, path: str, problems: list[str]) -> tuple[str, ...]:
    items = list_at(obj, path, problems)
    if items is None:
        return ()
    if not items:
        problem(problems, path, "must not be empty", items)
    answers = []
    for n, item in enumerate(items):
        answer = text_at(item, f"{path}[{n}]", problems)
        if answer is None:
            continue
        if len(answer) > MAX_ANSWER_LEN:
            what = f"must be at most {MAX_ANSWER_LEN} characters"
            problem(problems, f"{path}[{n}]", what, answer)
        answers.append(answer)
    return tuple(answers)


def _read_location(obj: object, path: str, problems: list[str]) -> Location | None:
    table = table_at(obj, path, problems)
    if table is None:
        return None
    check_keys(table, path, _LOCATION_KEYS, _LOCATION_KEYS, problems)
    lat = lon = radius = None
    if "lat" in table:
        lat = number_at(table["lat"], f"{path}.lat", problems, low=-90, high=90)
    if "lon" in table:
        lon = number_at(table["lon"], f"{path}.lon", problems, low=-180, high=180)
    if "radius_m" in table:
        radius = number_at(table["radius_m"], f"{path}.radius_m", problems, low=0, open_low=True)
    if lat is None or lon is None or radius is None:
        return None
    return Location(lat=lat, lon=lon, radius_m=radius)


def _read_hint(obj: object, path: str, points: int | None, problems: list[str]) -> Hint | None:
    table = table_at(obj, path, problems)
    if table is None:
        return None
    check_keys(table, path, _HINT_KEYS, ("text", "penalty"), problems)
    text = text_at(table["text"], f"{path}.text", problems) if "text" in table else None
    penalty = None
    if "penalty" in table:
        penalty = int_at(table["penalty"], f"{path}.penalty", problems, positive=False)
        if penalty is not None and points is not None and penalty > points:
            what = f"must not exceed the clue's points ({points})"
            problem(problems, f"{path}.penalty", what, penalty)
            penalty = None
    unlock_after_s: int | None = 0
    if (raw := optional(table, "unlock_after_s")) is not None:
        unlock_after_s = int_at(raw, f"{path}.unlock_after_s", problems, positive=False)
    if text is None or penalty is None or unlock_after_s is None:
        return None
    return Hint(text=text, penalty=penalty, unlock_after_s=unlock_after_s)


