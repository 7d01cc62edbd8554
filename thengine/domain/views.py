"""What each reader may see: query answers and events in the admin or the player view.

The player view never contains answers, hint texts not revealed to that player,
prompts of clues not open to that player, or the places of check-in clues. The
admin view has everything. Query answers are JSON-ready dicts (field by field in
docs/CONTRACT.md); a query about something unknown is a `Rejection`.
"""

from __future__ import annotations

from typing import Any, Iterable

from .commands import Rejection
from .definition import format_ts
from .events import StoredEvent
from .options import PRIVATE_OPTIONS
from .rules import clue_available_ts, is_open
from .state import Entry, Group, HuntState

ADMIN = "admin"
PLAYER = "player"


def _ts(ms: int | None) -> str | None:
    return None if ms is None else format_ts(ms)


def entry(state: HuntState, group: Group, rank: int) -> dict[str, Any]:
    return {"rank": rank, "id": group.id, "kind": group.kind, "score": group.score,
            "solved": group.solved, "reached_ts": group.reached_ts}


def leaderboard(state: HuntState, limit: int, *, offset: int = 0, around: str | None = None,
                frozen: bool = False) -> dict[str, Any] | Rejection:
    """A page of the ranking: ``{"hunt_id", "total", "offset", "entries": [...]}``.

    Each entry is ``{"rank", "id", "kind", "score", "solved", "reached_ts"}``, best
    first. The page starts at `offset`, or, with `around` (a player or team id), is the
    `limit` entries centred on that player's (or team's) entry, as close to the middle
    as the ends of the ranking allow. `frozen` (the player view): while the board is
    frozen, the board as it stood at the freeze, with ``"frozen": true``.
    """
    board = state.frozen if frozen else None
    total = len(board) if board is not None else len(state.ranking)
    if around is not None:
        index = _frozen_index(state, around) if board is not None else _live_index(state, around)
        if index is None:
            return Rejection(code="not_joined",
                             message=f"around: no player or team {around!r} on the leaderboard of {state.hunt_id!r}")
        offset = max(0, min(index - (limit - 1) // 2, total - limit))
    if board is not None:
        entries = [_frozen_entry(row, rank) for rank, row in enumerate(board[offset:offset + limit], start=offset + 1)]
        return {"hunt_id": state.hunt_id, "total": total, "offset": offset, "entries": entries, "frozen": True}
    entries = [entry(state, state.group_at(key), rank)
               for rank, key in enumerate(state.ranking[offset:offset + limit], start=offset + 1)]
    return {"hunt_id": state.hunt_id, "total": total, "offset": offset, "entries": entries}


def _frozen_entry(row: tuple[int, int, str, str, int], rank: int) -> dict[str, Any]:
    """A leaderboard entry from a row of the frozen board."""
    score, reached, id, kind, solved = row
    return {"rank": rank, "id": id, "kind": kind, "score": -score, "solved": solved, "reached_ts": reached}


def _group_named(state: HuntState, player_or_team: str) -> Group | None:
    """A player's group (their team, or themselves), else the team of that id."""
    member = state.players.get(player_or_team)
    return member.group if member is not None else state.groups.get(("team", player_or_team))


def _live_index(state: HuntState, player_or_team: str) -> int | None:
    group = ranked_group(state, player_or_team)
    return None if group is None else state.rank_of(group) - 1  # type: ignore[operator]


def _frozen_index(state: HuntState, player_or_team: str) -> int | None:
    group = _group_named(state, player_or_team)
    return None if group is None else state.frozen_rank.get(group.key)


def frozen_rank(state: HuntState, group: Group) -> int | None:
    """`group`'s rank on the frozen board (None: not on it)."""
    index = state.frozen_rank.get(group.key)
    return None if index is None else index + 1


def ranked_group(state: HuntState, player_or_team: str) -> Group | None:
    """The ranked group of a player (their team, or themselves), else the team of that id."""
    group = _group_named(state, player_or_team)
    return group if group is not None and group.rank_key is not None else None


def own_entry(state: HuntState, player_or_team: str, *, frozen: bool = False) -> dict[str, Any] | None:
    """The leaderboard entry of a player (or their team), or of a team; None if unranked.
    `frozen`: on the frozen board, while there is one."""
    if frozen and state.frozen is not None:
        index = _frozen_index(state, player_or_team)
        return None if index is None else _frozen_entry(state.frozen[index], index + 1)
    group = ranked_group(state, player_or_team)
    return None if group is None else entry(state, group, state.rank_of(group))  # type: ignore[arg-type]


def hunt_summary(state: HuntState) -> dict[str, Any]:
    definition = state.definition
    return {
        "hunt_id": state.hunt_id,
        "title": definition.title,
        "status": state.status,
        "order": definition.order,
        "starts_at": _ts(definition.starts_at),
        "ends_at": _ts(state.ends_at),
        "players": state.active_players,
        "clues": len(definition.clues),
        "version": state.version,
    }


def hunt(state: HuntState, view: str) -> dict[str, Any]:
    """A hunt's status and clue list; the admin view adds the full definition."""
    out = hunt_summary(state)
    definition = state.definition
    out.update({
        "max_players": definition.max_players,
        "wrong_answer_cooldown_s": definition.wrong_answer_cooldown_s,
        "distance_hint": definition.distance_hint,
        "started_ts": state.started_ts,
        "ended_ts": state.ended_ts,
        "teams": sum(1 for g in state.groups.values() if g.kind == "team" and g.members),
        "clue_list": [{"id": c.id, "points": c.points, "by": c.by,
                       "hints": len(c.hints)} for c in definition.clues],
    })
    options = definition.options.to_json()
    out["options"] = options if view == ADMIN else {k: v for k, v in options.items() if k not in PRIVATE_OPTIONS}
    if view == ADMIN:
        out["definition"] = definition.to_json()
    return out


def flags(state: HuntState) -> dict[str, Any]:
    """The hunt's ``implausible_move`` flags, oldest first (admins only)."""
    return {"hunt_id": state.hunt_id, "flags": list(state.flags)}


def hunts(states: Iterable[HuntState]) -> dict[str, Any]:
    return {"hunts": [hunt_summary(s) for s in sorted(states, key=lambda s: s.hunt_id)]}


def merge_hunts(answers: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """`hunts` answers of several partitions as one, by hunt id."""
    return {"hunts": sorted((h for answer in answers for h in answer["hunts"]), key=lambda h: h["hunt_id"])}


def player(state: HuntState, player_id: str) -> dict[str, Any] | Rejection:
    """One player's progress: score, rank and the clues open to them (player view)."""
    member = state.players.get(player_id)
    if member is None:
        return Rejection(code="not_joined", message=f"player {player_id!r} is not in hunt {state.hunt_id!r}")
    group = member.group
    options = state.definition.options
    clues = []
    for position, clue in enumerate(state.definition.clues):
        if not is_open(state, group, position):
            continue
        solved_ts, revealed, wrong, cooldown_until = group.clue(clue.id)
        item: dict[str, Any] = {
            "id": clue.id,
            "prompt": clue.prompt,
            "points": clue.points,
            "by": clue.by,
            "solved": solved_ts is not None,
            "worth": None if solved_ts is not None else options.award(clue.points, state.solves.get(clue.id, 0)),
            "hints": [{"text": h.text, "penalty": h.penalty} for h in clue.hints[:revealed]],
            "hints_left": len(clue.hints) - revealed,
            "wrong_answers": wrong,
            "cooldown_until": cooldown_until,
        }
        if clue.title is not None:
            item["title"] = clue.title
        if clue.location is not None:
            item["radius_m"] = clue.location.radius_m
        if clue.by == "judged":
            entries = state.submissions.get((group.key, clue.id), ())
            item["max_submissions"] = clue.max_submissions
            item["submissions"] = len(entries)
            item["pending"] = any(e.status == "pending" for e in entries)
        if revealed < len(clue.hints) and not item["solved"]:
            item["next_hint_at"] = (clue_available_ts(state, group, clue, position)
                                    + clue.hints[revealed].unlock_after_s * 1000)
        clues.append(item)
    return {
        "hunt_id": state.hunt_id,
        "player_id": player_id,
        "team_id": group.id if group.kind == "team" else None,
        "status": "removed" if member.removed else "active" if member.active else "left",
        "hunt_status": state.status,
        "score": group.score,
        "rank": state.rank_of(group) if state.frozen is None else frozen_rank(state, group),
        "board_frozen": state.frozen is not None,
        "solved": group.solved,
        "reached_ts": group.reached_ts,
        "treasure_found": group.treasure_ts is not None,
        "clues": clues,
        "entries": [_entry_row(e, with_content=e.player_id == player_id)
                    for e in state.entries.values() if e.group is group],
    }


def _entry_row(entry: Entry, *, with_content: bool) -> dict[str, Any]:
    """One entry as the queue and the player view show it (content: its text and media)."""
    group = entry.group
    return {"entry_id": entry.entry_id, "player_id": entry.player_id,
            "team_id": group.id if group.kind == "team" else None, "clue_id": entry.clue_id,
            "status": entry.status, "text": entry.text if with_content else None,
            "media": entry.media if with_content else None, "submitted_ts": entry.submitted_ts,
            "reason": entry.reason, "appealed": entry.appealed, "appeal": entry.appeal}


def entries(state: HuntState, status: str | None) -> dict[str, Any]:
    """The judges' queue: the hunt's entries (of `status`, or all), oldest first (admins only)."""
    return {"hunt_id": state.hunt_id,
            "entries": [_entry_row(e, with_content=True) for e in state.entries.values()
                        if status is None or e.status == status]}


def redact_definition(definition: dict[str, Any]) -> dict[str, Any]:
    """A hunt definition as a player may see it: no prompts, answers, places or hint texts."""
    out = {k: v for k, v in definition.items() if k != "clues" and k not in PRIVATE_OPTIONS}
    out["clues"] = [
        {"id": c["id"], "points": c["points"], "by": c.get("by") or ("check_in" if "location" in c else "answer"),
         "hints": [{"penalty": h["penalty"], "unlock_after_s": h.get("unlock_after_s", 0)}
                   for h in c.get("hints", ())]}
        for c in definition["clues"]
    ]
    return out


#: Events players never see, in any view or result: only organisers act on flags.
ADMIN_ONLY_EVENTS = frozenset({"implausible_move"})


def visible(event: StoredEvent, view: str) -> bool:
    """Whether a reader in `view` sees `event` at all."""
    return view == ADMIN or event.type not in ADMIN_ONLY_EVENTS


def event_data(event: StoredEvent, view: str, *, own: bool = False) -> dict[str, Any]:
    """An event's data in `view`. `own`: the reader made it (sees their hint text, answer, fix)."""
    if view == ADMIN:
        return event.data
    if event.type == "hunt_created":
        return {**event.data, "definition": redact_definition(event.data["definition"])}
    if own:
        return event.data
    data = event.data
    if data.get("frozen"):
        data = {k: v for k, v in data.items() if k not in _SCORE_FIELDS}
    hidden = _PRIVATE_FIELDS.get(event.type)
    if hidden is not None:
        return {k: v for k, v in data.items() if k not in hidden}
    return data


#: What a scoring event decided while the board was frozen hides from other players.
_SCORE_FIELDS = ("points", "score", "delta", "time_bonus", "penalty", "charged")


def private_to(event: StoredEvent) -> str | None:
    """The player who alone (with admins) sees all of `event`, if it has private fields."""
    if event.data.get("frozen"):
        return event.data.get("player_id")
    hidden = _PRIVATE_FIELDS.get(event.type)
    if hidden is None or not any(field in event.data for field in hidden):
        return None
    return event.data.get("player_id")


#: Fields of an event that only the player it is about (and admins) see.
_PRIVATE_FIELDS = {"hint_revealed": ("text",), "answer_wrong": ("answer",),
                   "clue_solved": ("lat", "lon", "accuracy_m"), "entry_submitted": ("text", "media"),
                   "entry_rejected": ("reason",), "entry_appealed": ("message",)}


def event(event: StoredEvent, view: str, *, own: bool = False) -> dict[str, Any]:
    """The stored event as JSON in `view`."""
    out = event.to_json()
    out["data"] = event_data(event, view, own=own)
    return out
