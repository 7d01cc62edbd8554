"""Properties of the rules over random valid hunts and random command sequences.

Each example creates a random hunt, then plays a random mix of player and admin
commands (garbage included: unknown clues, wrong answers, far check-ins, zero
adjustments...) with a clock that only moves forward, and checks after every step
what must always hold.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from thengine.domain import views
from thengine.domain.commands import (
    REJECTION_CODES, AdjustScore, AppealEntry, CheckIn, CreateHunt, EndHunt, ExtendHunt, JoinHunt, JudgeEntry,
    FreezeBoard, LeaveHunt, Rejection, RemovePlayer, RequestHint, StartHunt, SubmitAnswer, SubmitEntry,
    UnfreezeBoard,
)
from thengine.domain.definition import format_ts, parse_definition
from thengine.domain.events import EVENT_TYPES, NewEvent, StoredEvent
from thengine.domain.geo import distance_m
from thengine.domain.rules import SCORING_EVENTS, decide, evolve
from thengine.domain.state import HuntState, from_snapshot, pack_progress, to_snapshot, unpack_progress
from thengine.domain.timers import END, START, decide_timer, timers_for

T0 = 1_800_000_000_000
HUNT = "h"
PLAYERS = ("p0", "p1", "p2", "red")  # "red" is also a team: ids may coincide
TEAMS = (None, None, "red", "blue")


# -- strategies -----------------------------------------------------------------------

def place(n: int) -> dict[str, float]:
    return {"lat": 10.0 + n * 0.01, "lon": 20.0, "radius_m": 50.0}


@st.composite
def clues(draw: Any, n: int) -> dict[str, Any]:
    points = draw(st.integers(1, 200))
    out: dict[str, Any] = {"id": f"c{n}", "prompt": f"prompt {n}", "points": points}
    kind = draw(st.integers(0, 5))
    if kind <= 1:
        out["location"] = place(n)
    elif kind == 2:
        out["by"] = "judged"
        out["max_submissions"] = draw(st.integers(1, 3))
    else:
        out["answers"] = [f"answer {n}", f"Ånswer-{n}"]
    hints = draw(st.lists(st.fixed_dictionaries({
        "text": st.just(f"hint of {n}"),
        "penalty": st.integers(0, points),
        "unlock_after_s": st.sampled_from([0, 0, 5, 60]),
    }), max_size=3))
    if hints:
        out["hints"] = hints
    return out


@st.composite
def hunts(draw: Any) -> dict[str, Any]:
    count = draw(st.integers(1, 6))
    definition: dict[str, Any] = {
        "id": HUNT,
        "title": "Random hunt",
        "order": draw(st.sampled_from(["sequential", "any"])),
        "clues": [draw(clues(n)) for n in range(count)],
    }
    if draw(st.booleans()):
        definition["wrong_answer_cooldown_s"] = draw(st.integers(1, 30))
    if draw(st.booleans()):
        definition["max_players"] = draw(st.integers(1, 4))
    starts_at = None
    if draw(st.integers(0, 3)) == 0:
        starts_at = T0 + draw(st.integers(1_000, 60_000))
        definition["starts_at"] = format_ts(starts_at)
    if draw(st.booleans()):
        definition["ends_at"] = format_ts((starts_at or T0) + draw(st.integers(120_000, 1_800_000)))
    definition.update(draw(options(min(c["points"] for c in definition["clues"]))))
    return definition


@st.composite
def options(draw: Any, least_points: int) -> dict[str, Any]:
    """Any mix of the scoring and check-in options (often none)."""
    out: dict[str, Any] = {}
    if draw(st.booleans()):
        out["first_solver_bonus"] = draw(st.lists(st.integers(0, 60), max_size=4))
    if draw(st.booleans()):
        out["decay"] = {"min_points": draw(st.integers(0, least_points)), "step": draw(st.integers(1, 40))}
    if draw(st.booleans()):
        out["wrong_answer_penalty"] = draw(st.integers(0, 30))
        out["allow_negative_scores"] = draw(st.booleans())
    if draw(st.booleans()):
        out["time_bonus"] = {"points": draw(st.integers(1, 100)), "within_minutes": draw(st.integers(1, 10))}
    if draw(st.booleans()):
        out["max_accuracy_m"] = draw(st.sampled_from([10, 30, 50.5]))
    if draw(st.booleans()):
        out["max_speed_kmh"] = draw(st.sampled_from([5, 50, 300]))
    return out


anyone = st.sampled_from(PLAYERS)
accuracies = st.sampled_from([None, None, 0, 5, 28, 40, 60])  # (a near check-in is about 22 m off)
player = st.sampled_from(("p0", "p0", "p0") + PLAYERS)  # p0 plays most, so its group gets far
clue_no = st.integers(0, 6)  # past the hunt's clues: an unknown clue
entry_no = st.integers(1, 3)  # entry ids e1..e3: sometimes not (yet) submitted

#: Op kinds with their weights (out of 100): most of a hunt is its middle.
OP_WEIGHTS = [
    ("solve", 20), ("wrong", 13), ("freeze", 1), ("unfreeze", 1), ("entry", 3), ("judge", 5), ("appeal", 2), ("next_hint", 8), ("far", 4), ("answer", 8), ("check_in", 4),
    ("hint", 4), ("join", 8), ("leave", 4), ("adjust", 3), ("remove", 2), ("extend", 3),
    ("start", 2), ("timers", 2), ("end", 2), ("create", 1),
]
_KIND_AT = [kind for kind, weight in OP_WEIGHTS for _ in range(weight)]
assert len(_KIND_AT) == 100


@st.composite
def ops(draw: Any) -> tuple[Any, ...]:
    """One op, a tuple that `command_for` turns into a command when it runs."""
    kind = _KIND_AT[draw(st.integers(0, 99))]
    if kind in ("solve", "wrong", "next_hint", "far"):  # on the player's next unsolved clue
        return ("next", draw(player), kind, draw(accuracies))
    if kind == "answer":
        text = draw(st.sampled_from(["right", "messy", "wrong"]) | st.text(max_size=12))
        return ("answer", draw(player), draw(clue_no), text)
    if kind == "check_in":
        return ("check_in", draw(player), draw(clue_no), draw(st.sampled_from(["near", "far"])), draw(accuracies))
    if kind == "hint":
        return ("hint", draw(player), draw(clue_no))
    if kind == "entry":
        return ("entry", draw(player), draw(clue_no))
    if kind == "judge":
        return ("judge", draw(entry_no), draw(st.sampled_from(["accept", "reject"])))
    if kind == "appeal":
        return ("appeal", draw(player), draw(entry_no))
    if kind == "join":
        return ("join", draw(anyone), draw(st.sampled_from(TEAMS)))
    if kind in ("leave", "remove"):
        return (kind, draw(anyone))
    if kind == "adjust":
        return ("adjust", draw(st.sampled_from(PLAYERS + ("team:red", "team:blue"))),
                draw(st.integers(-50, 50)))
    if kind == "extend":
        return ("extend", draw(st.integers(60_000, 1_800_000) | st.sampled_from([-1, 0, 1])))
    return (kind,)


short = st.integers(0, 5_000)
delays = st.one_of(short, short, short, short, short, st.sampled_from([0, 1, 10_000, 30_000, 120_000]))
#: Three quick wrong answers by one player, then a try: what reaches a cooldown.
bursts = st.builds(
    lambda who, gaps, last: [(gap, ("next", who, "wrong", None)) for gap in gaps] + [(gaps[-1], ("next", who, last, None))],
    player, st.lists(st.integers(0, 3_000), min_size=3, max_size=3),
    st.sampled_from(["solve", "wrong", "next_hint"]),
)
#: An entry on a player's next clue, the judge's verdict on the newest pending entry, an
#: appeal of the newest rejected one: what plays a judged clue through.
judgings = st.builds(
    lambda who, verdict, appeal, gaps: [(gaps[0], ("next", who, "entry", None)), (gaps[1], ("judge_latest", verdict)),
                                        (gaps[2], ("appeal_latest", who))][:3 if appeal else 2],
    player, st.sampled_from(["accept", "reject", "reject"]), st.booleans(),
    st.lists(st.integers(0, 3_000), min_size=3, max_size=3),
)
chunks = st.one_of(*[st.tuples(delays, ops()).map(lambda step: [step])] * 20, bursts, judgings)


@st.composite
def scripts(draw: Any) -> list[tuple[int, tuple[Any, ...]]]:
    """Usually: some players join, the hunt starts, then anything happens."""
    prelude: list[tuple[int, tuple[Any, ...]]] = []
    for player_id in ["p0", *draw(st.lists(st.sampled_from(PLAYERS[1:]), max_size=3, unique=True))]:
        prelude.append((draw(delays), ("join", player_id, draw(st.sampled_from(TEAMS)))))
    if draw(st.integers(0, 9)):
        prelude.insert(draw(st.integers(0, len(prelude))), (draw(delays), ("start",)))
    return prelude + [step for chunk in draw(st.lists(chunks, min_size=10, max_size=60)) for step in chunk]


def command_for(op: tuple[Any, ...], definition: dict[str, Any], now: int,
                state: HuntState | None) -> Any:
    kind = op[0]
    if kind == "next":
        member = None if state is None else state.players.get(op[1])
        position = 0
        if member is not None:
            position = next((n for n, c in enumerate(definition["clues"])
                             if member.group.clue(c["id"])[0] is None), 0)
        located = "location" in definition["clues"][position]
        judged = definition["clues"][position].get("by") == "judged"
        op = {
            "solve": ("check_in", op[1], position, "near", op[3]) if located else ("answer", op[1], position, "right"),
            "wrong": ("answer", op[1], position, "wrong"),
            "next_hint": ("hint", op[1], position),
            "far": ("check_in", op[1], position, "far", op[3]),
            "entry": ("entry", op[1], position),
        }[op[2]]
        if judged and op[0] != "hint":
            op = ("entry", op[1], position)
        kind = op[0]
    if kind == "join":
        return JoinHunt(hunt_id=HUNT, player_id=op[1], team_id=op[2])
    if kind in ("answer", "check_in", "hint"):
        clue_id = f"c{op[2]}"
        known = definition["clues"][op[2]] if op[2] < len(definition["clues"]) else None
        if kind == "hint":
            return RequestHint(hunt_id=HUNT, player_id=op[1], clue_id=clue_id)
        if kind == "check_in":
            spot = place(op[2])
            lat = spot["lat"] + (0.0002 if op[3] == "near" else 0.01)
            return CheckIn(hunt_id=HUNT, player_id=op[1], clue_id=clue_id, lat=lat, lon=spot["lon"], accuracy_m=op[4])
        answer = op[3]
        if answer in ("right", "messy") and known is not None and "answers" in known:
            answer = known["answers"][0] if answer == "right" else f"  {known['answers'][1].upper()} "
        return SubmitAnswer(hunt_id=HUNT, player_id=op[1], clue_id=clue_id, answer=answer)
    if kind == "entry":
        return SubmitEntry(hunt_id=HUNT, player_id=op[1], clue_id=f"c{op[2]}", text=f"entry by {op[1]}")
    if kind in ("judge_latest", "appeal_latest"):
        wanted = "pending" if kind == "judge_latest" else "rejected"
        found = [e.entry_id for e in (state.entries.values() if state is not None else ()) if e.status == wanted]
        entry_id = found[-1] if found else "e1"
        if kind == "judge_latest":
            return JudgeEntry(hunt_id=HUNT, entry_id=entry_id, verdict=op[1], reason="random")
        return AppealEntry(hunt_id=HUNT, player_id=op[1], entry_id=entry_id, message="please")
    if kind == "judge":
        return JudgeEntry(hunt_id=HUNT, entry_id=f"e{op[1]}", verdict=op[2], reason="random")
    if kind == "appeal":
        return AppealEntry(hunt_id=HUNT, player_id=op[1], entry_id=f"e{op[2]}", message="please")
    if kind == "freeze":
        return FreezeBoard(hunt_id=HUNT)
    if kind == "unfreeze":
        return UnfreezeBoard(hunt_id=HUNT)
    if kind == "leave":
        return LeaveHunt(hunt_id=HUNT, player_id=op[1])
    if kind == "start":
        return StartHunt(hunt_id=HUNT)
    if kind == "end":
        return EndHunt(hunt_id=HUNT)
    if kind == "extend":
        return ExtendHunt(hunt_id=HUNT, ends_at=now + op[1])
    if kind == "remove":
        return RemovePlayer(hunt_id=HUNT, player_id=op[1], reason="random")
    if kind == "adjust":
        if op[1].startswith("team:"):
            return AdjustScore(hunt_id=HUNT, team_id=op[1][5:], delta=op[2], reason="random")
        return AdjustScore(hunt_id=HUNT, player_id=op[1], delta=op[2], reason="random")
    assert kind == "create"
    return CreateHunt(definition=parse_definition(definition))


# -- playing ----------------------------------------------------------------------------

def play(definition: dict[str, Any], script: list[tuple[int, tuple[Any, ...]]]
         ) -> tuple[HuntState, list[StoredEvent], list[Rejection]]:
    """Create the hunt at T0, then run `script`; check decide's promises on every step."""
    state: HuntState | None = None
    log: list[StoredEvent] = []
    rejections: list[Rejection] = []
    as_decided: list[str] = []
    now = T0
    for delay, op in [(0, ("create",)), *script]:
        now += delay
        if op == ("timers",):  # the runtime fires every due timer, as decide_timer says
            for new in due_timer_events(state, now):
                as_decided.append(json.dumps(new.data, sort_keys=True))
                log.append(StoredEvent(seq=len(log) + 1, hunt_id=HUNT, version=len(log) + 1,
                                       type=new.type, ts=now, data=new.data))
                state = evolve(state, log[-1])
            check_invariants(state, log)
            continue
        command = command_for(op, definition, now, state)
        before = fingerprint(state)
        decision = decide(state, command, now=now)
        assert fingerprint(state) == before  # decide never changes the state, accepted or not
        if isinstance(decision, Rejection):
            assert decision.code in REJECTION_CODES and decision.message
            rejections.append(decision)
            continue
        assert decision, f"{command} was accepted with no events"
        for new in decision:
            assert new.type in EVENT_TYPES
            assert json.loads(json.dumps(new.data)) == new.data  # JSON-ready, as stored
            as_decided.append(json.dumps(new.data, sort_keys=True))
            event = StoredEvent(seq=len(log) + 1, hunt_id=HUNT, version=len(log) + 1,
                                type=new.type, ts=now, data=new.data)
            state = evolve(state, event)
            log.append(event)
        check_invariants(state, log)
    assert state is not None
    # evolve never changed an event: the log holds each one as decided.
    assert [json.dumps(e.data, sort_keys=True) for e in log] == as_decided
    return state, log, rejections


