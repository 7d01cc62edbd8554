"""The game rules of DESIGN.md "The game", one behaviour per test, through decide/evolve."""

from __future__ import annotations

import re

import attrs
import pytest

from thengine.domain.versions import RULES_VERSION
from thengine.domain.definition import parse_definition
from thengine.domain.events import StoredEvent
from thengine.domain.geo import distance_m
from thengine.domain.rules import evolve
from thengine.domain.timers import END, START, decide_timer, timers_for

from .play import (
    HUNT, T0, AdjustScore, CheckIn, CreateHunt, EndHunt, ExtendHunt, Game, JoinHunt,
    LeaveHunt, RemovePlayer, RequestHint, StartHunt, SubmitAnswer, clue, hunt, ts,
)

BELL = {"lat": 48.2082, "lon": 16.3738, "radius_m": 30}
HINTS = [
    {"text": "first hint", "penalty": 10},
    {"text": "second hint", "penalty": 25, "unlock_after_s": 60},
]


def playing(definition: dict | None = None, *players: str) -> Game:
    """A started hunt with `players` (default ``p1``) joined solo."""
    game = Game(definition or hunt())
    for player in players or ("p1",):
        game.ok(JoinHunt(hunt_id=HUNT, player_id=player))
    return game


def only(events: list, type_: str) -> dict:
    matching = [e.data for e in events if e.type == type_]
    assert len(matching) == 1, events
    return matching[0]


# -- creating a hunt -----------------------------------------------------------------

def test_create_hunt_records_the_definition_and_waits_in_the_lobby():
    game = Game()
    definition = parse_definition(hunt())
    events = game.ok(CreateHunt(definition=definition))
    assert game.types(events) == ["hunt_created"]
    assert events[0].data == {"definition": definition.to_json(), "rules_version": RULES_VERSION}
    assert game.state.status == "created"
    assert game.state.version == 1


def test_creating_a_hunt_that_exists_is_hunt_exists():
    game = Game(hunt(), start=False)
    game.reject(CreateHunt(definition=parse_definition(hunt())), "hunt_exists")


def test_creating_a_hunt_that_ends_in_the_past_is_invalid_command():
    game = Game()
    rejection = game.reject(CreateHunt(definition=parse_definition(hunt(ends_at=ts(T0 - 1000)))),
                            "invalid_command")
    assert "ends_at" in rejection.message


def test_creating_a_hunt_that_ends_now_is_invalid_command():
    game = Game()
    game.reject(CreateHunt(definition=parse_definition(hunt(ends_at=ts(T0)))), "invalid_command")


def test_a_hunt_under_one_mib_of_utf8_may_be_created_whatever_its_script():
    # 200,000 "é" are 400 kB of UTF-8 but 1.2 MB as ASCII-escaped JSON.
    definition = parse_definition(hunt(clue("a", prompt="é" * 200_000), clue("b")))
    game = Game()
    assert game.types(game.ok(CreateHunt(definition=definition))) == ["hunt_created"]


def test_a_hunt_over_one_mib_is_invalid_command_even_when_built_in_python():
    small = parse_definition(hunt(clue("a"), clue("b")))
    huge = attrs.evolve(small, clues=[attrs.evolve(small.clues[0], prompt="x" * 1_100_000), small.clues[1]])
    rejection = Game().reject(CreateHunt(definition=huge), "invalid_command")
    assert "1048576" in rejection.message


@pytest.mark.parametrize("command", [
    StartHunt(hunt_id=HUNT),
    EndHunt(hunt_id=HUNT),
    ExtendHunt(hunt_id=HUNT, ends_at=T0 + 1000),
    JoinHunt(hunt_id=HUNT, player_id="p1"),
    LeaveHunt(hunt_id=HUNT, player_id="p1"),
    SubmitAnswer(hunt_id=HUNT, player_id="p1", clue_id="a", answer="a"),
    CheckIn(hunt_id=HUNT, player_id="p1", clue_id="a", lat=0, lon=0),
    RequestHint(hunt_id=HUNT, player_id="p1", clue_id="a"),
    RemovePlayer(hunt_id=HUNT, player_id="p1", reason="x"),
    AdjustScore(hunt_id=HUNT, player_id="p1", delta=5, reason="x"),
], ids=lambda c: c.TYPE)
def test_commands_for_a_hunt_that_does_not_exist_are_unknown_hunt(command):
    Game().reject(command, "unknown_hunt")


# -- lifecycle: created -> running -> ended -----------------------------------------

def test_start_hunt_makes_a_created_hunt_running():
    game = Game(hunt(), start=False)
    events = game.ok(StartHunt(hunt_id=HUNT))
    assert [(e.type, e.data) for e in events] == [("hunt_started", {"by": "command"})]
    assert game.state.status == "running"
    assert game.state.started_ts == T0


def test_starting_a_running_hunt_is_invalid_command():
    playing().reject(StartHunt(hunt_id=HUNT), "invalid_command")


def test_end_hunt_ends_a_running_hunt():
    game = playing()
    events = game.ok(EndHunt(hunt_id=HUNT))
    assert [(e.type, e.data) for e in events] == [("hunt_ended", {"by": "command"})]
    assert game.state.status == "ended"


def test_end_hunt_may_cancel_a_hunt_still_in_the_lobby():
    game = Game(hunt(), start=False)
    game.ok(EndHunt(hunt_id=HUNT))
    assert game.state.status == "ended"


def test_ending_an_ended_hunt_is_hunt_not_running():
    game = playing()
    game.ok(EndHunt(hunt_id=HUNT))
    game.reject(EndHunt(hunt_id=HUNT), "hunt_not_running")


