"""`thengine demo`: a simulated hunt with bot players, with no set-up at all.

The demo loads the example hunt ``old-town.toml`` into a database (created if
missing), under a fresh hunt id if that hunt already exists there (``old-town-2``,
``old-town-3``...), starts it, and lets a few hundred bots play it through the
engine's Python API, as a game server would: they join over the first seconds, think,
give wrong answers, reveal hints, solve clues and find the treasure. When the time is
up (or on Ctrl-C) the hunt is ended, and the log stays behind for `thengine replay`.
"""

from __future__ import annotations

import importlib.resources
import math
import random
import shlex
import signal
import threading
from pathlib import Path
from typing import Any, Callable

import attrs
import trio

from .bench import percentiles
from ..domain.commands import (
    CheckIn, CreateHunt, EndHunt, Entries, Flags, Hunt as HuntQuery, Hunts, JoinHunt, JudgeEntry, Leaderboard, RequestHint, StartHunt,
    SubmitAnswer, SubmitEntry,
)
from ..domain.definition import Clue, HuntDefinition, parse_hunt_toml
from ..domain.geo import distance_m
from ..domain.result import Result
from ..runtime.engine import Engine, open_engine

EXAMPLE_HUNT = "old-town.toml"
#: How often the live display is refreshed, in seconds.
TICK_S = 0.5
#: Bots arrive over this share of the run.
ARRIVAL_SHARE = 0.2
#: How fast an honest bot walks between check-in places (the demo's time is short), m/s.
WALK_M_S = 8.0
#: The share of bots that fake their position: they check in at the next place at once,
#: faster than the hunt's ``max_speed_kmh``, and are flagged for the organisers.
SPOOFERS = 0.03
#: The share of fixes an honest bot's phone reports with poor accuracy (``inaccurate_fix``).
POOR_FIXES = 0.1
#: How often the demo's judge looks at the queue, in seconds, and the share it rejects.
JUDGE_EVERY_S = 0.5
REJECTS = 0.25
_WRONG_ANSWERS = ("statue", "church", "river", "clock", "market", "the well", "tower", "gate", "6", "eight",
                  "dragon", "museum")


class DemoError(Exception):
    """The demo cannot run (its example hunt is missing, or the engine refused to set it up)."""


@attrs.frozen(kw_only=True)
class DemoConfig:
    """How long, how many bots, and where the log goes."""

    db: str = "thengine.db"
    seconds: float = 20.0
    players: int = 300
    think_s: float = 2.5
    seed: int | None = None

    def __attrs_post_init__(self) -> None:
        if not (self.seconds > 0 and math.isfinite(self.seconds)):
            raise ValueError(f"seconds: must be a positive number, got {self.seconds}")
        if not 1 <= self.players <= 100_000:
            raise ValueError(f"players: must be between 1 and 100000, got {self.players}")
        if not self.think_s > 0:
            raise ValueError(f"think_s: must be positive, got {self.think_s}")


@attrs.frozen(kw_only=True)
class DemoStatus:
    """What the live display shows, about twice a second."""

    hunt_id: str
    title: str
    elapsed: float
    seconds: float
    players: int
    events: int
    commands: int
    treasures: int
    leaderboard: list[dict[str, Any]]

    @property
    def commands_per_s(self) -> float:
        return self.commands / self.elapsed if self.elapsed > 0 else 0.0