def fingerprint(state: HuntState | None) -> Any:
    """Everything in a state, derived fields included (the snapshot leaves those out)."""
    if state is None:
        return None
    derived = {key: (g.solved, g.rank_key, list(g.members)) for key, g in state.groups.items()}
    return to_snapshot(state), list(state.ranking), state.active_players, derived


def due_timer_events(state: HuntState | None, now: int) -> list[NewEvent]:
    """The events of the timers due at `now` (the end timer follows `extend_hunt`)."""
    if state is None:
        return []
    due = [(kind, ts) for kind, ts in timers_for(state.definition) if kind == START and ts <= now]
    if state.ends_at is not None and state.ends_at <= now:
        due.append((END, state.ends_at))
    events = []
    for kind, due_ts in due:
        before = fingerprint(state)
        events += decide_timer(state, kind, due_ts)
        assert fingerprint(state) == before
        if events:
            break  # one at a time: the next timer is decided against the new state
    return events


def group_key(data: dict[str, Any]) -> tuple[str, str]:
    return ("team", data["team_id"]) if "team_id" in data else ("player", data["player_id"])


def check_invariants(state: HuntState, log: list[StoredEvent]) -> None:
    definition = state.definition
    assert state.version == len(log)
    assert state.active_players == sum(p.active for p in state.players.values())
    if definition.max_players is not None:
        assert state.active_players <= definition.max_players
    for player_id, member in state.players.items():
        assert (player_id in member.group.members) == (not member.removed)
        assert not (member.active and member.removed)
    for group in state.groups.values():
        solved = [c for c in definition.clues if group.clue(c.id)[0] is not None]
        assert group.solved == len(solved)
        if definition.order == "sequential":
            assert solved == list(definition.clues[:len(solved)])
        assert (group.treasure_ts is not None) == (group.solved == len(definition.clues))
        for clue in definition.clues:
            assert group.clue(clue.id)[1] <= len(clue.hints)  # hints revealed
    for (key, clue_id), entries in state.submissions.items():
        clue = definition.clue(clue_id)
        assert clue is not None and clue.by == "judged" and len(entries) <= clue.max_submissions
        assert sum(e.status == "pending" for e in entries) <= 1
        assert sum(e.status == "accepted" for e in entries) == (state.groups[key].clue(clue_id)[0] is not None)