def test_an_ended_hunt_cannot_start_again():
    game = Game(hunt(), start=False)
    game.ok(EndHunt(hunt_id=HUNT))
    game.reject(StartHunt(hunt_id=HUNT), "hunt_not_running")


def test_players_may_join_in_the_lobby():
    game = Game(hunt(), start=False)
    events = game.ok(JoinHunt(hunt_id=HUNT, player_id="p1"))
    assert [(e.type, e.data) for e in events] == [
        ("player_joined", {"player_id": "p1", "rejoined": False})]


def test_players_may_join_while_the_hunt_runs():
    game = playing()
    assert game.state.players["p1"].active


def test_joining_an_ended_hunt_is_hunt_not_running():
    game = playing()
    game.ok(EndHunt(hunt_id=HUNT))
    game.reject(JoinHunt(hunt_id=HUNT, player_id="p2"), "hunt_not_running")


def test_players_may_leave_the_lobby():
    game = Game(hunt(), start=False)
    game.ok(JoinHunt(hunt_id=HUNT, player_id="p1"))
    game.ok(LeaveHunt(hunt_id=HUNT, player_id="p1"))
    assert not game.state.players["p1"].active


def test_leaving_an_ended_hunt_is_hunt_not_running():
    game = playing()
    game.ok(EndHunt(hunt_id=HUNT))
    game.reject(LeaveHunt(hunt_id=HUNT, player_id="p1"), "hunt_not_running")


PLAY = [
    SubmitAnswer(hunt_id=HUNT, player_id="p1", clue_id="a", answer="a"),
    CheckIn(hunt_id=HUNT, player_id="p1", clue_id="a", lat=0, lon=0),
    RequestHint(hunt_id=HUNT, player_id="p1", clue_id="a"),
]


@pytest.mark.parametrize("command", PLAY, ids=lambda c: c.TYPE)
def test_playing_in_the_lobby_is_hunt_not_running(command):
    game = Game(hunt(), start=False)
    game.ok(JoinHunt(hunt_id=HUNT, player_id="p1"))
    rejection = game.reject(command, "hunt_not_running")
    assert "not started" in rejection.message


@pytest.mark.parametrize("command", PLAY, ids=lambda c: c.TYPE)
def test_playing_after_the_end_is_hunt_not_running(command):
    game = playing()
    game.ok(EndHunt(hunt_id=HUNT))
    rejection = game.reject(command, "hunt_not_running")
    assert "ended" in rejection.message


def test_a_hunt_is_still_running_one_millisecond_before_ends_at():
    game = playing(hunt(ends_at=ts(T0 + 60_000)))
    game.now = T0 + 59_999
    game.ok(SubmitAnswer(hunt_id=HUNT, player_id="p1", clue_id="a", answer="a"))


@pytest.mark.parametrize("command", [
    *PLAY,
    JoinHunt(hunt_id=HUNT, player_id="p2"),
    LeaveHunt(hunt_id=HUNT, player_id="p1"),
    StartHunt(hunt_id=HUNT),
    ExtendHunt(hunt_id=HUNT, ends_at=T0 + 3_600_000),
], ids=lambda c: c.TYPE)
def test_now_at_ends_at_counts_as_ended_before_the_end_timer_fires(command):
    game = playing(hunt(ends_at=ts(T0 + 60_000)))
    game.now = T0 + 60_000
    assert game.state.status == "running"
    game.reject(command, "hunt_not_running")


def test_a_lobby_past_ends_at_cannot_start():
    game = Game(hunt(ends_at=ts(T0 + 60_000)), start=False)
    game.now = T0 + 60_000
    game.reject(StartHunt(hunt_id=HUNT), "hunt_not_running")


def test_end_hunt_is_accepted_past_ends_at_when_the_timer_has_not_fired():
    game = playing(hunt(ends_at=ts(T0 + 60_000)))
    game.now = T0 + 61_000
    game.ok(EndHunt(hunt_id=HUNT))
    assert game.state.status == "ended"


# -- order ---------------------------------------------------------------------------

def test_a_later_sequential_clue_is_clue_locked():
    game = playing()
    game.reject(SubmitAnswer(hunt_id=HUNT, player_id="p1", clue_id="b", answer="b"), "clue_locked")
    game.reject(RequestHint(hunt_id=HUNT, player_id="p1", clue_id="c"), "clue_locked")


def test_solving_a_sequential_clue_opens_the_next_one():
    game = playing()
    game.ok(SubmitAnswer(hunt_id=HUNT, player_id="p1", clue_id="a", answer="a"))
    events = game.ok(SubmitAnswer(hunt_id=HUNT, player_id="p1", clue_id="b", answer="b"))
    assert game.types(events) == ["clue_solved"]
    assert game.types(game.answer("p1", "c")) == ["clue_solved", "treasure_found"]


def test_clues_of_an_any_order_hunt_may_be_solved_in_any_order():
    game = playing(hunt(order="any"))
    for clue_id in ("c", "a", "b"):
        assert game.types(game.answer("p1", clue_id))[0] == "clue_solved"
    assert game.group("p1").solved == 3


# -- answers -------------------------------------------------------------------------

def test_a_right_answer_solves_the_clue_for_its_points():
    game = playing(hunt(clue("a", points=70), clue("b")))
    events = game.answer("p1", "a")
    assert [(e.type, e.data) for e in events] == [
        ("clue_solved", {"player_id": "p1", "clue_id": "a", "points": 70, "via": "answer"})]
    assert game.score("p1") == 70


