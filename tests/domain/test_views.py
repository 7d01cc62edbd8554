"""What each reader sees: players never see answers, unrevealed hint texts, prompts of
locked clues or check-in places; the admin sees everything."""

from __future__ import annotations

import json
from typing import Any, Iterator

import pytest

from thengine.domain import views
from thengine.domain.commands import Rejection

from .play import HUNT, AdjustScore, Game, JoinHunt, clue, hunt

PLACE = {"lat": 12.345678, "lon": 98.765432, "radius_m": 40.5}
ANSWERS = ["SECRET-ANSWER-ONE", "SECRET-ANSWER-TWO", "SECRET-ANSWER-FOUR"]
HINT_TEXTS = ["HINT-TEXT-ONE-A", "HINT-TEXT-ONE-B", "HINT-TEXT-TWO", "HINT-TEXT-THREE", "HINT-TEXT-FOUR"]
PROMPTS = ["PROMPT-ONE", "PROMPT-TWO", "PROMPT-THREE", "PROMPT-FOUR"]


def definition(order: str = "sequential") -> dict[str, Any]:
    return hunt(
        clue("one", prompt=PROMPTS[0], answers=[ANSWERS[0]],
             hints=[{"text": HINT_TEXTS[0], "penalty": 5}, {"text": HINT_TEXTS[1], "penalty": 5}]),
        clue("two", prompt=PROMPTS[1], answers=[ANSWERS[1]], hints=[{"text": HINT_TEXTS[2], "penalty": 5}]),
        clue("three", prompt=PROMPTS[2], location=PLACE, hints=[{"text": HINT_TEXTS[3], "penalty": 5}]),
        clue("four", prompt=PROMPTS[3], answers=[ANSWERS[2]], hints=[{"text": HINT_TEXTS[4], "penalty": 5}]),
        order=order, wrong_answer_cooldown_s=5,
    )


def played() -> Game:
    """ann (team red, with bob) solved "one" after its first hint and tried "two";
    cat (solo) revealed nothing and answered wrongly; then the organiser stepped in."""
    game = Game(definition())
    game.ok(JoinHunt(hunt_id=HUNT, player_id="ann", team_id="red"))
    game.ok(JoinHunt(hunt_id=HUNT, player_id="bob", team_id="red"))
    game.join("cat")
    game.hint("ann", "one")
    game.answer("ann", "one", "wrong guess")
    game.answer("bob", "one", ANSWERS[0].lower())
    game.hint("bob", "two")
    game.answer("ann", "two", "another guess")
    game.answer("cat", "one", "cat guess")
    game.advance(10)
    game.ok(AdjustScore(hunt_id=HUNT, player_id="cat", delta=3, reason="nice try"))
    game.leave("cat")
    return game


def leaves(value: Any) -> Iterator[Any]:
    """Every key and every scalar in a JSON value."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from leaves(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from leaves(item)
    else:
        yield value


def leaked(value: Any, secrets: list[str]) -> list[str]:
    """The secrets found in `value`, as text anywhere or as a place's coordinates."""
    json.dumps(value)  # views are JSON-ready
    text = json.dumps(value, ensure_ascii=False)
    found = [s for s in secrets if s in text or s.lower() in text.lower()]
    found += [f"coordinate {x}" for x in leaves(value) if x in (PLACE["lat"], PLACE["lon"])]
    found += [f"key {k}" for k in leaves(value) if k in ("location", "answers")]
    return found


ALL_SECRETS = ANSWERS + HINT_TEXTS + PROMPTS


# -- the player view -----------------------------------------------------------------

def test_a_player_view_shows_only_open_prompts_and_revealed_hints():
    game = played()
    view = views.player(game.state, "ann")
    assert not leaked(view, ANSWERS + HINT_TEXTS[1:2] + HINT_TEXTS[3:] + PROMPTS[2:])
    assert [c["id"] for c in view["clues"]] == ["one", "two"]
    one, two = view["clues"]
    assert (one["prompt"], one["solved"]) == (PROMPTS[0], True)
    assert one["hints"] == [{"text": HINT_TEXTS[0], "penalty": 5}] and one["hints_left"] == 1
    assert (two["prompt"], two["solved"], two["wrong_answers"]) == (PROMPTS[1], False, 1)
    assert two["hints"] == [{"text": HINT_TEXTS[2], "penalty": 5}] and two["hints_left"] == 0


