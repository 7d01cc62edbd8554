"""The game rules: `decide` what a command means, `evolve` state by an event.

``decide(state, command, now=ms)`` reads the state and returns the events the command
produces, or a `Rejection`; it never changes the state and never raises for any
command value. ``evolve(state, event)`` applies one stored event and returns the
state (a new one for ``hunt_created``, otherwise the same object, changed).
Time is a parameter: `now` is the command's accept timestamp in integer ms.
"""

from __future__ import annotations

import json
import math
from typing import Any, Callable

from .commands import (
    AdjustScore, AppealEntry, CheckIn, Command, CreateHunt, EndHunt, ExtendHunt, FreezeBoard, JoinHunt,
    JudgeEntry, LeaveHunt, Rejection, RemovePlayer, RequestHint, StartHunt, SubmitAnswer, SubmitEntry,
    UnfreezeBoard,
)
from . import codes
from .definition import (
    MAX_DEFINITION_BYTES, Clue, format_ts, normalize_answer, parse_definition, parse_ts,
)
from .events import NewEvent, StoredEvent
from .geo import distance_m, implied_speed_kmh, too_far_message
from .state import Entry, Group, HuntState, PlayerState, note_touched
from .versions import RULES_VERSION, rules_for

#: Wrong answers on one clue that start a cooldown (when the hunt sets one).
WRONG_ANSWERS_BEFORE_COOLDOWN = 3

Decision = list[NewEvent] | Rejection


def _reject(code: str, message: str) -> Rejection:
    return Rejection(code=code, message=message)


def _who(player_id: str, player: PlayerState | None = None) -> dict[str, Any]:
    """The ``player_id`` / ``team_id`` fields of an event about a player."""
    if player is not None and player.group.kind == "team":
        return {"player_id": player_id, "team_id": player.group.id}
    return {"player_id": player_id}


def is_running(state: HuntState, now: int) -> bool:
    """Running, and not past `ends_at` (even if the end timer has not fired yet)."""
    return state.status == "running" and (state.ends_at is None or now < state.ends_at)


def _not_running(state: HuntState, now: int) -> Rejection:
    if state.status == "created":
        return _reject("hunt_not_running", f"hunt {state.hunt_id!r} has not started yet")
    return _reject("hunt_not_running", f"hunt {state.hunt_id!r} has ended")


def clue_available_ts(state: HuntState, group: Group, clue: Clue, position: int) -> int:
    """When `clue` became open to `group`: the start of its hint unlock clock."""
    since = max(group.joined_ts, state.started_ts or group.joined_ts)
    if state.definition.order == "sequential" and position > 0:
        previous_solved_ts = group.clue(state.definition.clues[position - 1].id)[0]
        if previous_solved_ts is not None:
            since = max(since, previous_solved_ts)
    return since


def is_open(state: HuntState, group: Group, position: int) -> bool:
    """Whether the clue at `position` is open to `group` (solved clues count as open)."""
    if state.status == "created":
        return False
    if state.definition.order == "any":
        return True
    return position <= group.solved


# -- decide -------------------------------------------------------------------------

def decide(state: HuntState | None, command: Command, *, now: int) -> Decision:
    """The events `command` produces against `state` at time `now`, or a `Rejection`."""
    if isinstance(command, CreateHunt):
        return _create(state, command, now)
    if state is None:
        return _reject("unknown_hunt", f"no hunt {command.hunt_id!r}")
    handler = _DECIDERS.get(type(command))
    if handler is None:
        return _reject("invalid_command", f"not a command: {type(command).__name__}")
    decision = handler(state, command, now)
    if state.frozen is not None and not isinstance(decision, Rejection):
        decision = [NewEvent(type=e.type, data={**e.data, "frozen": True}) if e.type in SCORING_EVENTS else e
                    for e in decision]
    return decision


#: Events that change a score: decided while the board is frozen, they carry ``"frozen": true``,
#: and players other than their own see them without points (`views.event_data`).
SCORING_EVENTS = frozenset({"clue_solved", "entry_accepted", "treasure_found", "score_adjusted",
                            "answer_wrong", "hint_revealed"})


