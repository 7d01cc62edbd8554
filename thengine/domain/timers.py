"""Timed lifecycle: what a due ``starts_at`` / ``ends_at`` / ``freeze_at`` timer means for a hunt.

Timers are durable (the runtime keeps them in the database); when one falls due the
runtime asks `decide_timer`, so the start or end is an ordinary logged event that
replay sees. A timer made stale by `extend_hunt` or a manual start/end decides nothing.
"""

from __future__ import annotations

from .definition import HuntDefinition
from .events import NewEvent
from .state import HuntState

START = "start"
END = "end"
FREEZE = "freeze"


def timers_for(definition: HuntDefinition) -> list[tuple[str, int]]:
    """The (kind, due_ts) timers a newly created hunt needs."""
    out = []
    if definition.starts_at is not None:
        out.append((START, definition.starts_at))
    if definition.ends_at is not None:
        out.append((END, definition.ends_at))
    if definition.freeze_at is not None:
        out.append((FREEZE, definition.freeze_at))
    return out


def decide_timer(state: HuntState | None, kind: str, due_ts: int) -> list[NewEvent]:
    """The events a due timer produces: a start or an end, or nothing if it is stale."""
    if state is None:
        return []
    if kind == START and state.status == "created" and (state.ends_at is None or due_ts < state.ends_at):
        return [NewEvent(type="hunt_started", data={"by": "timer"})]
    if kind == END and state.status != "ended" and state.ends_at == due_ts:
        return [NewEvent(type="hunt_ended", data={"by": "timer"})]
    if kind == FREEZE and state.status != "ended" and state.frozen is None and due_ts == state.definition.freeze_at:
        return [NewEvent(type="board_frozen", data={"by": "timer"})]
    return []