@pytest.mark.parametrize("typed", [
    "the fountain",
    "  The   FOUNTAIN ",
    "THE\tFountain\n",
    "ｔｈｅ ｆｏｕｎｔａｉｎ",  # fullwidth letters: NFKC
    "The\u00a0Fountain",  # no-break space: NFKC and whitespace
])
def test_answers_match_after_nfkc_casefold_and_whitespace_collapse(typed):
    game = playing(hunt(clue("a", answers=["The Fountain"]), clue("b")))
    assert game.types(game.answer("p1", "a", typed)) == ["clue_solved"]


def test_answers_match_with_full_case_folding():
    game = playing(hunt(clue("a", answers=["Straße"]), clue("b")))
    assert game.types(game.answer("p1", "a", "STRASSE")) == ["clue_solved"]


def test_any_listed_answer_solves_the_clue():
    game = playing(hunt(clue("a", answers=["fountain", "the fountain"]), clue("b")))
    assert game.types(game.answer("p1", "a", "Fountain")) == ["clue_solved"]


def test_a_wrong_answer_is_accepted_as_answer_wrong_and_counted():
    game = playing()
    first = only(game.answer("p1", "a", "wrong"), "answer_wrong")
    second = only(game.answer("p1", "a", "wronger"), "answer_wrong")
    assert first == {"player_id": "p1", "clue_id": "a", "answer": "wrong", "attempts": 1,
                     "penalty": 0}
    assert second["attempts"] == 2
    assert game.group("p1").clue("a") == (None, 0, 2, None)  # (solved_ts, hints, wrong, cooldown_until)
    assert game.score("p1") == 0


def test_answers_are_not_matched_by_substring():
    game = playing(hunt(clue("a", answers=["fountain"]), clue("b")))
    assert game.types(game.answer("p1", "a", "the fountain")) == ["answer_wrong"]


def test_submit_answer_to_a_location_clue_is_invalid_command():
    game = playing(hunt(clue("bell", location=BELL), clue("b")))
    rejection = game.reject(SubmitAnswer(hunt_id=HUNT, player_id="p1", clue_id="bell",
                                         answer="bell"), "invalid_command")
    assert "check_in" in rejection.message


def test_an_unknown_clue_is_unknown_clue():
    game = playing()
    for command in (SubmitAnswer(hunt_id=HUNT, player_id="p1", clue_id="zz", answer="x"),
                    CheckIn(hunt_id=HUNT, player_id="p1", clue_id="zz", lat=0, lon=0),
                    RequestHint(hunt_id=HUNT, player_id="p1", clue_id="zz")):
        assert "zz" in game.reject(command, "unknown_clue").message


def test_answering_a_solved_clue_is_already_solved():
    game = playing()
    game.answer("p1", "a")
    game.reject(SubmitAnswer(hunt_id=HUNT, player_id="p1", clue_id="a", answer="a"), "already_solved")


def test_a_hint_for_a_solved_clue_is_already_solved():
    game = playing(hunt(clue("a", hints=HINTS), clue("b")))
    game.answer("p1", "a")
    game.reject(RequestHint(hunt_id=HUNT, player_id="p1", clue_id="a"), "already_solved")


@pytest.mark.parametrize("command", PLAY, ids=lambda c: c.TYPE)
def test_playing_without_joining_is_not_joined(command):
    game = playing(hunt(), "p2")
    game.reject(command, "not_joined")


# -- check-ins -----------------------------------------------------------------------

def test_a_check_in_inside_the_radius_solves_the_clue():
    game = playing(hunt(clue("bell", points=150, location=BELL), clue("b")))
    lat, lon = 48.2083, 16.3738  # about 11 m north
    events = game.check_in("p1", "bell", lat, lon)
    data = only(events, "clue_solved")
    assert data == {"player_id": "p1", "clue_id": "bell", "points": 150, "via": "check_in",
                    "distance_m": round(distance_m(lat, lon, BELL["lat"], BELL["lon"]), 1),
                    "lat": lat, "lon": lon}  # (the fix, recorded since rules 2)
    assert 10 < data["distance_m"] < 12
    assert game.score("p1") == 150


def test_a_check_in_outside_the_radius_is_too_far_and_gives_no_distance_by_default():
    game = playing(hunt(clue("bell", location=BELL), clue("b")))
    messages = [game.reject(CheckIn(hunt_id=HUNT, player_id="p1", clue_id="bell",
                                    lat=BELL["lat"] + offset, lon=BELL["lon"]), "too_far").message
                for offset in (0.001, 0.003, 0.02)]  # about 111 m, 333 m and 2.2 km north
    assert len(set(messages)) == 1  # three tries, one answer: nothing to trilaterate
    assert "30 m" in messages[0]    # the radius to reach is no secret
    assert not re.search(r"\d+ m (away|from)", messages[0])


@pytest.mark.parametrize(("north_m", "band"), [
    (40, "under 50 m"), (80, "under 100 m"), (200, "under 250 m"), (400, "under 500 m"),
    (900, "under 1000 m"), (1100, "1000 m or more"), (5000, "1000 m or more"),
])
def test_a_hunt_may_opt_in_to_coarse_distance_bands(north_m: int, band: str):
    game = playing(hunt(clue("bell", location={**BELL, "radius_m": 10}), clue("b"),
                        distance_hint="bands"))
    lat = BELL["lat"] + north_m / 111_195  # metres of latitude per degree on the haversine sphere
    rejection = game.reject(CheckIn(hunt_id=HUNT, player_id="p1", clue_id="bell",
                                    lat=lat, lon=BELL["lon"]), "too_far")
    assert rejection.message.endswith(f"(you are {band} away)")


