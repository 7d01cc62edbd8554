"""A hunt's scoring and check-in options: top-level keys of the hunt file.

Scoring (a clue solved by the (k+1)-th team, k teams having solved it before in log order,
is awarded ``max(min_points, points - step*k) + first_solver_bonus[k]``, the bonus only
while k < len(first_solver_bonus)):

- ``first_solver_bonus = [50, 30, 10]``: extra points for the first teams to solve a clue;
- ``decay = {min_points = 20, step = 5}``: each later solver gets `step` less, never below
  `min_points`;
- ``wrong_answer_penalty = 5``: points lost per wrong answer, never taking a score below
  zero unless ``allow_negative_scores = true`` (hint penalties are always charged whole);
- ``time_bonus = {points = 100, within_minutes = 30}``: for finding the treasure within
  that many minutes of the team's first join.

Check-ins:

- ``max_accuracy_m = 50``: a fix less accurate than that is ``inaccurate_fix``; inside it, a
  fix counts only if its whole accuracy circle is inside the geofence;
- ``max_speed_kmh = 200``: a check-in implying faster travel from the player's previous
  one is decided as usual and also flagged (``implausible_move``) for the organisers.

Pure and frozen, like the definition; `read_options` reports every problem at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from .fields import check_keys, int_at, list_at, number_at, optional, problem, table_at

#: The hunt file's top-level keys that `read_options` reads.
OPTION_KEYS = ("first_solver_bonus", "decay", "wrong_answer_penalty", "allow_negative_scores", "time_bonus",
               "max_accuracy_m", "max_speed_kmh")

#: Longest ``first_solver_bonus`` list.
MAX_BONUSES = 100

#: Options a player never sees in a definition (a spoofer would tune to it).
PRIVATE_OPTIONS = ("max_speed_kmh",)


@attrs.frozen(kw_only=True)
class Decay:
    """Each later solver of a clue gets `step` points less, never below `min_points`."""

    min_points: int
    step: int


@attrs.frozen(kw_only=True)
class TimeBonus:
    """`points` for finding the treasure within `within_minutes` of the team's first join."""

    points: int
    within_minutes: int


@attrs.frozen(kw_only=True)
class Options:
    """A hunt's scoring and check-in options; the defaults change nothing."""

    first_solver_bonus: tuple[int, ...] = attrs.field(default=(), converter=tuple)
    decay: Decay | None = None
    wrong_answer_penalty: int = 0
    allow_negative_scores: bool = False
    time_bonus: TimeBonus | None = None
    max_accuracy_m: float | None = None
    max_speed_kmh: float | None = None

    def award(self, points: int, k: int) -> int:
        """What the solver of a clue worth `points` gets, `k` teams having solved it before."""
        if self.decay is not None:
            points = max(self.decay.min_points, points - self.decay.step * k)
        if k < len(self.first_solver_bonus):
            points += self.first_solver_bonus[k]
        return points

    def time_bonus_for(self, joined_ts: int, found_ts: int) -> int:
        bonus = self.time_bonus
        if bonus is None or found_ts - joined_ts > bonus.within_minutes * 60_000:
            return 0
        return bonus.points

    def to_json(self) -> dict[str, Any]:
        """The options set, as the hunt file's top-level keys (defaults left out)."""
        out: dict[str, Any] = {}
        if self.first_solver_bonus:
            out["first_solver_bonus"] = list(self.first_solver_bonus)
        if self.decay is not None:
            out["decay"] = {"min_points": self.decay.min_points, "step": self.decay.step}
        if self.wrong_answer_penalty:
            out["wrong_answer_penalty"] = self.wrong_answer_penalty
        if self.allow_negative_scores:
            out["allow_negative_scores"] = True
        if self.time_bonus is not None:
            out["time_bonus"] = {"points": self.time_bonus.points, "within_minutes": self.time_bonus.within_minutes}
        if self.max_accuracy_m is not None:
            out["max_accuracy_m"] = self.max_accuracy_m
        if self.max_speed_kmh is not None:
            out["max_speed_kmh"] = self.max_speed_kmh
        return out


NO_OPTIONS = Options()


def read_options(table: Mapping[Any, Any], problems: list[str], *, least_points: int | None) -> Options:
    """The options among a hunt table's keys (`least_points`: its cheapest clue's points)."""
    bonus: list[int] = []
    if (raw := optional(table, "first_solver_bonus")) is not None:
        items = list_at(raw, "first_solver_bonus", problems)
        if items is not None and len(items) > MAX_BONUSES:
            problems.append(f"first_solver_bonus: must have at most {MAX_BONUSES} entries, got {len(items)}")
        for n, item in enumerate(items or ()):
            value = int_at(item, f"first_solver_bonus[{n}]", problems, positive=False)
            if value is not None:
                bonus.append(value)
    decay = None
    if (raw := optional(table, "decay")) is not None:
        decay = _read_decay(raw, problems, least_points)
    penalty = 0
    if (raw := optional(table, "wrong_answer_penalty")) is not None:
        penalty = int_at(raw, "wrong_answer_penalty", problems, positive=False) or 0
    negative = optional(table, "allow_negative_scores")
    if negative is not None and not isinstance(negative, bool):
        problem(problems, "allow_negative_scores", "must be true or false", negative)
    time_bonus = None
    if (raw := optional(table, "time_bonus")) is not None:
        time_bonus = _read_time_bonus(raw, problems)
    accuracy = speed = None
    if (raw := optional(table, "max_accuracy_m")) is not None:
        accuracy = number_at(raw, "max_accuracy_m", problems, low=0, open_low=True)
    if (raw := optional(table, "max_speed_kmh")) is not None:
        speed = number_at(raw, "max_speed_kmh", problems, low=0, open_low=True)
    return Options(first_solver_bonus=tuple(bonus), decay=decay, wrong_answer_penalty=penalty,
                   allow_negative_scores=negative is True, time_bonus=time_bonus, max_accuracy_m=accuracy,
                   max_speed_kmh=speed)


def _read_decay(raw: object, problems: list[str], least_points: int | None) -> Decay | None:
    table = table_at(raw, "decay", problems)
    if table is None:
        return None
    check_keys(table, "decay", ("min_points", "step"), ("min_points", "step"), problems)
    min_points = int_at(table["min_points"], "decay.min_points", problems, positive=False) \
        if "min_points" in table else None
    step = int_at(table["step"], "decay.step", problems, positive=True) if "step" in table else None
    if min_points is not None and least_points is not None and min_points > least_points:
        problem(problems, "decay.min_points", f"must not exceed the points of the cheapest clue ({least_points})",
                min_points)
        return None
    if min_points is None or step is None:
        return None
    return Decay(min_points=min_points, step=step)


def _read_time_bonus(raw: object, problems: list[str]) -> TimeBonus | None:
    table = table_at(raw, "time_bonus", problems)
    if table is None:
        return None
    check_keys(table, "time_bonus", ("points", "within_minutes"), ("points", "within_minutes"), problems)
    points = int_at(table["points"], "time_bonus.points", problems, positive=True) if "points" in table else None
    within = (int_at(table["within_minutes"], "time_bonus.within_minutes", problems, positive=True)
              if "within_minutes" in table else None)
    if points is None or within is None:
        return None
    return TimeBonus(points=points, within_minutes=within)
