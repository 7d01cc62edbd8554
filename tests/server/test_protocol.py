"""The pure protocol: frames -> requests (or bad_request), and replies -> text."""

from __future__ import annotations

import json

import pytest

from thengine.domain.commands import JoinHunt, Leaderboard, Rejection
from thengine.domain.definition import parse_definition
from thengine.domain.events import StoredEvent
from thengine.domain.result import Result
from thengine.server import protocol as p

from .conftest import SECRETS, hunt_definition


def parse(obj: object) -> object:
    return p.parse_frame(obj if isinstance(obj, str) else json.dumps(obj))


@pytest.mark.parametrize("text, fragment", [
    ("{nope", "not valid JSON"),
    ("[1, 2]", "must be a JSON object, got list"),
    ('"hello"', "must be a JSON object, got str"),
    ('{"op": "command", "id": 1, "command": {"type": "x", "n": NaN}}', "not valid JSON"),
    ("[" * 100_000, "not valid JSON"),
])
def test_malformed_frames_are_bad_requests(text: str, fragment: str) -> None:
    request = p.parse_frame(text)
    assert isinstance(request, p.BadRequest)
    assert fragment in request.message


def test_unknown_op_is_a_bad_request_that_keeps_the_id() -> None:
    request = parse({"op": "dance", "id": 7})
    assert request == p.BadRequest(id=7, message=request.message)
    assert "unknown op" in request.message and "command" in request.message


@pytest.mark.parametrize("frame, fragment", [
    ({"op": "command", "command": {"type": "hunts"}}, "needs an id"),
    ({"op": "query", "id": True, "query": {"type": "hunts"}}, "id: must be"),
    ({"op": "query", "id": [1], "query": {"type": "hunts"}}, "id: must be"),
    ({"op": "query", "id": "x" * 129, "query": {"type": "hunts"}}, "id: must be"),
    ({"op": "query", "id": 1, "query": {"type": "hunts"}, "extra": 1}, "extra: unknown field"),
    ({"op": "command", "id": 1}, "command: required"),
    ({"op": "subscribe", "id": 1, "hunt_id": "no spaces"}, "hunt_id"),
    ({"op": "subscribe", "id": 1, "after_seq": -1}, "after_seq"),
    ({"op": "subscribe", "id": 1, "after_seq": "5"}, "after_seq"),
    ({"op": "subscribe", "id": 1, "batch": "yes"}, "batch"),
    ({"op": "unsubscribe", "id": 1}, "sub:"),
])
def test_frames_with_wrong_fields_are_bad_requests(frame: dict, fragment: str) -> None:
    request = parse(frame)
    assert isinstance(request, p.BadRequest), request
    assert fragment in request.message


def test_a_command_frame_becomes_a_command_request() -> None:
    request = parse({"op": "command", "id": "a", "command": {"type": "join_hunt", "hunt_id": "h", "player_id": "p"},
                     "command_id": "k1"})
    assert request == p.CommandRequest(id="a", type="join_hunt", command=JoinHunt(hunt_id="h", player_id="p"),
                                       command_id="k1")


def test_an_invalid_command_is_carried_as_its_rejection() -> None:
    request = parse({"op": "command", "id": 1, "command": {"type": "join_hunt", "hunt_id": "h"}})
    assert isinstance(request, p.CommandRequest)
    assert isinstance(request.command, Rejection) and request.command.code == "invalid_command"
    assert "player_id" in request.command.message
    unknown = parse({"op": "command", "id": 1, "command": {"type": "fly"}})
    assert unknown.type == "unknown" and isinstance(unknown.command, Rejection)


def test_a_bad_command_id_is_an_invalid_command() -> None:
    request = parse({"op": "command", "id": 1, "command": {"type": "hunts"}, "command_id": 5})
    assert isinstance(request.command, Rejection) and "command_id" in request.command.message


def test_queries_subscribe_unsubscribe_ping_and_hello() -> None:
    assert parse({"op": "query", "id": 2, "query": {"type": "leaderboard", "hunt_id": "h"}}) == \
        p.QueryRequest(id=2, type="leaderboard", query=Leaderboard(hunt_id="h", limit=10))
    assert parse({"op": "subscribe", "id": 3, "hunt_id": "h", "after_seq": 0}) == \
        p.SubscribeRequest(id=3, hunt_id="h", after_seq=0, batch=False)
    assert parse({"op": "subscribe", "id": 3}) == p.SubscribeRequest(id=3, hunt_id=None, after_seq=None)
    assert parse({"op": "unsubscribe", "id": 4, "sub": 3}) == p.UnsubscribeRequest(id=4, sub=3)
    assert parse({"op": "ping", "id": 5}) == p.PingRequest(id=5)
    assert parse({"op": "hello", "token": "t"}) == p.Hello(token="t")
    assert isinstance(parse({"op": "hello"}), p.BadRequest)


def _events() -> tuple[StoredEvent, ...]:
    definition = parse_definition(hunt_definition()).to_json()
    return (
        StoredEvent(seq=1, hunt_id="h", version=1, type="hunt_created", ts=0, data={"definition": definition}),
        StoredEvent(seq=2, hunt_id="h", version=2, type="hint_revealed", ts=0,
                    data={"player_id": "p", "clue_id": "c1", "hint": 0, "penalty": 1, "text": "HINT-ONE"}),
    )


def test_a_players_result_shows_their_own_hint_but_no_definition_secrets() -> None:
    text = p.command_result(1, Result(ok=True, events=_events()), "player")
    assert "HINT-ONE" in text  # their own hint
    for secret in ("ANSWER-ONE", "ANSWER-TWO", "HINT-TWO", "PROMPT-TWO"):
        assert secret not in text
    admin = p.command_result(1, Result(ok=True, events=_events()), "admin")
    assert all(secret in admin for secret in SECRETS)


def test_pushed_events_in_the_player_view_hide_other_players_hints() -> None:
    for event in _events():
        text = p.event_json(event, "player")
        assert not any(secret in text for secret in SECRETS)


def test_event_frames_splice_one_encoding() -> None:
    text = p.event_json(_events()[1], "admin")
    single = json.loads(p.event_frame(p.event_prefix(3), text))
    assert single == {"op": "event", "sub": 3, "event": json.loads(text)}
    batch = json.loads(p.events_frame(p.events_prefix("s"), [text, text]))
    assert batch == {"op": "events", "sub": "s", "events": [json.loads(text)] * 2}


def test_rejections_and_answers() -> None:
    assert json.loads(p.command_result(9, Result.rejected("forbidden", "no"), "player")) == \
        {"op": "result", "id": 9, "ok": False, "error": {"code": "forbidden", "message": "no"}}
    assert json.loads(p.query_result(2, {"x": 1})) == {"op": "result", "id": 2, "ok": True, "data": {"x": 1}}


def test_close_reasons_fit_a_close_frame() -> None:
    assert p.close_reason("short") == "short"
    assert len(p.close_reason("é" * 200).encode()) <= 123
