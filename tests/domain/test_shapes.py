"""Event shapes and rules versions: old events are read in today's shape, old hunts keep their rules."""

from __future__ import annotations

import json

import pytest

from thengine.domain.events import EVENT_TYPES, StoredEvent
from thengine.domain.rules import evolve
from thengine.domain.shapes import SHAPES, UPCASTERS, shape_of, upcast
from thengine.domain.versions import RULES, RULES_VERSION, rules_for
from thengine.errors import StorageError
from thengine.storage.store import Store

from .play import T0, hunt


def test_every_old_shape_has_an_upcaster_and_no_more() -> None:
    assert set(SHAPES) <= set(EVENT_TYPES)
    assert set(UPCASTERS) == {(t, n) for t, current in SHAPES.items() for n in range(1, current)}


def test_a_hunt_from_before_rules_versions_is_version_1() -> None:
    assert upcast("hunt_created", 1, {"definition": {"id": "h"}}) == {"definition": {"id": "h"}, "rules_version": 1}


def test_a_wrong_answer_from_before_penalties_cost_nothing() -> None:
    old = {"player_id": "p", "clue_id": "a", "answer": "x", "attempts": 2}
    assert upcast("answer_wrong", 1, old) == {**old, "penalty": 0}


def test_a_hint_from_before_charged_took_its_whole_penalty() -> None:
    old = {"player_id": "p", "clue_id": "a", "hint": 0, "penalty": 15, "text": "t"}
    assert upcast("hint_revealed", 1, old) == {**old, "charged": 15}


def test_a_treasure_from_before_time_bonuses_had_none() -> None:
    old = {"player_id": "p", "team_id": "red", "score": 300}
    assert upcast("treasure_found", 1, old) == {**old, "time_bonus": 0}


def test_upcasters_never_change_what_they_are_given() -> None:
    old = {"player_id": "p", "clue_id": "a", "hint": 0, "penalty": 15, "text": "t"}
    kept = json.loads(json.dumps(old))
    upcast("hint_revealed", 1, old)
    assert old == kept


def test_the_current_shape_is_read_as_it_is_and_a_newer_one_is_refused() -> None:
    data = {"player_id": "p"}
    assert upcast("player_left", 1, data) is data and shape_of("player_left") == 1
    with pytest.raises(ValueError, match="newer"):
        upcast("hint_revealed", SHAPES["hint_revealed"] + 1, data)


def test_a_hunt_keeps_the_rules_version_it_was_created_under() -> None:
    definition = {"definition": hunt(), "rules_version": 1}
    state = evolve(None, StoredEvent(seq=1, hunt_id="h", version=1, type="hunt_created", ts=T0, data=definition))
    assert state.rules is RULES[1] and RULES_VERSION in RULES
    with pytest.raises(ValueError, match="newer release"):
        rules_for(RULES_VERSION + 1)


def test_the_store_reads_old_rows_in_todays_shape_and_refuses_newer_ones(tmp_path) -> None:
    db = str(tmp_path / "s.db")
    old_hint = {"player_id": "p", "clue_id": "a", "hint": 0, "penalty": 15, "text": "t"}
    with Store.open(db) as store:  # rows as an older release stored them: no shape column value
        store.conn.execute("INSERT INTO events (seq, hunt_id, version, type, ts, data) VALUES (1, 'h', 1, "
                           "'hint_revealed', 0, ?)", (json.dumps(old_hint),))
        stored_shape = store.conn.execute("SELECT shape FROM events").fetchone()[0]
        [event] = store.read_events()
        assert stored_shape == 1 and event.data == {**old_hint, "charged": 15}
        assert json.loads(store.conn.execute("SELECT data FROM events").fetchone()[0]) == old_hint  # not rewritten
        store.conn.execute("UPDATE events SET shape = 99")
        with pytest.raises(StorageError, match="event 1: hint_revealed in shape 99, newer"):
            list(store.read_events())