def test_check_in_to_an_answer_clue_is_invalid_command():
    game = playing()
    rejection = game.reject(CheckIn(hunt_id=HUNT, player_id="p1", clue_id="a", lat=0, lon=0),
                            "invalid_command")
    assert "answer" in rejection.message


def test_checking_in_at_a_solved_clue_is_already_solved():
    game = playing(hunt(clue("bell", location=BELL), clue("b")))
    game.check_in("p1", "bell", BELL["lat"], BELL["lon"])
    game.reject(CheckIn(hunt_id=HUNT, player_id="p1", clue_id="bell", lat=BELL["lat"],
                        lon=BELL["lon"]), "already_solved")


def test_a_locked_location_clue_is_clue_locked_even_on_the_spot():
    game = playing(hunt(clue("a"), clue("bell", location=BELL)))
    game.reject(CheckIn(hunt_id=HUNT, player_id="p1", clue_id="bell", lat=BELL["lat"],
                        lon=BELL["lon"]), "clue_locked")


# -- hints ---------------------------------------------------------------------------

def test_hints_are_revealed_in_order_each_costing_its_penalty():
    game = playing(hunt(clue("a", hints=HINTS), clue("b")))
    game.advance(60)
    first = only(game.hint("p1", "a"), "hint_revealed")
    second = only(game.hint("p1", "a"), "hint_revealed")
    assert first == {"player_id": "p1", "clue_id": "a", "hint": 0, "penalty": 10, "charged": 10,
                     "text": "first hint"}
    assert (second["hint"], second["penalty"], second["text"]) == (1, 25, "second hint")
    assert game.score("p1") == -35


def test_a_hint_penalty_counts_even_if_the_clue_is_never_solved():
    game = playing(hunt(clue("a", points=100, hints=HINTS), clue("b")))
    game.hint("p1", "a")
    game.answer("p1", "a")
    assert game.score("p1") == 90
    game2 = playing(hunt(clue("a", points=100, hints=HINTS), clue("b")))
    game2.hint("p1", "a")
    assert game2.score("p1") == -10


def test_after_the_last_hint_is_no_more_hints():
    game = playing(hunt(clue("a", hints=HINTS[:1]), clue("b")))
    game.hint("p1", "a")
    game.reject(RequestHint(hunt_id=HUNT, player_id="p1", clue_id="a"), "no_more_hints")


def test_a_clue_without_hints_is_no_more_hints():
    playing().reject(RequestHint(hunt_id=HUNT, player_id="p1", clue_id="a"), "no_more_hints")


def test_a_hint_is_locked_until_unlock_after_s_after_the_hunt_started():
    game = Game(hunt(clue("a", hints=[{"text": "t", "penalty": 1, "unlock_after_s": 300}]),
                     clue("b")), start=False)
    game.ok(JoinHunt(hunt_id=HUNT, player_id="p1"))  # in the lobby: the clock starts at the start
    game.advance(1000)
    game.ok(StartHunt(hunt_id=HUNT))
    game.advance(299.999)
    rejection = game.reject(RequestHint(hunt_id=HUNT, player_id="p1", clue_id="a"), "hint_locked")
    assert "1 s" in rejection.message
    game.advance(0.001)
    assert game.types(game.hint("p1", "a")) == ["hint_revealed"]


def test_a_hint_clock_starts_when_a_late_player_joins():
    game = playing(hunt(clue("a", hints=[{"text": "t", "penalty": 1, "unlock_after_s": 300}]),
                        clue("b")), "p1")
    game.advance(600)
    game.join("p2")
    assert game.types(game.hint("p1", "a")) == ["hint_revealed"]
    game.advance(299)
    game.reject(RequestHint(hunt_id=HUNT, player_id="p2", clue_id="a"), "hint_locked")
    game.advance(1)
    assert game.types(game.hint("p2", "a")) == ["hint_revealed"]


def test_a_sequential_hint_clock_starts_when_the_previous_clue_is_solved():
    game = playing(hunt(clue("a"), clue("b", hints=[{"text": "t", "penalty": 1, "unlock_after_s": 60}])))
    game.advance(600)
    game.answer("p1", "a")
    game.advance(59)
    game.reject(RequestHint(hunt_id=HUNT, player_id="p1", clue_id="b"), "hint_locked")
    game.advance(1)
    assert game.types(game.hint("p1", "b")) == ["hint_revealed"]


def test_an_any_order_hint_clock_starts_with_the_hunt_whatever_is_solved():
    game = playing(hunt(clue("a"), clue("b", hints=[{"text": "t", "penalty": 1, "unlock_after_s": 60}]),
                        order="any"))
    game.advance(59)
    game.answer("p1", "a")
    game.reject(RequestHint(hunt_id=HUNT, player_id="p1", clue_id="b"), "hint_locked")
    game.advance(1)
    assert game.types(game.hint("p1", "b")) == ["hint_revealed"]


def test_a_later_hint_unlocks_after_its_own_delay_from_the_same_clock():
    game = playing(hunt(clue("a", hints=HINTS), clue("b")))
    game.hint("p1", "a")
    game.advance(59)
    game.reject(RequestHint(hunt_id=HUNT, player_id="p1", clue_id="a"), "hint_locked")
    game.advance(1)
    assert game.types(game.hint("p1", "a")) == ["hint_revealed"]


# -- wrong-answer cooldown -------------------------------------------------------------

def cooling(**fields) -> Game:
    return playing(hunt(clue("a"), clue("b"), order="any", wrong_answer_cooldown_s=10, **fields))


