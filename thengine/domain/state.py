"""Hunt state: mutable for speed, changed only by `rules.evolve`.

A hunt's players score in *groups*: a team, or a solo player as a team of one. A group
owns solved clues, revealed hints, wrong-answer counts, cooldowns and the hint unlock
clock; players point at their group. The ranking is a sorted list of rank keys
``(-score, reached_ts, id, kind)`` kept up to date on every score change, so a
leaderboard query is a slice, never a sort.

`to_snapshot` / `from_snapshot` turn a state into JSON-ready data and back; two
states are equal exactly when their snapshots are equal. The runtime builds big
snapshots in slices (`thengine.runtime.snapshots`) while events go on changing the
state: `evolve` notes what each event touches (`HuntState.touched`, `note_touched`)
so that the builder can take those players and groups again.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from typing import Any

from .definition import HuntDefinition, parse_definition
from .versions import RULES, Rules, rules_for

#: Bump when the snapshot layout changes; older snapshots are then ignored (full replay).
#: 2: adds ``rules_version``. 3: adds ``flags`` and each player's last fix. 4: adds ``entries``.
#: 5: adds ``frozen``.
SNAPSHOT_FORMAT = 5

GroupKey = tuple[str, str]  # (kind, id): ("player", "p1") or ("team", "red")


#: One group's progress on one clue: ``(solved_ts, hints, wrong, cooldown_until)``, the
#: solve time (or None), hints revealed, wrong answers so far and the end of a cooldown
#: (or None).
ClueProgress = tuple[int | None, int, int, int | None]

#: The progress on a clue nobody in the group has touched.
UNTOUCHED: ClueProgress = (None, 0, 0, None)


def pack_progress(solved_ts: int | None, hints: int, wrong: int, cooldown_until: int | None) -> int:
    """`ClueProgress` as one int, the form a group keeps it in.

    The garbage collector tracks every object that can hold others (an object per
    clue, a tuple, an array), and a full collection's pause grows with their number:
    per clue, they were half of a big hunt's. An int is never tracked, and neither is a
    dict of ints, so a group's progress adds nothing to any collection. Fields, low
    bits first: solve time + 1 (0: not solved), 64 bits; cooldown end + 1 (0: none),
    64 bits; hints, 32 bits; wrong answers, the rest. Times are ms since the epoch.
    """
    return ((solved_ts + 1 if solved_ts is not None else 0) | (cooldown_until + 1 if cooldown_until is not None else 0) << 64
            | hints << 128 | wrong << 160)


def unpack_progress(packed: int) -> ClueProgress:
    solved, cooldown = packed & _FIELD, packed >> 64 & _FIELD
    return (solved - 1 if solved else None, packed >> 128 & 0xFFFF_FFFF, packed >> 160,
            cooldown - 1 if cooldown else None)


_FIELD = (1 << 64) - 1


class Group:
    """A team, or a solo player: the unit that solves clues and scores."""

    __slots__ = ("kind", "id", "members", "joined_ts", "progress", "solved", "score",
                 "reached_ts", "treasure_ts", "rank_key")

    def __init__(self, kind: str, id: str, joined_ts: int) -> None:
        self.kind = kind
        self.id = id
        self.members: tuple[str, ...] = ()  # players not removed, in join order (a tuple: untracked by GC)
        self.joined_ts = joined_ts
        self.progress: dict[str, int] = {}  # clue_id -> its `pack_progress`ed ClueProgress
        self.solved = 0
        self.score = 0
        self.reached_ts = joined_ts
        self.treasure_ts: int | None = None
        self.rank_key: tuple[int, int, str, str] | None = None

    @property
    def key(self) -> GroupKey:
        return (self.kind, self.id)

    def clue(self, clue_id: str) -> ClueProgress:
        """The group's progress on `clue_id` (`UNTOUCHED` if none)."""
        packed = self.progress.get(clue_id)
        return UNTOUCHED if packed is None else unpack_progress(packed)

    def set_clue(self, clue_id: str, progress: ClueProgress) -> None:
        self.progress[clue_id] = pack_progress(*progress)


class PlayerState:
    """A player's membership (which group, whether in the hunt now) and last recorded fix."""

    __slots__ = ("group", "active", "removed", "joined_ts", "fix_lat", "fix_lon", "fix_ts")

    def __init__(self, group: Group, joined_ts: int) -> None:
        self.group = group
        self.active = True
        self.removed = False
        self.joined_ts = joined_ts
        # Where and when the player's last check-in that solved a clue was (rules 2 on).
        self.fix_lat: float | None = None
        self.fix_lon: float | None = None
        self.fix_ts: int | None = None


