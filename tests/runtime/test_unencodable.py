"""The engine never fails on a command after taking a seq: what cannot be stored is refused first.

Commands built in Python are validated at construction, but the engine does not rely
on it: a command whose events JSON cannot hold (here a lone surrogate forced past the
validators) is rejected as ``invalid_command`` before any seq or state changes, and
the engine goes on with a gapless log.
"""

from __future__ import annotations

import pytest

from thengine import open_engine
from thengine.domain.commands import Player, SubmitAnswer
from thengine.storage.store import Store

from .harness import answer, join, running_hunt


def forced(command: SubmitAnswer, answer_text: str) -> SubmitAnswer:
    """`command` with an answer its validator would refuse (as a buggy caller might manage)."""
    object.__setattr__(command, "answer", answer_text)
    return command


async def test_a_command_whose_events_cannot_be_encoded_is_refused_and_the_engine_goes_on(tmp_path) -> None:
    db = tmp_path / "e.db"
    async with open_engine(db, shards=2) as engine:
        await running_hunt(engine)
        assert (await engine.submit(join("h", "p1"))).ok
        before = engine.committer.next_seq
        for command_id in (None, "k1"):
            result = await engine.submit(forced(answer("h", "p1", 0), "wrong \ud800"), command_id=command_id)
            assert not result.ok and result.error is not None
            assert result.error.code == "invalid_command" and "JSON" in result.error.message
        assert engine.committer.next_seq == before  # no seq was taken
        assert engine.hunts["h"].players["p1"].group.progress.get("c0") is None  # no state changed
        solved = await engine.submit(answer("h", "p1", 0), command_id="k1")  # k1 was never used
        assert solved.ok and solved.events[0].type == "clue_solved"
        view = await engine.query(Player(hunt_id="h", player_id="p1"))
        assert isinstance(view, dict) and view["score"] == 10
    with Store.open(db, readonly=True) as store:
        seqs = [event.seq for event in store.read_events()]
    assert seqs == list(range(1, len(seqs) + 1))


async def test_a_command_id_that_cannot_be_stored_is_a_valueerror_and_the_engine_goes_on(tmp_path) -> None:
    async with open_engine(tmp_path / "e.db", shards=2) as engine:
        await running_hunt(engine)
        with pytest.raises(ValueError, match="^command_id: "):
            await engine.submit(join("h", "p1"), command_id="k\ud800")
        with pytest.raises(ValueError, match="^command_id: "):
            await engine.submit(join("h", "p1"), command_id="")
        assert (await engine.submit(join("h", "p1"), command_id="k")).ok