def test_the_third_wrong_answer_starts_the_cooldown():
    game = cooling()
    game.answer("p1", "a", "x")
    game.answer("p1", "a", "y")
    third = only(game.answer("p1", "a", "z"), "answer_wrong")
    assert third["attempts"] == 3
    assert third["cooldown_until"] == game.now + 10_000


def test_during_the_cooldown_even_the_right_answer_is_cooldown():
    game = cooling()
    for _ in range(3):
        game.answer("p1", "a", "x")
    game.advance(9.999)
    rejection = game.reject(SubmitAnswer(hunt_id=HUNT, player_id="p1", clue_id="a", answer="a"),
                            "cooldown")
    assert "1 s" in rejection.message


def test_the_cooldown_expires_after_wrong_answer_cooldown_s():
    game = cooling()
    for _ in range(3):
        game.answer("p1", "a", "x")
    game.advance(10)
    assert game.types(game.answer("p1", "a")) == ["clue_solved"]


def test_two_wrong_answers_do_not_start_a_cooldown():
    game = cooling()
    game.answer("p1", "a", "x")
    second = only(game.answer("p1", "a", "y"), "answer_wrong")
    assert "cooldown_until" not in second
    assert game.types(game.answer("p1", "a")) == ["clue_solved"]


def test_every_third_wrong_answer_starts_another_cooldown():
    game = cooling()
    for _ in range(3):
        game.answer("p1", "a", "x")
    game.advance(10)
    assert "cooldown_until" not in only(game.answer("p1", "a", "x"), "answer_wrong")
    assert "cooldown_until" not in only(game.answer("p1", "a", "x"), "answer_wrong")
    sixth = only(game.answer("p1", "a", "x"), "answer_wrong")
    assert (sixth["attempts"], sixth["cooldown_until"]) == (6, game.now + 10_000)


def test_a_cooldown_holds_only_for_its_clue():
    game = cooling()
    for _ in range(3):
        game.answer("p1", "a", "x")
    assert game.types(game.answer("p1", "b")) == ["clue_solved"]


def test_without_a_cooldown_setting_wrong_answers_never_block():
    game = playing(hunt(order="any"))
    for n in range(1, 11):
        data = only(game.answer("p1", "a", "x"), "answer_wrong")
        assert data["attempts"] == n and "cooldown_until" not in data
    assert game.types(game.answer("p1", "a")) == ["clue_solved"]


# -- players and limits ----------------------------------------------------------------

def test_joining_twice_is_already_joined():
    playing().reject(JoinHunt(hunt_id=HUNT, player_id="p1"), "already_joined")


def test_a_join_beyond_max_players_is_hunt_full():
    game = playing(hunt(max_players=2), "p1", "p2")
    rejection = game.reject(JoinHunt(hunt_id=HUNT, player_id="p3"), "hunt_full")
    assert "2" in rejection.message


def test_a_player_who_leaves_frees_a_place():
    game = playing(hunt(max_players=2), "p1", "p2")
    game.leave("p2")
    game.ok(JoinHunt(hunt_id=HUNT, player_id="p3"))
    game.reject(JoinHunt(hunt_id=HUNT, player_id="p2"), "hunt_full")


def test_leaving_without_having_joined_is_not_joined():
    game = playing()
    game.reject(LeaveHunt(hunt_id=HUNT, player_id="p9"), "not_joined")
    game.leave("p1")
    game.reject(LeaveHunt(hunt_id=HUNT, player_id="p1"), "not_joined")


def test_a_player_who_left_cannot_play():
    game = playing()
    game.leave("p1")
    game.reject(SubmitAnswer(hunt_id=HUNT, player_id="p1", clue_id="a", answer="a"), "not_joined")


def test_leaving_keeps_progress_and_rejoining_restores_it():
    game = playing(hunt(clue("a", hints=HINTS), clue("b"), clue("c")))
    game.answer("p1", "a")
    game.answer("p1", "b", "wrong")
    game.leave("p1")
    assert game.score("p1") == 100
    events = game.ok(JoinHunt(hunt_id=HUNT, player_id="p1"))
    assert events[0].data == {"player_id": "p1", "rejoined": True}
    game.reject(SubmitAnswer(hunt_id=HUNT, player_id="p1", clue_id="a", answer="a"), "already_solved")
    assert game.group("p1").clue("b")[2] == 1  # wrong answers
    assert game.types(game.answer("p1", "b")) == ["clue_solved"]
    assert game.score("p1") == 200


def test_rejoining_does_not_dodge_a_cooldown():
    game = cooling()
    for _ in range(3):
        game.answer("p1", "a", "x")
    game.leave("p1")
    game.join("p1")
    game.reject(SubmitAnswer(hunt_id=HUNT, player_id="p1", clue_id="a", answer="a"), "cooldown")


def test_a_player_who_left_stays_on_the_leaderboard():
    game = playing()
    game.answer("p1", "a")
    game.leave("p1")
    assert game.ranking() == [("player", "p1")]


# -- teams ---------------------------------------------------------------------------

def team_game(definition: dict | None = None) -> Game:
    game = Game(definition or hunt(clue("a", hints=HINTS), clue("b"), clue("c"),
                                   wrong_answer_cooldown_s=10))
    game.ok(JoinHunt(hunt_id=HUNT, player_id="ann", team_id="red"))
    game.ok(JoinHunt(hunt_id=HUNT, player_id="bob", team_id="red"))
    return game


def test_events_about_a_team_member_carry_the_team_id():
    game = team_game()
    assert game.events[-1].data == {"player_id": "bob", "team_id": "red", "rejoined": False}
    assert only(game.answer("ann", "a"), "clue_solved")["team_id"] == "red"