def check_scores(state: HuntState, log: list[StoredEvent]) -> None:
    """Every point is accounted for: each award, penalty and bonus is what the options
    say, and a score is the sum of its events."""
    options = state.definition.options
    solvers: dict[str, int] = {}  # clue -> solves so far, in log order
    joined: dict[tuple[str, str], int] = {}  # group -> its first join
    scores: dict[tuple[str, str], int] = {}
    for event in log:
        data = event.data
        if event.type == "hunt_created":
            continue
        key = group_key(data) if "player_id" in data or "team_id" in data else None
        if key is None:
            continue
        score = scores.get(key, 0)
        if event.type == "player_joined":
            joined.setdefault(key, event.ts)
        elif event.type in ("clue_solved", "entry_accepted"):
            k = solvers.get(data["clue_id"], 0)
            solvers[data["clue_id"]] = k + 1
            base = state.definition.clue(data["clue_id"]).points  # type: ignore[union-attr]
            if options.decay is not None:
                base = max(options.decay.min_points, base - options.decay.step * k)
            bonus = options.first_solver_bonus[k] if k < len(options.first_solver_bonus) else 0
            assert data["points"] == base + bonus, (data, k)
            score += data["points"]
        elif event.type == "answer_wrong":
            wanted = options.wrong_answer_penalty
            if not options.allow_negative_scores:
                wanted = max(0, min(wanted, score))
            assert data["penalty"] == wanted, (data, score)
            score -= data["penalty"]
        elif event.type == "hint_revealed":
            assert data["charged"] == data["penalty"]
            score -= data["charged"]
        elif event.type == "treasure_found":
            bonus = options.time_bonus
            fast = bonus is not None and event.ts - joined[key] <= bonus.within_minutes * 60_000
            assert data["time_bonus"] == (bonus.points if fast else 0)  # type: ignore[union-attr]
            score += data["time_bonus"]
            assert data["score"] == score
        elif event.type == "score_adjusted":
            score += data["delta"]
        scores[key] = score
    assert state.solves == {clue_id: n for clue_id, n in solvers.items()}
    assert {k: g.score for k, g in state.groups.items()} == {k: scores.get(k, 0) for k in state.groups}


