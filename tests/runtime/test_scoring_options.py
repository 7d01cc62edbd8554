"""Scoring options through the engine: solves committed together rank by log order, and
the awards survive a reopen exactly."""

from __future__ import annotations

import trio

from thengine import open_engine
from thengine.domain.commands import Leaderboard

from .harness import GatedStore, answer, join, running_hunt


async def test_solves_sent_together_get_the_bonus_in_log_order_and_replay_so(tmp_path):
    db = tmp_path / "e.db"
    async with open_engine(db) as engine:
        await running_hunt(engine, order="any", first_solver_bonus=[50, 30, 10])
        for player in ("ann", "bob", "cy"):
            assert (await engine.submit(join("h", player))).ok
        gated = GatedStore(engine.committer.store)
        engine.committer.store = gated
        tickets = [engine.send_nowait(answer("h", player, 0)) for player in ("cy", "ann", "bob")]
        await trio.sleep(0.05)
        gated.gate.set()
        results = [await ticket.result() for ticket in tickets]  # type: ignore[union-attr]
        seqs = [r.events[0].seq for r in results]
        assert seqs == sorted(seqs)
        assert [r.events[0].data["points"] for r in results] == [10 + 50, 10 + 30, 10 + 10]
        live = await engine.query(Leaderboard(hunt_id="h"))
    async with open_engine(db) as engine:
        assert await engine.query(Leaderboard(hunt_id="h")) == live
    assert [(e["id"], e["score"]) for e in live["entries"]] == [("cy", 60), ("ann", 40), ("bob", 20)]