@attrs.frozen(kw_only=True)
class DemoSummary:
    """How the demo went, and where to look at its log."""

    db: str
    hunt_id: str
    seconds: float
    players: int
    commands: int
    events: int
    treasures: int
    p99_ms: float
    interrupted: bool
    leaderboard: list[dict[str, Any]]
    #: The players flagged for an implausible move (spoofers), in order of their first flag.
    flagged: list[str] = attrs.field(factory=list)
    #: Entries for the judged clue, by status at the end (``pending``, ``accepted``, ``rejected``).
    entries: dict[str, int] = attrs.field(factory=dict)
    #: The cluster file, when the demo played in a cluster (`db` is then the hunt's partition).
    cluster: str | None = None

    @property
    def commands_per_s(self) -> float:
        return self.commands / self.seconds if self.seconds > 0 else 0.0

    @property
    def replay_command(self) -> str:
        """The command line that shows this demo's hunt from its log."""
        if self.cluster is not None:
            return f"thengine replay --cluster {shlex.quote(self.cluster)} --hunt {self.hunt_id}"
        return f"thengine replay {shlex.quote(self.db)} --hunt {self.hunt_id}"


def example_hunt(name: str = EXAMPLE_HUNT) -> HuntDefinition:
    """An example hunt: from the installed wheel (``thengine/_hunts``), else from a checkout."""
    packaged = importlib.resources.files("thengine") / "_hunts" / name
    checkout = Path(__file__).resolve().parents[2] / "examples" / "hunts" / name
    for candidate in (packaged, checkout):
        if candidate.is_file():
            return parse_hunt_toml(candidate.read_text(encoding="utf-8"))
    raise DemoError(f"thengine is installed without its example hunt {name} (looked in {packaged} and {checkout})")


async def fresh_hunt_id(engine: Engine, base: str) -> str:
    """`base`, or `base-2`, `base-3`... whichever the database does not have yet."""
    answer = await engine.query(Hunts())
    assert isinstance(answer, dict)
    taken = {hunt["hunt_id"] for hunt in answer["hunts"]}
    if base not in taken:
        return base
    n = 2
    while f"{base}-{n}" in taken:
        n += 1
    return f"{base}-{n}"


class _Play:
    """Counters shared by the bots."""

    def __init__(self) -> None:
        self.players = 0
        self.commands = 0
        self.treasures = 0
        self.latencies: list[float] = []

    async def submit(self, engine: Engine, command: Any) -> Result:
        started = trio.current_time()
        result = await engine.submit(command)
        self.latencies.append(trio.current_time() - started)
        self.commands += 1
        return result


async def _bot(engine: Engine, hunt: HuntDefinition, player_id: str, rng: random.Random, play: _Play,
               config: DemoConfig) -> None:
    """One player: arrives, then thinks, guesses, asks for hints, solves, until the treasure."""
    def think() -> float:
        return min(8.0, max(0.3, rng.expovariate(1 / config.think_s)))

    await trio.sleep(rng.uniform(0, config.seconds * ARRIVAL_SHARE))
    joined = await play.submit(engine, JoinHunt(hunt_id=hunt.id, player_id=player_id))
    if not joined.ok:
        return
    play.players += 1
    skill = rng.uniform(0.25, 0.75)  # the chance to know an answer
    spoofer = rng.random() < SPOOFERS
    clue_index = 0
    walk_s = 0.0  # to the next place, after a check-in
    while clue_index < len(hunt.clues):
        clue = hunt.clues[clue_index]
        if clue.location is not None:
            await trio.sleep(0.01 if spoofer and walk_s else walk_s + think())
            command: Any = _check_in(hunt, player_id, clue, rng)
        elif clue.by == "judged":
            await trio.sleep(think())
            command = _entry(hunt, player_id, clue, rng)
        else:
            await trio.sleep(think())
            command = _guess(hunt, player_id, clue, rng, skill)
        result = await play.submit(engine, command)
        if result.ok:
            kinds = {event.type for event in result.events}
            if "hint_revealed" in kinds:
                skill = min(0.95, skill + 0.25)  # a hint helps
            if "clue_solved" in kinds:
                clue_index += 1
                walk_s = _walk_s(clue, hunt.clues[clue_index] if clue_index < len(hunt.clues) else None)
            if "treasure_found" in kinds:
                play.treasures += 1
        elif result.error is not None and result.error.code == "already_solved":
            clue_index += 1
        elif result.error is not None and result.error.code in ("cooldown", "hint_locked", "entry_pending"):
            await trio.sleep(think() * 3)
        elif result.error is not None and result.error.code == "no_more_submissions":
            return  # out of tries: this bot is stuck, as a team would be
        elif result.error is not None and result.error.code in ("hunt_not_running", "not_joined"):
            return


