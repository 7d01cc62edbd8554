"""The load generator behind `thengine bench`: throughput and latency of the full engine.

A run creates `hunts` generated hunts (sequential, several answer clues with hints),
starts them, joins most of the `players` (the rest join during the run), and then
sends `commands` commands of a realistic mix: wrong answers, hints and right
answers, plus joins. Every command goes through `Engine.send`/`submit` with the full
game rules and the durable group commit, exactly as an embedding game server would.

Two ways to offer load:

- **closed loop** (default): `concurrency` submitter tasks, each sending its next
  command as soon as the previous one is acknowledged. Measures throughput.
- **open loop** (`rate`): commands are sent on a fixed timetable of `rate` per second,
  whatever the engine does. Latency is measured from each command's *scheduled*
  time, so queueing inside the engine (or in the generator falling behind) shows up
  in the percentiles instead of silently lowering the offered load (coordinated
  omission).

The commands are deterministic for a given seed: each bot models its own progress
(which clue it is on, how many hints it has seen), and a bot's commands always go
out in order (one submitter owns each bot), so the engine accepts what the bot
expects. A bot that finds the treasure comes back as a new player.
"""

from __future__ import annotations

import functools
import itertools
import gc
import math
import os
import random
import tempfile
from collections import Counter, deque
from contextlib import contextmanager
from typing import Any, Awaitable, Callable, Iterable, Iterator

import attrs
import trio

from ..domain.commands import Command, CreateHunt, Hunts, JoinHunt, RequestHint, StartHunt, SubmitAnswer
from ..domain.definition import Clue, Hint, HuntDefinition
from ..domain.result import Result
from ..runtime.engine import Engine, Ticket, open_engine
from ..runtime.stats import LAG_PROBE_S

#: How often the progress callback is called, in seconds.
PROGRESS_INTERVAL_S = 0.5
#: Commands in flight at once while setting up (creating hunts, joining players).
SETUP_WINDOW = 2000
#: Share of players joined during set-up; the rest join as part of the measured mix.
SETUP_JOIN_SHARE = 0.8
#: The mix, for a bot that has joined: wrong answer, else hint, else the right answer.
P_WRONG = 0.40
P_HINT = 0.15
#: A bot never gives a third wrong answer on one clue (that would start a cooldown).
MAX_WRONG_PER_CLUE = 2

_WRONG_ANSWERS = ("fountain", "bell", "clock", "river", "north", "lion", "42", "statue",
                  "library", "the old mill", "market", "seven")

Progress = Callable[[int, int, float], None]
"""`progress(done, total, elapsed_s)`, called about twice a second during the measured run."""


class BenchError(Exception):
    """The benchmark could not set up or run (not a measurement outcome)."""


