"""The scoreboard freeze: players see the board as it stood at the freeze, admins the live
one; a player still sees their own progress."""

from __future__ import annotations

import pytest

from thengine.domain import views
from thengine.domain.commands import AdjustScore, EndHunt, FreezeBoard, UnfreezeBoard
from thengine.domain.definition import parse_definition
from thengine.domain.state import from_snapshot, to_snapshot
from thengine.domain.timers import FREEZE, decide_timer, timers_for
from thengine.errors import DefinitionError

from .play import HUNT, T0, Game, JoinHunt, clue, hunt, ts


def race() -> Game:
    game = Game(hunt(clue("a", points=100), clue("b", points=50), order="any"))
    for player in ("ann", "bob"):
        game.ok(JoinHunt(hunt_id=HUNT, player_id=player))
    game.answer("ann", "a")
    return game


def board(game: Game, *, frozen: bool) -> list[tuple[str, int]]:
    page = views.leaderboard(game.state, 10, frozen=frozen)
    return [(e["id"], e["score"]) for e in page["entries"]]


def test_players_see_the_board_as_it_stood_and_admins_the_live_one():
    game = race()
    game.ok(FreezeBoard(hunt_id=HUNT))
    game.answer("bob", "a")
    game.answer("bob", "b")
    assert board(game, frozen=True) == [("ann", 100), ("bob", 0)]
    assert board(game, frozen=False) == [("bob", 150), ("ann", 100)]
    assert views.leaderboard(game.state, 10, frozen=True)["frozen"] is True
    assert views.own_entry(game.state, "bob", frozen=True)["rank"] == 2
    assert views.own_entry(game.state, "bob")["rank"] == 1


def test_a_player_keeps_seeing_their_own_progress_but_not_their_new_rank():
    game = race()
    game.ok(FreezeBoard(hunt_id=HUNT))
    game.answer("bob", "a")
    game.answer("bob", "b")
    me = views.player(game.state, "bob")
    assert (me["score"], me["solved"], me["rank"], me["board_frozen"]) == (150, 2, 2, True)
    assert all(c["solved"] for c in me["clues"])


def test_scoring_events_while_frozen_hide_their_points_from_other_players():
    game = race()
    game.ok(FreezeBoard(hunt_id=HUNT))
    [solved] = game.answer("bob", "a")
    [adjusted] = game.ok(AdjustScore(hunt_id=HUNT, player_id="ann", delta=7, reason="style"))
    assert solved.data["frozen"] is True and solved.data["points"] == 100
    assert "points" not in views.event_data(solved, views.PLAYER)
    assert views.event_data(solved, views.PLAYER, own=True)["points"] == 100
    assert views.event_data(solved, views.ADMIN)["points"] == 100
    assert "delta" not in views.event_data(adjusted, views.PLAYER)
    assert views.private_to(solved) == "bob"


def test_unfreezing_shows_the_live_board_again_and_later_events_are_plain():
    game = race()
    game.ok(FreezeBoard(hunt_id=HUNT))
    game.answer("bob", "a")
    game.ok(UnfreezeBoard(hunt_id=HUNT))
    assert board(game, frozen=True) == board(game, frozen=False)
    solved, treasure = game.answer("bob", "b")
    assert "frozen" not in solved.data and "frozen" not in treasure.data and views.event_data(solved, views.PLAYER)["points"] == 50


def test_freezing_twice_unfreezing_a_live_board_and_freezing_an_ended_hunt_are_refused():
    game = race()
    game.reject(UnfreezeBoard(hunt_id=HUNT), "invalid_command")
    game.ok(FreezeBoard(hunt_id=HUNT))
    game.reject(FreezeBoard(hunt_id=HUNT), "invalid_command")
    game.ok(EndHunt(hunt_id=HUNT))
    assert board(game, frozen=True) == [("ann", 100), ("bob", 0)]  # an ended hunt stays frozen until unfrozen
    game.ok(UnfreezeBoard(hunt_id=HUNT))
    game.reject(FreezeBoard(hunt_id=HUNT), "hunt_not_running")


def test_freeze_at_is_a_timer_that_freezes_once():
    definition = parse_definition(hunt(freeze_at=ts(T0 + 60_000), ends_at=ts(T0 + 120_000)))
    assert (FREEZE, T0 + 60_000) in timers_for(definition)
    game = Game(definition.to_json())
    [frozen] = decide_timer(game.state, FREEZE, T0 + 60_000)
    assert (frozen.type, frozen.data) == ("board_frozen", {"by": "timer"})
    game.ok(FreezeBoard(hunt_id=HUNT))
    assert decide_timer(game.state, FREEZE, T0 + 60_000) == []  # frozen already


def test_freeze_at_must_fall_inside_the_hunt():
    with pytest.raises(DefinitionError) as raised:
        parse_definition(hunt(ends_at=ts(T0 + 1000), freeze_at=ts(T0 + 2000)))
    assert raised.value.problems[0].startswith("freeze_at: must be before ends_at")


def test_the_frozen_board_survives_a_snapshot():
    game = race()
    game.ok(FreezeBoard(hunt_id=HUNT))
    game.answer("bob", "a")
    restored = from_snapshot(to_snapshot(game.state))
    assert to_snapshot(restored) == to_snapshot(game.state)
    assert views.leaderboard(restored, 10, frozen=True) == views.leaderboard(game.state, 10, frozen=True)
