"""Snapshots of big hunts, built a slice at a time so that none holds the loop for long.

`to_snapshot` of a 10,000-player hunt takes 14-24 ms on this project's 2-core test
machine, and encoding it as JSON another 6 ms in the writer thread, which holds the
GIL (and so the loop) all along. A `SnapshotBuilder` does the same work a few hundred
players and groups per `step`:

1. *Taking*: each player and group is read into a row, encoded to JSON bytes at once.
   Events go on changing the hunt in between; `evolve` notes which players and groups
   they touch (`HuntState.touched`), and those are taken again, in rounds, until few
   are left. The last of them and the hunt-wide fields are read in one step: that is
   the moment the snapshot stands for (`version`, `seq`).
2. *Encoding*: the rows, fixed from then on, are joined and zlib-compressed a slice at
   a time into the stored blob, so the writer thread has nothing left to encode.

The blob decompresses to the very bytes `orjson.dumps(to_snapshot(state))` gives at
that moment.
"""

from __future__ import annotations

import zlib
from typing import Any

import orjson

from ..domain.state import GroupKey, HuntState, group_row, player_row, snapshot_data


class SnapshotBuilder:
    """`encode_snapshot(to_snapshot(state))`, in steps, while events keep changing the state.

    Players and groups are never deleted from a state, so a key taken at the start
    names the same object at the end; a row taken again keeps its place, and new ones
    are appended in the order they were first touched, which is the order they were
    created in (the order `to_snapshot` lists them).
    """

    def __init__(self, state: HuntState) -> None:
        assert state.touched is None, f"a snapshot of {state.hunt_id!r} is already being built"
        self.state = state
        self.version = self.seq = 0  # what the snapshot stands for, once taken
        self.blob: bytes | None = None  # the stored form, once encoded
        self._groups: dict[GroupKey, bytes] = {}  # key -> its row, encoded
        self._players: dict[str, bytes] = {}  # player_id -> b'"id":[...]'
        self._group_queue: list[GroupKey] = list(state.groups)  # this round's to take
        self._player_queue: list[str] = list(state.players)
        self._next_group = self._next_player = 0
        self._chunks: list[bytes] = []  # once taken: the JSON, in pieces to compress
        self._compressor: Any = None
        state.touched = ({}, {})

    @property
    def taken(self) -> bool:
        return self._compressor is not None

    def step(self, n: int) -> bool:
        """Take or encode about `n` more rows; True once the blob is ready."""
        if self.blob is not None:
            return True
        if not self.taken:
            n = self._take_some(n)
        if self.taken and n > 0:
            self._encode_some(n)
        return self.blob is not None

    def complete(self) -> bytes:
        """Take and encode everything now, in one go; returns the blob."""
        everything = len(self.state.groups) + len(self.state.players) + 1
        while not self.step(everything):
            pass
        assert self.blob is not None
        return self.blob

    def abandon(self) -> None:
        """Stop building: the state no longer notes what events touch."""
        if not self.taken:
            self.state.touched = None

    # -- taking --------------------------------------------------------------------
    def _take_some(self, n: int) -> int:
        """Take up to `n` rows (all the rest, if few are left); returns the budget left."""
        state = self.state
        assert state.touched is not None, "the snapshot was abandoned"
        while True:
            n -= self._take(n)
            if self._next_group < len(self._group_queue) or self._next_player < len(self._player_queue):
                return 0  # `n` ran out in this round
            touched_players, touched_groups = state.touched
            if len(touched_players) + len(touched_groups) <= max(n, 0):
                state.touched = None
                self._take_groups(touched_groups)
                self._take_players(touched_players)
                self._taken()
                return n - len(touched_players) - len(touched_groups)
            if n <= 0:
                return 0
            # Another round: what events touched while the last one ran.
            self._group_queue, self._player_queue = list(touched_groups), list(touched_players)
            self._next_group = self._next_player = 0
            state.touched = ({}, {})

    def _take(self, n: int) -> int:
        """Take up to `n` from this round's queues; returns how many were taken."""
        start = self._next_group
        groups = self._group_queue[start:start + n]
        self._take_groups(groups)
        self._next_group = start + len(groups)
        start = self._next_player
        players = self._player_queue[start:start + max(n - len(groups), 0)]
        self._take_players(players)
        self._next_player = start + len(players)
        return len(groups) + len(players)

    def _take_groups(self, keys: Any) -> None:
        groups, rows, dumps = self.state.groups, self._groups, orjson.dumps
        for key in keys:
            rows[key] = dumps(group_row(groups[key]))

    def _take_players(self, player_ids: Any) -> None:
        players, rows, dumps = self.state.players, self._players, orjson.dumps
        for player_id in player_ids:
            rows[player_id] = dumps({player_id: player_row(players[player_id])})[1:-1]

    def _taken(self) -> None:
        """Every row is final: read the hunt-wide fields, and line up what to encode."""
        state = self.state
        self.version, self.seq = state.version, state.seq
        head = orjson.dumps(snapshot_data(state, None, None))
        suffix = b',"groups":null,"players":null}'
        assert head.endswith(suffix), "groups and players must come last in a snapshot"
        # The rows in reverse, so that each step pops its own off the end: freeing
        # 20,000 encoded rows at once would hold the loop for several ms.
        groups, players = list(self._groups.values()), list(self._players.values())
        groups.reverse()
        players.reverse()
        self._sections: list[bytes | list[bytes]] = [
            head[:-len(suffix)] + b',"groups":[', groups, b'],"players":{', players, b"}}"]
        self._groups, self._players = {}, {}
        self._compressor = zlib.compressobj(1)
        self._out: list[bytes] = []
        self._section = self._row = 0

    # -- encoding --------------------------------------------------------------------
    def _encode_some(self, n: int) -> None:
        """Compress the JSON up to `n` rows further (the text between the lists as it comes)."""
        assert n > 0
        sections, out, compress = self._sections, self._out, self._compressor.compress
        while n > 0 and self._section < len(sections):
            section = sections[self._section]
            if isinstance(section, bytes):
                out.append(compress(section))
                self._section += 1
                continue
            rows = section[-n:]
            del section[-n:]
            rows.reverse()
            piece = b",".join(rows)
            out.append(compress(b"," + piece if self._row and rows else piece))
            n -= len(rows)
            self._row += len(rows)
            if not section:
                self._section += 1
                self._row = 0
        if self._section >= len(sections):
            out.append(self._compressor.flush())
            self.blob = b"".join(out)
            self._sections, self._out = [], []
