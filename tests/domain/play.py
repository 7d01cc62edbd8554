"""A tiny driver for the pure domain: decide, then fold evolve, as the runtime does.

`Game` keeps the hunt state and the stored events, stamps each accepted event with a
gapless ``seq``/``version`` and the accept time ``ts``, and has a settable clock.
`hunt` and `clue` build definition dicts for `parse_definition`.
"""

from __future__ import annotations

from typing import Any

from thengine.domain.commands import (
    AdjustScore, CheckIn, Command, CreateHunt, EndHunt, ExtendHunt, JoinHunt, LeaveHunt,
    Rejection, RemovePlayer, RequestHint, StartHunt, SubmitAnswer,
)
from thengine.domain.definition import format_ts, parse_definition
from thengine.domain.events import StoredEvent
from thengine.domain.rules import decide, evolve
from thengine.domain.state import HuntState, to_snapshot

#: 2027-01-15T08:00:00Z, a round "now" for every test.
T0 = 1_800_000_000_000
HUNT = "h"


def clue(id: str, *, points: int = 100, answers: list[str] | None = None,
         location: dict[str, float] | None = None, hints: list[dict[str, Any]] | None = None,
         prompt: str | None = None) -> dict[str, Any]:
    """A clue dict: answered by ``answers`` (default ``[id]``) unless a ``location`` is given."""
    out: dict[str, Any] = {"id": id, "prompt": prompt or f"prompt of {id}", "points": points}
    if location is not None:
        out["location"] = location
    else:
        out["answers"] = answers if answers is not None else [id]
    if hints:
        out["hints"] = hints
    return out


def hunt(*clues: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """A definition dict; default three sequential answer clues ``a``, ``b``, ``c``."""
    return {
        "id": HUNT,
        "title": "Test hunt",
        "order": "sequential",
        "clues": list(clues) or [clue("a"), clue("b"), clue("c")],
        **fields,
    }


def ts(ms: int) -> str:
    return format_ts(ms)


class Game:
    """One hunt, driven through `decide` and `evolve` with a clock set by the test."""

    def __init__(self, definition: dict[str, Any] | None = None, *, start: bool = True,
                 now: int = T0) -> None:
        self.now = now
        self.state: HuntState | None = None
        self.events: list[StoredEvent] = []
        if definition is not None:
            self.ok(CreateHunt(definition=parse_definition(definition)))
            if start:
                self.ok(StartHunt(hunt_id=HUNT))

    # -- clock ---------------------------------------------------------------------
    def advance(self, seconds: float) -> None:
        self.now += int(seconds * 1000)

    # -- driving -------------------------------------------------------------------
    def run(self, command: Command) -> list[StoredEvent] | Rejection:
        """Decide `command` at `now`; store and apply its events if accepted."""
        decision = decide(self.state, command, now=self.now)
        if isinstance(decision, Rejection):
            return decision
        stored = []
        for new in decision:
            event = StoredEvent(seq=len(self.events) + 1, hunt_id=command.hunt_id,
                                version=len(self.events) + 1, type=new.type, ts=self.now,
                                data=new.data)
            self.state = evolve(self.state, event)
            self.events.append(event)
            stored.append(event)
        return stored

    def ok(self, command: Command) -> list[StoredEvent]:
        result = self.run(command)
        assert not isinstance(result, Rejection), f"{command!r:.200} was rejected: {result}"
        return result

    def reject(self, command: Command, code: str) -> Rejection:
        """Assert `command` is rejected with `code` and changes nothing."""
        before = None if self.state is None else to_snapshot(self.state)
        result = self.run(command)
        assert isinstance(result, Rejection), f"{command!r:.200} was accepted: {result!r:.300}"
        assert result.code == code, result
        assert (None if self.state is None else to_snapshot(self.state)) == before
        return result

    def types(self, events: list[StoredEvent]) -> list[str]:
        return [e.type for e in events]

    # -- shortcuts -----------------------------------------------------------------
    def join(self, player: str, team: str | None = None) -> list[StoredEvent] | Rejection:
        return self.run(JoinHunt(hunt_id=HUNT, player_id=player, team_id=team))

    def leave(self, player: str) -> list[StoredEvent] | Rejection:
        return self.run(LeaveHunt(hunt_id=HUNT, player_id=player))

    def answer(self, player: str, clue_id: str, answer: str | None = None
               ) -> list[StoredEvent] | Rejection:
        return self.run(SubmitAnswer(hunt_id=HUNT, player_id=player, clue_id=clue_id,
                                     answer=clue_id if answer is None else answer))

    def check_in(self, player: str, clue_id: str, lat: float, lon: float, accuracy_m: float | None = None
                 ) -> list[StoredEvent] | Rejection:
        return self.run(CheckIn(hunt_id=HUNT, player_id=player, clue_id=clue_id, lat=lat, lon=lon,
                                accuracy_m=accuracy_m))

    def hint(self, player: str, clue_id: str) -> list[StoredEvent] | Rejection:
        return self.run(RequestHint(hunt_id=HUNT, player_id=player, clue_id=clue_id))

    # -- reading -------------------------------------------------------------------
    def group(self, player: str) -> Any:
        assert self.state is not None
        return self.state.players[player].group

    def score(self, player: str) -> int:
        return self.group(player).score

    def ranking(self) -> list[tuple[str, str]]:
        """The ranking as ``(kind, id)`` pairs, best first."""
        assert self.state is not None
        return [(kind, id) for _, _, id, kind in self.state.ranking]


__all__ = [
    "AdjustScore", "CheckIn", "CreateHunt", "EndHunt", "ExtendHunt", "Game", "HUNT",
    "JoinHunt", "LeaveHunt", "Rejection", "RemovePlayer", "RequestHint", "StartHunt",
    "SubmitAnswer", "T0", "clue", "hunt", "ts",
]
