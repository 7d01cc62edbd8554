"""The hunt options of rules version 2, each as its specification, through decide/evolve.

A solve is awarded ``max(min_points, points - step*k) + first_solver_bonus[k]``, k being the
teams that solved the clue before (in log order); the bonus counts while k < its length.
"""

from __future__ import annotations

import attrs
import pytest

from thengine.domain import views
from thengine.domain.geo import distance_m
from thengine.domain.definition import parse_definition
from thengine.domain.state import from_snapshot, to_snapshot
from thengine.domain.versions import RULES
from thengine.errors import DefinitionError

from .play import HUNT, AdjustScore, CheckIn, Game, JoinHunt, SubmitAnswer, clue, hunt

PLACE = {"lat": 48.2082, "lon": 16.3738, "radius_m": 30}
ONE_DEGREE_LAT_M = distance_m(0, 0, 1, 0)


def game_of(*players: str, team: bool = False, clues: list | None = None, **options) -> Game:
    game = Game(hunt(*(clues or [clue("a", points=100), clue("b", points=100)]), order="any", **options))
    for player in players:
        game.ok(JoinHunt(hunt_id=HUNT, player_id=player, team_id=f"team-{player}" if team else None))
    return game


def awarded(game: Game, player: str, clue_id: str) -> int:
    events = game.answer(player, clue_id)
    return next(e.data["points"] for e in events if e.type == "clue_solved")


# -- first solver bonus and decay -----------------------------------------------------

def test_the_first_solvers_get_the_bonus_in_log_order_and_later_ones_none():
    game = game_of("p1", "p2", "p3", "p4", first_solver_bonus=[50, 30, 10])
    assert [awarded(game, p, "a") for p in ("p1", "p2", "p3", "p4")] == [150, 130, 110, 100]
    assert [game.score(p) for p in ("p1", "p2", "p3", "p4")] == [150, 130, 110, 100]


def test_two_solves_at_the_same_millisecond_are_ranked_by_log_order():
    # Both decided at one `now`, as commands of one commit batch are: the first logged is first.
    game = game_of("p1", "p2", first_solver_bonus=[50, 30])
    first, second = awarded(game, "p2", "a"), awarded(game, "p1", "a")
    assert (first, second) == (150, 130)
    assert game.events[-1].ts == game.events[-2].ts


def test_each_clue_counts_its_own_solvers():
    game = game_of("p1", "p2", first_solver_bonus=[50])
    assert awarded(game, "p1", "a") == 150
    assert awarded(game, "p2", "b") == 150  # the first on b, though second overall
    assert awarded(game, "p2", "a") == 100


def test_a_team_counts_once_whichever_member_solves():
    game = game_of(first_solver_bonus=[50, 30])
    game.ok(JoinHunt(hunt_id=HUNT, player_id="p1", team_id="red"))
    game.ok(JoinHunt(hunt_id=HUNT, player_id="p2", team_id="red"))
    game.ok(JoinHunt(hunt_id=HUNT, player_id="p3", team_id="blue"))
    assert awarded(game, "p1", "a") == 150
    game.reject(SubmitAnswer(hunt_id=HUNT, player_id="p2", clue_id="a", answer="a"), "already_solved")
    assert awarded(game, "p3", "a") == 130


def test_decay_takes_step_per_earlier_solver_down_to_its_floor_and_no_lower():
    players = [f"p{n}" for n in range(8)]
    game = game_of(*players, decay={"min_points": 80, "step": 7})
    # 100, 93, 86, then 79 would be below the floor of 80.
    assert [awarded(game, p, "a") for p in players] == [100, 93, 86, 80, 80, 80, 80, 80]


def test_decay_and_bonus_add_up_as_the_formula_says():
    players = [f"p{n}" for n in range(5)]
    game = game_of(*players, decay={"min_points": 20, "step": 30}, first_solver_bonus=[50, 30, 10])
    # max(20, 100 - 30k) + bonus[k]: 150, 100, 50, 20, 20
    assert [awarded(game, p, "a") for p in players] == [150, 100, 50, 20, 20]


