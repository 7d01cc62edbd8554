"""Hunt definitions: what a valid hunt looks like, and how each mistake is reported."""

from __future__ import annotations

import copy
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from thengine.domain.definition import (
    MAX_ANSWER_LEN,
    MAX_CLUES,
    MAX_DEFINITION_BYTES,
    HuntDefinition,
    format_ts,
    normalize_answer,
    parse_definition,
    parse_hunt_toml,
    parse_ts,
)
from thengine.domain.fields import ID_PATTERN
from thengine.errors import DefinitionError

EXAMPLES = Path(__file__).parents[2] / "examples" / "hunts"
EXAMPLE_FILES = sorted(EXAMPLES.glob("*.toml"))


def minimal() -> dict[str, Any]:
    """A small valid definition as JSON; tests spoil one field at a time."""
    return {
        "id": "h1",
        "title": "Test hunt",
        "clues": [
            {
                "id": "c0",
                "prompt": "Say hello",
                "points": 100,
                "answers": ["hello"],
                "hints": [{"text": "Greet", "penalty": 10}],
            },
            {
                "id": "c1",
                "prompt": "Come here",
                "points": 50,
                "location": {"lat": 48.2, "lon": 16.37, "radius_m": 30},
            },
        ],
    }


def problems_of(obj: object) -> list[str]:
    with pytest.raises(DefinitionError) as info:
        parse_definition(obj)
    return info.value.problems


def problems_with(change: dict[str, Any], path: tuple[str | int, ...] = ()) -> list[str]:
    """Problems of `minimal()` with `change` merged into the table at `path`."""
    definition = minimal()
    table: Any = definition
    for step in path:
        table = table[step]
    table.update(change)
    return problems_of(definition)


# --- examples ----------------------------------------------------------------------


def test_the_three_documented_examples_exist() -> None:
    names = {path.name for path in EXAMPLE_FILES}
    assert {"old-town.toml", "city-sprint.toml", "team-relay.toml"} <= names


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.name)
def test_every_example_hunt_loads(path: Path) -> None:
    hunt = parse_hunt_toml(path.read_text(encoding="utf-8"))
    assert hunt.id == path.stem or hunt.id.startswith(path.stem)


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.name)
def test_every_example_survives_a_json_round_trip(path: Path) -> None:
    hunt = parse_hunt_toml(path.read_text(encoding="utf-8"))
    assert parse_definition(json.loads(json.dumps(hunt.to_json()))) == hunt


def test_old_town_is_a_sequential_hunt_with_every_kind_of_clue_scoring_option_and_check_in_rule() -> None:
    hunt = parse_hunt_toml((EXAMPLES / "old-town.toml").read_text(encoding="utf-8"))
    assert hunt.order == "sequential"
    assert [clue.by for clue in hunt.clues] == ["answer"] * 4 + ["judged", "check_in", "check_in"]
    assert any(clue.hints for clue in hunt.clues)
    options = hunt.options
    assert options.first_solver_bonus and options.decay and options.wrong_answer_penalty and options.time_bonus
    assert options.max_accuracy_m and options.max_speed_kmh


def test_city_sprint_mixes_check_ins_and_answers_in_any_order() -> None:
    hunt = parse_hunt_toml((EXAMPLES / "city-sprint.toml").read_text(encoding="utf-8"))
    assert hunt.order == "any"
    assert any(clue.location is not None for clue in hunt.clues)
    assert any(clue.answers for clue in hunt.clues)


def test_team_relay_is_scheduled_limited_and_has_timed_hints() -> None:
    hunt = parse_hunt_toml((EXAMPLES / "team-relay.toml").read_text(encoding="utf-8"))
    assert hunt.starts_at == parse_ts("2027-05-15T07:00:00Z", "t", [])
    assert hunt.ends_at is not None and hunt.ends_at > hunt.starts_at
    assert hunt.max_players is not None and hunt.wrong_answer_cooldown_s is not None
    assert any(hint.unlock_after_s > 0 for clue in hunt.clues for hint in clue.hints)


# --- what a valid definition gives --------------------------------------------------


def test_optional_fields_take_their_defaults() -> None:
    hunt = parse_definition(minimal())
    assert hunt.order == "sequential"
    assert (hunt.starts_at, hunt.ends_at, hunt.max_players) == (None, None, None)
    assert hunt.wrong_answer_cooldown_s is None
    assert hunt.clues[0].hints[0].unlock_after_s == 0
    assert hunt.clues[1].hints == ()
    assert hunt.clues[0].title is None
    assert hunt.distance_hint == "none"
    assert "distance_hint" not in hunt.to_json()  # old hunt_created events stay as they were


