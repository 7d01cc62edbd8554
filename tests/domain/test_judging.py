"""Judged clues: a team submits an entry, a judge accepts or rejects it, the team may appeal
once or submit again within max_submissions; only accepted work scores."""

from __future__ import annotations

from thengine.domain import views
from thengine.domain.commands import AppealEntry, EndHunt, JudgeEntry, SubmitEntry
from thengine.domain.state import from_snapshot, to_snapshot

from .play import HUNT, Game, JoinHunt, SubmitAnswer, clue, hunt

MEDIA = {"url": "https://photos.example/e1.jpg", "sha256": "5" * 64, "content_type": "image/jpeg", "bytes": 4096}


def judged_game(*, max_submissions: int | None = None, **options) -> Game:
    photo = {"id": "photo", "prompt": "A photo of the team at the gate", "points": 100, "by": "judged"}
    if max_submissions is not None:
        photo["max_submissions"] = max_submissions
    game = Game(hunt(photo, clue("b"), order="any", **options))
    game.ok(JoinHunt(hunt_id=HUNT, player_id="ann", team_id="red"))
    game.ok(JoinHunt(hunt_id=HUNT, player_id="bob", team_id="red"))
    game.ok(JoinHunt(hunt_id=HUNT, player_id="cy", team_id="blue"))
    return game


def submit(game: Game, player: str, text: str | None = "us at the gate", media=None) -> str:
    [event] = game.ok(SubmitEntry(hunt_id=HUNT, player_id=player, clue_id="photo", text=text, media=media))
    assert event.type == "entry_submitted"
    return event.data["entry_id"]


def judge(game: Game, entry_id: str, verdict: str, reason: str | None = None) -> list:
    return game.ok(JudgeEntry(hunt_id=HUNT, entry_id=entry_id, verdict=verdict, reason=reason))


def test_an_entry_waits_for_a_judge_and_scores_only_once_accepted():
    game = judged_game()
    entry_id = submit(game, "ann", media=MEDIA)
    assert entry_id == "e1" and game.score("ann") == 0
    assert game.state.entries["e1"].status == "pending"
    events = judge(game, "e1", "accept")
    assert [(e.type, e.data) for e in events] == [("entry_accepted", {
        "player_id": "ann", "team_id": "red", "clue_id": "photo", "points": 100, "entry_id": "e1"})]
    assert game.score("bob") == 100 and game.group("ann").solved == 1


def test_entry_ids_are_the_engine_s_and_follow_the_log():
    game = judged_game()
    assert [submit(game, "ann"), submit(game, "cy")] == ["e1", "e2"]
    assert game.events[-1].data == {"player_id": "cy", "team_id": "blue", "clue_id": "photo", "entry_id": "e2",
                                    "submission": 1, "text": "us at the gate"}


def test_an_accepted_entry_counts_like_a_solve_for_bonuses_and_the_treasure():
    game = judged_game(first_solver_bonus=[50, 20])
    game.answer("cy", "b")
    e_red, e_blue = submit(game, "ann"), submit(game, "cy")
    blue = judge(game, e_blue, "accept")  # judged first: the first solver, though submitted second
    assert [(e.type, e.data.get("points")) for e in blue] == [("entry_accepted", 150), ("treasure_found", None)]
    assert blue[1].data["score"] == 150 + 150  # b (first solver) and the photo
    red = judge(game, e_red, "accept")
    assert [(e.type, e.data["points"]) for e in red] == [("entry_accepted", 100 + 20)]


def test_a_team_has_one_entry_pending_per_clue():
    game = judged_game()
    submit(game, "ann")
    rejection = game.reject(SubmitEntry(hunt_id=HUNT, player_id="bob", clue_id="photo", text="again"),
                            "entry_pending")
    assert "e1" in rejection.message


def test_after_a_rejection_the_team_may_submit_again_within_max_submissions():
    game = judged_game(max_submissions=2)
    judge(game, submit(game, "ann"), "reject", "that is the back door")
    assert game.state.entries["e1"].reason == "that is the back door"
    judge(game, submit(game, "bob"), "reject")
    game.reject(SubmitEntry(hunt_id=HUNT, player_id="ann", clue_id="photo", text="third"), "no_more_submissions")


def test_a_rejected_entry_may_be_appealed_once_and_returns_to_the_queue():
    game = judged_game(max_submissions=1)
    judge(game, submit(game, "ann"), "reject", "blurry")
    [appealed] = game.ok(AppealEntry(hunt_id=HUNT, player_id="bob", entry_id="e1", message="zoom in: it is us"))
    assert appealed.type == "entry_appealed" and game.state.entries["e1"].status == "pending"
    assert [e["entry_id"] for e in views.entries(game.state, "pending")["entries"]] == ["e1"]
    judge(game, "e1", "reject", "still blurry")
    game.reject(AppealEntry(hunt_id=HUNT, player_id="ann", entry_id="e1", message="please"), "not_appealable")