def test_decay_may_not_promise_more_than_the_cheapest_clue():
    with pytest.raises(DefinitionError) as raised:
        parse_definition(hunt(clue("a", points=10), clue("b"), decay={"min_points": 20, "step": 5}))
    assert raised.value.problems == [
        "decay.min_points: must not exceed the points of the cheapest clue (10), got 20"]


def test_a_player_sees_what_a_clue_is_worth_to_them_now():
    game = game_of("p1", "p2", first_solver_bonus=[50, 30], decay={"min_points": 50, "step": 10})
    game.answer("p1", "a")
    answer = views.player(game.state, "p2")
    worth = {c["id"]: c["worth"] for c in answer["clues"]}
    assert worth == {"a": 90 + 30, "b": 100 + 50}
    assert {c["id"]: c["worth"] for c in views.player(game.state, "p1")["clues"]} == {"a": None, "b": 150}


# -- wrong answer penalty -----------------------------------------------------------

def test_a_wrong_answer_costs_its_penalty():
    game = game_of("p1", wrong_answer_penalty=15)
    game.answer("p1", "a")
    events = game.answer("p1", "b", "nope")
    assert events[0].data["penalty"] == 15
    assert game.score("p1") == 85


def test_a_wrong_answer_at_a_score_of_zero_costs_nothing():
    game = game_of("p1", wrong_answer_penalty=15)
    events = game.answer("p1", "a", "nope")
    assert events[0].data["penalty"] == 0
    assert game.score("p1") == 0


def test_a_penalty_takes_a_score_to_zero_and_no_further():
    game = game_of("p1", wrong_answer_penalty=15)
    game.ok(AdjustScore(hunt_id=HUNT, player_id="p1", delta=10, reason="start money"))
    assert game.answer("p1", "a", "nope")[0].data["penalty"] == 10
    assert game.score("p1") == 0


def test_negative_scores_when_the_hunt_allows_them():
    game = game_of("p1", wrong_answer_penalty=15, allow_negative_scores=True)
    game.answer("p1", "a", "nope")
    game.answer("p1", "a", "nope")
    assert game.score("p1") == -30


def test_hints_cost_their_whole_penalty_even_at_zero():
    # A hint free at zero would be revealed before solving: hints are never capped.
    game = game_of("p1", clues=[clue("a", hints=[{"text": "t", "penalty": 10}]), clue("b")])
    events = game.hint("p1", "a")
    assert (events[0].data["penalty"], events[0].data["charged"]) == (10, 10)
    assert game.score("p1") == -10


# -- time bonus -----------------------------------------------------------------------

def test_the_time_bonus_comes_with_the_treasure_within_the_minutes_of_the_first_join():
    game = game_of("p1", time_bonus={"points": 100, "within_minutes": 30})
    game.advance(29 * 60)
    game.answer("p1", "a")
    events = game.answer("p1", "b")
    assert [e.type for e in events] == ["clue_solved", "treasure_found"]
    assert (events[1].data["time_bonus"], events[1].data["score"]) == (100, 300)
    assert game.score("p1") == 300


def test_exactly_at_the_limit_still_counts_and_a_millisecond_later_does_not():
    for late_ms, bonus in ((0, 100), (1, 0)):
        game = game_of("p1", time_bonus={"points": 100, "within_minutes": 30})
        game.answer("p1", "a")
        game.now += 30 * 60_000 + late_ms
        assert game.answer("p1", "b")[1].data["time_bonus"] == bonus


def test_a_team_s_clock_starts_at_its_first_member_s_join():
    game = game_of(time_bonus={"points": 100, "within_minutes": 10})
    game.ok(JoinHunt(hunt_id=HUNT, player_id="p1", team_id="red"))
    game.advance(9 * 60)
    game.ok(JoinHunt(hunt_id=HUNT, player_id="p2", team_id="red"))
    game.advance(2 * 60)
    game.answer("p2", "a")
    assert game.answer("p2", "b")[1].data["time_bonus"] == 0  # 11 minutes after p1 joined