class Entry:
    """An entry submitted for a judged clue, and where it stands."""

    __slots__ = ("entry_id", "player_id", "group", "clue_id", "status", "text", "media", "submitted_ts",
                 "reason", "appealed", "appeal")

    def __init__(self, entry_id: str, player_id: str, group: Group, clue_id: str, text: str | None,
                 media: dict[str, Any] | None, submitted_ts: int) -> None:
        self.entry_id = entry_id
        self.player_id = player_id
        self.group = group
        self.clue_id = clue_id
        self.status = "pending"  # -> accepted | rejected (-> pending again, once, by an appeal)
        self.text = text
        self.media = media
        self.submitted_ts = submitted_ts
        self.reason: str | None = None  # the judge's, with a rejection
        self.appealed = False
        self.appeal: str | None = None  # the team's message, with an appeal

    def row(self) -> list[Any]:
        return [self.entry_id, self.player_id, self.clue_id, self.status, self.text, self.media,
                self.submitted_ts, self.reason, self.appealed, self.appeal]


class HuntState:
    """Everything known about one hunt after applying its events up to `version`."""

    def __init__(self, definition: HuntDefinition, created_ts: int, rules: Rules = RULES[1]) -> None:
        self.definition = definition
        self.rules = rules  # the rules version the hunt was created under
        self.hunt_id = definition.id
        self.status = "created"  # created -> running -> ended
        self.version = 0
        self.seq = 0
        self.created_ts = created_ts
        self.started_ts: int | None = None
        self.ended_ts: int | None = None
        self.ends_at = definition.ends_at
        self.players: dict[str, PlayerState] = {}
        self.groups: dict[GroupKey, Group] = {}
        self.active_players = 0
        self.ranking: list[tuple[int, int, str, str]] = []
        self.solves: dict[str, int] = {}  # clue_id -> groups that solved it (the k of decay and bonuses)
        self.flags: list[dict[str, Any]] = []  # implausible_move events, for organisers: {"seq", "ts", **data}
        self.entries: dict[str, Entry] = {}  # entry_id -> entry, in the order submitted
        self.submissions: dict[tuple[GroupKey, str], list[Entry]] = {}  # (group, clue) -> its entries
        # The key of the hunt's printed codes (`codes.hunt_key`): given by the engine before it
        # decides, never in an event or a snapshot. None: code clues cannot be solved here.
        self.code_key: bytes | None = None
        # The board as it stood at a freeze (players see it), best first, as
        # ``(-score, reached_ts, id, kind, solved)``; None while not frozen.
        self.frozen: list[tuple[int, int, str, str, int]] | None = None
        self.frozen_rank: dict[GroupKey, int] = {}  # (kind, id) -> 0-based place on `frozen`
        # While a snapshot is built in slices: the players and groups that events changed since
        # it began, in the order first touched (dicts used as ordered sets).
        self.touched: tuple[dict[str, None], dict[GroupKey, None]] | None = None

    def add_entry(self, entry: Entry) -> None:
        self.entries[entry.entry_id] = entry
        self.submissions.setdefault((entry.group.key, entry.clue_id), []).append(entry)

    # -- ranking -----------------------------------------------------------------
    def rerank(self, group: Group) -> None:
        """Move `group` to its place in the ranking (or out of it, with no members)."""
        if group.rank_key is not None:
            ranking = self.ranking
            del ranking[bisect_left(ranking, group.rank_key)]
            group.rank_key = None
        if group.members:
            group.rank_key = (-group.score, group.reached_ts, group.id, group.kind)
            insort(self.ranking, group.rank_key)

    def rank_of(self, group: Group) -> int | None:
        if group.rank_key is None:
            return None
        return bisect_left(self.ranking, group.rank_key) + 1

    def freeze(self) -> None:
        """Keep the board as it stands now for players (`frozen`)."""
        groups = self.groups
        self.set_frozen([(*key, groups[(key[3], key[2])].solved) for key in self.ranking])

    def set_frozen(self, board: list[tuple[int, int, str, str, int]] | None) -> None:
        """Freeze on `board`, or (None) unfreeze; keeps `frozen_rank` in step."""
        self.frozen = board
        self.frozen_rank = {} if board is None else {(row[3], row[2]): n for n, row in enumerate(board)}

    def group_at(self, rank_key: tuple[int, int, str, str]) -> Group:
        return self.groups[(rank_key[3], rank_key[2])]