def test_clue_is_found_by_id_with_its_position() -> None:
    hunt = parse_definition(minimal())
    clue = hunt.clue("c1")
    assert clue is not None and clue.prompt == "Come here"
    assert hunt.clue_position("c1") == 1
    assert hunt.clue("nope") is None and hunt.clue_position("nope") is None


def test_answers_are_kept_as_written_and_normalized_for_matching() -> None:
    definition = minimal()
    definition["clues"][0]["answers"] = ["The  Fountain ", "ＦＯＵＮＴＡＩＮ"]
    clue = parse_definition(definition).clues[0]
    assert clue.answers == ("The  Fountain ", "ＦＯＵＮＴＡＩＮ")
    assert clue.normalized_answers == {"the fountain", "fountain"}


def test_location_numbers_become_floats() -> None:
    location = parse_definition(minimal()).clues[1].location
    assert location is not None
    assert (location.lat, location.lon, location.radius_m) == (48.2, 16.37, 30.0)
    assert isinstance(location.radius_m, float)


def test_a_toml_datetime_with_offset_becomes_utc_milliseconds() -> None:
    text = """
id = "h"
title = "T"
starts_at = 2026-12-01T11:00:00.250+01:00
[[clues]]
id = "c"
prompt = "p"
points = 1
answers = ["a"]
"""
    hunt = parse_hunt_toml(text)
    expected = datetime(2026, 12, 1, 10, 0, 0, 250_000, tzinfo=timezone.utc)
    assert hunt.starts_at == int(expected.timestamp() * 1000)


def test_an_id_of_64_allowed_characters_is_valid() -> None:
    hunt = parse_definition({**minimal(), "id": "a" * 60 + "_-.:"})
    assert len(hunt.id) == 64


# --- JSON form --------------------------------------------------------------------------


def test_to_json_uses_the_file_field_names_and_omits_unset_fields() -> None:
    data = parse_definition(minimal()).to_json()
    assert data == {
        "id": "h1",
        "title": "Test hunt",
        "order": "sequential",
        "clues": [
            {
                "id": "c0",
                "prompt": "Say hello",
                "points": 100,
                "answers": ["hello"],
                "hints": [{"text": "Greet", "penalty": 10, "unlock_after_s": 0}],
            },
            {
                "id": "c1",
                "prompt": "Come here",
                "points": 50,
                "location": {"lat": 48.2, "lon": 16.37, "radius_m": 30.0},
            },
        ],
    }


def test_a_full_definition_round_trips_through_json() -> None:
    definition = minimal()
    definition.update(
        order="any",
        starts_at="2026-12-01T10:00:00.123+02:00",
        ends_at="2026-12-01T12:00:00Z",
        max_players=5000,
        wrong_answer_cooldown_s=10,
    )
    definition["clues"][0]["title"] = "Greeting"
    hunt = parse_definition(definition)
    data = hunt.to_json()
    assert data["starts_at"] == "2026-12-01T08:00:00.123Z"
    assert parse_definition(json.loads(json.dumps(data))) == hunt


def test_format_ts_writes_milliseconds_only_when_not_zero() -> None:
    assert format_ts(0) == "1970-01-01T00:00:00Z"
    assert format_ts(1_796_119_200_000) == "2026-12-01T10:00:00Z"
    assert format_ts(1_796_119_200_007) == "2026-12-01T10:00:00.007Z"
    assert format_ts(-1) == "1969-12-31T23:59:59.999Z"


def test_parse_ts_reads_what_format_ts_writes() -> None:
    for ms in (0, -1, 1_796_119_200_007, -62_135_596_800_000):
        assert parse_ts(format_ts(ms), "t", []) == ms


# --- validation: each rule ---------------------------------------------------------------


def test_required_fields_are_reported_missing() -> None:
    assert problems_of({"order": "any"}) == ["id: required", "title: required", "clues: required"]


def test_clue_required_fields_are_reported_missing() -> None:
    problems = problems_of({"id": "h", "title": "T", "clues": [{"answers": ["a"]}]})
    assert problems == [
        "clues[0].id: required",
        "clues[0].prompt: required",
        "clues[0].points: required",
    ]


