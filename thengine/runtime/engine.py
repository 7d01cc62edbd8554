"""The engine: `open_engine` runs shards, the committer and timers in one nursery.

A facade over parts with narrow constructors: the shards (`shards.Shards`: inboxes and
the tasks that take from them in order), the committer, the idempotency window
(`idempotency.RecentCommands`), residency and snapshots (`residency.Residency`,
`snapshots.SnapshotBuilder`), the reads of its own log (`reader.LogReader`), feeds
and timers. The engine holds what joins them: deciding a command, and when a command
id must be looked up on disk.

Commands are routed by a stable hash of their hunt id (CRC-32, the same in every
process and every run, unlike Python's salted `hash`) to one of N shard tasks. A shard
decides each command against its hunts' in-memory state, evolves the state at once
(so the next command of the same hunt sees it) and hands the events to the
committer; the submitter is answered only after the commit. Hunt state is rebuilt at
open from the latest snapshot plus later events.
"""

from __future__ import annotations

import functools
import math
import time
from contextlib import asynccontextmanager, contextmanager
from typing import Any, AsyncIterator, Callable, Iterator

import attrs
import trio

from ..domain import views
from ..domain.commands import Command, Entries, Flags, Hunts, Leaderboard, Player, Query, Rejection
from ..domain.commands import Hunt as HuntQuery
from ..domain.events import StoredEvent
from ..cluster.config import PARTITION_META_KEY, parse_partition, partition_of
from ..domain.codes import hunt_key
from ..domain.fields import is_utf8
from ..domain.result import Result
from ..domain.rules import decide, evolve
from ..domain.state import HuntState
from ..domain.timers import decide_timer
from ..errors import EngineClosed, StorageError, ThengineError, UnknownHunt, leaves
from ..storage.codec import dumps
from ..storage.lock import EngineLock
from ..storage.store import CommandRecord, Store
from .committer import Committer, Entry
from .idempotency import RecentCommands, fingerprint, same_command
from ..history.recovery import LIFECYCLE, catalog_row
from .reader import LogReader
from .residency import Residency
from .shards import Behind, Shards
from .snapshots import SnapshotBuilder
from .boards import MAX_INTERVAL_S, MAX_LIMIT, MIN_INTERVAL_S, BoardFeeds, BoardWatch
from .feed import Feed, Feeds
from .stats import FREEZE_EVERY_JOINS, GC_PAUSES, LAG_PROBE_S, SWITCH_INTERVAL, EngineStats
from .subscriptions import Subscription
from .timers import TimerQueue


#: Players and groups a snapshot takes or encodes per step: 0.3-1 ms of the loop (a hunt at
#: few dozen players is snapshotted in one step, with the commit that made it due).
SNAPSHOT_SLICE = 128


def wall_clock_ms() -> int:
    """Milliseconds since the epoch (the default clock)."""
    return time.time_ns() // 1_000_000