# -- check-ins: accuracy --------------------------------------------------------------

def check_in_game(**options) -> Game:
    return game_of("p1", clues=[clue("g", location=PLACE), clue("b")], **options)


def test_a_fix_less_accurate_than_the_hunt_allows_is_inaccurate_fix():
    game = check_in_game(max_accuracy_m=20)
    rejection = game.reject(check_in(PLACE["lat"], PLACE["lon"], 25), "inaccurate_fix")
    assert "25 m" in rejection.message and "20 m" in rejection.message


def check_in(lat: float, lon: float, accuracy_m: float | None = None) -> CheckIn:
    return CheckIn(hunt_id=HUNT, player_id="p1", clue_id="g", lat=lat, lon=lon, accuracy_m=accuracy_m)


def test_an_accuracy_circle_exactly_as_big_as_the_geofence_counts():
    game = check_in_game(max_accuracy_m=50)
    events = game.check_in("p1", "g", PLACE["lat"], PLACE["lon"], accuracy_m=30)
    assert events[0].data["accuracy_m"] == 30


def test_an_accuracy_circle_that_sticks_out_of_the_geofence_is_too_far():
    game = check_in_game()
    rejection = game.reject(check_in(PLACE["lat"], PLACE["lon"], 30.5), "too_far")
    assert "accurate to 30.5 m" in rejection.message


def test_distance_plus_accuracy_must_fit_inside_the_radius():
    offset_m = 20
    lat = PLACE["lat"] + offset_m / ONE_DEGREE_LAT_M
    game = check_in_game()
    game.reject(check_in(lat, PLACE["lon"], 10.5), "too_far")
    assert game.check_in("p1", "g", lat, PLACE["lon"], accuracy_m=9.5)[0].type == "clue_solved"


def test_a_check_in_without_accuracy_is_exact_and_never_inaccurate():
    game = check_in_game(max_accuracy_m=1)
    lat = PLACE["lat"] + 29.5 / ONE_DEGREE_LAT_M
    events = game.check_in("p1", "g", lat, PLACE["lon"])
    assert "accuracy_m" not in events[0].data


def test_a_version_1_hunt_takes_every_fix_as_exact():
    game = check_in_game(max_accuracy_m=5)
    game.state.rules = RULES[1]
    events = game.check_in("p1", "g", PLACE["lat"], PLACE["lon"], accuracy_m=500)
    assert events[0].type == "clue_solved"
    assert {"lat", "lon", "accuracy_m"}.isdisjoint(events[0].data)  # nor is the fix recorded


# -- check-ins: implausible moves --------------------------------------------------------

def travel_game(max_speed_kmh: float = 100) -> Game:
    far = {"lat": PLACE["lat"] + 10_000 / ONE_DEGREE_LAT_M, "lon": PLACE["lon"], "radius_m": 30}
    return game_of("p1", "p2", clues=[clue("g", location=PLACE), clue("far", location=far), clue("c")],
                   max_speed_kmh=max_speed_kmh)


def far_lat() -> float:
    return PLACE["lat"] + 10_000 / ONE_DEGREE_LAT_M


def test_travel_faster_than_the_limit_is_flagged_and_still_decided_as_usual():
    game = travel_game(max_speed_kmh=100)
    game.check_in("p1", "g", PLACE["lat"], PLACE["lon"])
    game.advance(60)  # 10 km in a minute: 600 km/h
    events = game.check_in("p1", "far", far_lat(), PLACE["lon"])
    assert [e.type for e in events] == ["implausible_move", "clue_solved"]
    flag = events[0].data
    assert flag["player_id"] == "p1" and flag["clue_id"] == "far" and flag["max_speed_kmh"] == 100
    assert flag["seconds"] == 60 and abs(flag["distance_m"] - 10_000) < 1 and abs(flag["speed_kmh"] - 600) < 0.1
    assert game.score("p1") == 200
    assert [f["seq"] for f in game.state.flags] == [events[0].seq]