def test_a_non_object_definition_is_refused() -> None:
    assert problems_of(["id", "h"]) == ["definition: must be an object, got ['id', 'h']"]


def test_title_must_not_be_blank() -> None:
    assert problems_with({"title": "  "}) == ["title: must not be blank, got '  '"]


def test_title_must_be_a_string() -> None:
    assert problems_with({"title": 7}) == ["title: must be a string, got 7"]


def test_clues_must_not_be_empty() -> None:
    assert problems_with({"clues": []}) == ["clues: must not be empty, got []"]


def test_clues_must_be_a_list() -> None:
    assert problems_with({"clues": "c0"}) == ["clues: must be a list, got 'c0'"]


def test_too_many_clues_are_refused() -> None:
    clue = {"prompt": "p", "points": 1, "answers": ["a"]}
    clues = [{"id": f"c{n}", **clue} for n in range(MAX_CLUES + 1)]
    assert problems_with({"clues": clues}) == ["clues: must have at most 500 clues, got 501"]


def test_order_must_be_sequential_or_any() -> None:
    assert problems_with({"order": "random"}) == [
        "order: must be 'sequential' or 'any', got 'random'"
    ]


def test_distance_hint_is_none_or_bands() -> None:
    assert parse_definition({**minimal(), "distance_hint": "bands"}).distance_hint == "bands"
    assert problems_with({"distance_hint": "exact"}) == [
        "distance_hint: must be 'none' or 'bands', got 'exact'"
    ]


def test_distance_bands_survive_a_json_round_trip() -> None:
    hunt = parse_definition({**minimal(), "distance_hint": "bands"})
    assert parse_definition(hunt.to_json()) == hunt


@pytest.mark.parametrize("bad_id", ["", "a b", "a/b", "é", "a" * 65, "x\n"])
def test_hunt_id_must_match_the_id_pattern(bad_id: str) -> None:
    assert problems_with({"id": bad_id}) == [
        f"id: must be 1-64 letters, digits, '_', '-', '.' or ':', got {bad_id!r}"
    ]


def test_clue_id_must_match_the_id_pattern() -> None:
    assert problems_with({"id": "a b"}, ("clues", 1)) == [
        "clues[1].id: must be 1-64 letters, digits, '_', '-', '.' or ':', got 'a b'"
    ]


def test_clue_ids_must_be_unique() -> None:
    assert problems_with({"id": "c0"}, ("clues", 1)) == ["clues[1].id: duplicate clue id 'c0'"]


def test_points_must_be_positive() -> None:
    assert problems_with({"points": 0}, ("clues", 1)) == ["clues[1].points: must be > 0, got 0"]


def test_points_must_be_an_integer_not_a_string() -> None:
    assert problems_with({"points": "10"}, ("clues", 1)) == [
        "clues[1].points: must be an integer, got '10'"
    ]


def test_points_must_be_an_integer_not_a_bool() -> None:
    assert problems_with({"points": True}, ("clues", 1)) == [
        "clues[1].points: must be an integer, got True"
    ]


def test_points_must_be_an_integer_not_a_float() -> None:
    assert problems_with({"points": 10.0}, ("clues", 1)) == [
        "clues[1].points: must be an integer, got 10.0"
    ]


def test_a_clue_may_not_have_both_answers_and_location() -> None:
    assert problems_with({"answers": ["here"]}, ("clues", 1)) == [
        "clues[1]: must have answers or location, got both"
    ]


def test_a_clue_needs_answers_or_location() -> None:
    definition = minimal()
    del definition["clues"][1]["location"]
    assert problems_of(definition) == ["clues[1]: must have answers or location, got neither"]


def test_answers_must_not_be_empty() -> None:
    assert problems_with({"answers": []}, ("clues", 0)) == [
        "clues[0].answers: must not be empty, got []"
    ]


def test_each_answer_must_be_a_non_blank_string() -> None:
    assert problems_with({"answers": ["ok", " ", 3]}, ("clues", 0)) == [
        "clues[0].answers[1]: must not be blank, got ' '",
        "clues[0].answers[2]: must be a string, got 3",
    ]


def test_an_answer_may_be_as_long_as_the_limit() -> None:
    definition = minimal()
    definition["clues"][0]["answers"] = ["x" * MAX_ANSWER_LEN]
    assert parse_definition(definition).clues[0].answers == ("x" * MAX_ANSWER_LEN,)