@attrs.frozen(kw_only=True)
class BenchConfig:
    """What to run. Defaults are the documented `thengine bench` defaults."""

    hunts: int = 100
    players: int = 10_000
    concurrency: int = 100
    commands: int = 100_000
    sync: str = "full"
    rate: float | None = None
    db: str | None = None
    shards: int = 4
    clues: int = 5
    seed: int = 1
    command_ids: bool = True  # every measured command carries one, as networked commands should

    def __attrs_post_init__(self) -> None:
        for name in ("hunts", "players", "concurrency", "commands", "shards", "clues"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be at least 1, got {getattr(self, name)}")
        if self.sync not in ("full", "normal"):
            raise ValueError(f"sync: must be 'full' or 'normal', got {self.sync!r}")
        if self.rate is not None and not (self.rate > 0 and math.isfinite(self.rate)):
            raise ValueError(f"rate: must be a positive number of commands per second, got {self.rate}")
        if self.players < self.hunts:
            raise ValueError(f"players: must be at least the number of hunts ({self.hunts}), got {self.players}")
        if self.rate is None and self.concurrency > self.players:
            raise ValueError(f"concurrency: must not exceed players ({self.players}), got {self.concurrency}")


@attrs.frozen(kw_only=True)
class BenchResult:
    """What a run measured. Latencies are in milliseconds."""

    config: BenchConfig
    commands: int
    events: int
    rejected: int
    rejections: dict[str, int]
    seconds: float
    setup_seconds: float
    latency_ms: dict[str, float]
    stages: dict[str, dict[str, float]] = attrs.field(factory=dict)  # stage -> {p50, p99, max, count} ms
    gc_pause_ms: dict[str, float] = attrs.field(factory=dict)  # {max, p99, count}, set-up included

    @property
    def commands_per_s(self) -> float:
        return self.commands / self.seconds if self.seconds > 0 else 0.0

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        """The `thengine bench --json` object."""
        return {
            "commands": self.commands,
            "seconds": round(self.seconds, 3),
            "commands_per_s": round(self.commands_per_s, 1),
            "events_per_s": round(self.events_per_s, 1),
            "latency_ms": {k: round(v, 3) for k, v in self.latency_ms.items()},
            "rejected": self.rejected,
            "hunts": self.config.hunts,
            "players": self.config.players,
            "concurrency": self.config.concurrency,
            "sync": self.config.sync,
            "rate": self.config.rate,
            "command_ids": self.config.command_ids,
            "stages": {name: {k: v for k, v in stage.items() if k != "count"} for name, stage in self.stages.items()},
            "gc_pause_ms": self.gc_pause_ms,
        }


def percentiles(latencies_s: list[float]) -> dict[str, float]:
    """p50, p90, p99, p999 and max (nearest rank) of latencies in seconds, as milliseconds."""
    if not latencies_s:
        return {"p50": 0.0, "p90": 0.0, "p99": 0.0, "p999": 0.0, "max": 0.0}
    ordered = sorted(latencies_s)
    n = len(ordered)

    def rank(q: float) -> float:
        return ordered[min(n - 1, max(0, math.ceil(q * n) - 1))] * 1000

    return {"p50": rank(0.5), "p90": rank(0.9), "p99": rank(0.99), "p999": rank(0.999),
            "max": ordered[-1] * 1000}


# -- the workload ---------------------------------------------------------------------

def hunt_definition(hunt_id: str, *, clues: int) -> HuntDefinition:
    """A generated sequential hunt: `clues` answer clues, each with one or two hints."""
    return HuntDefinition(
        id=hunt_id,
        title=f"Benchmark hunt {hunt_id}",
        order="sequential",
        wrong_answer_cooldown_s=30,
        clues=tuple(
            Clue(
                id=f"c{k}",
                prompt=f"Clue {k}: what is the word?",
                points=100 + 10 * k,
                answers=(f"answer-{k}", f"answer {k}"),
                hints=tuple(Hint(text=f"hint {h} for clue {k}", penalty=10 * (h + 1)) for h in range(1 + k % 2)),
            )
            for k in range(clues)
        ),
    )


class _Bot:
    """One simulated player and what it knows about its own progress."""

    __slots__ = ("index", "hunt", "player_id", "generation", "joined", "clue", "wrong", "hints")

    def __init__(self, index: int, hunt: HuntDefinition, joined: bool) -> None:
        self.index = index
        self.hunt = hunt
        self.player_id = f"p{index}"
        self.generation = 1
        self.joined = joined
        self.clue = 0
        self.wrong = 0
        self.hints = 0


def player_hunt(index: int, hunts: list[HuntDefinition]) -> HuntDefinition:
    """The hunt player `index` plays in: players are dealt round-robin to hunts."""
    return hunts[index % len(hunts)]


def joined_at_setup(index: int) -> bool:
    """Whether player `index` joins before the measured run (deterministic)."""
    return (index * 0.618033988749895) % 1.0 < SETUP_JOIN_SHARE


class Workload:
    """A deterministic, endless stream of commands from a set of bots.

    Args:
        hunts: the hunts the bots play in.
        players: the indices of the players this stream owns.
        rng: the random source; the same seed gives the same commands.
    """

    def __init__(self, hunts: list[HuntDefinition], players: Iterable[int], rng: random.Random) -> None:
        self._rng = rng
        self._bots = [_Bot(i, player_hunt(i, hunts), joined_at_setup(i)) for i in players]

    def __len__(self) -> int:
        return len(self._bots)

    def next(self) -> Command:
        """The next command of a randomly chosen bot."""
        rng = self._rng
        bot = self._bots[int(rng.random() * len(self._bots))]
        hunt_id = bot.hunt.id
        if not bot.joined:
            bot.joined = True
            return JoinHunt(hunt_id=hunt_id, player_id=bot.player_id)
        clue = bot.hunt.clues[bot.clue]
        roll = rng.random()
        if roll < P_WRONG and bot.wrong < MAX_WRONG_PER_CLUE:
            bot.wrong += 1
            answer = _WRONG_ANSWERS[int(rng.random() * len(_WRONG_ANSWERS))]
            return SubmitAnswer(hunt_id=hunt_id, player_id=bot.player_id, clue_id=clue.id, answer=answer)
        if roll < P_WRONG + P_HINT and bot.hints < len(clue.hints):
            bot.hints += 1
            return RequestHint(hunt_id=hunt_id, player_id=bot.player_id, clue_id=clue.id)
        command = SubmitAnswer(hunt_id=hunt_id, player_id=bot.player_id, clue_id=clue.id,
                               answer=clue.answers[int(rng.random() * len(clue.answers))].upper())
        bot.clue += 1
        bot.wrong = bot.hints = 0
        if bot.clue == len(bot.hunt.clues):  # treasure found: come back as a new player
            bot.generation += 1
            bot.player_id = f"p{bot.index}.{bot.generation}"
            bot.joined = False
            bot.clue = 0
        return command


# -- running ---------------------------------------------------------------------------

class _Recorder:
    """Counts and latencies of the measured commands."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.events = 0
        self.rejections: Counter[str] = Counter()

    def record(self, result: Result, latency_s: float) -> None:
        self.latencies.append(latency_s)
        if result.ok:
            self.events += len(result.events)
        else:
            assert result.error is not None
            self.rejections[result.error.code] += 1


@contextmanager
def _not_collecting() -> Iterator[None]:
    """No automatic collection while the plan is built: a full one would scan it all."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@contextmanager
def _database(path: str | None) -> Iterator[str]:
    if path is not None:
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="thengine-bench-") as directory:
        yield os.path.join(directory, "bench.db")


