"""Commands and queries as JSON: every type round trips; every wrong shape is a clear
``invalid_command`` naming the field and what it got. Parsing never raises."""

from __future__ import annotations

import json

import pytest

from thengine.domain.commands import (
    COMMAND_TYPES, QUERY_TYPES, AdjustScore, AppealEntry, CheckIn, CreateHunt, EndHunt, Entries, ExtendHunt,
    Flags, FreezeBoard, Hunt, JudgeEntry, SubmitEntry, UnfreezeBoard,
    Hunts, JoinHunt, Leaderboard, LeaveHunt, Player, Rejection, RemovePlayer, RequestHint,
    StartHunt, SubmitAnswer, parse_command, parse_query, to_json,
)
from thengine.domain.definition import parse_definition

from .play import T0, clue, hunt

DEFINITION = parse_definition(hunt(
    clue("a", hints=[{"text": "t", "penalty": 5, "unlock_after_s": 30}]),
    clue("bell", location={"lat": 48.2, "lon": 16.3, "radius_m": 25.5}),
    starts_at="2027-01-15T09:00:00+01:00", ends_at="2027-01-15T12:00:00Z",
    max_players=10, wrong_answer_cooldown_s=15, order="any",
))

COMMANDS = [
    CreateHunt(definition=DEFINITION),
    StartHunt(hunt_id="h"),
    EndHunt(hunt_id="h"),
    JoinHunt(hunt_id="h", player_id="p1"),
    JoinHunt(hunt_id="h", player_id="p1", team_id="red"),
    LeaveHunt(hunt_id="h", player_id="p1"),
    SubmitAnswer(hunt_id="h", player_id="p1", clue_id="a", answer="  The Fountain "),
    SubmitAnswer(hunt_id="h", player_id="p1", clue_id="a", answer=""),
    CheckIn(hunt_id="h", player_id="p1", clue_id="bell", lat=48.2001, lon=-16.5),
    CheckIn(hunt_id="h", player_id="p1", clue_id="bell", lat=-90.0, lon=180.0),
    CheckIn(hunt_id="h", player_id="p1", clue_id="bell", lat=1.5, lon=2.5, accuracy_m=12.5),
    SubmitEntry(hunt_id="h", player_id="p1", clue_id="photo", text="us at the gate"),
    SubmitEntry(hunt_id="h", player_id="p1", clue_id="photo",
                media={"url": "https://img.example/1.jpg", "sha256": "0" * 64, "content_type": "image/jpeg",
                       "bytes": 123456}),
    JudgeEntry(hunt_id="h", entry_id="e1", verdict="accept"),
    JudgeEntry(hunt_id="h", entry_id="e1", verdict="reject", reason="not the right gate"),
    AppealEntry(hunt_id="h", player_id="p1", entry_id="e1", message="it is, look at the sign"),
    FreezeBoard(hunt_id="h"),
    UnfreezeBoard(hunt_id="h"),
    RequestHint(hunt_id="h", player_id="p1", clue_id="a"),
    ExtendHunt(hunt_id="h", ends_at=T0 + 1),
    RemovePlayer(hunt_id="h", player_id="p1", reason="cheating"),
    AdjustScore(hunt_id="h", player_id="p1", delta=-5, reason="late"),
    AdjustScore(hunt_id="h", team_id="red", delta=7, reason="bonus"),
]
QUERIES = [
    Leaderboard(hunt_id="h", limit=3),
    Leaderboard(hunt_id="h"),
    Player(hunt_id="h", player_id="p1"),
    Hunt(hunt_id="h"),
    Hunts(),
    Flags(hunt_id="h"),
    Entries(hunt_id="h"),
    Entries(hunt_id="h", status="pending"),
]


def test_every_command_and_query_type_is_covered_here():
    assert {type(c).TYPE for c in COMMANDS} == set(COMMAND_TYPES)
    assert {type(q).TYPE for q in QUERIES} == set(QUERY_TYPES)


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c.TYPE)
def test_a_command_round_trips_through_json(command):
    obj = json.loads(json.dumps(to_json(command)))
    assert obj["type"] == command.TYPE
    assert parse_command(obj) == command


@pytest.mark.parametrize("query", QUERIES, ids=lambda q: q.TYPE)
def test_a_query_round_trips_through_json(query):
    obj = json.loads(json.dumps(to_json(query)))
    assert parse_query(obj) == query