def test_team_members_share_solved_clues():
    game = team_game()
    game.answer("ann", "a")
    game.reject(SubmitAnswer(hunt_id=HUNT, player_id="bob", clue_id="a", answer="a"), "already_solved")
    assert game.types(game.answer("bob", "b")) == ["clue_solved"]


def test_team_members_share_one_score_and_one_leaderboard_entry():
    game = team_game()
    game.answer("ann", "a")
    game.answer("bob", "b")
    assert game.score("ann") == game.score("bob") == 200
    assert game.ranking() == [("team", "red")]


def test_team_members_share_revealed_hints():
    game = team_game()
    game.hint("ann", "a")
    game.advance(60)
    second = only(game.hint("bob", "a"), "hint_revealed")
    assert second["hint"] == 1
    game.reject(RequestHint(hunt_id=HUNT, player_id="ann", clue_id="a"), "no_more_hints")
    assert game.score("ann") == -35


def test_team_members_share_wrong_answer_counts_and_cooldowns():
    game = team_game()
    game.answer("ann", "a", "x")
    game.answer("bob", "a", "y")
    third = only(game.answer("ann", "a", "z"), "answer_wrong")
    assert third["attempts"] == 3 and "cooldown_until" in third
    game.reject(SubmitAnswer(hunt_id=HUNT, player_id="bob", clue_id="a", answer="a"), "cooldown")


def test_team_members_share_the_hint_unlock_clock():
    game = team_game(hunt(clue("a", hints=[{"text": "t", "penalty": 1, "unlock_after_s": 60}]), clue("b")))
    game.advance(60)
    game.ok(JoinHunt(hunt_id=HUNT, player_id="cat", team_id="red"))  # a late member
    assert game.types(game.hint("cat", "a")) == ["hint_revealed"]


def test_a_late_team_member_starts_at_the_team_progress():
    game = team_game()
    game.answer("ann", "a")
    game.ok(JoinHunt(hunt_id=HUNT, player_id="cat", team_id="red"))
    assert game.types(game.answer("cat", "b")) == ["clue_solved"]


def test_a_player_stays_in_one_team():
    game = team_game()
    game.reject(JoinHunt(hunt_id=HUNT, player_id="ann", team_id="blue"), "already_joined")
    game.leave("ann")
    rejection = game.reject(JoinHunt(hunt_id=HUNT, player_id="ann", team_id="blue"), "already_joined")
    assert "red" in rejection.message


def test_a_team_member_who_left_rejoins_their_team_without_naming_it():
    game = team_game()
    game.leave("ann")
    events = game.ok(JoinHunt(hunt_id=HUNT, player_id="ann"))
    assert events[0].data == {"player_id": "ann", "team_id": "red", "rejoined": True}
    assert game.group("ann").key == ("team", "red")


def test_a_solo_player_cannot_rejoin_in_a_team():
    game = playing()
    game.leave("p1")
    game.reject(JoinHunt(hunt_id=HUNT, player_id="p1", team_id="red"), "already_joined")


def test_a_team_and_a_player_may_share_an_id():
    game = playing(hunt(), "x")
    game.ok(JoinHunt(hunt_id=HUNT, player_id="y", team_id="x"))
    game.answer("y", "a")
    assert game.ranking() == [("team", "x"), ("player", "x")]


# -- the treasure -----------------------------------------------------------------------

def test_solving_the_last_sequential_clue_finds_the_treasure():
    game = playing(hunt(clue("a", hints=HINTS), clue("b", points=50)))
    game.hint("p1", "a")
    game.answer("p1", "a")
    events = game.answer("p1", "b")
    assert [(e.type, e.data) for e in events] == [
        ("clue_solved", {"player_id": "p1", "clue_id": "b", "points": 50, "via": "answer"}),
        ("treasure_found", {"player_id": "p1", "score": 140, "time_bonus": 0}),
    ]
    assert game.group("p1").treasure_ts == game.now


def test_an_any_order_treasure_needs_every_clue():
    game = playing(hunt(order="any"))
    assert game.types(game.answer("p1", "c")) == ["clue_solved"]
    assert game.types(game.answer("p1", "a")) == ["clue_solved"]
    assert game.types(game.answer("p1", "b")) == ["clue_solved", "treasure_found"]


def test_a_check_in_may_find_the_treasure():
    game = playing(hunt(clue("a"), clue("bell", location=BELL)))
    game.answer("p1", "a")
    events = game.check_in("p1", "bell", BELL["lat"], BELL["lon"])
    assert game.types(events) == ["clue_solved", "treasure_found"]
    assert events[1].data == {"player_id": "p1", "score": 200, "time_bonus": 0}


def test_a_team_finds_the_treasure_once():
    game = team_game(hunt(clue("a"), clue("b")))
    game.answer("ann", "a")
    events = game.answer("bob", "b")
    assert only(events, "treasure_found") == {"player_id": "bob", "team_id": "red", "score": 200,
                                                  "time_bonus": 0}


# -- ranking --------------------------------------------------------------------------

def test_the_ranking_puts_the_higher_score_first():
    game = playing(hunt(order="any"), "p1", "p2")
    game.answer("p2", "a")
    assert game.ranking() == [("player", "p2"), ("player", "p1")]


def test_equal_scores_rank_the_earlier_reached_ts_first():
    game = playing(hunt(order="any"), "p2", "p1")
    game.advance(1)
    game.answer("p2", "a")
    game.advance(1)
    game.answer("p1", "b")
    assert game.ranking() == [("player", "p2"), ("player", "p1")]


