"""`thengine replay`: state as of any point, read-only, and --verify against the snapshots."""

from __future__ import annotations

import json
from pathlib import Path

from thengine import open_engine
from thengine.domain.definition import format_ts
from thengine.storage.store import Store

from .helpers_replay import (
    FakeClock, assert_error, file_state, invoke, make_log, replay_json, rewrite_snapshot,
)


def board(answer: dict, hunt_id: str) -> list[tuple[str, int]]:
    return [(e["id"], e["score"]) for e in answer["hunts"][hunt_id]["leaderboard"]]


async def test_json_has_the_documented_shape_and_final_values(tmp_path: Path) -> None:
    log = await make_log(tmp_path / "t.db")
    answer = replay_json(log.path)
    assert answer["seq"] == log.last_seq
    assert set(answer) == {"seq", "hunts"}
    assert set(answer["hunts"]) == {"h1", "h2"}
    h1 = answer["hunts"]["h1"]
    assert set(h1) == {"status", "version", "total", "leaderboard"}
    assert (h1["status"], h1["version"], h1["total"]) == ("running", 10, 2)  # h1 has 10 events
    assert h1["leaderboard"] == [
        {"rank": 1, "id": "p1", "kind": "player", "score": 300, "solved": 2, "reached_ts": log.ts["p1_solved_b"]},
        {"rank": 2, "id": "p2", "kind": "player", "score": 90, "solved": 1, "reached_ts": log.ts["p2_solved_a"]},
    ]
    assert board(answer, "h2") == [("p3", 50)]


async def test_offset_pages_the_leaderboard(tmp_path: Path) -> None:
    log = await make_log(tmp_path / "t.db")
    page = replay_json(log.path, "--hunt", "h1", "--limit", 1, "--offset", 1)["hunts"]["h1"]
    assert page["total"] == 2
    assert [(e["rank"], e["id"]) for e in page["leaderboard"]] == [(2, "p2")]
    past_the_end = replay_json(log.path, "--hunt", "h1", "--offset", 5)["hunts"]["h1"]
    assert (past_the_end["total"], past_the_end["leaderboard"]) == (2, [])


async def test_until_seq_shows_the_leaderboard_before_a_later_solve(tmp_path: Path) -> None:
    log = await make_log(tmp_path / "t.db")
    before = replay_json(log.path, "--until", log.seq["p2_solved_a"])
    assert before["seq"] == log.seq["p2_solved_a"]
    assert board(before, "h1") == [("p2", 90), ("p1", 0)]
    after = replay_json(log.path, "--until", log.seq["p1_solved_a"])
    assert board(after, "h1") == [("p1", 100), ("p2", 90)]


async def test_until_seq_before_a_hunt_was_created_leaves_it_out(tmp_path: Path) -> None:
    log = await make_log(tmp_path / "t.db")
    answer = replay_json(log.path, "--until", log.seq["p2_joined"])
    assert set(answer["hunts"]) == {"h1"}


async def test_until_time_shows_the_state_at_that_moment(tmp_path: Path) -> None:
    log = await make_log(tmp_path / "t.db")
    moment = format_ts(log.ts["p2_solved_a"] + 500)  # after p2's solve, before p1's
    answer = replay_json(log.path, "--until-time", moment)
    assert answer["seq"] == log.seq["p2_solved_a"]
    assert board(answer, "h1") == [("p2", 90), ("p1", 0)]


async def test_hunt_limits_the_answer_to_one_hunt(tmp_path: Path) -> None:
    log = await make_log(tmp_path / "t.db")
    answer = replay_json(log.path, "--hunt", "h2")
    assert list(answer["hunts"]) == ["h2"]
    assert answer["seq"] == log.seq["p3_solved_x"]


async def test_limit_cuts_the_leaderboard(tmp_path: Path) -> None:
    log = await make_log(tmp_path / "t.db")
    assert board(replay_json(log.path, "--limit", 1), "h1") == [("p1", 300)]