def test_optional_fields_are_left_out_of_the_json():
    assert to_json(JoinHunt(hunt_id="h", player_id="p1")) == {
        "type": "join_hunt", "hunt_id": "h", "player_id": "p1"}


def test_an_optional_field_may_be_null():
    assert parse_command({"type": "join_hunt", "hunt_id": "h", "player_id": "p1",
                          "team_id": None}) == JoinHunt(hunt_id="h", player_id="p1")


def test_extend_hunt_carries_ends_at_as_rfc3339():
    obj = to_json(ExtendHunt(hunt_id="h", ends_at=T0 + 250))
    assert obj["ends_at"] == "2027-01-15T08:00:00.250Z"
    assert parse_command({**obj, "ends_at": "2027-01-15T09:00:00.250+01:00"}).ends_at == T0 + 250


def test_a_leaderboard_limit_defaults_to_10():
    assert parse_query({"type": "leaderboard", "hunt_id": "h"}) == Leaderboard(hunt_id="h", limit=10)


def test_hunts_takes_no_fields():
    assert parse_query({"type": "hunts"}) == Hunts()


def test_commands_are_not_queries_and_queries_are_not_commands():
    assert parse_query(to_json(StartHunt(hunt_id="h"))).code == "invalid_command"
    assert parse_command(to_json(Hunts())).code == "invalid_command"


# -- wrong shapes ----------------------------------------------------------------------

def rejected(obj, parse=parse_command) -> str:
    """The message of the ``invalid_command`` rejection `obj` gets."""
    result = parse(obj)
    assert isinstance(result, Rejection), result
    assert result.code == "invalid_command"
    return result.message


ANSWER = {"type": "submit_answer", "hunt_id": "h", "player_id": "p1", "clue_id": "a", "answer": "x"}
CHECK_IN = {"type": "check_in", "hunt_id": "h", "player_id": "p1", "clue_id": "a", "lat": 1.0, "lon": 2.0}
ADJUST = {"type": "adjust_score", "hunt_id": "h", "delta": 5, "reason": "r"}


@pytest.mark.parametrize("obj", [None, [], "join_hunt", 3, True, [{"type": "start_hunt"}]],
                         ids=repr)
def test_a_command_that_is_not_an_object_is_invalid(obj):
    message = rejected(obj)
    assert "JSON object" in message and repr(obj) in message


@pytest.mark.parametrize("type_", ["dance", None, 7, "", "Start_Hunt"])
def test_an_unknown_type_is_invalid_and_lists_the_known_ones(type_):
    message = rejected({"type": type_, "hunt_id": "h"})
    assert message.startswith("type: ") and repr(type_) in message
    assert "join_hunt" in message


def test_a_missing_type_is_invalid():
    assert rejected({"hunt_id": "h"}).startswith("type: ")


def test_a_missing_field_is_named():
    message = rejected({k: v for k, v in ANSWER.items() if k != "clue_id"})
    assert message == "clue_id: required for submit_answer, got nothing"


def test_an_unknown_field_is_named():
    assert rejected({**ANSWER, "points": 100}) == "points: unknown field for submit_answer"


@pytest.mark.parametrize("field,value", [
    ("hunt_id", 5), ("player_id", None), ("clue_id", ["a"]), ("answer", 42), ("answer", None),
])
def test_a_field_of_the_wrong_type_is_named_with_what_it_got(field, value):
    message = rejected({**ANSWER, field: value})
    assert message.startswith(f"{field}: ")
    assert repr(value) in message


@pytest.mark.parametrize("bad_id", ["", "x" * 65, "has space", "naïve", "a/b", "p1\n"])
def test_a_bad_id_is_invalid(bad_id):
    message = rejected({**ANSWER, "player_id": bad_id})
    assert message.startswith("player_id: must be an id")


def test_an_id_of_64_characters_is_fine():
    assert parse_command({**ANSWER, "player_id": "x" * 64}).player_id == "x" * 64


def test_an_answer_longer_than_256_characters_is_invalid():
    assert parse_command({**ANSWER, "answer": "x" * 256}).answer == "x" * 256
    message = rejected({**ANSWER, "answer": "x" * 257})
    assert message == "answer: must be at most 256 characters, got 257"