def test_an_answer_may_not_be_longer_than_the_limit() -> None:
    problems = problems_with({"answers": ["x" * (MAX_ANSWER_LEN + 1)]}, ("clues", 0))
    assert len(problems) == 1
    assert problems[0].startswith("clues[0].answers[0]: must be at most 256 characters, got 'xxx")


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("lat", 90.5, "must be <= 90, got 90.5"),
        ("lat", -91, "must be >= -90, got -91"),
        ("lon", 180.01, "must be <= 180, got 180.01"),
        ("lon", -181, "must be >= -180, got -181"),
        ("radius_m", 0, "must be > 0, got 0"),
        ("radius_m", -3.5, "must be > 0, got -3.5"),
        ("radius_m", float("inf"), "must be a finite number, got inf"),
        ("lat", float("nan"), "must be a finite number, got nan"),
        ("lat", "48.2", "must be a number, got '48.2'"),
        ("lon", False, "must be a number, got False"),
    ],
)
def test_location_values_are_checked(field: str, value: object, problem: str) -> None:
    assert problems_with({field: value}, ("clues", 1, "location")) == [
        f"clues[1].location.{field}: {problem}"
    ]


def test_location_needs_lat_lon_and_radius() -> None:
    assert problems_with({"location": {"lat": 1}}, ("clues", 1)) == [
        "clues[1].location.lon: required",
        "clues[1].location.radius_m: required",
    ]


def test_location_must_be_an_object() -> None:
    assert problems_with({"location": [48.2, 16.37]}, ("clues", 1)) == [
        "clues[1].location: must be an object, got [48.2, 16.37]"
    ]


def test_hint_penalty_must_not_be_negative() -> None:
    assert problems_with({"penalty": -5}, ("clues", 0, "hints", 0)) == [
        "clues[0].hints[0].penalty: must be >= 0, got -5"
    ]


def test_hint_penalty_must_not_exceed_the_clue_points() -> None:
    assert problems_with({"penalty": 101}, ("clues", 0, "hints", 0)) == [
        "clues[0].hints[0].penalty: must not exceed the clue's points (100), got 101"
    ]


def test_hint_penalty_may_equal_the_clue_points() -> None:
    definition = minimal()
    definition["clues"][0]["hints"][0]["penalty"] = 100
    assert parse_definition(definition).clues[0].hints[0].penalty == 100


def test_hint_text_must_be_a_non_blank_string() -> None:
    assert problems_with({"text": ""}, ("clues", 0, "hints", 0)) == [
        "clues[0].hints[0].text: must not be blank, got ''"
    ]


def test_hint_unlock_after_must_not_be_negative() -> None:
    assert problems_with({"unlock_after_s": -1}, ("clues", 0, "hints", 0)) == [
        "clues[0].hints[0].unlock_after_s: must be >= 0, got -1"
    ]


def test_hints_must_be_a_list_of_objects() -> None:
    assert problems_with({"hints": ["a hint"]}, ("clues", 0)) == [
        "clues[0].hints[0]: must be an object, got 'a hint'"
    ]


@pytest.mark.parametrize("field", ["max_players", "wrong_answer_cooldown_s"])
def test_limits_must_be_positive_integers(field: str) -> None:
    assert problems_with({field: 0}) == [f"{field}: must be > 0, got 0"]
    assert problems_with({field: 1.5}) == [f"{field}: must be an integer, got 1.5"]


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        ((), "colour: unknown key"),
        (("clues", 0), "clues[0].colour: unknown key"),
        (("clues", 0, "hints", 0), "clues[0].hints[0].colour: unknown key"),
        (("clues", 1, "location"), "clues[1].location.colour: unknown key"),
    ],
)
def test_unknown_keys_are_refused_at_every_level(path: tuple[str | int, ...], problem: str) -> None:
    assert problems_with({"colour": "red"}, path) == [problem]


def test_ends_at_must_be_after_starts_at() -> None:
    times = {"starts_at": "2026-12-01T12:00:00Z", "ends_at": "2026-12-01T13:00:00+01:00"}
    assert problems_with(times) == [
        "ends_at: must be after starts_at, got '2026-12-01T13:00:00+01:00'"
    ]


def test_a_datetime_string_without_offset_is_refused() -> None:
    assert problems_with({"starts_at": "2026-12-01T10:00:00"}) == [
        "starts_at: must be an RFC 3339 datetime with an offset, got '2026-12-01T10:00:00'"
    ]