def test_a_team_member_sees_the_hints_the_team_revealed():
    game = played()
    assert views.player(game.state, "ann")["clues"] == views.player(game.state, "bob")["clues"]


def test_a_player_view_of_a_solo_player_shows_only_the_first_clue():
    game = played()
    view = views.player(game.state, "cat")
    assert not leaked(view, ANSWERS + HINT_TEXTS + PROMPTS[1:])
    assert [c["id"] for c in view["clues"]] == ["one"]
    assert view["clues"][0]["wrong_answers"] == 1


def test_a_player_view_of_a_location_clue_shows_the_radius_but_not_the_place():
    game = Game(definition(order="any"))
    game.join("p1")
    view = views.player(game.state, "p1")
    three = next(c for c in view["clues"] if c["id"] == "three")
    assert three["by"] == "check_in" and three["radius_m"] == 40.5
    assert not leaked(view, ANSWERS + HINT_TEXTS)


def test_a_player_in_the_lobby_sees_no_prompts():
    game = Game(definition(order="any"), start=False)
    game.join("p1")
    view = views.player(game.state, "p1")
    assert view["clues"] == [] and view["hunt_status"] == "created"
    assert not leaked(view, ALL_SECRETS)


def test_a_player_view_has_score_rank_and_status():
    game = played()
    ann, cat = views.player(game.state, "ann"), views.player(game.state, "cat")
    assert {k: ann[k] for k in ("hunt_id", "player_id", "team_id", "status", "score", "rank", "solved")} == {
        "hunt_id": HUNT, "player_id": "ann", "team_id": "red", "status": "active",
        "score": 100 - 5 - 5, "rank": 1, "solved": 1}
    assert (cat["team_id"], cat["status"], cat["score"], cat["rank"]) == (None, "left", 3, 2)
    assert ann["treasure_found"] is False


def test_a_player_view_of_an_unknown_player_is_not_joined():
    result = views.player(played().state, "zed")
    assert isinstance(result, Rejection) and result.code == "not_joined"


def test_a_player_view_says_when_the_next_hint_unlocks():
    game = Game(hunt(clue("a", hints=[{"text": "t", "penalty": 1, "unlock_after_s": 90}]), clue("b")))
    game.join("p1")
    assert views.player(game.state, "p1")["clues"][0]["next_hint_at"] == game.now + 90_000


def test_the_player_hunt_view_has_no_secrets():
    view = views.hunt(played().state, "player")
    assert not leaked(view, ALL_SECRETS)
    assert "definition" not in view
    assert [c["id"] for c in view["clue_list"]] == ["one", "two", "three", "four"]
    assert (view["players"], view["teams"], view["status"]) == (2, 1, "running")


def test_player_views_of_events_have_no_secrets():
    game = played()
    assert {e.type for e in game.events} >= {
        "hunt_created", "hint_revealed", "answer_wrong", "clue_solved", "score_adjusted"}
    for event in game.events:
        view = views.event(event, "player")
        assert not leaked(view, ALL_SECRETS + ["wrong guess", "another guess"]), event.type
        assert {k: view[k] for k in ("seq", "hunt_id", "version", "type", "ts")} == {
            k: getattr(event, k) for k in ("seq", "hunt_id", "version", "type", "ts")}


def test_the_player_view_of_hunt_created_keeps_the_public_shape():
    created = views.event(played().events[0], "player")["data"]["definition"]
    assert created["id"] == HUNT and created["wrong_answer_cooldown_s"] == 5
    assert created["clues"][2] == {"id": "three", "points": 100, "by": "check_in",
                                   "hints": [{"penalty": 5, "unlock_after_s": 0}]}


def test_the_author_of_an_event_sees_their_own_hint_text_and_answer():
    game = played()
    hint = next(e for e in game.events if e.type == "hint_revealed")
    wrong = next(e for e in game.events if e.type == "answer_wrong")
    assert views.event(hint, "player", own=True)["data"]["text"] == HINT_TEXTS[0]
    assert "text" not in views.event(hint, "player")["data"]
    assert views.event(wrong, "player", own=True)["data"]["answer"] == "wrong guess"
    assert "answer" not in views.event(wrong, "player")["data"]


def test_player_event_views_do_not_change_the_stored_event():
    game = played()
    before = [e.to_json() for e in game.events]
    for event in game.events:
        views.event(event, "player")
    assert json.dumps([e.to_json() for e in game.events]) == json.dumps(before)


# -- the admin view --------------------------------------------------------------------