async def _pipeline(engine: Engine, commands: Iterable[Command], what: str) -> None:
    """Send `commands` with up to `SETUP_WINDOW` in flight; every one must succeed."""
    tickets: deque[Ticket] = deque()

    async def settle() -> None:
        result = await tickets.popleft().result()
        if not result.ok:
            assert result.error is not None
            raise BenchError(f"{what} failed: {result.error.code}: {result.error.message}")

    for command in commands:
        tickets.append(await engine.send(command))
        if len(tickets) >= SETUP_WINDOW:
            await settle()
    while tickets:
        await settle()


async def _free_prefix(engine: Engine) -> str:
    """A hunt id prefix no hunt in the database uses yet (so `--db` can be reused)."""
    answer = await engine.query(Hunts())
    assert isinstance(answer, dict)
    taken = {hunt["hunt_id"] for hunt in answer["hunts"]}
    run = 1
    while any(hunt_id.startswith(f"bench{run}-") for hunt_id in taken):
        run += 1
    return f"bench{run}-"


async def setup(engine: Engine, config: BenchConfig, prefix: str | None = None, *,
                accept: Callable[[str], bool] | None = None) -> list[HuntDefinition]:
    """Create and start the hunts (`config.hunts` ids that `accept` takes) and join the
    set-up share of players."""
    prefix = prefix or await _free_prefix(engine)
    ids = (f"{prefix}{i:04d}" for i in itertools.count())
    chosen = list(itertools.islice((hunt_id for hunt_id in ids if accept is None or accept(hunt_id)), config.hunts))
    hunts = [hunt_definition(hunt_id, clues=config.clues) for hunt_id in chosen]
    await _pipeline(engine, (CreateHunt(definition=hunt) for hunt in hunts), "creating the hunts")
    await _pipeline(engine, (StartHunt(hunt_id=hunt.id) for hunt in hunts), "starting the hunts")
    joins = (JoinHunt(hunt_id=player_hunt(i, hunts).id, player_id=f"p{i}")
             for i in range(config.players) if joined_at_setup(i))
    await _pipeline(engine, joins, "joining players")
    return hunts