def test_equal_score_and_time_rank_by_id():
    game = playing(hunt(), "zed", "amy", "kim")
    assert game.ranking() == [("player", "amy"), ("player", "kim"), ("player", "zed")]


def test_reached_ts_is_the_time_of_the_last_score_change():
    game = playing(hunt(clue("a", hints=HINTS), clue("b")))
    joined = game.now
    assert game.group("p1").reached_ts == joined
    game.advance(5)
    game.answer("p1", "a", "wrong")
    assert game.group("p1").reached_ts == joined
    game.hint("p1", "a")
    assert game.group("p1").reached_ts == game.now
    game.advance(5)
    game.answer("p1", "a")
    assert game.group("p1").reached_ts == game.now


def test_a_later_score_change_can_drop_a_group_below_an_equal_score():
    game = playing(hunt(clue("a"), clue("b", points=100, hints=[{"text": "t", "penalty": 100}])),
                   "p1", "p2")
    game.answer("p1", "a")
    game.advance(1)
    game.answer("p2", "a")
    assert game.ranking() == [("player", "p1"), ("player", "p2")]
    game.advance(1)
    game.hint("p1", "b")
    game.answer("p1", "b")  # back to 100, but reached later
    assert game.score("p1") == game.score("p2") == 100
    assert game.ranking() == [("player", "p2"), ("player", "p1")]


# -- organisers' fixes ----------------------------------------------------------------

def test_extend_hunt_moves_ends_at():
    game = playing(hunt(ends_at=ts(T0 + 60_000)))
    events = game.ok(ExtendHunt(hunt_id=HUNT, ends_at=T0 + 120_000))
    assert events[0].data == {"ends_at": ts(T0 + 120_000), "previous_ends_at": ts(T0 + 60_000)}
    game.now = T0 + 90_000
    assert game.types(game.answer("p1", "a")) == ["clue_solved"]
    game.now = T0 + 120_000
    game.reject(SubmitAnswer(hunt_id=HUNT, player_id="p1", clue_id="b", answer="b"), "hunt_not_running")


def test_extend_hunt_may_shorten_or_set_a_first_end():
    game = playing()
    events = game.ok(ExtendHunt(hunt_id=HUNT, ends_at=T0 + 5_000))
    assert events[0].data["previous_ends_at"] is None
    assert game.state.ends_at == T0 + 5_000


def test_extend_hunt_into_the_past_is_invalid_command():
    game = playing(hunt(ends_at=ts(T0 + 60_000)))
    game.advance(10)
    game.reject(ExtendHunt(hunt_id=HUNT, ends_at=game.now), "invalid_command")


def test_extend_hunt_before_starts_at_is_invalid_command():
    game = Game(hunt(starts_at=ts(T0 + 60_000)), start=False)
    game.reject(ExtendHunt(hunt_id=HUNT, ends_at=T0 + 30_000), "invalid_command")


def test_extending_an_ended_hunt_is_hunt_not_running():
    game = playing()
    game.ok(EndHunt(hunt_id=HUNT))
    game.reject(ExtendHunt(hunt_id=HUNT, ends_at=T0 + 60_000), "hunt_not_running")


def test_remove_player_takes_the_player_out():
    game = playing(hunt(), "p1", "p2")
    events = game.ok(RemovePlayer(hunt_id=HUNT, player_id="p1", reason="cheating"))
    assert events[0].data == {"player_id": "p1", "reason": "cheating"}
    assert game.state.active_players == 1
    game.reject(SubmitAnswer(hunt_id=HUNT, player_id="p1", clue_id="a", answer="a"), "not_joined")


def test_a_removed_player_cannot_rejoin():
    game = playing()
    game.ok(RemovePlayer(hunt_id=HUNT, player_id="p1", reason="cheating"))
    game.reject(JoinHunt(hunt_id=HUNT, player_id="p1"), "forbidden")


def test_a_removed_solo_player_leaves_the_leaderboard():
    game = playing(hunt(), "p1", "p2")
    game.answer("p1", "a")
    game.ok(RemovePlayer(hunt_id=HUNT, player_id="p1", reason="cheating"))
    assert game.ranking() == [("player", "p2")]


def test_a_team_keeps_its_place_when_one_member_is_removed():
    game = team_game()
    game.answer("ann", "a")
    game.ok(RemovePlayer(hunt_id=HUNT, player_id="ann", reason="cheating"))
    assert game.ranking() == [("team", "red")]
    assert game.score("bob") == 100


def test_a_team_whose_members_are_all_removed_leaves_the_leaderboard():
    game = team_game()
    game.ok(RemovePlayer(hunt_id=HUNT, player_id="ann", reason="x"))
    game.ok(RemovePlayer(hunt_id=HUNT, player_id="bob", reason="x"))
    assert game.ranking() == []
    game.reject(AdjustScore(hunt_id=HUNT, team_id="red", delta=5, reason="x"), "not_joined")


def test_a_player_who_left_may_still_be_removed():
    game = playing()
    game.leave("p1")
    game.ok(RemovePlayer(hunt_id=HUNT, player_id="p1", reason="x"))
    assert game.state.active_players == 0
    game.reject(JoinHunt(hunt_id=HUNT, player_id="p1"), "forbidden")


def test_removing_an_unknown_or_removed_player_is_not_joined():
    game = playing()
    game.reject(RemovePlayer(hunt_id=HUNT, player_id="p9", reason="x"), "not_joined")
    game.ok(RemovePlayer(hunt_id=HUNT, player_id="p1", reason="x"))
    game.reject(RemovePlayer(hunt_id=HUNT, player_id="p1", reason="x"), "not_joined")