async def test_player_adds_their_progress_in_json(tmp_path: Path) -> None:
    log = await make_log(tmp_path / "t.db")
    answer = replay_json(log.path, "--hunt", "h1", "--player", "p2")
    player = answer["hunts"]["h1"]["player"]
    assert (player["player_id"], player["score"], player["rank"], player["solved"]) == ("p2", 90, 2, 1)
    assert [c["id"] for c in player["clues"]] == ["a", "b"]
    assert player["clues"][0]["hints"] == [{"text": "the first letter", "penalty": 10}]


async def test_player_is_shown_in_the_table(tmp_path: Path) -> None:
    log = await make_log(tmp_path / "t.db")
    result = invoke("replay", log.path, "--hunt", "h1", "--player", "p1")
    assert result.exit_code == 0, result.stderr
    assert "player p1: active, score 300, rank 1, solved 2 of 2 clues, treasure found" in result.stdout


async def test_table_lists_status_and_leaderboard_per_hunt(tmp_path: Path) -> None:
    log = await make_log(tmp_path / "t.db")
    result = invoke("replay", log.path)
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"{log.path}: replayed {log.last_seq} events, up to seq {log.last_seq}"
    assert "h1  Hunt one" in lines and "h2  Hunt two" in lines
    first = next(line for line in lines if line.strip().startswith("1  p1"))
    assert first.split()[:5] == ["1", "p1", "player", "300", "2"]
    assert result.stderr == ""


async def test_unknown_player_is_bad_input(tmp_path: Path) -> None:
    log = await make_log(tmp_path / "t.db")
    assert_error(invoke("replay", log.path, "--hunt", "h1", "--player", "nobody"), 2, "'nobody'")


async def test_unknown_hunt_is_bad_input(tmp_path: Path) -> None:
    log = await make_log(tmp_path / "t.db")
    assert_error(invoke("replay", log.path, "--hunt", "nope"), 2, "no hunt 'nope'", "h1, h2")


def test_missing_database_is_bad_input(tmp_path: Path) -> None:
    assert_error(invoke("replay", tmp_path / "missing.db"), 2, "no database at")