def test_travel_within_the_limit_is_not_flagged():
    game = travel_game(max_speed_kmh=100)
    game.check_in("p1", "g", PLACE["lat"], PLACE["lon"])
    game.advance(7 * 60)  # 10 km in 7 minutes: 86 km/h
    assert [e.type for e in game.check_in("p1", "far", far_lat(), PLACE["lon"])] == ["clue_solved"]


def test_two_places_in_no_time_is_infinite_speed():
    game = travel_game()
    game.check_in("p1", "g", PLACE["lat"], PLACE["lon"])
    events = game.check_in("p1", "far", far_lat(), PLACE["lon"])
    assert events[0].type == "implausible_move"
    assert (events[0].data["seconds"], events[0].data["speed_kmh"]) == (0, None)


def test_the_first_check_in_and_other_players_moves_are_never_compared():
    game = travel_game()
    assert [e.type for e in game.check_in("p1", "g", PLACE["lat"], PLACE["lon"])] == ["clue_solved"]
    assert [e.type for e in game.check_in("p2", "far", far_lat(), PLACE["lon"])] == ["clue_solved"]


def test_players_never_see_flags_nor_another_player_s_fix():
    game = travel_game()
    game.check_in("p1", "g", PLACE["lat"], PLACE["lon"])
    flag, solved = game.check_in("p1", "far", far_lat(), PLACE["lon"])
    assert not views.visible(flag, views.PLAYER) and views.visible(flag, views.ADMIN)
    assert {"lat", "lon"}.isdisjoint(views.event_data(solved, views.PLAYER))
    assert views.event_data(solved, views.PLAYER, own=True)["lat"] == far_lat()
    assert views.private_to(solved) == "p1"
    assert "max_speed_kmh" not in views.hunt(game.state, views.PLAYER)["options"]
    assert views.hunt(game.state, views.ADMIN)["options"]["max_speed_kmh"] == 100


def test_the_last_fix_and_the_flags_survive_a_snapshot():
    game = travel_game()
    game.check_in("p1", "g", PLACE["lat"], PLACE["lon"])
    game.check_in("p1", "far", far_lat(), PLACE["lon"])
    restored = from_snapshot(to_snapshot(game.state))
    assert to_snapshot(restored) == to_snapshot(game.state)
    assert restored.flags == game.state.flags and len(restored.flags) == 1
    assert restored.solves == game.state.solves == {"g": 1, "far": 1}
    player = restored.players["p1"]
    assert (player.fix_lat, player.fix_lon) == (far_lat(), PLACE["lon"])


# -- the file ---------------------------------------------------------------------------

def test_every_option_is_validated_and_every_problem_reported():
    with pytest.raises(DefinitionError) as raised:
        parse_definition(hunt(first_solver_bonus=[10, -1], decay={"step": 0}, wrong_answer_penalty=-3,
                              allow_negative_scores="yes", time_bonus={"points": 5, "within_minutes": 0},
                              max_accuracy_m=0, max_speed_kmh="fast"))
    assert raised.value.problems == [
        "first_solver_bonus[1]: must be >= 0, got -1",
        "decay.min_points: required",
        "decay.step: must be > 0, got 0",
        "wrong_answer_penalty: must be >= 0, got -3",
        "allow_negative_scores: must be true or false, got 'yes'",
        "time_bonus.within_minutes: must be > 0, got 0",
        "max_accuracy_m: must be > 0, got 0",
        "max_speed_kmh: must be a number, got 'fast'",
    ]


def test_options_go_to_json_and_back_unchanged():
    definition = parse_definition(hunt(first_solver_bonus=[5], decay={"min_points": 1, "step": 2},
                                       wrong_answer_penalty=3, allow_negative_scores=True,
                                       time_bonus={"points": 4, "within_minutes": 5},
                                       max_accuracy_m=6.5, max_speed_kmh=70))
    assert parse_definition(definition.to_json()) == definition
    assert attrs.asdict(definition.options)["decay"] == {"min_points": 1, "step": 2}