def test_adjust_score_changes_a_players_score_and_reached_ts():
    game = playing(hunt(), "p1", "p2")
    game.advance(3)
    events = game.ok(AdjustScore(hunt_id=HUNT, player_id="p2", delta=15, reason="bonus"))
    assert events[0].data == {"player_id": "p2", "delta": 15, "reason": "bonus"}
    assert (game.score("p2"), game.group("p2").reached_ts) == (15, game.now)
    assert game.ranking()[0] == ("player", "p2")


def test_adjust_score_may_go_negative():
    game = playing()
    game.ok(AdjustScore(hunt_id=HUNT, player_id="p1", delta=-40, reason="penalty"))
    assert game.score("p1") == -40


def test_adjust_score_of_a_team():
    game = team_game()
    events = game.ok(AdjustScore(hunt_id=HUNT, team_id="red", delta=7, reason="bonus"))
    assert events[0].data == {"team_id": "red", "delta": 7, "reason": "bonus"}
    assert game.score("bob") == 7


def test_adjust_score_of_a_team_member_changes_the_team_score():
    game = team_game()
    events = game.ok(AdjustScore(hunt_id=HUNT, player_id="ann", delta=7, reason="bonus"))
    assert events[0].data == {"player_id": "ann", "team_id": "red", "delta": 7, "reason": "bonus"}
    assert game.score("bob") == 7


def test_adjust_score_works_after_the_hunt_ended():
    game = playing()
    game.ok(EndHunt(hunt_id=HUNT))
    game.ok(AdjustScore(hunt_id=HUNT, player_id="p1", delta=1, reason="late fix"))
    assert game.score("p1") == 1


def test_adjust_score_of_an_unknown_player_or_team_is_not_joined():
    game = playing()
    game.reject(AdjustScore(hunt_id=HUNT, player_id="p9", delta=5, reason="x"), "not_joined")
    game.reject(AdjustScore(hunt_id=HUNT, team_id="blue", delta=5, reason="x"), "not_joined")


def test_adjust_score_by_zero_is_invalid_command():
    playing().reject(AdjustScore(hunt_id=HUNT, player_id="p1", delta=0, reason="x"), "invalid_command")


@pytest.mark.parametrize("target", [{}, {"player_id": "p1", "team_id": "red"}], ids=["neither", "both"])
def test_adjust_score_needs_exactly_one_of_player_and_team(target):
    game = team_game()
    game.ok(JoinHunt(hunt_id=HUNT, player_id="p1"))
    game.reject(AdjustScore(hunt_id=HUNT, delta=5, reason="x", **target), "invalid_command")



# -- timers --------------------------------------------------------------------------

def fire(game: Game, kind: str, due_ts: int) -> list:
    """Fire a due timer as the runtime does: decide_timer, then store its events."""
    stored = []
    for new in decide_timer(game.state, kind, due_ts):
        event = StoredEvent(seq=len(game.events) + 1, hunt_id=HUNT, version=len(game.events) + 1,
                            type=new.type, ts=game.now, data=new.data)
        game.state = evolve(game.state, event)
        game.events.append(event)
        stored.append(event)
    return stored


def test_a_new_hunt_needs_a_timer_for_each_time_it_sets():
    assert timers_for(parse_definition(hunt())) == []
    definition = parse_definition(hunt(starts_at=ts(T0 + 1000), ends_at=ts(T0 + 5000)))
    assert timers_for(definition) == [(START, T0 + 1000), (END, T0 + 5000)]


def test_the_start_timer_starts_a_hunt_in_the_lobby():
    game = Game(hunt(starts_at=ts(T0 + 1000)), start=False)
    game.advance(1)
    events = fire(game, START, T0 + 1000)
    assert [(e.type, e.data) for e in events] == [("hunt_started", {"by": "timer"})]
    assert game.state.status == "running"


def test_the_start_timer_of_a_hunt_started_by_hand_does_nothing():
    game = Game(hunt(starts_at=ts(T0 + 1000)))
    game.advance(1)
    assert fire(game, START, T0 + 1000) == []


def test_the_end_timer_ends_a_running_hunt():
    game = playing(hunt(ends_at=ts(T0 + 5000)))
    game.advance(5)
    events = fire(game, END, T0 + 5000)
    assert [(e.type, e.data) for e in events] == [("hunt_ended", {"by": "timer"})]
    assert game.state.status == "ended"


def test_the_end_timer_also_ends_a_hunt_that_never_started():
    game = Game(hunt(ends_at=ts(T0 + 5000)), start=False)
    game.advance(5)
    assert game.types(fire(game, END, T0 + 5000)) == ["hunt_ended"]


def test_an_end_timer_made_stale_by_extend_hunt_does_nothing():
    game = playing(hunt(ends_at=ts(T0 + 5000)))
    game.ok(ExtendHunt(hunt_id=HUNT, ends_at=T0 + 9000))
    game.advance(5)
    assert fire(game, END, T0 + 5000) == []
    game.advance(4)
    assert game.types(fire(game, END, T0 + 9000)) == ["hunt_ended"]


def test_the_end_timer_of_a_hunt_ended_by_hand_does_nothing():
    game = playing(hunt(ends_at=ts(T0 + 5000)))
    game.ok(EndHunt(hunt_id=HUNT))
    game.advance(5)
    assert fire(game, END, T0 + 5000) == []


def test_a_timer_for_a_hunt_that_does_not_exist_does_nothing():
    assert decide_timer(None, START, T0) == []
    assert decide_timer(None, END, T0) == []
