"""Event shapes: each event type's data layout, numbered, and the upcasters from old ones.

The log is never rewritten. Every stored event keeps the shape it was written in (the
``shape`` column; rows from before it existed are shape 1), and every read of the log
(recovery, replay, subscriptions, ``events``) passes it through `upcast`, so that the
rest of the code only ever sees the current shape. An upcaster is a small pure
function from one shape's data to the next one's; they chain, so shape 1 reaches the
current shape through each step. `docs/CONTRACT.md` lists each shape's history.

To change a shape: bump its number in `SHAPES`, and register the upcaster from the
previous number (with a test). Never change an upcaster that has shipped.
"""

from __future__ import annotations

from typing import Any, Callable

Data = dict[str, Any]

#: The current shape of each event type; a type not listed is at shape 1.
SHAPES: dict[str, int] = {
    "hunt_created": 2,
    "answer_wrong": 2,
    "hint_revealed": 2,
    "treasure_found": 2,
}


def shape_of(event_type: str) -> int:
    """The shape `event_type` is written in today."""
    return SHAPES.get(event_type, 1)


def _created_1(data: Data) -> Data:
    """Shape 2 adds ``rules_version``: hunts from before it are version 1."""
    return {**data, "rules_version": 1}


def _wrong_1(data: Data) -> Data:
    """Shape 2 adds ``penalty``, the points the wrong answer cost: none before."""
    return {**data, "penalty": 0}


def _hint_1(data: Data) -> Data:
    """Shape 2 adds ``charged``, the points actually taken: the whole penalty before."""
    return {**data, "charged": data["penalty"]}


def _treasure_1(data: Data) -> Data:
    """Shape 2 adds ``time_bonus``, points for a fast finish (in ``score``): none before."""
    return {**data, "time_bonus": 0}


#: (event type, shape) -> the upcaster to shape + 1.
UPCASTERS: dict[tuple[str, int], Callable[[Data], Data]] = {
    ("hunt_created", 1): _created_1,
    ("answer_wrong", 1): _wrong_1,
    ("hint_revealed", 1): _hint_1,
    ("treasure_found", 1): _treasure_1,
}


def upcast(event_type: str, shape: int, data: Data) -> Data:
    """`data` of an event stored in `shape`, in its type's current shape.

    Raises:
        ValueError: `shape` is newer than this thengine knows (a newer release wrote it).
    """
    current = SHAPES.get(event_type, 1)
    if shape == current:
        return data
    if shape > current:
        raise ValueError(f"{event_type} in shape {shape}, newer than this thengine knows ({current})")
    while shape < current:
        data = UPCASTERS[(event_type, shape)](data)
        shape += 1
    return data