def test_the_admin_hunt_view_has_the_whole_definition():
    game = played()
    view = views.hunt(game.state, "admin")
    found = leaked(view, ALL_SECRETS)
    assert set(found) >= {*ALL_SECRETS, f"coordinate {PLACE['lat']}", f"coordinate {PLACE['lon']}"}
    assert view["definition"] == game.state.definition.to_json()


def test_admin_views_of_events_are_the_stored_events():
    game = played()
    for event in game.events:
        assert views.event(event, "admin") == event.to_json()


# -- leaderboards and lists ------------------------------------------------------------

def test_a_leaderboard_has_the_documented_shape_best_first():
    board = views.leaderboard(played().state, 10)
    assert set(board) == {"hunt_id", "total", "offset", "entries"} and board["hunt_id"] == HUNT
    assert (board["total"], board["offset"]) == (2, 0)
    assert board["entries"] == [
        {"rank": 1, "id": "red", "kind": "team", "score": 90, "solved": 1,
         "reached_ts": board["entries"][0]["reached_ts"]},
        {"rank": 2, "id": "cat", "kind": "player", "score": 3, "solved": 0,
         "reached_ts": board["entries"][1]["reached_ts"]},
    ]
    assert all(isinstance(e["reached_ts"], int) for e in board["entries"])


def test_a_leaderboard_stops_at_its_limit():
    game = Game(hunt())
    for n in range(5):
        game.join(f"p{n}")
    entries = views.leaderboard(game.state, 3)["entries"]
    assert [(e["rank"], e["id"]) for e in entries] == [(1, "p0"), (2, "p1"), (3, "p2")]


@pytest.mark.parametrize("limit", [1, 2, 50])
def test_a_leaderboard_ranks_are_consecutive(limit):
    entries = views.leaderboard(played().state, limit)["entries"]
    assert [e["rank"] for e in entries] == list(range(1, min(limit, 2) + 1))


def ten_players() -> Game:
    """p0 ... p9, ranked in join order (equal scores, earlier first)."""
    game = Game(hunt())
    for n in range(10):
        game.advance(1)
        game.join(f"p{n}")
    return game


def ids(board: Any) -> list[str]:
    return [e["id"] for e in board["entries"]]


def test_offset_pages_the_leaderboard_and_ranks_stay_absolute():
    board = views.leaderboard(ten_players().state, 3, offset=3)
    assert ids(board) == ["p3", "p4", "p5"] and [e["rank"] for e in board["entries"]] == [4, 5, 6]
    assert (board["total"], board["offset"]) == (10, 3)
    assert ids(views.leaderboard(ten_players().state, 3, offset=9)) == ["p9"]
    assert ids(views.leaderboard(ten_players().state, 3, offset=50)) == []


@pytest.mark.parametrize(("around", "page"), [
    ("p5", ["p3", "p4", "p5", "p6", "p7"]),  # centred
    ("p0", ["p0", "p1", "p2", "p3", "p4"]),  # at the top: as centred as the top allows
    ("p9", ["p5", "p6", "p7", "p8", "p9"]),  # at the bottom
])
def test_around_centres_the_page_on_that_players_entry(around, page):
    board = views.leaderboard(ten_players().state, 5, around=around)
    assert ids(board) == page and board["offset"] == int(page[0][1:])


def test_around_a_team_member_centres_on_the_team_and_a_team_id_works_too():
    game = played()
    for who in ("ann", "red"):
        assert ids(views.leaderboard(game.state, 1, around=who)) == ["red"]
    assert ids(views.leaderboard(game.state, 1, around="cat")) == ["cat"]


def test_around_someone_not_on_the_board_is_not_joined():
    rejection = views.leaderboard(ten_players().state, 5, around="nobody")
    assert isinstance(rejection, Rejection) and rejection.code == "not_joined"
    assert "nobody" in rejection.message


def test_own_entry_is_the_players_or_their_teams_entry():
    game = played()
    assert views.own_entry(game.state, "bob")["id"] == "red"
    assert views.own_entry(game.state, "cat")["rank"] == 2
    assert views.own_entry(game.state, "nobody") is None


def test_hunts_lists_every_hunt_by_id_without_secrets():
    first, second = played(), Game(definition() | {"id": "a-hunt"}, start=False)
    listing = views.hunts([first.state, second.state])
    assert [h["hunt_id"] for h in listing["hunts"]] == ["a-hunt", HUNT]
    assert not leaked(listing, ALL_SECRETS)