def check_check_ins(state: HuntState, log: list[StoredEvent]) -> None:
    """A solving check-in's whole accuracy circle was inside; a flag marks each move too fast."""
    options = state.definition.options
    last_fix: dict[str, tuple[float, float, int]] = {}
    flagged_before: StoredEvent | None = None
    for event in log:
        data = event.data
        if event.type == "implausible_move":
            flagged_before = event
            continue
        if event.type == "clue_solved" and data["via"] == "check_in":
            accuracy = data.get("accuracy_m")
            place = state.definition.clue(data["clue_id"]).location  # type: ignore[union-attr]
            assert data["distance_m"] + (accuracy or 0) <= place.radius_m + 0.05
            if accuracy is not None and options.max_accuracy_m is not None:
                assert accuracy <= options.max_accuracy_m
            previous = last_fix.get(data["player_id"])
            too_fast = False
            if previous is not None and options.max_speed_kmh is not None:
                moved = distance_m(previous[0], previous[1], data["lat"], data["lon"])
                seconds = (event.ts - previous[2]) / 1000
                too_fast = (moved > 0 and seconds == 0) or (seconds > 0 and moved / seconds * 3.6 > options.max_speed_kmh)
            flag_here = flagged_before is not None and flagged_before.version == event.version - 1
            assert flag_here == too_fast, (event, previous)
            last_fix[data["player_id"]] = (data["lat"], data["lon"], event.ts)
        flagged_before = None
    assert [f["seq"] for f in state.flags] == [e.seq for e in log if e.type == "implausible_move"]


