"""Live leaderboards: one ticker per (hunt, limit, interval), shared by every watcher.

A watcher wants the top `limit` entries of a hunt's ranking and its own entry (``me``),
fresh but never more often than once per interval. The ticker wakes once per
interval; if the hunt changed since the last tick it builds one `Board` (the shared
part, encoded once however many watch), works out each watcher's ``me``, waits until
everything the board shows is committed, and offers both to every watcher whose view
changed. A watcher keeps only the newest offer, so a slow reader gets the latest board
and never a backlog.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, AsyncIterator, Protocol

import orjson
import trio

from ..domain import views
from ..domain.state import HuntState

if TYPE_CHECKING:
    from .engine import Engine

MIN_INTERVAL_S = 0.05
MAX_INTERVAL_S = 10.0
MAX_LIMIT = 100

FeedKey = tuple[str, int, float]  # (hunt_id, limit, interval_s)


class Board:
    """The part of a leaderboard frame every watcher of a hunt shares, as of `seq`."""

    __slots__ = ("hunt_id", "seq", "total", "entries", "_body")

    def __init__(self, hunt_id: str, seq: int, total: int, entries: list[dict[str, Any]]) -> None:
        self.hunt_id = hunt_id
        self.seq = seq
        self.total = total
        self.entries = entries
        self._body: bytes | None = None

    @property
    def body(self) -> bytes:
        """``"hunt_id":…,"seq":…,"total":…,"entries":[…]`` as JSON members, encoded once."""
        if self._body is None:
            whole = orjson.dumps({"hunt_id": self.hunt_id, "seq": self.seq, "total": self.total,
                                  "entries": self.entries})
            self._body = whole[1:-1]
        return self._body

    def to_json(self) -> dict[str, Any]:
        return {"hunt_id": self.hunt_id, "seq": self.seq, "total": self.total, "entries": self.entries}


class Watcher(Protocol):
    """What a ticker feeds: the embedded `BoardWatch`, or a server connection's watch."""

    whose: str | None  # the player (or team) whose entry is ``me``; None: no ``me``
    frozen_view: bool  # a player's: sees the frozen board while the hunt's is frozen

    def offer(self, board: Board, me: dict[str, Any] | None) -> None:
        """Take the newest board (synchronously; never blocks)."""

    def close(self) -> None:
        """The feed ends (the engine is closing)."""


class _Feed:
    """One ticker and the watchers it feeds."""

    __slots__ = ("key", "watchers", "fresh", "last_entries", "last_me", "last_view", "wake")

    def __init__(self, key: FeedKey) -> None:
        self.key = key
        self.watchers: dict[Watcher, None] = {}
        self.fresh: dict[Watcher, None] = {}  # added since the last tick: no board yet
        self.last_entries: dict[bool, list[dict[str, Any]]] = {}  # per view (frozen or live): last sent
        self.last_me: dict[Watcher, dict[str, Any] | None] = {}
        self.last_view: dict[Watcher, bool] = {}  # whether each watcher's last board was the frozen one
        self.wake = trio.Event()  # a watcher came or went


