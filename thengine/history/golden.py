"""Expectations: what a log must replay to, pinned in a file.

`thengine replay --save-expect FILE` writes one; `thengine replay --verify --expect FILE`
checks a log against it. The project's golden logs (``tests/golden/``) use the same
files, so that a rule changed without a new rules version fails a test; users pin
their own production logs in their CI the same way.

The file is JSON, in the contract's own shapes (not the snapshot layout, which may
change between releases)::

    {"thengine_expectations": 1, "made_by": "thengine 0.1.0",
     "hunts": {"<hunt_id>": {"status": "ended", "version": 42,
                             "leaderboard": [<leaderboard entries, best first>],
                             "players": {"<player_id>": <the `player` query's answer>}}}}

Every field the file names must replay equal. A field a later release added to a view
(a player's answer, a leaderboard entry) is not in an older file, and is not a
difference; a hunt or a player the file does not name is.
"""

from __future__ import annotations

import json
from typing import Any, Mapping

from ..domain import views
from ..domain.state import HuntState

#: The expectations file's format number (its ``thengine_expectations`` key).
FORMAT = 1
#: Differences listed before the rest are only counted.
MAX_SHOWN = 20


def expectations(hunts: Mapping[str, HuntState], made_by: str) -> dict[str, Any]:
    """The expectations file's content for replayed `hunts`."""
    return {"thengine_expectations": FORMAT, "made_by": made_by,
            "hunts": {hunt_id: expected_hunt(hunts[hunt_id]) for hunt_id in sorted(hunts)}}


def expected_hunt(state: HuntState) -> dict[str, Any]:
    board = views.leaderboard(state, len(state.ranking))
    assert isinstance(board, dict)
    return {"status": state.status, "version": state.version, "leaderboard": board["entries"],
            "players": {player_id: views.player(state, player_id) for player_id in sorted(state.players)}}


def parse_expectations(text: str, source: str) -> dict[str, Any]:
    """The ``hunts`` of an expectations file; ValueError with one line saying what is wrong."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"{source}: not JSON ({exc})") from None
    if not isinstance(data, dict) or "thengine_expectations" not in data:
        raise ValueError(f"{source}: not a thengine expectations file (no \"thengine_expectations\" key)")
    if data["thengine_expectations"] != FORMAT:
        raise ValueError(f"{source}: expectations format {data['thengine_expectations']!r}; "
                         f"this thengine reads format {FORMAT}")
    hunts = data.get("hunts")
    if not isinstance(hunts, dict) or not all(isinstance(h, dict) for h in hunts.values()):
        raise ValueError(f"{source}: \"hunts\" must be an object of hunt id -> expectations")
    return hunts


def differences(expected: Mapping[str, Any], hunts: Mapping[str, HuntState]) -> list[str]:
    """Every way the replayed `hunts` differ from `expected` (the file's ``hunts``), one
    line each, as ``hunt 'h': players.ann.score: replayed 90, expected 100``."""
    found: list[str] = []
    for hunt_id, wanted in expected.items():
        state = hunts.get(hunt_id)
        if state is None:
            found.append(f"hunt {hunt_id!r}: expected, but the log has no such hunt")
            continue
        # Through JSON, as the file was written: compare like with like.
        replayed = json.loads(json.dumps(expected_hunt(state)))
        _walk(replayed, wanted, f"hunt {hunt_id!r}: ", "", found)
    return found


#: Where a key the file lacks is a difference: a hunt's own keys and its players. In the
#: views themselves (a player's answer, a leaderboard entry) a field the file lacks is one
#: a later release added: an old file cannot name it, and it changes no rule.
_EXACT_KEYS = ("", "players")


def _walk(replayed: Any, wanted: Any, prefix: str, path: str, found: list[str]) -> None:
    if isinstance(replayed, dict) and isinstance(wanted, dict):
        for key in [*wanted, *(k for k in replayed if k not in wanted)]:
            where = f"{path}.{key}" if path else key
            if key not in replayed:
                found.append(f"{prefix}{where}: expected {_short(wanted[key])}, but the replay has none")
            elif key not in wanted:
                if path in _EXACT_KEYS:  # (elsewhere: a field a later release added to a view)
                    found.append(f"{prefix}{where}: replayed {_short(replayed[key])}, not expected")
            else:
                _walk(replayed[key], wanted[key], prefix, where, found)
        return
    if isinstance(replayed, list) and isinstance(wanted, list) and len(replayed) == len(wanted):
        for i, (a, b) in enumerate(zip(replayed, wanted)):
            _walk(a, b, prefix, f"{path}[{i}]", found)
        return
    if type(replayed) is not type(wanted) or replayed != wanted:
        found.append(f"{prefix}{path}: replayed {_short(replayed)}, expected {_short(wanted)}")


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 80 else text[:77] + "..."