def check_freeze(state: HuntState, log: list[StoredEvent]) -> None:
    """Scoring events decided while frozen say so; the frozen board is the board at the freeze."""
    frozen_at: int | None = None
    for event in log:
        if event.type == "board_frozen":
            frozen_at = event.seq
        elif event.type == "board_unfrozen":
            frozen_at = None
        elif event.type in SCORING_EVENTS:
            assert event.data.get("frozen", False) == (frozen_at is not None), event
    assert (state.frozen is None) == (frozen_at is None)
    if frozen_at is not None:
        at_freeze = None
        for event in log:
            at_freeze = evolve(at_freeze, event)
            if event.seq == frozen_at:
                break
        assert state.frozen == at_freeze.frozen  # type: ignore[union-attr]
        page = views.leaderboard(at_freeze, 1000)  # type: ignore[arg-type]
        assert views.leaderboard(state, 1000, frozen=True)["entries"] == page["entries"]


def check_ranking(state: HuntState) -> None:
    """A total order by (-score, reached_ts, id), holding exactly the groups with members."""
    with_members = [g for g in state.groups.values() if g.members]
    expected = sorted(with_members, key=lambda g: (-g.score, g.reached_ts, g.id, g.kind))
    assert [state.group_at(k) for k in state.ranking] == expected
    assert len(set(state.ranking)) == len(state.ranking)
    entries = views.leaderboard(state, 1000)["entries"]
    assert [(e["rank"], e["kind"], e["id"]) for e in entries] == [
        (n, g.kind, g.id) for n, g in enumerate(expected, start=1)]
    for group in with_members:
        assert state.rank_of(group) == expected.index(group) + 1


