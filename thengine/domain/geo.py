"""Geometry of check-ins: distances, what a miss may say, and moves too fast to be real.

Pure functions of positions and times; `rules` applies them to a hunt's check-ins.
"""

from __future__ import annotations

import math

EARTH_RADIUS_M = 6_371_008.8


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle (haversine) distance in metres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def implied_speed_kmh(moved_m: float, seconds: float) -> float | None:
    """The speed of moving `moved_m` in `seconds`; None: infinite (somewhere else in no time)."""
    if seconds > 0:
        return moved_m / seconds * 3.6
    return None if moved_m > 0 else 0.0


#: Upper bounds (metres) of the "warmer/colder" bands a hunt with ``distance_hint = "bands"``
#: may tell a player; beyond the last one the band is "1000 m or more".
DISTANCE_BANDS_M = (50, 100, 250, 500, 1000)


def too_far_message(distance_hint: str, clue_id: str, distance: float, radius_m: float) -> str:
    """What a check-in outside the geofence tells the player.

    Never the distance itself: three exact distances from made-up places would give the
    clue's place away by trilateration. A hunt may opt in to coarse bands, which still
    leak a little with every try (the per-player rate limit bounds how fast).
    """
    where = f"not at clue {clue_id!r} yet; check in within {radius_m:g} m"
    if distance_hint != "bands":
        return where
    band = next((f"under {bound} m" for bound in DISTANCE_BANDS_M if distance < bound),
                f"{DISTANCE_BANDS_M[-1]} m or more")
    return f"{where} (you are {band} away)"
