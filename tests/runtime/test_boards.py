"""Live leaderboards in the embedded API: `Engine.watch_leaderboard`, and paged queries."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from thengine import Leaderboard, open_engine
from thengine.domain.commands import JoinHunt
from thengine.errors import UnknownHunt

from .harness import answer, join, running_hunt

#: Periodic engine tasks stay asleep under the mock clock.
QUIET = {"checkpoint_every_s": 3600.0, "evict_check_s": 3600.0, "lag_probe_s": 0}


async def next_update(watch, timeout: float = 5.0):
    with trio.fail_after(timeout):
        return await watch.__anext__()


async def settled() -> None:
    """Let the committer's thread finish and every task run until blocked."""
    for _ in range(3):
        await trio.sleep(0.05)
        await trio.testing.wait_all_tasks_blocked()


async def test_the_first_board_comes_at_once_with_total_seq_and_me(tmp_path):
    async with open_engine(tmp_path / "e.db") as engine:
        await running_hunt(engine)
        for player in ("p1", "p2", "p3"):
            await engine.submit(join("h", player))
        solved = await engine.submit(answer("h", "p2", 0))
        async with engine.watch_leaderboard("h", limit=2, around="p3") as watch:
            update = await next_update(watch)
    assert (update.hunt_id, update.total, update.seq) == ("h", 3, solved.events[-1].seq)
    assert [e["id"] for e in update.entries] == ["p2", "p1"]
    assert update.me is not None and (update.me["id"], update.me["rank"]) == ("p3", 3)


async def test_a_board_without_around_has_no_me_and_one_of_a_team_member_is_the_team(tmp_path):
    async with open_engine(tmp_path / "e.db") as engine:
        await running_hunt(engine)
        await engine.submit(JoinHunt(hunt_id="h", player_id="ann", team_id="red"))
        async with engine.watch_leaderboard("h") as anonymous, \
                engine.watch_leaderboard("h", around="ann") as ann:
            assert (await next_update(anonymous)).me is None
            me = (await next_update(ann)).me
    assert (me["id"], me["kind"]) == ("red", "team")


async def test_a_burst_of_changes_gives_one_board_per_interval_and_never_a_backlog(tmp_path):
    async with open_engine(tmp_path / "e.db") as engine:
        await running_hunt(engine)
        await engine.submit(join("h", "p1"))
        async with engine.watch_leaderboard("h", interval_s=1.0) as watch:
            first = await next_update(watch)
            results = [await engine.submit(join("h", f"q{n}")) for n in range(20)]
            results.append(await engine.submit(answer("h", "q7", 0)))
            # Twenty-one changes, read as one: the newest board, not twenty-one old ones.
            update = await next_update(watch)
            assert update.seq == results[-1].events[-1].seq > first.seq
            assert update.entries[0]["id"] == "q7" and update.total == 21
            with trio.move_on_after(0.3):
                await watch.__anext__()
                pytest.fail("a board came although nothing changed")


@pytest.fixture
def patient_clock():
    """A MockClock that jumps only after 0.1 s of real idleness (commits run in a thread)."""
    return trio.testing.MockClock(autojump_threshold=0.1)


async def test_boards_come_no_more_often_than_the_interval(tmp_path, patient_clock):
    async with open_engine(tmp_path / "e.db", **QUIET) as engine:
        await running_hunt(engine)
        await engine.submit(join("h", "p0"))
        async with engine.watch_leaderboard("h", limit=100, interval_s=1.0) as watch:
            await next_update(watch)
            seen = []

            async def read_boards() -> None:
                async for update in watch:
                    seen.append((trio.current_time(), update.total))

            async with trio.open_nursery() as nursery:
                nursery.start_soon(read_boards)
                start = trio.current_time()
                for n in range(1, 40):
                    await engine.submit(join("h", f"p{n}"))
                    await trio.sleep(0.1)  # a change every 0.1 s for 4 s
                await trio.sleep(1.5)
                nursery.cancel_scope.cancel()
    times = [t for t, _ in seen]
    assert all(later - earlier >= 1.0 - 1e-6 for earlier, later in zip(times, times[1:]))
    assert len(seen) >= 3  # the changes went on for about 4 s: a board a second
    assert seen[-1][1] == 40 and times[0] - start < 1.1  # the last board shows every join


async def test_a_change_below_the_top_that_is_not_mine_sends_nothing(tmp_path):
    async with open_engine(tmp_path / "e.db") as engine:
        await running_hunt(engine)
        for player in ("p1", "p2", "p3"):
            await engine.submit(join("h", player))
        async with engine.watch_leaderboard("h", limit=1, interval_s=0.05, around="p2") as watch:
            await next_update(watch)
            await engine.submit(join("h", "p4"))  # joins last: the top and p2's entry stay
            with trio.move_on_after(0.5):
                await watch.__anext__()
                pytest.fail("a board came although neither the top nor p2's entry changed")
            await engine.submit(answer("h", "p3", 0))  # p3 passes p2: p2's rank changes
            update = await next_update(watch)
    assert (update.entries[0]["id"], update.me["rank"], update.total) == ("p3", 3, 4)


async def test_watching_an_unknown_hunt_raises_unknown_hunt(tmp_path):
    async with open_engine(tmp_path / "e.db") as engine:
        with pytest.raises(UnknownHunt, match="nope"):
            async with engine.watch_leaderboard("nope"):
                pass


@pytest.mark.parametrize(("option", "value"), [("limit", 0), ("limit", 101), ("interval_s", 0.01),
                                               ("interval_s", 11)])
async def test_watch_options_out_of_range_are_refused(tmp_path, option, value):
    async with open_engine(tmp_path / "e.db") as engine:
        await running_hunt(engine)
        with pytest.raises(ValueError, match=option):
            async with engine.watch_leaderboard("h", **{option: value}):
                pass


async def test_a_watch_ends_when_the_engine_closes(tmp_path):
    updates = []
    async with trio.open_nursery() as nursery:
        async with open_engine(tmp_path / "e.db") as engine:
            await running_hunt(engine)

            async def watch_it(task_status=trio.TASK_STATUS_IGNORED) -> None:
                async with engine.watch_leaderboard("h") as watch:
                    task_status.started()
                    async for update in watch:
                        updates.append(update)

            await nursery.start(watch_it)
            await settled()
        with trio.fail_after(5):
            await trio.testing.wait_all_tasks_blocked()
    assert len(updates) == 1  # the first board, then the iteration ended


async def test_a_leaderboard_query_pages_with_offset_and_centres_with_around(tmp_path):
    async with open_engine(tmp_path / "e.db") as engine:
        await running_hunt(engine)
        for n in range(7):
            await engine.submit(join("h", f"p{n}"))
        page = await engine.query(Leaderboard(hunt_id="h", limit=2, offset=2))
        centred = await engine.query(Leaderboard(hunt_id="h", limit=3, around="p6"))
        missing = await engine.query(Leaderboard(hunt_id="h", around="ghost"))
    assert page["total"] == 7 and [e["rank"] for e in page["entries"]] == [3, 4]
    assert [e["id"] for e in centred["entries"]] == ["p4", "p5", "p6"]
    assert missing.error.code == "not_joined"