@attrs.frozen(kw_only=True)
class EngineConfig:
    """Everything `open_engine` can be told; built once by the caller."""

    path: str
    shards: int = 4
    sync: str = "full"
    inbox_size: int = 1024
    max_batch: int = 2000
    max_pending: int = 20_000
    snapshot_every: int = 1000  # events per hunt between snapshots, at least...
    snapshot_events_per_player: int = 4  # ...this many per player in the hunt (0: no scaling)
    subscriber_buffer: int = 10_000
    idempotency_window_s: int = 24 * 3600
    remember_commands: int = 100_000  # newest command ids kept in memory; older ones are looked up on disk
    shutdown_grace_s: float = 10.0
    evict_after_s: float = 3600.0  # hunts that ended this long ago leave memory
    evict_check_s: float = 60.0
    checkpoint_every_s: float = 1.0  # WAL checkpoints run beside commits, not inside them
    lag_probe_s: float = LAG_PROBE_S  # how often the loop-lag probe sleeps (0: no probe)
    gc_freeze: bool = True  # keep full GC collections short (see stats.GcPauses); process-wide
    gil_switch_s: float | None = 0.001  # sys.setswitchinterval while open (stats.SwitchInterval); None: leave it
    clock: Callable[[], int] = wall_clock_ms
    vfs: str | None = None  # a registered SQLite VFS name (fault-injection tests)

    def __attrs_post_init__(self) -> None:
        if self.shards < 1:
            raise ValueError(f"shards: must be >= 1, got {self.shards}")
        if self.sync not in ("full", "normal"):
            raise ValueError(f"sync: must be 'full' or 'normal', got {self.sync!r}")
        if self.gil_switch_s is not None and not 0 < self.gil_switch_s <= 1:
            raise ValueError(f"gil_switch_s: must be in (0, 1] seconds or None, got {self.gil_switch_s}")
        for name in ("inbox_size", "max_batch", "max_pending", "snapshot_every", "subscriber_buffer",
                     "remember_commands"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be >= 1, got {getattr(self, name)}")


class _Request:
    __slots__ = ("command", "command_id", "entry", "timer", "found", "checked_seq", "sent")

    def __init__(self, command: Command | None, command_id: str | None, entry: Entry,
                 timer: tuple[str, str, int] | None = None) -> None:
        self.command = command
        self.command_id = command_id
        self.entry = entry
        self.timer = timer
        # What a database lookup of `command_id` found, and the seq the log was
        # committed up to when it started (None: not looked up).
        self.found: CommandRecord | None = None
        self.checked_seq: int | None = None
        self.sent = 0.0  # when it was queued in a shard's inbox (perf_counter)


class Engine:
    """A running engine. Make one with `open_engine`; every method runs on its trio loop."""

    def __init__(self, config: EngineConfig, store: Store, reader: Store, checkpointer: Store) -> None:
        self.config = config
        self._store = store
        self._log = LogReader(reader, lambda: self.committer.committed_seq)
        self._checkpointer = checkpointer
        self.residency = Residency(snapshot_every=config.snapshot_every,
                                   snapshot_events_per_player=config.snapshot_events_per_player,
                                   evict_after_s=config.evict_after_s)
        self.hunts = self.residency.hunts  # hunt_id -> its state, for every hunt in memory
        self._code_secret = store.code_secret()  # (each hunt's code key comes from it: `_decide`)
        # (N, P) when the database is partition N of a cluster's P: it decides only its own hunts.
        self.partition = parse_partition(store.get_meta(PARTITION_META_KEY))
        self._evicted = self.residency.evicted  # hunt_id -> its `hunts` summary, for those on disk only
        self._commands = RecentCommands(config.remember_commands)
        self._inflight: dict[str, tuple[str, Entry]] = {}
        self._feeds = Feeds(self._read_events)
        self._snapshots_due, self._snapshots_ready = trio.open_memory_channel[SnapshotBuilder](math.inf)
        self.boards = BoardFeeds(self)
        self.timers = TimerQueue(config.clock)
        self._last_now = 0
        self._joined = 0  # players joined since the last collect_and_freeze
        self.closed = False
        self.released = False  # closed, and the state dropped (`_release`)
        self.shards: Shards[_Request] = Shards(config.shards, config.inbox_size, handle=self._take,
                                               prepare=self._prepare, queued_at=self._queued, waited=self._waited)
        self.stats = EngineStats()
        """Where commands spend their time: histograms per stage, loop lag, GC pauses (see
        `stats`); ``engine.stats.to_json()`` gives their percentiles."""
        self.committer = Committer(store, last_seq=store.last_seq(), max_batch=config.max_batch,
                                   max_pending=config.max_pending, publish=self._feeds.publish, stats=self.stats)

    # -- public API ---------------------------------------------------------------------
    @property
    def committed_seq(self) -> int:
        """The last `seq` known durable."""
        return self.committer.committed_seq

    async def submit(self, command: Command, *, command_id: str | None = None, wait: bool = True) -> Result:
        """Decide and durably record `command`; returns once its events are committed.

        Game outcomes come back as a `Result` (``ok`` or an ``error``). With
        ``wait=False`` a full inbox gives ``overloaded`` at once instead of waiting.

        Raises:
            EngineClosed: the engine is closed or closing.
            StorageError: the commit failed (the engine then stops).
        """
        ticket = await self.send(command, command_id=command_id, wait=wait)
        return await ticket.result()

    async def send(self, command: Command, *, command_id: str | None = None, wait: bool = True) -> Ticket:
        """Queue `command` and return at once with a `Ticket` for its result.

        Commands sent one after another for the same hunt are decided in that order,
        so a caller can pipeline many commands (as ``thengine ingest`` does) and
        collect the results later. Raises like `submit`.
        """
        ticket = self.send_nowait(command, command_id=command_id)
        if ticket is not None:
            return ticket
        entry = Entry()
        if not wait:
            entry.result = Result.rejected("overloaded", "the engine is overloaded: try again shortly")
            entry.finish()
            return Ticket(self, entry)
        await self.shards.put(self.shards.of(command.hunt_id), _Request(command, command_id, entry))
        return Ticket(self, entry)

    def send_nowait(self, command: Command, *, command_id: str | None = None) -> Ticket | None:
        """`send` without waiting: the `Ticket`, or None if the command's shard inbox is
        full (nothing was queued; ``await send(...)`` waits for room in the same order).

        Never yields, so a caller that answers through `Ticket.add_done_callback`
        needs no task per command. Raises like `submit`.
        """
        if self.closed:
            raise EngineClosed("the engine is closed")
        if command_id is not None and not (isinstance(command_id, str) and command_id and is_utf8(command_id)):
            # (It is stored with the events: a value SQLite cannot hold would fail the commit.)
            raise ValueError(f"command_id: must be a non-empty string of valid Unicode text, got {command_id!r}")
        entry = Entry()
        request = _Request(command, command_id, entry)
        shard = self.shards.of(command.hunt_id)
        if self.shards.idle(shard) and self._take_or_stop(request):
            # The fast path: nothing is queued ahead of this command in its shard and
            # nothing holds it back, so deciding it right here keeps the per-hunt order
            # and saves a task switch.
            self.stats.inbox_wait.observe(0.0)
            return Ticket(self, entry)
        # No checkpoint when there is room: the caller yields anyway while it waits for
        # the result, and a schedule point per command is costly.
        if not self.shards.put_nowait(shard, request):
            return None
        return Ticket(self, entry)

    def _take_or_stop(self, request: _Request) -> bool:
        """`_take` in the caller's task; a bug here stops the engine, as in a shard."""
        try:
            return self._take(request)
        except BaseException as exc:
            # State or seq may be half-changed: fail-stop the whole engine, not just this call.
            self._nursery.start_soon(_reraise, exc)
            raise

    async def query(self, query: Query, *, view: str = views.ADMIN) -> Result | dict[str, Any]:
        """Answer a query from memory; never shows an event that is not yet committed.

        Returns the answer as a JSON-ready dict, or a `Result` with an error (such as
        ``unknown_hunt``) when the query names something unknown.

        Raises:
            EngineClosed: the engine has closed (its state has left memory).
        """
        if self.released:
            raise EngineClosed("the engine is closed")
        if isinstance(query, Hunts):
            states = list(self.hunts.values())
            answer: Any = views.hunts(states)
            if self._evicted:
                answer["hunts"] = sorted([*answer["hunts"], *self._evicted.values()], key=lambda h: h["hunt_id"])
            seq = max((s.seq for s in states), default=0)
        else:
            await self._ensure_loaded(query.hunt_id)
            state = self.hunts.get(query.hunt_id)
            if state is None:
                refused = self._elsewhere(query.hunt_id)
                return Result(ok=False, error=refused) if refused is not None else Result.rejected(
                    "unknown_hunt", f"no hunt {query.hunt_id!r}")
            seq = state.seq
            if isinstance(query, Leaderboard):
                answer = views.leaderboard(state, query.limit, offset=query.offset, around=query.around,
                                           frozen=view != views.ADMIN)
            elif isinstance(query, Player):
                answer = views.player(state, query.player_id)
            elif isinstance(query, HuntQuery):
                answer = views.hunt(state, view)
            elif view != views.ADMIN and type(query).ADMIN:
                answer = Rejection(code="forbidden", message=f"the {query.TYPE} query is for admins only")
            elif isinstance(query, Flags):
                answer = views.flags(state)
            elif isinstance(query, Entries):
                answer = views.entries(state, query.status)
            else:  # pragma: no cover - parse_query only makes these
                raise TypeError(f"not a query: {query!r}")
        await self.committer.wait_committed(seq)
        if isinstance(answer, Rejection):
            return Result(ok=False, error=answer)
        return answer

    @asynccontextmanager
    async def subscribe(self, *, hunt_id: str | None = None, after_seq: int = 0,
                        buffer: int | None = None) -> AsyncIterator[Subscription]:
        """Events after `after_seq` (all hunts, or one), from the log and then live.

        Iteration raises `SubscriberTooSlow` if the subscriber falls more than `buffer`
        events behind, and ends when the engine closes.
        """
        if self.closed:
            raise EngineClosed("the engine is closed")
        sub = Subscription(self, hunt_id=hunt_id, after_seq=after_seq,
                           buffer=buffer or self.config.subscriber_buffer)
        try:
            yield sub
        finally:
            sub.close()

    def feed(self, hunt_id: str | None, key: Any, encode: Callable[[StoredEvent], Any], *,
             on_trim: Callable[[int], None] | None = None) -> Feed[Any]:
        """The feed of `hunt_id`'s committed events (None: every hunt's) kept as ``encode``
        makes them, shared by every reader that asks with the same `key`; made on first use
        and forgotten when its last cursor closes. See `feed.Feed`."""
        if self.closed:
            raise EngineClosed("the engine is closed")
        return self._feeds.get(hunt_id, key, encode, floor=self.committed_seq, on_trim=on_trim)

    @asynccontextmanager
    async def watch_leaderboard(self, hunt_id: str, *, limit: int = 10, interval_s: float = 0.25,
                                around: str | None = None) -> AsyncIterator[BoardWatch]:
        """A live leaderboard: an async iterator of `BoardUpdate`s.

        The first update comes at once, then one whenever the top `limit` entries or
        the entry of `around` (a player, or a team; its ``me``) changed, at most once
        per `interval_s`. Updates are never queued: a slow reader gets the newest one.
        Raises `UnknownHunt` if there is no such hunt; iteration ends when the engine
        closes.
        """
        if not 1 <= limit <= MAX_LIMIT:
            raise ValueError(f"limit: must be between 1 and {MAX_LIMIT}, got {limit!r}")
        if not MIN_INTERVAL_S <= interval_s <= MAX_INTERVAL_S:
            raise ValueError(f"interval_s: must be between {MIN_INTERVAL_S:g} and {MAX_INTERVAL_S:g}, "
                             f"got {interval_s!r}")
        watch = BoardWatch(around)
        await self.start_watch(watch, hunt_id, limit=limit, interval_s=interval_s)
        try:
            yield watch
        finally:
            self.boards.remove(watch, hunt_id, limit=limit, interval_s=interval_s)

    async def start_watch(self, watcher: Any, hunt_id: str, *, limit: int, interval_s: float) -> None:
        """Feed `watcher` (see `boards.Watcher`) the live leaderboard of `hunt_id`."""
        if self.closed:
            raise EngineClosed("the engine is closed")
        await self._ensure_loaded(hunt_id)
        if hunt_id not in self.hunts:
            raise UnknownHunt(f"no hunt {hunt_id!r}")
        self.boards.add(watcher, hunt_id, limit=limit, interval_s=interval_s)

    def inbox_depths(self) -> list[int]:
        """Commands waiting in each shard's inbox (for metrics)."""
        return self.shards.depths()

    def on_commit_batch(self, callback: Callable[[int, int, float], None] | None) -> None:
        """Call ``callback(entries, events, seconds)`` after every committed batch (metrics)."""
        self.committer.on_batch = callback

    async def _read_events(self, **kwargs: Any) -> list[StoredEvent]:
        return await self._log.read_events(**kwargs)

    async def read_meta(self, key: str) -> str | None:
        """A value of the database's meta table (such as the token secret), read afresh."""
        return await self._log.read_meta(key)

    async def _replayed(self, record: CommandRecord) -> Result:
        """The first result of a command_id seen before: its events, read back (in batches)."""
        return Result(ok=True, events=tuple(await self._log.replay(record)))

    async def _look_up(self, requests: list[_Request]) -> None:
        """Look the requests' command ids up in the database (they have left memory, or
        may have), setting each one's `found` and `checked_seq`: one trip to the reader
        for all the lookups waiting, from every shard."""
        since = self.now() - self.config.idempotency_window_s * 1000
        found, seq = await self._log.find_commands(
            list({r.command_id: None for r in requests if r.command_id is not None}), since)
        for request in requests:
            assert request.command_id is not None
            request.found = found.get(request.command_id)
            request.checked_seq = seq

    def _must_look_up(self, request: _Request) -> bool:
        """Whether `request`'s command id has to be looked up on disk before it is decided.

        Only when the id is neither remembered nor in flight, and a record of the window
        has left memory that a lookup (if any was made) may not have seen.
        """
        command_id = request.command_id
        if command_id is None or request.found is not None:
            return False
        commands = self._commands
        # The last accept time, not the clock: cheaper, and never later than now, so
        # this errs towards looking up.
        if not commands.spilled_since(self._last_now - self.config.idempotency_window_s * 1000):
            return False
        if command_id in commands or command_id in self._inflight:
            return False
        # A record committed after the lookup started, and out of memory since, is one it missed.
        return request.checked_seq is None or request.checked_seq < commands.spilled_seq

    # -- time ---------------------------------------------------------------------------
    def now(self) -> int:
        """The accept timestamp: the clock, never going backwards."""
        now = self.config.clock()
        if now < self._last_now:
            return self._last_now
        self._last_now = now
        return now

    # -- shards -------------------------------------------------------------------------
    def _take(self, request: _Request) -> bool:
        """Decide `request` now if nothing holds it back; False: `_prepare` it first.

        Held back while the committer has no room, while its hunt is on disk only, and
        while its command id has to be looked up on disk.
        """
        if not self.committer.has_room():
            return False
        if request.timer is not None:
            if request.timer[0] in self._evicted:
                return False
            self._fire_timer(request)
            return True
        assert request.command is not None
        if request.command.hunt_id in self._evicted or self._must_look_up(request):
            return False
        self._handle(request)
        return True

    async def _prepare(self, request: _Request, behind: Behind[_Request]) -> None:
        """Wait for what holds `request` back (see `_take`)."""
        if not self.committer.has_room():
            await self.committer.wait_for_room()
            return
        hunt_id = request.timer[0] if request.timer else request.command.hunt_id  # type: ignore[union-attr]
        if hunt_id in self._evicted:
            await self._ensure_loaded(hunt_id)
            return
        # Its command id, looked up together with those of the requests queued behind
        # it: a burst of new ids costs one trip to the disk, not one each.
        await self._look_up([r for r in (request, *behind.peek(_LOOKUP_BATCH)) if self._must_look_up(r)])

    def _queued(self, request: _Request, at: float) -> None:
        if request.timer is None:
            request.sent = at

    def _waited(self, request: _Request) -> None:
        if request.sent:
            self.stats.inbox_wait.observe(time.perf_counter() - request.sent)

    def _handle(self, request: _Request) -> None:
        """Decide `request` (timed: the ``decide`` stage; its commit wait starts now)."""
        started = time.perf_counter()
        self._decide(request)
        request.entry.decided = decided = time.perf_counter()
        self.stats.decide.observe(decided - started)

    def _decide(self, request: _Request) -> None:
        command, command_id, entry = request.command, request.command_id, request.entry
        assert command is not None
        if command_id is not None:
            digest = fingerprint(command)
            known = self._commands.get(command_id) or self._inflight.get(command_id) or request.found
            if known is not None:
                self._repeat(entry, command, command_id, digest, known)
                return
        else:
            digest = ""
        hunt_id = command.hunt_id
        state = self.hunts.get(hunt_id)
        if state is None and (refused := self._elsewhere(hunt_id)) is not None:
            entry.result = Result(ok=False, error=refused)
            self.committer.append(entry)
            return
        if state is not None and state.code_key is None:
            state.code_key = hunt_key(self._code_secret, hunt_id)
        now = self.now()
        decision = decide(state, command, now=now)
        if isinstance(decision, Rejection):
            entry.result = Result(ok=False, error=decision)
            self.committer.append(entry)
            return
        try:
            # Encoded before a seq is taken or the state changes: what JSON cannot hold
            # is refused here, never found at commit time with the state half-evolved.
            texts = [dumps(new.data) for new in decision]
        except TypeError as exc:  # orjson.JSONEncodeError (a lone surrogate, a non-JSON value)
            entry.result = Result.rejected("invalid_command", f"the command's events cannot be stored as JSON: {exc}")
            self.committer.append(entry)
            return
        state = self._apply(entry, state, hunt_id, decision, now, command_id, texts)
        if command_id is not None:
            record = CommandRecord(command_id=command_id, fingerprint=digest, hunt_id=hunt_id,
                                   first_seq=entry.events[0].seq, last_seq=entry.events[-1].seq, ts=now)
            entry.command = record
            self._inflight[command_id] = (digest, entry)

            def remember(command_id: str = command_id, record: CommandRecord = record) -> None:
                self._commands.remember(record)
                self._inflight.pop(command_id, None)

            entry.on_commit = remember
        entry.result = Result(ok=True, events=tuple(entry.events))
        self.committer.append(entry)

    def _elsewhere(self, hunt_id: str) -> Rejection | None:
        """``wrong_partition`` for a hunt this partition does not own (None: it is ours, or the
        database is not a cluster's partition)."""
        if self.partition is None:
            return None
        mine, count = self.partition
        theirs = partition_of(hunt_id, count)
        if theirs == mine:
            return None
        return Rejection(code="wrong_partition", message=(
            f"hunt {hunt_id!r} belongs to partition {theirs} of {count}, not to this one ({mine}): "
            f"connect with ?hunt={hunt_id} through the cluster's load balancer"))

    def _repeat(self, entry: Entry, command: Command, command_id: str, digest: str,
                known: CommandRecord | tuple[str, Entry]) -> None:
        """A command_id seen before: the same command gets the first result."""
        if isinstance(known, CommandRecord):
            same, result = same_command(known.fingerprint, command, digest), known  # read back at `Ticket.result`
        else:
            first_digest, first_entry = known
            same, result = first_digest == digest, first_entry.result
        if not same:
            result = Result.rejected("invalid_command",
                                     f"command_id {command_id!r} was already used for a different command")
        entry.result = result
        self.committer.append(entry)

    def _apply(self, entry: Entry, state: HuntState | None, hunt_id: str, decision: list[Any],
               now: int, command_id: str | None, texts: list[str] | None = None) -> HuntState:
        """Stamp, evolve and queue the events of one accepted decision (`texts`: their data encoded)."""
        if texts is None:
            texts = [dumps(new.data) for new in decision]
        version = state.version if state is not None else 0
        for new, text in zip(decision, texts):
            version += 1
            event = self.committer.new_event(entry, hunt_id, version, new.type, now, new.data, command_id, text)
            state = evolve(state, event)
            if new.type == "player_joined":
                self._joined += 1
                if self._joined >= FREEZE_EVERY_JOINS:
                    self._joined = 0
                    GC_PAUSES.collect_and_freeze()
            self.timers.track(entry, event, state)
            if event.type in LIFECYCLE:
                entry.catalog = catalog_row(state)
        assert state is not None
        self.hunts[hunt_id] = state
        if self.residency.due(state):
            self._snapshot(state, entry)
        return state

    def _snapshot(self, state: HuntState, entry: Entry) -> None:
        """Snapshot `state`: with `entry` if it is small, else a slice at a time (`_run_snapshots`)."""
        builder = self.residency.begin(state)
        if builder.step(SNAPSHOT_SLICE):
            entry.snapshot = self.residency.finish(builder, self.now())
        else:
            self._snapshots_due.send_nowait(builder)

    async def _run_snapshots(self, receive: trio.MemoryReceiveChannel[SnapshotBuilder], *,
                             task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Build big hunts' snapshots `SNAPSHOT_SLICE` players and groups at a time, letting
        every other task run between two slices; commit each once it is whole."""
        task_status.started()
        residency = self.residency
        async for builder in receive:
            while residency.building(builder) and not builder.step(SNAPSHOT_SLICE):
                await trio.sleep(0)
            if residency.building(builder):  # not abandoned for a whole one (at close)
                entry = Entry()
                entry.snapshot = residency.finish(builder, self.now())
                if builder.state.status == "ended":
                    entry.catalog = catalog_row(builder.state)
                self.committer.append(entry)

    # -- timers -------------------------------------------------------------------------
    async def _enqueue_timer(self, hunt_id: str, kind: str, due: int) -> bool:
        """Hand a due timer to its hunt's shard, behind whatever is queued there."""
        try:
            await self.shards.put(self.shards.of(hunt_id), _Request(None, None, Entry(), timer=(hunt_id, kind, due)))
        except EngineClosed:
            return False
        return True

    def _fire_timer(self, request: _Request) -> None:
        assert request.timer is not None
        hunt_id, kind, due = request.timer
        state = self.hunts.get(hunt_id)
        decision = decide_timer(state, kind, due)
        if not decision:
            return
        self._apply(request.entry, state, hunt_id, decision, max(self.now(), due), None)
        self.committer.append(request.entry)

    # -- open and close -----------------------------------------------------------------
    def _load(self, now: int) -> None:
        """Rebuild every hunt in memory (in a thread, at open), and the newest command ids.

        Hunts that ended more than `evict_after_s` ago stay on disk: only their
        catalog summary is kept, and they are loaded again on demand. Command records
        older than the window are left for `forget_old_commands` to prune in chunks,
        so that opening after a long pause does not wait for it.
        """
        store = self._store
        self.residency.load(store, now)
        since = now - self.config.idempotency_window_s * 1000
        records, left_out = store.recent_commands(since, self.config.remember_commands)
        self._commands.load(records, left_out, since)
        for hunt_id, kind, due in store.timers():
            self.timers.add(due, hunt_id, kind)

    async def _ensure_loaded(self, hunt_id: str) -> None:
        """Bring an evicted hunt back into memory (see `Residency.ensure_loaded`)."""
        if hunt_id in self._evicted:
            await self.residency.ensure_loaded(hunt_id, self._log.rebuild)


    async def _run_checkpoints(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Checkpoint the WAL now and then from a connection of its own, in a thread.

        Each round also checks that the `-wal` file is still the one the engine writes
        (the committer checks after every commit too), so a deleted WAL stops even an
        idle engine: its waiters get the error.
        """
        task_status.started()
        last = self.committed_seq
        while True:
            await trio.sleep(self.config.checkpoint_every_s)
            if self.committed_seq != last:
                last = self.committed_seq
                await trio.to_thread.run_sync(self._checkpointer.checkpoint)
            if self._checkpointer.wal_change() is not None:  # one os.stat: on the loop, no thread hop
                try:
                    await trio.to_thread.run_sync(self._checkpointer.check_wal)  # saves what it can, raises
                except StorageError as exc:
                    self.committer.fail(exc)
                    raise

    async def _run_evictions(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            await trio.sleep(self.config.evict_check_s)
            self.evict_ended_hunts()
            await self.forget_old_commands()

    async def forget_old_commands(self) -> int:
        """Forget command ids older than the idempotency window, in memory and on disk.

        Keeps the idempotency records bounded by the window however long the engine
        runs. Returns how many were forgotten from memory.
        """
        cutoff = self.now() - self.config.idempotency_window_s * 1000
        commands = self._commands
        forgotten = commands.forget_before(cutoff)
        if forgotten or commands.needs_pruning(cutoff):
            # In chunks, with pauses that let the committer take the write lock in between.
            prune = functools.partial(self._checkpointer.prune_commands, cutoff, limit=_PRUNE_CHUNK)
            while await trio.to_thread.run_sync(prune) == _PRUNE_CHUNK:
                await trio.sleep(_PRUNE_PAUSE_S)
            commands.pruned(cutoff)
        return forgotten

    def evict_ended_hunts(self) -> list[str]:
        """Drop hunts that ended more than `evict_after_s` ago from memory; returns their ids.

        A hunt leaves only once a committed snapshot covers its last event; otherwise a
        snapshot is queued now and the hunt leaves on a later round.
        """
        evicted, uncovered = self.residency.evict(self.now(), self.committed_seq)
        for state in uncovered:
            entry = Entry()
            entry.catalog = catalog_row(state)
            self._snapshot(state, entry)
            self.committer.append(entry)
        return evicted

    async def _start(self, nursery: trio.Nursery) -> None:
        self._nursery = nursery
        self.boards.start(nursery)
        await nursery.start(self.committer.run)
        await self.shards.start(nursery)
        await nursery.start(self.timers.run, self._enqueue_timer)
        await nursery.start(self._run_snapshots, self._snapshots_ready)
        await nursery.start(self._run_evictions)
        await nursery.start(self._run_checkpoints)
        await nursery.start(self._log.run)
        if self.config.lag_probe_s > 0:
            await nursery.start(self._probe_loop_lag)

    async def _probe_loop_lag(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Sleep ``lag_probe_s`` again and again; how late each wake-up is goes to ``loop_lag``."""
        task_status.started()
        lag = self.stats.loop_lag
        clock = time.perf_counter
        interval = self.config.lag_probe_s
        while True:
            due = clock() + interval
            await trio.sleep(interval)
            lag.observe(max(0.0, clock() - due))

    async def _shutdown(self) -> None:
        """Stop taking commands, finish those in flight, snapshot, and commit."""
        self.closed = True
        # Shards drain their inboxes and exit; then the committer drains its queue.
        await self.shards.close()
        for state in self.hunts.values():
            if self.residency.unsnapshotted(state):
                entry = Entry()
                entry.snapshot = self.residency.snapshot(state, self.now())
                self.committer.append(entry)
        await self.committer.drain()
        while self._log.replays_pending:
            await trio.sleep(0.001)
        self._feeds.close()
        self.boards.close()

    def _release(self) -> None:
        """Drop the state once closed. The engine's own objects hold reference cycles, so
        without this its hunts would wait for a full collection (which, once the heap is
        unfrozen, scans them all: 100 ms for 10,000 players); dropped here, reference
        counting frees them at once, frozen or not."""
        self.released = True
        self.residency.release()
        self._commands = RecentCommands(1)
        self._inflight.clear()


async def _reraise(exc: BaseException) -> None:
    raise exc


#: Requests a shard takes ahead from its inbox to look their command ids up together.
_LOOKUP_BATCH = 256
#: Old command records deleted per transaction (about 6 ms of holding the write lock),
#: and the pause between two such transactions: longer than the gaps between SQLite's
#: busy-handler retries, so a commit waiting for the lock gets it in the pause.
_PRUNE_CHUNK = 1000
_PRUNE_PAUSE_S = 0.02

class Ticket:
    """A command on its way: `result` waits until it is decided and durable."""

    __slots__ = ("_engine", "_entry")

    def __init__(self, engine: Engine, entry: Entry) -> None:
        self._engine = engine
        self._entry = entry

    async def result(self) -> Result:
        await self._entry.wait()
        result = self._entry.result
        if isinstance(result, CommandRecord):  # a repeat: the first result is in the log
            return await self._engine._replayed(result)
        assert result is not None  # (decided before it is done)
        return result

    @property
    def done(self) -> bool:
        """Whether the command is decided and durable (or has failed)."""
        return self._entry.done

    def add_done_callback(self, callback: Callable[[Ticket], None]) -> None:
        """Call ``callback(self)`` once `done` (at once if it is), instead of awaiting `result`.

        It runs in the task that finished the command (usually the committer's), so it
        must be quick and must not raise; it then reads `result_nowait`. One per ticket.
        """
        self._entry.add_done_callback(lambda: callback(self))

    def result_nowait(self) -> Result | None:
        """Once `done`: the result, or None for a repeated command whose first result
        must be read back from the log (``await result()`` does that).

        Raises:
            StorageError: the commit failed.
            RuntimeError: not done yet.
        """
        entry = self._entry
        if not entry.done:
            raise RuntimeError("the command is not done yet")
        entry.raise_error()
        result = entry.result
        return None if isinstance(result, CommandRecord) else result


@contextmanager
def _unwrapped_errors() -> Iterator[None]:
    """Let the caller see the one error that stopped the engine, not an ExceptionGroup."""
    try:
        yield
    except BaseExceptionGroup as group:
        found = leaves(group)
        if len(found) == 1:
            raise found[0] from None
        first = next((e for e in found if isinstance(e, ThengineError)), None)
        if first is not None:
            raise first from group
        raise


@asynccontextmanager
async def open_engine(path: str, **options: Any) -> AsyncIterator[Engine]:
    """Open (creating or migrating) the database at `path` and run an engine on it.

    Options are the fields of `EngineConfig` (``shards``, ``sync``, ``snapshot_every``,
    ``clock``...). Leaving the block shuts down gracefully: in-flight commands finish,
    snapshots are taken. If any engine task fails, the rest are cancelled and the
    error reaches the caller.

    Raises:
        EngineLocked: another engine holds the database.
        SchemaTooNew: the database was written by a newer thengine.
        StorageError: the database cannot be opened.
    """
    config = EngineConfig(path=str(path), **options)
    lock = EngineLock.acquire(config.path)
    stores: list[Store] = []
    engine: Engine | None = None
    GC_PAUSES.acquire(freeze=config.gc_freeze)
    SWITCH_INTERVAL.acquire(config.gil_switch_s)
    try:
        store = Store.open(config.path, sync=config.sync, vfs=config.vfs)
        stores.append(store)
        store.require_writable("starting an engine")
        store.disable_autocheckpoint()
        store.watch_wal()
        reader = Store.open(config.path, readonly=True, vfs=config.vfs)
        stores.append(reader)
        checkpointer = Store.open(config.path, sync=config.sync, vfs=config.vfs, migrate=False)
        stores.append(checkpointer)
        checkpointer.watch_wal()
        engine = Engine(config, store, reader, checkpointer)
        await trio.to_thread.run_sync(engine._load, config.clock())
        GC_PAUSES.freeze()  # the recovered state lives long: no full collection need scan it
        with _unwrapped_errors():
            async with trio.open_nursery() as nursery:
                await engine._start(nursery)
                try:
                    yield engine
                finally:
                    if not nursery.cancel_scope.cancel_called:  # (else an engine task failed: no waiting)
                        with trio.move_on_after(config.shutdown_grace_s) as scope:
                            scope.shield = True
                            await engine._shutdown()
                    nursery.cancel_scope.cancel()
    finally:
        if engine is not None:
            engine._release()
        for opened in reversed(stores):  # the writer last: its close checkpoints the WAL
            opened.close()
        lock.release()
        SWITCH_INTERVAL.release(config.gil_switch_s)
        GC_PAUSES.release(freeze=config.gc_freeze)
