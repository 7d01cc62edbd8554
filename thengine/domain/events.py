"""Events: what happened in a hunt. Stored as `StoredEvent` rows in the log.

`decide` returns `NewEvent` values (type + data); the runtime stamps each with the
global `seq`, the per-hunt `version` and the accept timestamp `ts` (integer ms),
giving a `StoredEvent`. `evolve` folds `StoredEvent`s into hunt state.

Event data, field by field (the contract; optional fields are omitted when unset):

- ``hunt_created``: ``definition`` (the hunt definition as JSON, see `HuntDefinition.to_json`)
- ``hunt_started``: ``by`` ("command" or "timer")
- ``hunt_ended``: ``by`` ("command" or "timer")
- ``hunt_extended``: ``ends_at`` (RFC 3339), ``previous_ends_at`` (RFC 3339 or null)
- ``player_joined``: ``player_id``, ``team_id``?, ``rejoined`` (bool)
- ``player_left``: ``player_id``, ``team_id``?
- ``player_removed``: ``player_id``, ``team_id``?, ``reason``
- ``answer_wrong``: ``player_id``, ``team_id``?, ``clue_id``, ``answer`` (as submitted),
  ``attempts`` (wrong answers on this clue so far), ``cooldown_until`` (ms) when this
  answer started a cooldown, ``penalty`` (points it cost)
- ``clue_solved``: ``player_id``, ``team_id``?, ``clue_id``, ``points`` (as awarded), ``via``
  ("answer" or "check_in"); check-ins add ``distance_m`` and, under rules 2 on, the fix:
  ``lat``, ``lon``, ``accuracy_m``?
- ``hint_revealed``: ``player_id``, ``team_id``?, ``clue_id``, ``hint`` (0-based index),
  ``penalty``, ``charged`` (points it cost), ``text``
- ``treasure_found``: ``player_id``, ``team_id``?, ``score`` (with the bonus), ``time_bonus``
- ``score_adjusted``: ``player_id``? or ``team_id``?, ``delta``, ``reason``
- ``implausible_move``: ``player_id``, ``team_id``?, ``clue_id``, ``distance_m`` and
  ``seconds`` from the player's last fix, ``speed_kmh`` (null: infinite),
  ``max_speed_kmh``; admins only
- ``entry_submitted``: ``player_id``, ``team_id``?, ``clue_id``, ``entry_id`` (``e1``, ``e2``...
  in the hunt), ``submission`` (the team's count on the clue), ``text``?, ``media``?
- ``entry_accepted``: ``player_id`` (the submitter), ``team_id``?, ``clue_id``, ``points``,
  ``entry_id``: a solve, counted as ``clue_solved`` is
- ``entry_rejected``: ``player_id``, ``team_id``?, ``clue_id``, ``entry_id``, ``reason`` (or null)
- ``board_frozen``: ``by`` ("command" or "timer"); ``board_unfrozen``: ``by`` ("command")
- ``entry_appealed``: ``player_id`` (the appealer), ``team_id``?, ``clue_id``, ``entry_id``, ``message``
"""

from __future__ import annotations

from typing import Any, NamedTuple

import attrs

EVENT_TYPES = (
    "hunt_created",
    "hunt_started",
    "hunt_ended",
    "hunt_extended",
    "player_joined",
    "player_left",
    "player_removed",
    "answer_wrong",
    "clue_solved",
    "hint_revealed",
    "treasure_found",
    "score_adjusted",
    "implausible_move",
    "entry_submitted",
    "entry_accepted",
    "entry_rejected",
    "entry_appealed",
    "board_frozen",
    "board_unfrozen",
)


@attrs.frozen(kw_only=True)
class NewEvent:
    """An event decided but not yet stored: its type and JSON-ready data."""

    type: str
    data: dict[str, Any]


class StoredEvent(NamedTuple):
    """An event as stored in the log: `{seq, hunt_id, version, type, ts, data}`.

    Immutable (a named tuple: the engine makes one per event, so it must be cheap);
    `data` is a JSON object that nobody changes once the event is made.
    """

    seq: int
    hunt_id: str
    version: int
    type: str
    ts: int
    data: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "hunt_id": self.hunt_id,
            "version": self.version,
            "type": self.type,
            "ts": self.ts,
            "data": self.data,
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> StoredEvent:
        return cls(
            seq=obj["seq"],
            hunt_id=obj["hunt_id"],
            version=obj["version"],
            type=obj["type"],
            ts=obj["ts"],
            data=obj["data"],
        )