# -- properties ----------------------------------------------------------------------------

@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(definition=hunts(), script=scripts())
def test_random_play_keeps_every_promise_of_the_rules(definition, script):
    state, log, _ = play(definition, script)
    live = to_snapshot(state)

    replayed_log = [StoredEvent.from_json(json.loads(json.dumps(e.to_json()))) for e in log]

    # Replaying the log from nothing rebuilds the live state (also through JSON, as stored).
    replayed = None
    for event in replayed_log:
        replayed = evolve(replayed, event)
    assert fingerprint(replayed) == fingerprint(state)
    assert [e.to_json() for e in replayed_log] == [e.to_json() for e in log]

    # Snapshots round trip, also through JSON, and the restored state plays on identically.
    restored = from_snapshot(json.loads(json.dumps(live)))
    assert to_snapshot(restored) == live
    assert restored.ranking == state.ranking
    assert restored.active_players == state.active_players

    check_scores(state, log)
    check_check_ins(state, log)
    check_freeze(state, log)
    check_ranking(state)
    check_ranking(restored)

    # Every view is JSON-ready for every player.
    for player_id in state.players:
        json.dumps(views.player(state, player_id))
    json.dumps(views.hunt(state, "player"))
    for event in log:
        json.dumps(views.event(event, "player"))
        if event.type == "clue_solved":
            assert {"lat", "lon", "accuracy_m"}.isdisjoint(views.event_data(event, "player"))
    assert all(not views.visible(e, "player") for e in log if e.type == "implausible_move")


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(definition=hunts(), script=scripts(), more=st.lists(st.tuples(delays, ops()), max_size=30))
def test_a_state_restored_from_a_snapshot_decides_like_the_live_one(definition, script, more):
    state, log, _ = play(definition, script)
    restored = from_snapshot(to_snapshot(state))
    now = T0 + sum(delay for delay, _ in script)
    for delay, op in more:
        now += delay
        if op == ("timers",):
            live_decision = due_timer_events(state, now)
            assert due_timer_events(restored, now) == live_decision
        else:
            command = command_for(op, definition, now, state)
            live_decision = decide(state, command, now=now)
            assert decide(restored, command, now=now) == live_decision
        if isinstance(live_decision, Rejection):
            continue
        for new in live_decision:
            log.append(StoredEvent(seq=len(log) + 1, hunt_id=HUNT, version=len(log) + 1,
                                   type=new.type, ts=now, data=new.data))
            state = evolve(state, log[-1])
            restored = evolve(restored, log[-1])
        assert to_snapshot(restored) == to_snapshot(state)



timestamps = st.none() | st.integers(0, 2**63)


@given(solved_ts=timestamps, hints=st.integers(0, 2**32 - 1), wrong=st.integers(0, 10**30), cooldown_until=timestamps)
def test_a_clue_progress_packs_into_one_int_and_back(solved_ts, hints, wrong, cooldown_until):
    progress = (solved_ts, hints, wrong, cooldown_until)
    assert unpack_progress(pack_progress(*progress)) == progress


def test_a_groups_progress_is_invisible_to_the_garbage_collector():
    """A full collection's pause grows with tracked objects: a group's progress adds none."""
    import gc
    clue = {"id": "c0", "prompt": "?", "points": 10, "answers": ["answer 0", "x"],
            "hints": [{"text": "h", "penalty": 1, "unlock_after_s": 0}]}
    definition = {"id": HUNT, "title": "t", "order": "any", "clues": [clue]}
    state, _, _ = play(definition, [(0, ("join", "p0", None)), (0, ("start",)), (1, ("next", "p0", "wrong", None)),
                                    (1, ("next", "p0", "next_hint", None)), (1, ("next", "p0", "solve", None))])
    group = state.players["p0"].group
    assert group.progress and not gc.is_tracked(group.progress)