def group_row(group: Group) -> dict[str, Any]:
    """One group, as in a snapshot's ``groups`` list."""
    return {
        "kind": group.kind,
        "id": group.id,
        "members": list(group.members),
        "joined_ts": group.joined_ts,
        "score": group.score,
        "reached_ts": group.reached_ts,
        "treasure_ts": group.treasure_ts,
        "progress": {
            clue_id: list(unpack_progress(packed)) for clue_id, packed in group.progress.items()
        },
    }


def player_row(player: PlayerState) -> list[Any]:
    """One player, as a value of a snapshot's ``players``."""
    fix = None if player.fix_ts is None else [player.fix_lat, player.fix_lon, player.fix_ts]
    return [player.group.kind, player.group.id, player.active, player.removed, player.joined_ts, fix]


def snapshot_data(state: HuntState, groups: Any, players: Any) -> dict[str, Any]:
    """The snapshot of `state` around its groups and players, taken already."""
    return {
        "format": SNAPSHOT_FORMAT,
        "rules_version": state.rules.version,
        "definition": state.definition.to_json(),
        "status": state.status,
        "version": state.version,
        "seq": state.seq,
        "created_ts": state.created_ts,
        "started_ts": state.started_ts,
        "ended_ts": state.ended_ts,
        "ends_at": state.ends_at,
        "flags": list(state.flags),
        "entries": [entry.row() for entry in state.entries.values()],
        "frozen": None if state.frozen is None else [list(row) for row in state.frozen],
        "groups": groups,
        "players": players,
    }


def to_snapshot(state: HuntState) -> dict[str, Any]:
    """JSON-ready data that `from_snapshot` turns back into an equal state."""
    groups = [group_row(group) for group in state.groups.values()]
    players = {player_id: player_row(p) for player_id, p in state.players.items()}
    return snapshot_data(state, groups, players)


def note_touched(state: HuntState, data: dict[str, Any]) -> None:
    """Record, for a snapshot being built, the player and group an event changed.

    Every event that changes a player or a group names the player (``player_id``) or,
    for a team's score, the team (``team_id``); hunt-wide fields are read at the end.
    """
    assert state.touched is not None
    players, groups = state.touched
    player_id = data.get("player_id")
    if player_id is not None:
        players[player_id] = None
        groups[state.players[player_id].group.key] = None
    elif "team_id" in data:
        groups[("team", data["team_id"])] = None


def from_snapshot(data: dict[str, Any]) -> HuntState:
    """The state a snapshot describes. Raises ValueError for another snapshot format."""
    if data.get("format") != SNAPSHOT_FORMAT:
        raise ValueError(f"snapshot format {data.get('format')!r}, expected {SNAPSHOT_FORMAT}")
    state = HuntState(parse_definition(data["definition"]), data["created_ts"], rules_for(data["rules_version"]))
    state.status = data["status"]
    state.version = data["version"]
    state.seq = data["seq"]
    state.started_ts = data["started_ts"]
    state.ended_ts = data["ended_ts"]
    state.ends_at = data["ends_at"]
    groups = state.groups
    ranking = state.ranking
    for g in data["groups"]:
        group = Group(g["kind"], g["id"], g["joined_ts"])
        group.members = tuple(g["members"])
        group.score = g["score"]
        group.reached_ts = g["reached_ts"]
        group.treasure_ts = g["treasure_ts"]
        progress = group.progress
        solved = 0
        solves = state.solves
        for clue_id, (solved_ts, hints, wrong, cooldown_until) in g["progress"].items():
            progress[clue_id] = pack_progress(solved_ts, hints, wrong, cooldown_until)
            if solved_ts is not None:
                solved += 1
                solves[clue_id] = solves.get(clue_id, 0) + 1
        group.solved = solved
        groups[(group.kind, group.id)] = group
        if group.members:
            group.rank_key = (-group.score, group.reached_ts, group.id, group.kind)
            ranking.append(group.rank_key)
    ranking.sort()  # once, rather than an insort per group
    for player_id, (kind, group_id, active, removed, joined_ts, fix) in data["players"].items():
        player = PlayerState(state.groups[(kind, group_id)], joined_ts)
        player.active, player.removed = active, removed
        if fix is not None:
            player.fix_lat, player.fix_lon, player.fix_ts = fix
        state.players[player_id] = player
        state.active_players += active
    state.flags = list(data["flags"])
    state.set_frozen(None if data["frozen"] is None else [tuple(row) for row in data["frozen"]])  # type: ignore[misc]
    for entry_id, player_id, clue_id, status, text, media, submitted_ts, reason, appealed, appeal in data["entries"]:
        entry = Entry(entry_id, player_id, state.players[player_id].group, clue_id, text, media, submitted_ts)
        entry.status, entry.reason, entry.appealed, entry.appeal = status, reason, appealed, appeal
        state.add_entry(entry)
    return state