@pytest.mark.parametrize("field,value", [("lat", 90.5), ("lat", -91), ("lon", 180.01), ("lon", -200)])
def test_a_coordinate_out_of_range_is_invalid(field, value):
    message = rejected({**CHECK_IN, field: value})
    assert message.startswith(f"{field}: must be between") and repr(value) in message


@pytest.mark.parametrize("value", [float("nan"), float("inf"), "48.2", None, True])
def test_a_coordinate_must_be_a_finite_number(value):
    assert rejected({**CHECK_IN, "lat": value}).startswith("lat: must be a number")


def test_an_integer_coordinate_is_fine():
    assert parse_command({**CHECK_IN, "lat": 48}).lat == 48.0


@pytest.mark.parametrize("value", [True, False])
def test_a_bool_is_not_an_integer(value):
    message = rejected({**ADJUST, "player_id": "p1", "delta": value})
    assert message == f"delta: must be an integer, got {value!r}"
    assert rejected({"type": "leaderboard", "hunt_id": "h", "limit": value}, parse_query
                    ).startswith("limit: must be an integer")


def test_a_float_is_not_an_integer():
    assert rejected({**ADJUST, "player_id": "p1", "delta": 1.0}).startswith("delta: must be an integer")


@pytest.mark.parametrize("limit", [0, -1, 1001])
def test_a_leaderboard_limit_out_of_range_is_invalid(limit):
    assert rejected({"type": "leaderboard", "hunt_id": "h", "limit": limit}, parse_query
                    ).startswith("limit: must be between 1 and 1000")


def test_a_too_long_reason_is_invalid():
    message = rejected({"type": "remove_player", "hunt_id": "h", "player_id": "p1", "reason": "r" * 1001})
    assert message.startswith("reason: must be at most 1000 characters")


def test_adjust_score_with_both_player_and_team_is_invalid():
    message = rejected({**ADJUST, "player_id": "p1", "team_id": "red"})
    assert "player_id" in message and "team_id" in message


def test_adjust_score_with_neither_player_nor_team_is_invalid():
    message = rejected(ADJUST)
    assert "player_id" in message and "team_id" in message


@pytest.mark.parametrize("value", ["2027-01-15T08:00:00", "tomorrow", 1_800_000_000_000, None,
                                   "2027-02-30T08:00:00Z"])
def test_extend_hunt_needs_an_rfc3339_datetime_with_an_offset(value):
    message = rejected({"type": "extend_hunt", "hunt_id": "h", "ends_at": value})
    assert message.startswith("ends_at: ")


def test_a_bad_definition_lists_its_problems():
    definition = hunt(clue("a", points=-1), clue("a"))
    message = rejected({"type": "create_hunt", "definition": definition})
    assert message.startswith("definition: ")
    assert "clues[0].points" in message and "duplicate" in message


def test_a_definition_that_is_not_an_object_is_invalid():
    assert rejected({"type": "create_hunt", "definition": "old-town.toml"}).startswith("definition: ")


def test_create_hunt_takes_its_hunt_id_from_the_definition():
    assert parse_command({"type": "create_hunt", "definition": hunt()}).hunt_id == "h"
    assert rejected({"type": "create_hunt", "hunt_id": "h", "definition": hunt()}
                    ) == "hunt_id: unknown field for create_hunt"


def test_a_long_bad_value_is_shortened_in_the_message():
    message = rejected({**ANSWER, "hunt_id": "x" * 10_000})
    assert len(message) < 200


@pytest.mark.parametrize("obj", [
    {"type": "join_hunt", "hunt_id": {"nested": [1, 2]}, "player_id": "p"},
    {"type": "check_in", "hunt_id": "h", "player_id": "p", "clue_id": "c", "lat": 10**400, "lon": 0},
    {"type": "create_hunt", "definition": {"id": "h", "title": "t", "clues": [None, 1, "x"]}},
    {1: 2, "type": "start_hunt", "hunt_id": "h"},
])
def test_parsing_odd_values_never_raises(obj):
    assert isinstance(parse_command(obj), Rejection)


def test_a_huge_integer_is_out_of_range_with_a_short_message():
    message = rejected({**CHECK_IN, "lat": 10**400})
    assert message.startswith("lat: must be between -90 and 90") and len(message) < 200
    message = rejected({**ADJUST, "player_id": "p1", "delta": 10**400})
    assert message.startswith("delta: must be between") and len(message) < 200
