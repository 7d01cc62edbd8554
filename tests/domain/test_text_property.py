"""Any text, lone surrogates included, in any string field: parsed, decided and encoded, or refused.

A lone UTF-16 surrogate (``"\\ud800"`` is legal JSON) cannot be written as UTF-8, so
orjson, SQLite and the WebSocket all refuse it. Every string field of every command,
query and hunt definition must therefore refuse it as ``invalid_command`` naming the
field, and whatever passes must encode: the events' data, the result, the views.
"""

from __future__ import annotations

import copy
from functools import lru_cache
from typing import Any

import attrs
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from thengine.domain import views
from thengine.domain.commands import (
    COMMAND_TYPES, QUERY_TYPES, CreateHunt, Entries, Flags, Hunt, Hunts, Leaderboard, Player, Rejection,
    parse_command, parse_query, to_json,
)
from thengine.domain.definition import Clue, Hint, HuntDefinition, parse_definition, parse_hunt_toml
from thengine.domain.events import StoredEvent
from thengine.domain.result import Result
from thengine.domain.rules import decide, evolve
from thengine.domain.state import HuntState
from thengine.errors import DefinitionError

T0 = 1_800_000_000_000
NOW = T0 + 60_000

#: Strings that UTF-8 cannot hold; hypothesis's own text draws them too, but rarely.
SURROGATES = ["\ud800", "\udfff", "a\ud83d", "\ud83d\ude00", "\udc80x", "ok \udbff!"]


def surrogate_bearing() -> st.SearchStrategy[str]:
    any_char = st.text(st.characters(exclude_categories=()), max_size=8)
    return st.builds(lambda a, s, b: a + s + b, any_char, st.sampled_from(SURROGATES), any_char)


#: Any text at all: anything hypothesis draws (surrogates not excluded), or with a surrogate for sure.
any_text = st.one_of(st.text(st.characters(exclude_categories=()), max_size=30), surrogate_bearing())


def encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def escaped(text: str) -> str:
    """How a message shows `text`: lone surrogates as ``\\uXXXX`` escapes."""
    return text.encode("utf-8", "backslashreplace").decode()


