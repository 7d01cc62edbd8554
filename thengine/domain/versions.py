"""Rules versions: what each one changed, in one place.

A hunt is decided and evolved under the rules version it was created with, for ever:
``hunt_created.data.rules_version``, set by the engine (never by a client) to
`RULES_VERSION`. Hunts created before the field existed are version 1. A log kept for
years therefore replays under the rules it was played by, whatever this release's
rules are; ``tests/golden/`` holds logs of every release to prove it.

To change a rule: add a field to `Rules` (named for what it does), give it the old
behaviour in every existing version and the new one in a new version, bump
`RULES_VERSION`, and read the field where the rule is applied (``state.rules``).
Never change what an existing version does.
"""

from __future__ import annotations

import attrs


@attrs.frozen
class Rules:
    """What one rules version does, where versions differ. A rule change adds a field
    here, named for what it does, with the old behaviour in every existing version and
    the new one in the new version.

    The hunt options (``first_solver_bonus``, ``decay``, ``wrong_answer_penalty`` and
    ``allow_negative_scores``, ``time_bonus``, ``max_accuracy_m``, ``max_speed_kmh``) need
    no switch: they came with version 2, so no version-1 hunt has them.
    """

    version: int
    #: A check-in's ``accuracy_m`` counts: the whole accuracy circle must be inside the
    #: geofence, and ``max_accuracy_m`` applies. Version 1: every fix is taken as exact.
    fix_accuracy: bool = False
    #: A check-in that solves a clue records its fix (``lat``, ``lon``, ``accuracy_m``) in
    #: ``clue_solved``: the player's previous fix for ``max_speed_kmh``. Version 1: no fix
    #: is recorded.
    records_fix: bool = False


RULES: dict[int, Rules] = {
    1: Rules(1),
    2: Rules(2, fix_accuracy=True, records_fix=True),
}

#: The rules version new hunts are created under.
RULES_VERSION = max(RULES)


def rules_for(version: int) -> Rules:
    """The rules of `version`; ValueError for one this thengine does not know (newer)."""
    found = RULES.get(version) if type(version) is int else None
    if found is None:
        raise ValueError(f"rules_version {version!r} is unknown to this thengine (it knows 1-{RULES_VERSION}): "
                         "was the hunt created by a newer release?")
    return found
