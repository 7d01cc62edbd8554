"""Where a player's points came from: every event that changed their score, and their flags.

`thengine replay --player` shows it, so that "why is my score 240?" has an answer read
from the log: each award with the solver's place (which decides a first-solver bonus and
decay), each penalty, bonus and adjustment.
"""

from __future__ import annotations

from typing import Any, Iterable

from ..domain.events import StoredEvent
from ..domain.state import HuntState

#: What each scoring event adds to a score: (field, sign).
_SCORING = {
    "clue_solved": ("points", 1),
    "entry_accepted": ("points", 1),
    "treasure_found": ("time_bonus", 1),
    "answer_wrong": ("penalty", -1),
    "hint_revealed": ("charged", -1),
    "score_adjusted": ("delta", 1),
}


def points_of(state: HuntState, player_id: str, events: Iterable[StoredEvent]) -> dict[str, Any]:
    """``{"history": [...], "flags": [...]}`` of `player_id` in `state`, from its hunt's `events`
    (in order, up to the state's seq). The history covers the player's group (their team).

    Each history entry is ``{"seq", "ts", "type", "points", "clue_id"?, "solver"?, "reason"?}``:
    ``solver`` is the group's place among the clue's solvers (1 for the first).
    """
    group = state.players[player_id].group
    members = {p for p, member in state.players.items() if member.group is group}
    solvers: dict[str, int] = {}
    history: list[dict[str, Any]] = []
    for event in events:
        data = event.data
        solve = event.type in ("clue_solved", "entry_accepted")
        if solve:
            solvers[data["clue_id"]] = solvers.get(data["clue_id"], 0) + 1
        scoring = _SCORING.get(event.type)
        if scoring is None or not _about(data, group.kind, group.id, members):
            continue
        field, sign = scoring
        points = sign * data[field]
        if not points and not solve:
            continue
        entry: dict[str, Any] = {"seq": event.seq, "ts": event.ts, "type": event.type, "points": points}
        if "clue_id" in data:
            entry["clue_id"] = data["clue_id"]
        if solve:
            entry["solver"] = solvers[data["clue_id"]]
        if "reason" in data:
            entry["reason"] = data["reason"]
        history.append(entry)
    flags = [flag for flag in state.flags if flag["player_id"] == player_id]
    return {"history": history, "flags": flags}


def _about(data: dict[str, Any], kind: str, group_id: str, members: set[str]) -> bool:
    if kind == "team":
        return data.get("team_id") == group_id
    return data.get("player_id") in members and "team_id" not in data