class BoardFeeds:
    """Every live leaderboard of one engine."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._feeds: dict[FeedKey, _Feed] = {}
        self._nursery: trio.Nursery | None = None

    def start(self, nursery: trio.Nursery) -> None:
        self._nursery = nursery

    @property
    def watchers(self) -> int:
        return sum(len(feed.watchers) for feed in self._feeds.values())

    def add(self, watcher: Watcher, hunt_id: str, *, limit: int, interval_s: float) -> None:
        """Start feeding `watcher`; its first board comes at once, then on change."""
        key = (hunt_id, limit, interval_s)
        feed = self._feeds.get(key)
        if feed is None:
            assert self._nursery is not None
            feed = self._feeds[key] = _Feed(key)
            self._nursery.start_soon(self._run, feed)
        feed.watchers[watcher] = None
        feed.fresh[watcher] = None
        feed.wake.set()

    def remove(self, watcher: Watcher, hunt_id: str, *, limit: int, interval_s: float) -> None:
        feed = self._feeds.get((hunt_id, limit, interval_s))
        if feed is not None:
            feed.watchers.pop(watcher, None)
            feed.fresh.pop(watcher, None)
            feed.last_me.pop(watcher, None)
            feed.last_view.pop(watcher, None)
            if not feed.watchers:
                feed.wake.set()  # (an empty feed ends at once)

    def close(self) -> None:
        """The engine is closing: every watch ends."""
        for feed in self._feeds.values():
            for watcher in list(feed.watchers):
                watcher.close()
            feed.watchers.clear()
            feed.fresh.clear()
            feed.wake.set()

    async def _run(self, feed: _Feed) -> None:
        hunt_id, _, interval_s = feed.key
        hunts = self._engine.hunts
        seen_version = -1
        next_tick = trio.current_time()
        try:
            while feed.watchers:
                state = hunts.get(hunt_id)
                if trio.current_time() >= next_tick:
                    next_tick = trio.current_time() + interval_s
                    version = -1 if state is None else state.version
                    if version != seen_version or feed.fresh:
                        seen_version = version
                        await self._tick(feed, state, everyone=True)
                elif feed.fresh:
                    # A newcomer gets its first board at once; the others wait for the
                    # interval, as promised.
                    await self._tick(feed, state, everyone=False)
                feed.wake = trio.Event()
                with trio.move_on_at(next_tick):
                    await feed.wake.wait()
        finally:
            if self._feeds.get(feed.key) is feed:
                del self._feeds[feed.key]

    async def _tick(self, feed: _Feed, state: HuntState | None, *, everyone: bool) -> None:
        hunt_id, limit, _ = feed.key
        targets = list(feed.watchers if everyone else feed.fresh)
        if state is None:  # (a hunt not loaded: it left memory long after it ended)
            if not feed.fresh:
                return
            targets = list(feed.fresh)
            board = Board(hunt_id, 0, 0, [])
            mes: list[dict[str, Any] | None] = [None] * len(targets)
        else:
            boards: dict[bool, Board] = {}
            views_of = [w.frozen_view and state.frozen is not None for w in targets]
            for frozen in set(views_of):
                page = views.leaderboard(state, limit, frozen=frozen)
                assert isinstance(page, dict)
                boards[frozen] = Board(hunt_id, state.seq, page["total"], page["entries"])
            mes = [None if w.whose is None else views.own_entry(state, w.whose, frozen=w.frozen_view)
                   for w in targets]
        await self._engine.committer.wait_committed(state.seq if state is not None else 0)  # only what is durable
        changed: dict[bool, bool] = {}
        if state is not None:
            for frozen, one in boards.items():
                changed[frozen] = everyone and one.entries != feed.last_entries.get(frozen)
                if everyone:
                    feed.last_entries[frozen] = one.entries
        last_me, fresh, watchers = feed.last_me, feed.fresh, feed.watchers
        for n, (watcher, me) in enumerate(zip(targets, mes)):
            if watcher not in watchers:
                continue  # left while we waited
            view = views_of[n] if state is not None else False
            shown = boards[view] if state is not None else board
            if (changed.get(view, False) or watcher in fresh or me != last_me[watcher]
                    or feed.last_view.get(watcher, view) != view):
                last_me[watcher] = me
                feed.last_view[watcher] = view
                fresh.pop(watcher, None)
                watcher.offer(shown, me)


class BoardUpdate:
    """One board as an embedded watcher sees it: the shared part and its own entry."""

    __slots__ = ("board", "me")

    def __init__(self, board: Board, me: dict[str, Any] | None) -> None:
        self.board = board
        self.me = me

    @property
    def hunt_id(self) -> str:
        return self.board.hunt_id

    @property
    def seq(self) -> int:
        return self.board.seq

    @property
    def total(self) -> int:
        return self.board.total

    @property
    def entries(self) -> list[dict[str, Any]]:
        return self.board.entries


class BoardWatch:
    """An async iterator of `BoardUpdate`s; use via `Engine.watch_leaderboard`.

    Only the newest update is kept: a reader that falls behind skips boards, never
    queues them. Iteration ends when the engine closes.
    """

    frozen_view = False  # (embedded: the game server sees the live board)

    def __init__(self, whose: str | None) -> None:
        self.whose = whose
        self._latest: BoardUpdate | None = None
        self._wake = trio.Event()
        self._closed = False

    def offer(self, board: Board, me: dict[str, Any] | None) -> None:
        self._latest = BoardUpdate(board, me)
        self._wake.set()

    def close(self) -> None:
        self._closed = True
        self._wake.set()

    def __aiter__(self) -> AsyncIterator[BoardUpdate]:
        return self

    async def __anext__(self) -> BoardUpdate:
        while self._latest is None:
            if self._closed:
                raise StopAsyncIteration
            self._wake = trio.Event()
            await self._wake.wait()
        update, self._latest = self._latest, None
        return update