def _plan(workload: Workload, n: int, config: BenchConfig, *, prefix: str) -> list[tuple[Command, str | None]]:
    """The next `n` commands of `workload`, each with a fresh command id (unless turned off)."""
    if config.command_ids:
        return [(workload.next(), f"{prefix}{i}") for i in range(n)]
    return [(workload.next(), None) for _ in range(n)]


def _closed_plan(config: BenchConfig, hunts: list[HuntDefinition], ids: str) -> list[list[tuple[Command, str | None]]]:
    """Each submitter's commands. Each bot belongs to one submitter (so its commands stay
    in order); bots are dealt hunt by hunt, so every hunt has bots in many submitters and
    sees concurrent commands."""
    tasks = config.concurrency
    share, extra = divmod(config.commands, tasks)
    by_hunt = sorted(range(config.players), key=lambda i: (i % config.hunts, i // config.hunts))
    return [_plan(Workload(hunts, by_hunt[k::tasks], random.Random(f"{config.seed}:{k}")),
                  share + (k < extra), config, prefix=f"{ids}c{k}-") for k in range(tasks)]


async def _closed_loop(engine: Engine, planned: list[list[tuple[Command, str | None]]], recorder: _Recorder) -> None:
    async def submitter(commands: list[tuple[Command, str | None]]) -> None:
        clock = trio.current_time
        submit = engine.submit
        for command, command_id in commands:
            started = clock()
            result = await submit(command, command_id=command_id)
            recorder.record(result, clock() - started)

    async with trio.open_nursery() as nursery:
        for commands in planned:
            nursery.start_soon(submitter, commands)


def _open_plan(config: BenchConfig, hunts: list[HuntDefinition], ids: str) -> list[tuple[Command, str | None]]:
    workload = Workload(hunts, range(config.players), random.Random(f"{config.seed}:open"))
    return _plan(workload, config.commands, config, prefix=f"{ids}o-")


async def _open_loop(engine: Engine, config: BenchConfig, planned: list[tuple[Command, str | None]],
                     recorder: _Recorder) -> None:
    """Offer `config.rate` commands/s on a fixed timetable, whatever the engine does.

    One sender keeps each hunt's commands in timetable order, sending every command
    that is due each time it wakes (`send` waits only when the engine's inbox is full,
    and that wait counts as latency). Each result is recorded by a done-callback the
    moment its commit lands, as the network server answers, so the load generator
    keeps no task, coroutine or wait per command in flight (a pool of awaiting tasks
    was most of what each garbage collection scanned). Latency is measured from each
    command's scheduled time, so queueing is never hidden.
    """
    assert config.rate is not None
    interval = 1.0 / config.rate
    clock = trio.current_time
    outstanding = 0
    all_done = trio.Event()
    failure: list[BaseException] = []

    def finish(result: Result, scheduled: float) -> None:
        nonlocal outstanding
        recorder.record(result, clock() - scheduled)
        outstanding -= 1
        if outstanding == 0 and sending_done:
            all_done.set()

    async def read_back(ticket: Ticket, scheduled: float) -> None:
        finish(await ticket.result(), scheduled)  # a repeat: its first result is read from the log

    def on_done(ticket: Ticket, scheduled: float) -> None:
        try:
            result = ticket.result_nowait()
        except BaseException as exc:  # the engine failed: raised once the loop ends
            failure.append(exc)
            all_done.set()
            return
        if result is None:
            nursery.start_soon(read_back, ticket, scheduled)
        else:
            finish(result, scheduled)

    sending_done = False
    async with trio.open_nursery() as nursery:
        start = clock()
        i = 0
        n = len(planned)
        while i < n:
            now = clock()
            while i < n and start + i * interval <= now:
                command, command_id = planned[i]
                ticket = await engine.send(command, command_id=command_id)
                outstanding += 1
                ticket.add_done_callback(functools.partial(on_done, scheduled=start + i * interval))
                i += 1
            if i < n:
                await trio.sleep_until(start + i * interval)
        sending_done = True
        if outstanding:
            await all_done.wait()
    if failure:
        raise failure[0]


async def run_bench(config: BenchConfig, *, progress: Progress | None = None) -> BenchResult:
    """Set up, run the measured load, and return what was measured.

    Raises:
        BenchError: the set-up was refused (e.g. a hunt id already taken).
        ThengineError: the engine failed (e.g. the database is locked or unwritable).
    """
    with _database(config.db) as path:
        async with open_engine(path, shards=config.shards, sync=config.sync) as engine:
            measured = await measure(engine, config, progress=progress)
        pauses = engine.stats.gc.worst()  # (the engine's close included)
    return attrs.evolve(measured, gc_pause_ms=_pauses_ms(pauses))


def _pauses_ms(pauses: Any) -> dict[str, float]:
    return {"max": round(pauses.max * 1000, 3), "p99": round(pauses.percentile(0.99) * 1000, 3),
            "count": pauses.count}


async def measure(engine: Any, config: BenchConfig, *, progress: Progress | None = None,
                  accept: Callable[[str], bool] | None = None,
                  go: Callable[[], Awaitable[None]] | None = None) -> BenchResult:
    """Set up and time the load on `engine` (an `Engine`, or anything with its `send`,
    `submit`, `query` and `stats`, as `cluster_bench.Routed`): `accept` picks the hunt
    ids to use (default: all), and `go` is awaited just before the clock starts."""
    engine.stats.gc.reset()  # every pause from here to the end counts, set-up included
    clock = trio.current_time
    setup_started = clock()
    prefix = await _free_prefix(engine)
    hunts = await setup(engine, config, prefix, accept=accept)
    # The commands (and their ids) are made before the clock starts: the generator's
    # own cost stays out of what is measured.
    with _not_collecting():  # (a plan is 200,000 new objects, all alive to the end, no cycles)
        plan: Any = (_closed_plan(config, hunts, prefix) if config.rate is None
                     else _open_plan(config, hunts, prefix))
        engine.stats.gc.freeze()  # the hunts, players and planned commands live all run long
    recorder = _Recorder()
    await trio.sleep(2 * LAG_PROBE_S)  # (the probe's wake-up late by the planning is not the run's)
    setup_seconds = clock() - setup_started
    if go is not None:
        await go()
    engine.stats.reset()  # the stages of the measured commands only
    started = clock()

    async def report() -> None:
        assert progress is not None
        while True:
            await trio.sleep(PROGRESS_INTERVAL_S)
            progress(len(recorder.latencies), config.commands, clock() - started)

    async with trio.open_nursery() as nursery:
        if progress is not None:
            nursery.start_soon(report)
        if config.rate is None:
            await _closed_loop(engine, plan, recorder)
        else:
            await _open_loop(engine, config, plan, recorder)
        nursery.cancel_scope.cancel()
    seconds = clock() - started
    if progress is not None:
        progress(len(recorder.latencies), config.commands, seconds)
    stages = engine.stats.to_json()
    return BenchResult(
        config=config,
        commands=len(recorder.latencies),
        events=recorder.events,
        rejected=sum(recorder.rejections.values()),
        rejections=dict(recorder.rejections),
        seconds=seconds,
        setup_seconds=setup_seconds,
        latency_ms=percentiles(recorder.latencies),
        stages={name: stage for name, stage in stages.items() if not name.startswith("gc_")},
        gc_pause_ms=_pauses_ms(engine.stats.gc.worst()),
    )
