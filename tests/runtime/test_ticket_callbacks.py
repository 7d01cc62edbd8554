"""Answering commands without a task per command: `send_nowait` and done callbacks.

The network server decides a command in the frame reader's task and answers it from
the committer's task through `Ticket.add_done_callback`; these are the engine's
promises behind that.
"""

from __future__ import annotations

import pytest
import trio

from thengine import open_engine
from thengine.domain.commands import Hunt
from thengine.errors import StorageError
from thengine.runtime.engine import Ticket

from .harness import FailingStore, GatedStore, join, running_hunt


async def test_a_done_callback_runs_once_the_command_is_durable(tmp_path):
    async with open_engine(tmp_path / "e.db") as engine:
        await running_hunt(engine)
        gated = GatedStore(engine.committer.store)
        engine.committer.store = gated
        ticket = engine.send_nowait(join("h", "ann"))
        assert ticket is not None and not ticket.done
        seen: list[Ticket] = []
        ticket.add_done_callback(seen.append)
        await trio.sleep(0.05)
        assert seen == []  # not before the commit returned
        gated.gate.set()
        with trio.fail_after(5):
            while not seen:
                await trio.sleep(0.01)
        result = seen[0].result_nowait()
        assert result is not None and result.ok and result.events[0].data["player_id"] == "ann"
        assert engine.committed_seq >= result.events[0].seq


async def test_a_callback_added_after_the_end_runs_at_once(tmp_path):
    async with open_engine(tmp_path / "e.db") as engine:
        await running_hunt(engine)
        ticket = await engine.send(join("h", "ann"))
        await ticket.result()
        seen: list[Ticket] = []
        ticket.add_done_callback(seen.append)
        assert seen == [ticket]


async def test_a_committed_repeat_says_its_result_must_be_read_back(tmp_path):
    async with open_engine(tmp_path / "e.db") as engine:
        await running_hunt(engine)
        first = await engine.submit(join("h", "ann"), command_id="k1")
        ticket = engine.send_nowait(join("h", "ann"), command_id="k1")
        assert ticket is not None
        seen: list[Ticket] = []
        ticket.add_done_callback(seen.append)
        with trio.fail_after(5):
            while not seen:
                await trio.sleep(0.01)
        assert ticket.result_nowait() is None  # the first result is in the log...
        assert await ticket.result() == first  # ...and `result` reads it back


async def test_send_nowait_returns_none_when_the_inbox_is_full_and_queues_nothing(tmp_path):
    async with open_engine(tmp_path / "e.db", shards=1, inbox_size=1, max_pending=1) as engine:
        await running_hunt(engine)
        gated = GatedStore(engine.committer.store)
        engine.committer.store = gated
        tickets = []
        refused = 0
        for p in range(20):
            ticket = engine.send_nowait(join("h", f"p{p}"))
            if ticket is None:
                refused += 1
            else:
                tickets.append(ticket)
        assert refused > 0
        gated.gate.set()
        results = [await t.result() for t in tickets]
        assert all(r.ok for r in results)
        board = await engine.query(Hunt(hunt_id="h"))
        assert board["players"] == len(tickets)  # the refused ones were never queued


async def test_a_failed_commit_reaches_the_callback_as_storage_error(tmp_path):
    seen: list[Ticket] = []
    with pytest.raises(StorageError):
        async with open_engine(tmp_path / "e.db") as engine:
            await running_hunt(engine)
            engine.committer.store = FailingStore(engine.committer.store)
            ticket = engine.send_nowait(join("h", "ann"))
            assert ticket is not None
            ticket.add_done_callback(seen.append)
            await trio.sleep_forever()
    assert len(seen) == 1
    with pytest.raises(StorageError, match="disk is full"):
        seen[0].result_nowait()