def _create(state: HuntState | None, command: CreateHunt, now: int) -> Decision:
    definition = command.definition
    if state is not None:
        return _reject("hunt_exists", f"hunt {definition.id!r} already exists")
    data = definition.to_json()
    # Measured as parse_definition measures it: compact UTF-8 JSON.
    size = len(json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogatepass"))
    if size > MAX_DEFINITION_BYTES:
        return _reject("invalid_command",
                       f"definition: must be at most {MAX_DEFINITION_BYTES} bytes as JSON, got {size}")
    if definition.ends_at is not None and definition.ends_at <= now:
        return _reject("invalid_command", f"ends_at: {format_ts(definition.ends_at)} is in the past")
    return [NewEvent(type="hunt_created", data={"definition": data, "rules_version": RULES_VERSION})]


def _start(state: HuntState, command: StartHunt, now: int) -> Decision:
    if state.status == "ended" or (state.ends_at is not None and now >= state.ends_at):
        return _reject("hunt_not_running", f"hunt {state.hunt_id!r} has ended")
    if state.status == "running":
        return _reject("invalid_command", f"hunt {state.hunt_id!r} is already running")
    return [NewEvent(type="hunt_started", data={"by": "command"})]


def _end(state: HuntState, command: EndHunt, now: int) -> Decision:
    if state.status == "ended":
        return _reject("hunt_not_running", f"hunt {state.hunt_id!r} has already ended")
    return [NewEvent(type="hunt_ended", data={"by": "command"})]


def _extend(state: HuntState, command: ExtendHunt, now: int) -> Decision:
    if state.status == "ended" or (state.ends_at is not None and now >= state.ends_at):
        return _reject("hunt_not_running", f"hunt {state.hunt_id!r} has ended")
    if command.ends_at <= now:
        return _reject("invalid_command", f"ends_at: {format_ts(command.ends_at)} is in the past")
    starts_at = state.definition.starts_at
    if state.status == "created" and starts_at is not None and command.ends_at <= starts_at:
        return _reject("invalid_command", f"ends_at: must be after starts_at {format_ts(starts_at)}")
    previous = None if state.ends_at is None else format_ts(state.ends_at)
    return [NewEvent(type="hunt_extended",
                     data={"ends_at": format_ts(command.ends_at), "previous_ends_at": previous})]


def _join(state: HuntState, command: JoinHunt, now: int) -> Decision:
    if state.status == "ended" or (state.ends_at is not None and now >= state.ends_at):
        return _reject("hunt_not_running", f"hunt {state.hunt_id!r} has ended")
    player = state.players.get(command.player_id)
    if player is not None:
        if player.removed:
            return _reject("forbidden", f"player {command.player_id!r} was removed from hunt {state.hunt_id!r}")
        if player.active:
            return _reject("already_joined", f"player {command.player_id!r} is already in hunt {state.hunt_id!r}")
        group = player.group
        if command.team_id is not None and (group.kind != "team" or group.id != command.team_id):
            where = f"team {group.id!r}" if group.kind == "team" else "no team"
            return _reject("already_joined",
                           f"player {command.player_id!r} played this hunt in {where}; a player stays in one team")
    max_players = state.definition.max_players
    if max_players is not None and state.active_players >= max_players:
        return _reject("hunt_full", f"hunt {state.hunt_id!r} is full ({max_players} players)")
    if player is not None:
        return [NewEvent(type="player_joined", data={**_who(command.player_id, player), "rejoined": True})]
    data: dict[str, Any] = {"player_id": command.player_id}
    if command.team_id is not None:
        data["team_id"] = command.team_id
    data["rejoined"] = False
    return [NewEvent(type="player_joined", data=data)]


def _leave(state: HuntState, command: LeaveHunt, now: int) -> Decision:
    if state.status == "ended" or (state.ends_at is not None and now >= state.ends_at):
        return _reject("hunt_not_running", f"hunt {state.hunt_id!r} has ended")
    player = state.players.get(command.player_id)
    if player is None or not player.active:
        return _reject("not_joined", f"player {command.player_id!r} is not in hunt {state.hunt_id!r}")
    return [NewEvent(type="player_left", data=_who(command.player_id, player))]


def _playing(state: HuntState, player_id: str, clue_id: str, now: int
             ) -> tuple[PlayerState, Clue, int] | Rejection:
    """The checks every in-play command shares: running, joined, known clue, open clue."""
    if not is_running(state, now):
        return _not_running(state, now)
    player = state.players.get(player_id)
    if player is None or not player.active:
        return _reject("not_joined", f"player {player_id!r} is not in hunt {state.hunt_id!r}")
    definition = state.definition
    clue = definition.clue(clue_id)
    if clue is None:
        return _reject("unknown_clue", f"hunt {state.hunt_id!r} has no clue {clue_id!r}")
    position = definition.clue_position(clue_id)
    assert position is not None
    solved_ts = player.group.clue(clue_id)[0]
    if solved_ts is not None:
        return _reject("already_solved", f"clue {clue_id!r} is already solved")
    if not is_open(state, player.group, position):
        return _reject("clue_locked", f"clue {clue_id!r} is not open yet: solve the clues before it first")
    return player, clue, position


def _award(state: HuntState, event_type: str, player_id: str, player: PlayerState, clue: Clue,
           extra: dict[str, Any], now: int) -> list[NewEvent]:
    """A solve's event (``clue_solved`` or ``entry_accepted``) with the points it is awarded,
    and ``treasure_found`` if it was the group's last clue."""
    who = _who(player_id, player)
    options = state.definition.options
    points = options.award(clue.points, state.solves.get(clue.id, 0))
    events = [NewEvent(type=event_type, data={**who, "clue_id": clue.id, "points": points, **extra})]
    group = player.group
    if group.solved + 1 == len(state.definition.clues):
        bonus = options.time_bonus_for(group.joined_ts, now)
        events.append(NewEvent(type="treasure_found", data={**who, "score": group.score + points + bonus,
                                                            "time_bonus": bonus}))
    return events


def _wrong_answer_penalty(state: HuntState, score: int) -> int:
    """The points a wrong answer costs a team with `score`: the hunt's penalty, taking the
    score down to zero and no further unless the hunt allows negative scores.

    Hints are not capped so: a hint free at a score of zero would be revealed before solving.
    """
    options = state.definition.options
    penalty = options.wrong_answer_penalty
    return penalty if options.allow_negative_scores else max(0, min(penalty, score))


def _answer(state: HuntState, command: SubmitAnswer, now: int) -> Decision:
    checked = _playing(state, command.player_id, command.clue_id, now)
    if isinstance(checked, Rejection):
        return checked
    player, clue, _ = checked
    if clue.by not in ("answer", "code"):
        return _wrong_kind(clue, "an answer")
    if clue.by == "code" and state.code_key is None:
        return _reject("invalid_command", f"clue {clue.id!r} is solved by a printed code, and this engine "
                                          "has no code secret")
    _, _, wrong, cooldown_until = player.group.clue(clue.id)
    if cooldown_until is not None and now < cooldown_until:
        wait_s = math.ceil((cooldown_until - now) / 1000)
        return _reject("cooldown", f"too many wrong answers on clue {clue.id!r}: try again in {wait_s} s")
    if (codes.solves(state.code_key, clue.id, command.answer) if clue.by == "code"  # type: ignore[arg-type]
            else normalize_answer(command.answer) in clue.normalized_answers):
        return _award(state, "clue_solved", command.player_id, player, clue, {"via": "answer"}, now)
    attempts = wrong + 1
    penalty = _wrong_answer_penalty(state, player.group.score)
    data = {**_who(command.player_id, player), "clue_id": clue.id, "answer": command.answer,
            "attempts": attempts, "penalty": penalty}
    cooldown_s = state.definition.wrong_answer_cooldown_s
    if cooldown_s and attempts % WRONG_ANSWERS_BEFORE_COOLDOWN == 0:
        data["cooldown_until"] = now + cooldown_s * 1000
    return [NewEvent(type="answer_wrong", data=data)]


_HOW = {"answer": "by an answer", "check_in": "by check_in at a place",
        "judged": "by an entry a judge accepts (submit_entry)", "code": "by its printed code (submit_answer)"}


def _wrong_kind(clue: Clue, tried: str) -> Rejection:
    return _reject("invalid_command", f"clue {clue.id!r} is solved {_HOW[clue.by]}, not by {tried}")


def _check_in(state: HuntState, command: CheckIn, now: int) -> Decision:
    checked = _playing(state, command.player_id, command.clue_id, now)
    if isinstance(checked, Rejection):
        return checked
    player, clue, _ = checked
    place = clue.location
    if place is None:
        return _wrong_kind(clue, "check_in")
    rules, options = state.rules, state.definition.options
    accuracy = command.accuracy_m if rules.fix_accuracy else None
    if accuracy is not None and options.max_accuracy_m is not None and accuracy > options.max_accuracy_m:
        return _reject("inaccurate_fix", f"your position is only accurate to {accuracy:g} m; this hunt needs "
                                         f"{options.max_accuracy_m:g} m or better: wait for a better fix")
    distance = distance_m(command.lat, command.lon, place.lat, place.lon)
    if distance + (accuracy or 0) > place.radius_m:
        message = too_far_message(state.definition.distance_hint, clue.id, distance, place.radius_m)
        if accuracy:
            message += (f"; your fix is accurate to {accuracy:g} m, so its whole circle must be inside:"
                        " move closer or wait for a better fix")
        return _reject("too_far", message)
    extra: dict[str, Any] = {"via": "check_in", "distance_m": round(distance, 1)}
    flag: list[NewEvent] = []
    if rules.records_fix:
        extra.update(lat=command.lat, lon=command.lon)
        if accuracy is not None:
            extra["accuracy_m"] = accuracy
        if options.max_speed_kmh is not None and player.fix_ts is not None:
            flag = _implausible(command, player, options.max_speed_kmh, clue.id, now)
    return flag + _award(state, "clue_solved", command.player_id, player, clue, extra, now)


def _implausible(command: CheckIn, player: PlayerState, max_speed_kmh: float, clue_id: str,
                 now: int) -> list[NewEvent]:
    """An ``implausible_move`` event if reaching this fix from the player's last one was too fast."""
    assert player.fix_lat is not None and player.fix_lon is not None and player.fix_ts is not None
    moved = distance_m(player.fix_lat, player.fix_lon, command.lat, command.lon)
    seconds = (now - player.fix_ts) / 1000
    speed = implied_speed_kmh(moved, seconds)
    if speed is not None and speed <= max_speed_kmh:
        return []
    return [NewEvent(type="implausible_move", data={
        **_who(command.player_id, player), "clue_id": clue_id, "distance_m": round(moved, 1),
        "seconds": seconds, "speed_kmh": None if speed is None else round(speed, 1),
        "max_speed_kmh": max_speed_kmh})]


def _hint(state: HuntState, command: RequestHint, now: int) -> Decision:
    checked = _playing(state, command.player_id, command.clue_id, now)
    if isinstance(checked, Rejection):
        return checked
    player, clue, position = checked
    revealed = player.group.clue(clue.id)[1]
    if revealed >= len(clue.hints):
        return _reject("no_more_hints", f"clue {clue.id!r} has no more hints ({len(clue.hints)} revealed)")
    hint = clue.hints[revealed]
    unlocks = clue_available_ts(state, player.group, clue, position) + hint.unlock_after_s * 1000
    if now < unlocks:
        wait_s = math.ceil((unlocks - now) / 1000)
        return _reject("hint_locked", f"hint {revealed + 1} of clue {clue.id!r} unlocks in {wait_s} s")
    return [NewEvent(type="hint_revealed", data={
        **_who(command.player_id, player), "clue_id": clue.id, "hint": revealed,
        "penalty": hint.penalty, "charged": hint.penalty, "text": hint.text})]


def _remove(state: HuntState, command: RemovePlayer, now: int) -> Decision:
    player = state.players.get(command.player_id)
    if player is None or player.removed:
        return _reject("not_joined", f"player {command.player_id!r} is not in hunt {state.hunt_id!r}")
    return [NewEvent(type="player_removed", data={**_who(command.player_id, player), "reason": command.reason})]


def _adjust(state: HuntState, command: AdjustScore, now: int) -> Decision:
    if (command.player_id is None) == (command.team_id is None):
        # parse_command checks this too; a command built in Python reaches decide directly.
        return _reject("invalid_command", "adjust_score: give exactly one of player_id or team_id")
    if command.delta == 0:
        return _reject("invalid_command", "delta: must not be 0")
    if command.player_id is not None:
        player = state.players.get(command.player_id)
        if player is None or player.removed:
            return _reject("not_joined", f"player {command.player_id!r} is not in hunt {state.hunt_id!r}")
        target = _who(command.player_id, player)
    else:
        group = state.groups.get(("team", command.team_id or ""))
        if group is None or not group.members:
            return _reject("not_joined", f"hunt {state.hunt_id!r} has no team {command.team_id!r}")
        target = {"team_id": group.id}
    return [NewEvent(type="score_adjusted", data={**target, "delta": command.delta, "reason": command.reason})]


# -- judged clues ---------------------------------------------------------------------

def _submit_entry(state: HuntState, command: SubmitEntry, now: int) -> Decision:
    if command.text is None and command.media is None:
        return _reject("invalid_command", "submit_entry: give a text, a media reference, or both")
    checked = _playing(state, command.player_id, command.clue_id, now)
    if isinstance(checked, Rejection):
        return checked
    player, clue, _ = checked
    if clue.by != "judged":
        return _wrong_kind(clue, "an entry")
    entries = state.submissions.get((player.group.key, clue.id), ())
    pending = next((e for e in entries if e.status == "pending"), None)
    if pending is not None:
        return _reject("entry_pending", f"entry {pending.entry_id!r} on clue {clue.id!r} awaits a judge")
    if len(entries) >= clue.max_submissions:
        return _reject("no_more_submissions",
                       f"clue {clue.id!r} takes at most {clue.max_submissions} entries per team, all used")
    data = {**_who(command.player_id, player), "clue_id": clue.id, "entry_id": f"e{len(state.entries) + 1}",
            "submission": len(entries) + 1}
    if command.text is not None:
        data["text"] = command.text
    if command.media is not None:
        data["media"] = command.media
    return [NewEvent(type="entry_submitted", data=data)]


def _judge_entry(state: HuntState, command: JudgeEntry, now: int) -> Decision:
    entry = state.entries.get(command.entry_id)
    if entry is None:
        return _reject("unknown_entry", f"hunt {state.hunt_id!r} has no entry {command.entry_id!r}")
    if entry.status != "pending":
        return _reject("invalid_command", f"entry {entry.entry_id!r} is {entry.status}, not pending")
    player = state.players[entry.player_id]
    extra = {"entry_id": entry.entry_id}
    if command.verdict == "accept":
        clue = state.definition.clue(entry.clue_id)
        assert clue is not None
        return _award(state, "entry_accepted", entry.player_id, player, clue, extra, now)
    return [NewEvent(type="entry_rejected", data={**_who(entry.player_id, player), "clue_id": entry.clue_id,
                                                  **extra, "reason": command.reason})]


def _appeal_entry(state: HuntState, command: AppealEntry, now: int) -> Decision:
    player = state.players.get(command.player_id)
    if player is None or player.removed:
        return _reject("not_joined", f"player {command.player_id!r} is not in hunt {state.hunt_id!r}")
    entry = state.entries.get(command.entry_id)
    if entry is None or entry.group is not player.group:
        return _reject("unknown_entry", f"your team has no entry {command.entry_id!r} in hunt {state.hunt_id!r}")
    if entry.status != "rejected" or entry.appealed:
        why = "was appealed already" if entry.appealed and entry.status == "rejected" else f"is {entry.status}"
        return _reject("not_appealable", f"entry {entry.entry_id!r} {why}: only a rejected entry may be appealed, once")
    others = state.submissions.get((player.group.key, entry.clue_id), ())
    if player.group.clue(entry.clue_id)[0] is not None or any(e.status == "pending" for e in others):
        return _reject("not_appealable", f"clue {entry.clue_id!r} is solved or has an entry awaiting a judge")
    return [NewEvent(type="entry_appealed", data={**_who(command.player_id, player), "clue_id": entry.clue_id,
                                                  "entry_id": entry.entry_id, "message": command.message})]


# -- the scoreboard freeze ---------------------------------------------------------------

def _freeze(state: HuntState, command: FreezeBoard, now: int) -> Decision:
    if state.status == "ended":
        return _reject("hunt_not_running", f"hunt {state.hunt_id!r} has ended: its board is final")
    if state.frozen is not None:
        return _reject("invalid_command", f"the board of hunt {state.hunt_id!r} is frozen already")
    return [NewEvent(type="board_frozen", data={"by": "command"})]


def _unfreeze(state: HuntState, command: UnfreezeBoard, now: int) -> Decision:
    if state.frozen is None:
        return _reject("invalid_command", f"the board of hunt {state.hunt_id!r} is not frozen")
    return [NewEvent(type="board_unfrozen", data={"by": "command"})]


_DECIDERS: dict[type, Callable[[HuntState, Any, int], Decision]] = {
    StartHunt: _start,
    EndHunt: _end,
    ExtendHunt: _extend,
    JoinHunt: _join,
    LeaveHunt: _leave,
    SubmitAnswer: _answer,
    CheckIn: _check_in,
    RequestHint: _hint,
    RemovePlayer: _remove,
    AdjustScore: _adjust,
    SubmitEntry: _submit_entry,
    JudgeEntry: _judge_entry,
    AppealEntry: _appeal_entry,
    FreezeBoard: _freeze,
    UnfreezeBoard: _unfreeze,
}


# -- evolve -------------------------------------------------------------------------

def evolve(state: HuntState | None, event: StoredEvent) -> HuntState:
    """Apply one stored event; returns the (new or changed) state."""
    if event.type == "hunt_created":
        state = HuntState(parse_definition(event.data["definition"]), event.ts,
                          rules_for(event.data["rules_version"]))
    else:
        assert state is not None, f"event {event.seq} ({event.type}) before hunt_created"
        state.version = event.version  # (first: an applier may note where its event is)
        state.seq = event.seq
        _APPLIERS[event.type](state, event.data, event.ts)
        if state.touched is not None:
            note_touched(state, event.data)
        return state
    state.version = event.version
    state.seq = event.seq
    return state


def _group_of(state: HuntState, data: dict[str, Any]) -> Group:
    player_id = data.get("player_id")
    if player_id is not None:
        return state.players[player_id].group
    return state.groups[("team", data["team_id"])]


def _score(state: HuntState, group: Group, delta: int, ts: int) -> None:
    if delta:
        group.score += delta
        group.reached_ts = ts
        state.rerank(group)


def _on_started(state: HuntState, data: dict[str, Any], ts: int) -> None:
    state.status = "running"
    state.started_ts = ts


def _on_ended(state: HuntState, data: dict[str, Any], ts: int) -> None:
    state.status = "ended"
    state.ended_ts = ts


def _on_extended(state: HuntState, data: dict[str, Any], ts: int) -> None:
    state.ends_at = parse_ts(data["ends_at"], "ends_at", [])


def _on_joined(state: HuntState, data: dict[str, Any], ts: int) -> None:
    player_id = data["player_id"]
    player = state.players.get(player_id)
    if player is not None:
        player.active = True
        state.active_players += 1
        return
    team_id = data.get("team_id")
    key = ("team", team_id) if team_id is not None else ("player", player_id)
    group = state.groups.get(key)
    if group is None:
        group = state.groups[key] = Group(key[0], key[1], ts)
    group.members += (player_id,)
    state.players[player_id] = PlayerState(group, ts)
    state.active_players += 1
    if len(group.members) == 1:
        state.rerank(group)


def _on_left(state: HuntState, data: dict[str, Any], ts: int) -> None:
    state.players[data["player_id"]].active = False
    state.active_players -= 1


def _on_removed(state: HuntState, data: dict[str, Any], ts: int) -> None:
    player_id = data["player_id"]
    player = state.players[player_id]
    if player.active:
        state.active_players -= 1
    player.active = False
    player.removed = True
    player.group.members = tuple(member for member in player.group.members if member != player_id)
    if not player.group.members:
        state.rerank(player.group)


def _on_wrong(state: HuntState, data: dict[str, Any], ts: int) -> None:
    group, clue_id = _group_of(state, data), data["clue_id"]
    solved_ts, hints, _, cooldown_until = group.clue(clue_id)
    group.set_clue(clue_id, (solved_ts, hints, data["attempts"], data.get("cooldown_until", cooldown_until)))
    _score(state, group, -data["penalty"], ts)


def _solve(state: HuntState, group: Group, clue_id: str, points: int, ts: int) -> None:
    _, hints, wrong, cooldown_until = group.clue(clue_id)
    group.set_clue(clue_id, (ts, hints, wrong, cooldown_until))
    group.solved += 1
    state.solves[clue_id] = state.solves.get(clue_id, 0) + 1
    _score(state, group, points, ts)


def _on_solved(state: HuntState, data: dict[str, Any], ts: int) -> None:
    _solve(state, _group_of(state, data), data["clue_id"], data["points"], ts)
    if "lat" in data:  # the fix of a check-in (rules 2 on)
        player = state.players[data["player_id"]]
        player.fix_lat, player.fix_lon, player.fix_ts = data["lat"], data["lon"], ts


def _on_entry(state: HuntState, data: dict[str, Any], ts: int) -> None:
    player_id = data["player_id"]
    state.add_entry(Entry(data["entry_id"], player_id, state.players[player_id].group, data["clue_id"],
                          data.get("text"), data.get("media"), ts))


def _on_accepted(state: HuntState, data: dict[str, Any], ts: int) -> None:
    entry = state.entries[data["entry_id"]]
    entry.status = "accepted"
    _solve(state, entry.group, entry.clue_id, data["points"], ts)


def _on_rejected(state: HuntState, data: dict[str, Any], ts: int) -> None:
    entry = state.entries[data["entry_id"]]
    entry.status, entry.reason = "rejected", data["reason"]


def _on_appealed(state: HuntState, data: dict[str, Any], ts: int) -> None:
    entry = state.entries[data["entry_id"]]
    entry.status, entry.appealed, entry.appeal = "pending", True, data["message"]


def _on_hint(state: HuntState, data: dict[str, Any], ts: int) -> None:
    group, clue_id = _group_of(state, data), data["clue_id"]
    solved_ts, hints, wrong, cooldown_until = group.clue(clue_id)
    group.set_clue(clue_id, (solved_ts, hints + 1, wrong, cooldown_until))
    _score(state, group, -data["charged"], ts)


def _on_treasure(state: HuntState, data: dict[str, Any], ts: int) -> None:
    group = _group_of(state, data)
    group.treasure_ts = ts
    _score(state, group, data["time_bonus"], ts)


def _on_flagged(state: HuntState, data: dict[str, Any], ts: int) -> None:
    state.flags.append({"seq": state.seq, "ts": ts, **data})


def _on_frozen(state: HuntState, data: dict[str, Any], ts: int) -> None:
    state.freeze()


def _on_unfrozen(state: HuntState, data: dict[str, Any], ts: int) -> None:
    state.set_frozen(None)


def _on_adjusted(state: HuntState, data: dict[str, Any], ts: int) -> None:
    _score(state, _group_of(state, data), data["delta"], ts)


_APPLIERS: dict[str, Callable[[HuntState, dict[str, Any], int], None]] = {
    "hunt_started": _on_started,
    "hunt_ended": _on_ended,
    "hunt_extended": _on_extended,
    "player_joined": _on_joined,
    "player_left": _on_left,
    "player_removed": _on_removed,
    "answer_wrong": _on_wrong,
    "clue_solved": _on_solved,
    "hint_revealed": _on_hint,
    "treasure_found": _on_treasure,
    "score_adjusted": _on_adjusted,
    "implausible_move": _on_flagged,
    "entry_submitted": _on_entry,
    "entry_accepted": _on_accepted,
    "entry_rejected": _on_rejected,
    "entry_appealed": _on_appealed,
    "board_frozen": _on_frozen,
    "board_unfrozen": _on_unfrozen,
}
