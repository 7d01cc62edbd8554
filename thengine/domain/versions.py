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
    """What one rules version does, where versions differ (none yet: version 1 is the
    only one). A rule change adds a field here, named for what it does, with the old
    behaviour in every existing version and the new one in the new version."""

    version: int


RULES: dict[int, Rules] = {
    1: Rules(1),
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