def test_a_naive_toml_datetime_is_refused() -> None:
    text = 'id = "h"\ntitle = "T"\nends_at = 2026-12-01T10:00:00\n'
    text += '[[clues]]\nid = "c"\nprompt = "p"\npoints = 1\nanswers = ["a"]\n'
    with pytest.raises(DefinitionError) as info:
        parse_hunt_toml(text)
    assert info.value.problems == [
        "ends_at: must be an RFC 3339 datetime with an offset,"
        " got datetime.datetime(2026, 12, 1, 10, 0)"
    ]


@pytest.mark.parametrize(
    "value",
    ["2026-12-01", "2026-02-30T10:00:00Z", "2026-12-01T10:00:00+24:00", "20261201T100000Z",
     "0001-01-01T00:00:00+01:00", 1_796_119_200_000, None],
)
def test_values_that_are_not_rfc_3339_datetimes_are_refused(value: object) -> None:
    problems: list[str] = []
    assert parse_ts(value, "starts_at", problems) is None
    assert problems == [f"starts_at: must be an RFC 3339 datetime with an offset, got {value!r}"]


def test_an_aware_datetime_is_accepted() -> None:
    moment = datetime(2026, 12, 1, 11, tzinfo=timezone(timedelta(hours=1)))
    assert parse_ts(moment, "t", []) == 1_796_119_200_000


def test_all_problems_are_reported_at_once() -> None:
    definition = minimal()
    definition["title"] = ""
    definition["order"] = "sometimes"
    definition["clues"][0]["points"] = -1
    definition["clues"][1]["location"]["lat"] = 100
    definition["clues"][1]["id"] = "c0"
    assert problems_of(definition) == [
        "title: must not be blank, got ''",
        "order: must be 'sequential' or 'any', got 'sometimes'",
        "clues[0].points: must be > 0, got -1",
        "clues[1].id: duplicate clue id 'c0'",
        "clues[1].location.lat: must be <= 90, got 100",
    ]


def test_the_error_message_joins_every_problem() -> None:
    with pytest.raises(DefinitionError, match="id: required; title: required"):
        parse_definition({"clues": minimal()["clues"]})


# --- TOML text -----------------------------------------------------------------------------


def test_toml_syntax_errors_are_reported_as_one_problem() -> None:
    with pytest.raises(DefinitionError) as info:
        parse_hunt_toml('id = "h\n')
    assert len(info.value.problems) == 1
    assert info.value.problems[0].startswith("toml: ")


def test_an_oversized_hunt_file_is_refused() -> None:
    text = "# " + "x" * MAX_DEFINITION_BYTES + "\n"
    with pytest.raises(DefinitionError, match="must be at most 1048576 bytes"):
        parse_hunt_toml(text)


def test_an_oversized_json_definition_is_refused() -> None:
    definition = minimal()
    definition["clues"][0]["prompt"] = "x" * MAX_DEFINITION_BYTES
    with pytest.raises(DefinitionError, match="must be at most 1048576 bytes as JSON"):
        parse_definition(definition)


def test_deeply_nested_toml_is_refused_not_crashed() -> None:
    with pytest.raises(DefinitionError):
        parse_hunt_toml("a = " + "[" * 100_000)


# --- normalize_answer -------------------------------------------------------------------------


def test_normalize_answer_folds_fullwidth_letters_with_nfkc() -> None:
    assert normalize_answer("ＦＯＵＮＴＡＩＮ") == "fountain"


def test_normalize_answer_casefolds_sharp_s() -> None:
    assert normalize_answer("STRASSE") == normalize_answer("straße") == "strasse"


def test_normalize_answer_trims_and_collapses_whitespace() -> None:
    assert normalize_answer("  the \t\n  fountain\u3000") == "the fountain"


def test_normalize_answer_composes_accents() -> None:
    assert normalize_answer("Cafe\u0301") == normalize_answer("CAFÉ") == "café"


# --- garbage in, DefinitionError out ------------------------------------------------------------