def test_only_a_rejected_entry_of_one_s_own_team_can_be_appealed():
    game = judged_game()
    submit(game, "ann")
    game.reject(AppealEntry(hunt_id=HUNT, player_id="ann", entry_id="e1", message="x"), "not_appealable")
    game.reject(AppealEntry(hunt_id=HUNT, player_id="cy", entry_id="e1", message="x"), "unknown_entry")
    game.reject(AppealEntry(hunt_id=HUNT, player_id="ann", entry_id="e9", message="x"), "unknown_entry")
    judge(game, "e1", "accept")
    game.reject(AppealEntry(hunt_id=HUNT, player_id="ann", entry_id="e1", message="x"), "not_appealable")


def test_an_appeal_is_refused_while_a_newer_entry_waits():
    game = judged_game()
    judge(game, submit(game, "ann"), "reject")
    submit(game, "ann")
    game.reject(AppealEntry(hunt_id=HUNT, player_id="ann", entry_id="e1", message="x"), "not_appealable")


def test_judging_is_for_pending_entries_and_goes_on_after_the_end():
    game = judged_game()
    submit(game, "ann")
    game.ok(EndHunt(hunt_id=HUNT))
    game.reject(SubmitEntry(hunt_id=HUNT, player_id="cy", clue_id="photo", text="late"), "hunt_not_running")
    judge(game, "e1", "accept")
    assert game.score("ann") == 100
    game.reject(JudgeEntry(hunt_id=HUNT, entry_id="e1", verdict="reject"), "invalid_command")
    game.reject(JudgeEntry(hunt_id=HUNT, entry_id="e7", verdict="accept"), "unknown_entry")


def test_a_judged_clue_takes_no_answer_and_an_answer_clue_no_entry():
    game = judged_game()
    rejection = game.reject(SubmitAnswer(hunt_id=HUNT, player_id="ann", clue_id="photo", answer="x"),
                            "invalid_command")
    assert "submit_entry" in rejection.message
    game.reject(SubmitEntry(hunt_id=HUNT, player_id="ann", clue_id="b", text="x"), "invalid_command")
    game.reject(SubmitEntry(hunt_id=HUNT, player_id="ann", clue_id="photo"), "invalid_command")  # nothing in it


def test_other_players_see_no_entry_text_media_or_verdict_reason():
    game = judged_game()
    [submitted] = game.ok(SubmitEntry(hunt_id=HUNT, player_id="ann", clue_id="photo", text="SECRET", media=MEDIA))
    [rejected] = judge(game, "e1", "reject", "REASON")
    [appealed] = game.ok(AppealEntry(hunt_id=HUNT, player_id="ann", entry_id="e1", message="MESSAGE"))
    for event in (submitted, rejected, appealed):
        assert not {"text", "media", "reason", "message"} & set(views.event_data(event, views.PLAYER))
        assert views.private_to(event) == "ann"
    assert views.event_data(submitted, views.PLAYER, own=True)["text"] == "SECRET"
    mine = views.player(game.state, "ann")["entries"]
    assert [(e["entry_id"], e["text"], e["reason"], e["status"]) for e in mine] == [("e1", "SECRET", "REASON", "pending")]
    teammate = views.player(game.state, "bob")["entries"]
    assert [(e["entry_id"], e["text"], e["media"]) for e in teammate] == [("e1", None, None)]
    assert views.player(game.state, "cy")["entries"] == []
    photo = next(c for c in views.player(game.state, "bob")["clues"] if c["id"] == "photo")
    assert (photo["by"], photo["submissions"], photo["max_submissions"], photo["pending"]) == ("judged", 1, 3, True)


def test_the_queue_is_oldest_first_and_filters_by_status():
    game = judged_game()
    submit(game, "ann")
    submit(game, "cy")
    judge(game, "e1", "accept")
    queue = views.entries(game.state, None)["entries"]
    assert [(e["entry_id"], e["status"], e["team_id"]) for e in queue] == [("e1", "accepted", "red"),
                                                                          ("e2", "pending", "blue")]
    assert set(queue[0]) == {"entry_id", "player_id", "team_id", "clue_id", "status", "text", "media",
                             "submitted_ts", "reason", "appealed", "appeal"}
    assert [e["entry_id"] for e in views.entries(game.state, "accepted")["entries"]] == ["e1"]


def test_entries_survive_a_snapshot():
    game = judged_game()
    judge(game, submit(game, "ann", media=MEDIA), "reject", "no")
    game.ok(AppealEntry(hunt_id=HUNT, player_id="ann", entry_id="e1", message="yes"))
    submit(game, "cy")
    restored = from_snapshot(to_snapshot(game.state))
    assert to_snapshot(restored) == to_snapshot(game.state)
    assert views.entries(restored, None) == views.entries(game.state, None)
    game.reject(SubmitEntry(hunt_id=HUNT, player_id="cy", clue_id="photo", text="x"), "entry_pending")
