"""Snapshots built a step at a time equal whole ones (`thengine.runtime.snapshots`)."""

from __future__ import annotations

import zlib

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from thengine.domain.commands import JoinHunt, SubmitAnswer
from thengine.domain.rules import evolve
from thengine.domain.state import from_snapshot, to_snapshot
from thengine.runtime.snapshots import SnapshotBuilder
from thengine.storage.codec import decode_snapshot

from ..domain.play import Game, clue, hunt
from ..domain.test_properties import hunts, play, scripts


def replayed_to(log, version):
    state = None
    for event in log[:version]:
        state = evolve(state, event)
    return state


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(definition=hunts(), script=scripts(), data=st.data())
def test_a_snapshot_built_in_steps_while_events_arrive_equals_a_whole_one(definition, script, data):
    _, log, _ = play(definition, script)
    begin = data.draw(st.integers(1, len(log)), label="begin after event")
    state = replayed_to(log, begin)
    builder = SnapshotBuilder(state)
    for event in log[begin:]:
        builder.step(data.draw(st.integers(0, 3), label="step"))
        state = evolve(state, event)
    while not builder.step(data.draw(st.integers(1, 3), label="step")):
        pass
    assert state.touched is None  # evolve stops noting once the rows are taken
    # What it stands for: the state as of the step that took the last rows.
    assert begin <= builder.version <= len(log) and builder.seq == log[builder.version - 1].seq
    at = to_snapshot(replayed_to(log, builder.version))
    # The same JSON, byte for byte (the groups' and the players' order included).
    assert zlib.decompress(builder.blob) == orjson.dumps(at)
    assert to_snapshot(from_snapshot(decode_snapshot(builder.blob))) == at


def test_each_step_takes_at_most_its_share_and_the_rest_waits_for_the_next():
    game = Game(hunt(clue("a"), clue("b")))
    for p in range(500):
        game.run(JoinHunt(hunt_id="h", player_id=f"p{p}"))
    builder = SnapshotBuilder(game.state)
    steps = 1
    while not builder.step(50):
        steps += 1
        game.run(SubmitAnswer(hunt_id="h", player_id=f"p{steps}", clue_id="a", answer="a"))
    # 500 groups and 500 players taken, then encoded, 50 a step, plus the rounds
    # taking again what the answers touched meanwhile.
    assert steps >= 2 * 1000 // 50
    assert decode_snapshot(builder.blob) == to_snapshot(replayed_to(game.events, builder.version))
    assert builder.version < game.state.version  # answers landed after the rows were taken


def test_an_abandoned_build_stops_noting_what_events_touch():
    game = Game(hunt())
    game.run(JoinHunt(hunt_id="h", player_id="ann"))
    builder = SnapshotBuilder(game.state)
    game.run(JoinHunt(hunt_id="h", player_id="bob"))
    assert game.state.touched == ({"bob": None}, {("player", "bob"): None})
    builder.abandon()
    game.run(JoinHunt(hunt_id="h", player_id="cy"))
    assert game.state.touched is None
    SnapshotBuilder(game.state).abandon()  # a new build may begin


def test_a_small_hunt_is_built_in_one_step():
    game = Game(hunt())
    for p in range(10):
        game.run(JoinHunt(hunt_id="h", player_id=f"p{p}"))
    builder = SnapshotBuilder(game.state)
    assert builder.step(256)
    assert decode_snapshot(builder.blob) == to_snapshot(game.state)