@pytest.mark.parametrize(
    "garbage",
    [
        None,
        "old-town",
        42,
        [],
        [minimal()],
        {},
        {"id": None, "title": None, "clues": None},
        {"id": ["h"], "title": {"t": 1}, "clues": {"c0": {}}},
        {**minimal(), "clues": [None, 1, "c", [], {}]},
        {**minimal(), "clues": [{"id": {}, "prompt": [], "points": None, "hints": {}}]},
        {**minimal(), "clues": [{"id": "c", "prompt": "p", "points": 1, "location": "here"}]},
        {**minimal(), "clues": [{"id": "c", "prompt": "p", "points": 1, "answers": [[]],
                                 "hints": [None, {"penalty": "x", "unlock_after_s": []}]}]},
        {**minimal(), "starts_at": {}, "ends_at": [], "max_players": 10**400},
        {1: "one", (2,): "two"},
    ],
)
def test_garbage_gives_a_definition_error_not_a_crash(garbage: object) -> None:
    with pytest.raises(DefinitionError) as info:
        parse_definition(garbage)
    assert info.value.problems


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
texts = st.text(min_size=1, max_size=12).filter(str.strip)
offsets = st.sampled_from([timedelta(0), timedelta(hours=2), timedelta(hours=-5, minutes=-30)])
instants = st.builds(
    lambda naive, offset: naive.replace(tzinfo=timezone(offset)),
    st.datetimes(min_value=datetime(1950, 1, 1), max_value=datetime(2200, 1, 1)),
    offsets,
)


@st.composite
def valid_clues(draw: st.DrawFn, clue_id: str) -> dict[str, Any]:
    points = draw(st.integers(1, 1000))
    clue: dict[str, Any] = {"id": clue_id, "prompt": draw(texts), "points": points}
    if draw(st.booleans()):
        clue["answers"] = draw(st.lists(texts, min_size=1, max_size=3))
    else:
        clue["location"] = {
            "lat": draw(st.floats(-90, 90) | st.integers(-90, 90)),
            "lon": draw(st.floats(-180, 180)),
            "radius_m": draw(st.floats(0.5, 1e6) | st.integers(1, 10_000)),
        }
    hint = st.fixed_dictionaries(
        {"text": texts, "penalty": st.integers(0, points)},
        optional={"unlock_after_s": st.integers(0, 86_400)},
    )
    if hints := draw(st.lists(hint, max_size=2)):
        clue["hints"] = hints
    if draw(st.booleans()):
        clue["title"] = draw(texts)
    return clue


@st.composite
def valid_hunts(draw: st.DrawFn) -> dict[str, Any]:
    """Valid definitions, with datetimes as TOML gives them or as JSON strings."""
    clue_ids = draw(st.lists(st.from_regex(ID_PATTERN, fullmatch=True), min_size=1,
                             max_size=4, unique=True))
    hunt: dict[str, Any] = {
        "id": draw(st.from_regex(ID_PATTERN, fullmatch=True)),
        "title": draw(texts),
        "clues": [draw(valid_clues(clue_id)) for clue_id in clue_ids],
    }
    if draw(st.booleans()):
        hunt["order"] = draw(st.sampled_from(["sequential", "any"]))
    if draw(st.booleans()):
        start = draw(instants)
        end = start + draw(st.timedeltas(timedelta(milliseconds=1), timedelta(days=30)))
        as_text = draw(st.booleans())
        hunt["starts_at"] = start.isoformat() if as_text else start
        hunt["ends_at"] = end.isoformat() if as_text else end
    for limit in ("max_players", "wrong_answer_cooldown_s"):
        if draw(st.booleans()):
            hunt[limit] = draw(st.integers(1, 100_000))
    return hunt


@st.composite
def spoiled_hunts(draw: st.DrawFn) -> dict[str, Any]:
    """A valid definition with one value, somewhere inside, replaced by junk."""
    hunt = draw(valid_hunts())
    table: Any = hunt
    while True:
        key = draw(st.sampled_from(sorted(table, key=str)))
        inner = table[key]
        if isinstance(inner, list) and inner:
            inner = inner[draw(st.integers(0, len(inner) - 1))]
        if not isinstance(inner, dict) or draw(st.booleans()):
            table[key] = draw(json_values)
            return hunt
        table = inner


@settings(max_examples=300, deadline=None)
@given(valid_hunts())
def test_every_valid_definition_round_trips_through_json(definition: dict[str, Any]) -> None:
    hunt = parse_definition(definition)
    assert parse_definition(json.loads(json.dumps(hunt.to_json()))) == hunt


@settings(max_examples=300, deadline=None)
@given(st.one_of(json_values, spoiled_hunts()))
def test_random_json_like_input_gives_a_definition_or_a_definition_error(value: object) -> None:
    try:
        hunt = parse_definition(copy.deepcopy(value))
    except DefinitionError as exc:
        assert exc.problems
    else:
        assert isinstance(hunt, HuntDefinition)