def test_a_file_that_is_not_a_database_is_bad_input(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_text("hello, this is not SQLite\n" * 100)
    assert_error(invoke("replay", junk), 2, "not a thengine database")


async def test_bad_until_time_is_bad_input(tmp_path: Path) -> None:
    log = await make_log(tmp_path / "t.db")
    assert_error(invoke("replay", log.path, "--until-time", "yesterday"), 2, "--until-time")


async def test_verify_cannot_be_combined_with_until(tmp_path: Path) -> None:
    log = await make_log(tmp_path / "t.db")
    assert_error(invoke("replay", log.path, "--verify", "--until", 3), 2, "--verify")


async def test_replay_never_writes_the_database_or_its_wal(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    clock = FakeClock()
    async with open_engine(str(path), sync="normal", clock=clock) as engine:
        await make_log(path, engine=engine)
        files = [path, Path(f"{path}-wal")]
        before = [file_state(f) for f in files]
        assert before[1] is not None and len(before[1][0]) > 0  # the events are still in the WAL
        for args in ([], ["--json"], ["--hunt", "h1", "--player", "p1"], ["--until", 5], ["--verify"]):
            assert invoke("replay", path, *args).exit_code == 0
        assert [file_state(f) for f in files] == before


async def test_replay_of_a_closed_database_leaves_it_unchanged(tmp_path: Path) -> None:
    log = await make_log(tmp_path / "t.db")
    before = file_state(log.path)
    assert invoke("replay", log.path, "--verify").exit_code == 0
    assert file_state(log.path) == before
    wal = file_state(Path(f"{log.path}-wal"))
    assert wal is None or wal[0] == b""


async def test_replay_reads_what_a_running_engine_has_committed(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    async with open_engine(str(path), sync="normal", clock=FakeClock()) as engine:
        log = await make_log(path, engine=engine)
        answer = replay_json(path)
        assert answer["seq"] == log.last_seq == engine.committed_seq
        assert board(answer, "h1") == [("p1", 300), ("p2", 90)]


async def test_verify_passes_on_a_clean_log(tmp_path: Path) -> None:
    log = await make_log(tmp_path / "t.db")
    with Store.open(log.path, readonly=True) as store:
        snapshots = store.stats()["snapshots"]
    assert snapshots >= 3  # h1 every 4 versions, and every hunt at close
    result = invoke("replay", log.path, "--verify")
    assert result.exit_code == 0, result.stdout
    assert result.stdout == f"verified {snapshots} snapshots over {log.last_seq} events: no divergence\n"


async def test_verify_reports_a_tampered_score_and_exits_1(tmp_path: Path) -> None:
    log = await make_log(tmp_path / "t.db")

    def raise_p2(data: dict) -> None:
        assert data["groups"][1]["id"] == "p2"
        data["groups"][1]["score"] = 95

    version = rewrite_snapshot(log.path, "h1", raise_p2)
    result = invoke("replay", log.path, "--verify")
    assert result.exit_code == 1
    assert result.stdout.strip() == (f"divergence in hunt 'h1' at version {version} (seq {log.seq['p1_solved_b']}): "
                                     "groups[1].score: replayed 90, snapshot has 95")
    assert result.stderr.startswith("thengine: error: ")


async def test_verify_json_names_the_divergence(tmp_path: Path) -> None:
    log = await make_log(tmp_path / "t.db")
    version = rewrite_snapshot(log.path, "h1", lambda data: data["players"]["p1"].__setitem__(2, False))
    result = invoke("replay", log.path, "--verify", "--json")
    assert result.exit_code == 1
    answer = json.loads(result.stdout)
    assert answer["verified"] is False
    assert answer["divergence"] == {"hunt_id": "h1", "version": version, "seq": log.seq["p1_solved_b"],
                                    "field": "players.p1.active", "replayed": True, "stored": False}


async def test_verify_treats_an_undecodable_snapshot_as_a_divergence(tmp_path: Path) -> None:
    log = await make_log(tmp_path / "t.db")
    rewrite_snapshot(log.path, "h2", lambda data: b"\x00not zlib at all")
    result = invoke("replay", log.path, "--verify")
    assert result.exit_code == 1
    assert "hunt 'h2'" in result.stdout and "snapshot: " in result.stdout and "undecodable" in result.stdout


async def test_help_shows_an_example() -> None:
    result = invoke("replay", "--help")
    assert result.exit_code == 0
    assert "thengine replay thengine.db --hunt old-town" in result.stdout


# -- --save-expect and --verify --expect: pinning a log --------------------------------

async def test_save_expect_then_verify_expect_holds_and_says_so(tmp_path: Path) -> None:
    log = await make_log(tmp_path / "t.db")
    pinned = tmp_path / "pinned.json"
    assert invoke("replay", log.path, "--save-expect", pinned).exit_code == 0
    content = json.loads(pinned.read_text())
    assert content["thengine_expectations"] == 1 and sorted(content["hunts"]) == ["h1", "h2"]
    assert content["hunts"]["h1"]["players"]["p1"]["score"] == 300
    result = invoke("replay", log.path, "--verify", "--expect", pinned)
    assert result.exit_code == 0, result.stdout
    assert result.stdout.splitlines()[-1] == f"as expected by {pinned}: 2 hunts"


async def test_verify_expect_lists_each_difference_and_exits_1(tmp_path: Path) -> None:
    log = await make_log(tmp_path / "t.db")
    pinned = tmp_path / "pinned.json"
    invoke("replay", log.path, "--save-expect", pinned)
    content = json.loads(pinned.read_text())
    content["hunts"]["h1"]["players"]["p1"]["score"] = 310
    content["hunts"]["h2"]["status"] = "ended"
    pinned.write_text(json.dumps(content))
    result = invoke("replay", log.path, "--verify", "--expect", pinned)
    assert result.exit_code == 1
    assert "hunt 'h1': players.p1.score: replayed 300, expected 310" in result.stdout.splitlines()
    assert "hunt 'h2': status: replayed \"running\", expected \"ended\"" in result.stdout.splitlines()
    assert_error(result, 1, "differs from", "2 places")
    answer = json.loads(invoke("replay", log.path, "--verify", "--expect", pinned, "--json").stdout)
    assert answer["verified"] is False and len(answer["expectations"]["differences"]) == 2


async def test_verify_expect_of_one_hunt_checks_only_that_hunt(tmp_path: Path) -> None:
    log = await make_log(tmp_path / "t.db")
    pinned = tmp_path / "pinned.json"
    invoke("replay", log.path, "--save-expect", pinned)
    content = json.loads(pinned.read_text())
    content["hunts"]["h2"]["status"] = "ended"
    pinned.write_text(json.dumps(content))
    assert invoke("replay", log.path, "--verify", "--hunt", "h1", "--expect", pinned).exit_code == 0
    assert invoke("replay", log.path, "--verify", "--hunt", "h2", "--expect", pinned).exit_code == 1


async def test_bad_expectations_are_bad_input(tmp_path: Path) -> None:
    log = await make_log(tmp_path / "t.db")
    assert_error(invoke("replay", log.path, "--expect", tmp_path / "x.json"), 2, "--verify")
    assert_error(invoke("replay", log.path, "--verify", "--expect", tmp_path / "none.json"), 2, "cannot read")
    (tmp_path / "bad.json").write_text("{not json")
    assert_error(invoke("replay", log.path, "--verify", "--expect", tmp_path / "bad.json"), 2, "not JSON")
    (tmp_path / "other.json").write_text('{"hunts": {}}')
    assert_error(invoke("replay", log.path, "--verify", "--expect", tmp_path / "other.json"), 2,
                 "not a thengine expectations file")
    assert_error(invoke("replay", log.path, "--verify", "--save-expect", tmp_path / "s.json"), 2, "one of them")


async def test_verify_skips_a_snapshot_of_an_older_format_and_says_so(tmp_path: Path) -> None:
    log = await make_log(tmp_path / "t.db")
    with Store.open(log.path) as store:
        total = store.stats()["snapshots"]
        store.conn.execute("UPDATE snapshots SET format = 0, state = x'00' WHERE hunt_id = 'h2'")
        older = store.conn.execute("SELECT count(*) FROM snapshots WHERE hunt_id = 'h2'").fetchone()[0]
    result = invoke("replay", log.path, "--verify")
    assert result.exit_code == 0, result.stdout
    assert result.stdout == (f"verified {total - older} snapshots ({older} of an older format skipped) "
                             f"over {log.last_seq} events: no divergence\n")
    assert json.loads(invoke("replay", log.path, "--verify", "--json").stdout)["skipped_snapshots"] == older


async def test_json_adds_the_frozen_board_while_the_board_is_frozen(tmp_path: Path) -> None:
    from thengine.domain.commands import CreateHunt, FreezeBoard, JoinHunt, StartHunt, SubmitAnswer
    from thengine.domain.definition import parse_definition

    db = tmp_path / "f.db"
    hunt = {"id": "f", "title": "F", "order": "any",
            "clues": [{"id": "a", "prompt": "a?", "points": 100, "answers": ["a"]},
                      {"id": "b", "prompt": "b?", "points": 5, "answers": ["b"]}]}
    async with open_engine(db) as engine:
        for command in (CreateHunt(definition=parse_definition(hunt)), StartHunt(hunt_id="f"),
                        JoinHunt(hunt_id="f", player_id="ann"), JoinHunt(hunt_id="f", player_id="bob"),
                        SubmitAnswer(hunt_id="f", player_id="ann", clue_id="a", answer="a"),
                        FreezeBoard(hunt_id="f"),
                        SubmitAnswer(hunt_id="f", player_id="bob", clue_id="a", answer="a"),
                        SubmitAnswer(hunt_id="f", player_id="bob", clue_id="b", answer="b")):
            assert (await engine.submit(command)).ok
    answer = replay_json(db)["hunts"]["f"]
    assert [(e["id"], e["score"]) for e in answer["leaderboard"]] == [("bob", 105), ("ann", 100)]
    assert [(e["id"], e["score"]) for e in answer["frozen_leaderboard"]] == [("ann", 100), ("bob", 0)]
    before = replay_json(db, "--until", 5)["hunts"]["f"]
    assert "frozen_leaderboard" not in before
    assert "board frozen" in invoke("replay", db).stdout