def has_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        return not encodable(value)
    if isinstance(value, dict):
        return any(has_surrogate(k) or has_surrogate(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return any(has_surrogate(v) for v in value)
    return False


def definition() -> dict[str, Any]:
    return {
        "id": "h",
        "title": "Hunt h",
        "order": "any",
        "clues": [
            {"id": "c1", "title": "First", "prompt": "Say yes", "answers": ["yes", "oui"], "points": 10,
             "hints": [{"text": "agree", "penalty": 1}]},
            {"id": "c2", "prompt": "Go there", "location": {"lat": 10.0, "lon": 20.0, "radius_m": 50.0},
             "points": 20},
            {"id": "c3", "prompt": "Take a photo", "by": "judged", "points": 30},
        ],
    }


@lru_cache(maxsize=1)
def running_state() -> HuntState:
    """A running hunt with player p1 (and p2 in team t) joined, and p2's entry e1 pending."""
    state: HuntState | None = None
    seq = 0
    for command in (parse_command({"type": "create_hunt", "definition": definition()}),
                    parse_command({"type": "start_hunt", "hunt_id": "h"}),
                    parse_command({"type": "join_hunt", "hunt_id": "h", "player_id": "p1"}),
                    parse_command({"type": "join_hunt", "hunt_id": "h", "player_id": "p2", "team_id": "t"}),
                    parse_command({"type": "submit_entry", "hunt_id": "h", "player_id": "p2", "clue_id": "c3",
                                   "text": "an entry to judge"})):
        assert not isinstance(command, Rejection)
        decision = decide(state, command, now=T0)
        assert not isinstance(decision, Rejection), decision
        for new in decision:
            seq += 1
            state = evolve(state, StoredEvent(seq=seq, hunt_id="h", version=seq, type=new.type, ts=T0, data=new.data))
    assert state is not None
    return state


#: A valid JSON object of each command and query type; the property spoils string fields.
TEMPLATES: dict[str, dict[str, Any]] = {
    "start_hunt": {"hunt_id": "h"},
    "end_hunt": {"hunt_id": "h"},
    "join_hunt": {"hunt_id": "h", "player_id": "p3", "team_id": "t"},
    "leave_hunt": {"hunt_id": "h", "player_id": "p1"},
    "submit_answer": {"hunt_id": "h", "player_id": "p1", "clue_id": "c1", "answer": "yes"},
    "check_in": {"hunt_id": "h", "player_id": "p1", "clue_id": "c2", "lat": 10.0, "lon": 20.0, "accuracy_m": 5.0},
    "request_hint": {"hunt_id": "h", "player_id": "p1", "clue_id": "c1"},
    "extend_hunt": {"hunt_id": "h", "ends_at": "2030-01-01T00:00:00Z"},
    "remove_player": {"hunt_id": "h", "player_id": "p1", "reason": "cheating"},
    "adjust_score": {"hunt_id": "h", "team_id": "t", "delta": 5, "reason": "bonus"},
    "leaderboard": {"hunt_id": "h", "limit": 3},
    "player": {"hunt_id": "h", "player_id": "p1"},
    "hunt": {"hunt_id": "h"},
    "hunts": {},
    "flags": {"hunt_id": "h"},
    "submit_entry": {"hunt_id": "h", "player_id": "p1", "clue_id": "c3", "text": "our photo",
                     "media": {"url": "https://x.example/p.jpg", "sha256": "ab" * 32, "content_type": "image/jpeg",
                               "bytes": 1000}},
    "judge_entry": {"hunt_id": "h", "entry_id": "e1", "verdict": "reject", "reason": "blurry"},
    "appeal_entry": {"hunt_id": "h", "player_id": "p1", "entry_id": "e1", "message": "look again"},
    "entries": {"hunt_id": "h", "status": "pending"},
    "freeze_board": {"hunt_id": "h"},
    "unfreeze_board": {"hunt_id": "h"},
}
assert set(TEMPLATES) == {*COMMAND_TYPES, *QUERY_TYPES} - {"create_hunt"}

#: Where a hunt definition holds strings (the key path, for the message's field name).
DEFINITION_PATHS = [("id",), ("title",), ("order",), ("clues", 0, "id"), ("clues", 0, "title"),
                    ("clues", 0, "prompt"), ("clues", 0, "answers", 1), ("clues", 0, "hints", 0, "text"),
                    ("clues", 1, "prompt"), ("starts_at",)]


def string_fields(obj: dict[str, Any]) -> list[str]:
    return [key for key, value in obj.items() if isinstance(value, str)]


@st.composite
def spoiled_requests(draw: Any) -> tuple[dict[str, Any], str | None]:
    """A command or query object with any text in some string fields (or in a new key, or
    its type); or with a surrogate in exactly one field, and then that field's name."""
    type_name = draw(st.sampled_from(sorted(TEMPLATES)))
    obj: dict[str, Any] = {"type": type_name, **TEMPLATES[type_name]}
    fields = string_fields(obj)
    if draw(st.booleans()):  # one field spoiled, with a surrogate for sure: it must be named
        name = draw(st.sampled_from([*fields, "a new key"]))
        if name == "a new key":
            key = draw(surrogate_bearing())
            obj[key] = 1
            return obj, key
        obj[name] = draw(surrogate_bearing())
        return obj, name
    spoiled = draw(st.lists(st.sampled_from(fields), unique=True, max_size=len(fields)))
    for name in spoiled:
        obj[name] = draw(any_text)
    if draw(st.integers(0, 5)) == 0:
        obj[draw(any_text)] = draw(any_text)
    if draw(st.integers(0, 9)) == 0:  # a timestamp field may not hold any text either
        obj["ends_at"] = draw(any_text)
    return obj, None


@st.composite
def spoiled_definitions(draw: Any) -> tuple[dict[str, Any], str | None]:
    """A definition with any text at some of its string places (or in a new key)."""
    obj = definition()
    paths = draw(st.lists(st.sampled_from(DEFINITION_PATHS), unique=True, max_size=4))
    bearing: list[str] = []
    for path in paths:
        target: Any = obj
        for step in path[:-1]:
            target = target[step]
        target[path[-1]] = text = draw(any_text)
        if has_surrogate(text):
            bearing.append(_path_name(path))
    if draw(st.integers(0, 5)) == 0:
        key = draw(any_text)
        obj["clues"][0][key] = 1
        if has_surrogate(key):
            bearing.append("clues[0]")
    return obj, (bearing[0] if len(bearing) == 1 else None)


def _path_name(path: tuple[Any, ...]) -> str:
    out = ""
    for step in path:
        out += f"[{step}]" if isinstance(step, int) else (f".{step}" if out else step)
    return out


def assert_encodes(value: Any) -> None:
    orjson.dumps(value)  # raises on a lone surrogate, as every encoder downstream does


def decide_and_encode(command: Any) -> None:
    """Decide `command` against a running hunt and encode all that would leave the engine."""
    assert_encodes(to_json(command))
    state = running_state()
    decision = decide(state if command.hunt_id == "h" else None, command, now=NOW)
    if isinstance(decision, Rejection):
        assert_encodes(Result(ok=False, error=decision).to_json())
        return
    events = []
    for n, new in enumerate(decision, 1):
        assert_encodes(new.data)
        events.append(StoredEvent(seq=100 + n, hunt_id=command.hunt_id, version=100 + n, type=new.type,
                                  ts=NOW, data=new.data))
    assert_encodes(Result(ok=True, events=tuple(events)).to_json())
    for event in events:
        assert_encodes(views.event(event, views.PLAYER, own=True))
        assert_encodes(views.event(event, views.PLAYER))


def answer_and_encode(query: Any) -> None:
    """Answer `query` from the running hunt as the engine does, and encode the answer."""
    assert_encodes(to_json(query))
    state = running_state()
    if isinstance(query, Hunts):
        answer: Any = views.hunts([state])
    elif query.hunt_id != "h":
        return  # unknown_hunt
    elif isinstance(query, Leaderboard):
        answer = views.leaderboard(state, query.limit)
    elif isinstance(query, Player):
        answer = views.player(state, query.player_id)
        if isinstance(answer, Rejection):
            answer = answer.to_json()
    elif isinstance(query, Flags):
        answer = views.flags(state)
    elif isinstance(query, Entries):
        answer = views.entries(state, query.status)
    else:
        assert isinstance(query, Hunt)
        answer = views.hunt(state, views.PLAYER)
    assert_encodes(answer)


# -- the properties -----------------------------------------------------------------


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(request=spoiled_requests())
def test_any_text_in_a_command_or_query_is_decided_and_encodes_or_is_refused_naming_the_field(request) -> None:
    obj, named = request
    parse = parse_query if obj["type"] in QUERY_TYPES else parse_command
    parsed = parse(copy.deepcopy(obj))  # never raises
    if isinstance(parsed, Rejection):
        assert parsed.code == "invalid_command"
        assert_encodes(parsed.to_json())
        if named is not None:
            prefix = escaped(named)
            assert parsed.message.startswith(f"{prefix}:"), (named, parsed.message)
        return
    assert not has_surrogate(obj), (obj, parsed)
    if obj["type"] in QUERY_TYPES:
        answer_and_encode(parsed)
    else:
        decide_and_encode(parsed)
    assert parse(to_json(parsed)) == parsed


@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spoiled=spoiled_definitions())
def test_any_text_in_a_hunt_definition_is_created_and_encodes_or_is_refused_naming_the_place(spoiled) -> None:
    obj, named = spoiled
    command = parse_command({"type": "create_hunt", "definition": copy.deepcopy(obj)})
    if isinstance(command, Rejection):
        assert command.code == "invalid_command"
        assert_encodes(command.to_json())
        if named is not None:
            place = escaped(named)  # one of the problems (all are listed) names it
            assert f"definition: {place}" in command.message or f"; {place}" in command.message, command.message
        return
    assert not has_surrogate(obj), obj
    decision = decide(None, command, now=T0)
    if isinstance(decision, Rejection):
        assert_encodes(decision.to_json())
        return
    (created,) = decision
    assert_encodes(created.data)
    state = evolve(None, StoredEvent(seq=1, hunt_id=command.hunt_id, version=1, type=created.type, ts=T0,
                                     data=created.data))
    assert_encodes(views.hunt(state, views.ADMIN))
    assert_encodes(views.hunt(state, views.PLAYER))


@settings(max_examples=300, deadline=None)
@given(text=any_text)
def test_the_text_rule_is_exactly_what_utf8_can_hold(text: str) -> None:
    from thengine.domain.fields import escape_surrogates, is_utf8

    assert is_utf8(text) is encodable(text)
    assert escape_surrogates(text) == escaped(text)
    assert escape_surrogates(text).encode("utf-8").decode() == escape_surrogates(text)
    assert orjson.loads(orjson.dumps(escape_surrogates(text))) == escape_surrogates(text)


# -- built in Python -------------------------------------------------------------------


STRING_FIELDS = [
    (cls, field.name)
    for cls in (*COMMAND_TYPES.values(), *QUERY_TYPES.values())
    for field in attrs.fields(cls)
    if field.metadata.get("kind") in ("id", "answer", "reason")
]


def valid_kwargs(cls: type) -> dict[str, Any]:
    parsed = (parse_query if cls.TYPE in QUERY_TYPES else parse_command)({"type": cls.TYPE, **TEMPLATES[cls.TYPE]})
    assert not isinstance(parsed, Rejection), parsed
    return {field.name: getattr(parsed, field.name) for field in attrs.fields(cls)}


@pytest.mark.parametrize("cls, name", STRING_FIELDS, ids=lambda v: getattr(v, "TYPE", v))
@pytest.mark.parametrize("text", SURROGATES[:3])
def test_a_command_built_in_python_with_a_surrogate_raises_valueerror_naming_the_field(
        cls: type, name: str, text: str) -> None:
    kwargs = valid_kwargs(cls)
    cls(**kwargs)  # fine as it is
    with pytest.raises(ValueError, match=f"^{name}: "):
        cls(**{**kwargs, name: text})
    if name == "team_id":
        return
    with pytest.raises(ValueError, match=f"^{name}: "):  # attrs.evolve validates too
        attrs.evolve(cls(**kwargs), **{name: text})


def test_a_definition_built_in_python_with_a_surrogate_cannot_make_a_create_hunt() -> None:
    good = parse_definition(definition())
    CreateHunt(definition=good)
    clue = good.clues[0]
    spoiled = [
        attrs.evolve(good, title="T\ud800"),
        attrs.evolve(good, clues=(attrs.evolve(clue, prompt="\udfff"), *good.clues[1:])),
        attrs.evolve(good, clues=(attrs.evolve(clue, answers=("yes", "a\ud83d")), *good.clues[1:])),
        attrs.evolve(good, clues=(attrs.evolve(clue, hints=(Hint(text="\ud800", penalty=1),)), *good.clues[1:])),
        attrs.evolve(good, clues=(attrs.evolve(clue, id="c\ud800"), *good.clues[1:])),
        HuntDefinition(id="h", title="t", order="any", clues=(Clue(id="c", prompt="p", points=1, answers=("\ud800",)),)),
    ]
    for definition_ in spoiled:
        with pytest.raises(ValueError, match="^definition: "):
            CreateHunt(definition=definition_)


def test_a_definition_built_in_python_with_a_non_json_value_cannot_make_a_create_hunt() -> None:
    good = parse_definition(definition())
    with pytest.raises(ValueError, match="^definition: "):
        CreateHunt(definition=attrs.evolve(good, starts_at="soon"))
    with pytest.raises(ValueError, match="^definition: "):
        CreateHunt(definition=attrs.evolve(good, max_players=True))


# -- hunt definitions -------------------------------------------------------------------


@pytest.mark.parametrize("path", DEFINITION_PATHS, ids=_path_name)
def test_a_surrogate_anywhere_in_a_definition_is_a_problem_naming_its_place(path: tuple[Any, ...]) -> None:
    obj = definition()
    target: Any = obj
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = "x\ud800"
    with pytest.raises(DefinitionError) as raised:
        parse_definition(obj)
    (problem,) = raised.value.problems
    assert problem.startswith(f"{_path_name(path)}: ")
    assert_encodes(problem)


def test_a_surrogate_in_a_definition_key_is_reported_as_an_escape() -> None:
    obj = definition()
    obj["clues"][1]["\ud800"] = 1
    with pytest.raises(DefinitionError) as raised:
        parse_definition(obj)
    assert raised.value.problems == ["clues[1].\\ud800: unknown key"]


def test_a_toml_surrogate_escape_is_a_toml_problem() -> None:
    with pytest.raises(DefinitionError, match="toml: "):
        parse_hunt_toml('id = "h"\ntitle = "\\ud800"\n')