def _guess(hunt: HuntDefinition, player_id: str, clue: Clue, rng: random.Random, skill: float) -> Any:
    """An answer (right with chance `skill`, in some spelling), a hint request, or a wrong guess."""
    roll = rng.random()
    if roll < skill:
        answer = rng.choice(clue.answers)
        return SubmitAnswer(hunt_id=hunt.id, player_id=player_id, clue_id=clue.id,
                            answer=rng.choice((answer, answer.upper(), f"  {answer.title()} ")))
    if roll < skill + 0.12:
        return RequestHint(hunt_id=hunt.id, player_id=player_id, clue_id=clue.id)
    return SubmitAnswer(hunt_id=hunt.id, player_id=player_id, clue_id=clue.id, answer=rng.choice(_WRONG_ANSWERS))


def _check_in(hunt: HuntDefinition, player_id: str, clue: Clue, rng: random.Random) -> CheckIn:
    """A check-in a few metres from the place, with a phone's accuracy (now and then a poor one)."""
    place = clue.location
    assert place is not None
    accuracy = rng.uniform(20, 60) if rng.random() < POOR_FIXES else rng.uniform(3, 12)
    off_m = rng.uniform(0, max(0.0, place.radius_m - 15))
    bearing = rng.uniform(0, 2 * math.pi)
    lat = place.lat + off_m * math.cos(bearing) / 111_195
    lon = place.lon + off_m * math.sin(bearing) / (111_195 * max(0.01, math.cos(math.radians(place.lat))))
    return CheckIn(hunt_id=hunt.id, player_id=player_id, clue_id=clue.id, lat=lat, lon=lon,
                   accuracy_m=round(accuracy, 1))


def _entry(hunt: HuntDefinition, player_id: str, clue: Clue, rng: random.Random) -> SubmitEntry:
    """A photo entry: a reference to a file the bot "uploaded" elsewhere, as a game server would send."""
    n = rng.getrandbits(64)
    return SubmitEntry(hunt_id=hunt.id, player_id=player_id, clue_id=clue.id, text="all of us on the bridge",
                       media={"url": f"https://photos.example/{hunt.id}/{player_id}-{n:x}.jpg",
                              "sha256": f"{n:064x}"[-64:], "content_type": "image/jpeg",
                              "bytes": rng.randint(200_000, 4_000_000)})


async def _judge(engine: Engine, hunt_id: str, rng: random.Random) -> None:
    """The demo's organiser: looks at the queue now and then, accepts most entries, rejects some."""
    while True:
        await trio.sleep(JUDGE_EVERY_S)
        queue = await engine.query(Entries(hunt_id=hunt_id, status="pending"))
        for entry in queue["entries"] if isinstance(queue, dict) else ():
            reject = rng.random() < REJECTS
            await engine.submit(JudgeEntry(hunt_id=hunt_id, entry_id=entry["entry_id"],
                                           verdict="reject" if reject else "accept",
                                           reason="the whole team must be in the photo" if reject else None))


def _walk_s(here: Clue, there: Clue | None) -> float:
    """How long an honest bot walks from the place of `here` to that of `there` (0 if either has none)."""
    if here.location is None or there is None or there.location is None:
        return 0.0
    a, b = here.location, there.location
    return distance_m(a.lat, a.lon, b.lat, b.lon) / WALK_M_S


async def _cancel_on_sigint(scope: trio.CancelScope, interrupted: trio.Event, *,
                            task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    """Ctrl-C ends the play early; the demo still ends the hunt and prints its summary."""
    with trio.open_signal_receiver(signal.SIGINT) as signals:
        task_status.started()
        async for _ in signals:
            interrupted.set()
            scope.cancel()
            return


async def _checked(engine: Engine, command: Any) -> None:
    result = await engine.submit(command)
    if not result.ok:
        assert result.error is not None
        raise DemoError(f"{command.TYPE} was refused: {result.error.code}: {result.error.message}")


async def run_demo(config: DemoConfig, *, on_tick: Callable[[DemoStatus], None] | None = None,
                   engine: Any = None) -> DemoSummary:
    """Play the demo hunt with bots for `config.seconds` (or until Ctrl-C), in an engine
    on `config.db`, or through `engine` (anything with the engine's `submit` and `query`,
    such as a `thengine.client` connected to a cluster).

    Raises:
        DemoError: the example hunt is missing, or setting it up was refused.
        ThengineError: the engine failed (e.g. another engine holds the database).
    """
    if engine is not None:
        return await _play(config, engine, on_tick)
    async with open_engine(config.db) as opened:
        return await _play(config, opened, on_tick)


async def _play(config: DemoConfig, engine: Any, on_tick: Callable[[DemoStatus], None] | None) -> DemoSummary:
    definition = example_hunt()
    rng = random.Random(config.seed)
    hunt = attrs.evolve(definition, id=await fresh_hunt_id(engine, definition.id))
    await _checked(engine, CreateHunt(definition=hunt))
    await _checked(engine, StartHunt(hunt_id=hunt.id))
    play = _Play()
    interrupted = trio.Event()
    started = trio.current_time()

    async def board() -> list[dict[str, Any]]:
        answer = await engine.query(Leaderboard(hunt_id=hunt.id, limit=10))
        return answer["entries"] if isinstance(answer, dict) else []

    async def status() -> DemoStatus:
        shown = await engine.query(HuntQuery(hunt_id=hunt.id))
        return DemoStatus(hunt_id=hunt.id, title=hunt.title, elapsed=trio.current_time() - started,
                          seconds=config.seconds, players=play.players,
                          events=shown["version"] if isinstance(shown, dict) else 0, commands=play.commands,
                          treasures=play.treasures, leaderboard=await board())

    async def ticker() -> None:
        assert on_tick is not None
        while True:
            on_tick(await status())
            await trio.sleep(TICK_S)

    with trio.move_on_after(config.seconds):
        async with trio.open_nursery() as nursery:
            if threading.current_thread() is threading.main_thread():
                await nursery.start(_cancel_on_sigint, nursery.cancel_scope, interrupted)
            if on_tick is not None:
                nursery.start_soon(ticker)
            nursery.start_soon(_judge, engine, hunt.id, random.Random(rng.getrandbits(64)))
            for i in range(config.players):
                bot_rng = random.Random(rng.getrandbits(64))
                nursery.start_soon(_bot, engine, hunt, f"bot-{i + 1:03d}", bot_rng, play, config)
    elapsed = trio.current_time() - started
    await _checked(engine, EndHunt(hunt_id=hunt.id))
    final = await status()
    flags = await engine.query(Flags(hunt_id=hunt.id))
    flagged = list(dict.fromkeys(flag["player_id"] for flag in flags["flags"])) if isinstance(flags, dict) else []
    queue = await engine.query(Entries(hunt_id=hunt.id))
    entries: dict[str, int] = {}
    for entry in queue["entries"] if isinstance(queue, dict) else ():
        entries[entry["status"]] = entries.get(entry["status"], 0) + 1
    return DemoSummary(db=config.db, hunt_id=hunt.id, seconds=elapsed, players=play.players,
                       commands=play.commands, events=final.events, treasures=play.treasures,
                       p99_ms=percentiles(play.latencies)["p99"],
                       interrupted=interrupted.is_set(), leaderboard=final.leaderboard, flagged=flagged,
                       entries=entries)
