"""`thengine init`, `hunt add`, `stats`, `token`, `backup`, and what every command shares."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import apsw
import pytest

import thengine
from thengine.storage.lock import EngineLock
from thengine.storage.migrations import SCHEMA_VERSION
from thengine.storage.store import Store
from thengine.tokens import SECRET_META_KEY, TokenError, decode_secret, verify

from tests.cli.helpers_admin import (
    assert_error,
    assert_ok,
    invoke,
    jsonl,
    logged_events,
    make_db,
    write_hunt,
)


def secret_of(db: Path) -> bytes:
    with Store.open(db, readonly=True) as store:
        text = store.get_meta(SECRET_META_KEY)
    assert text is not None
    return decode_secret(text)


# -- init -----------------------------------------------------------------------


def test_init_creates_a_current_database_with_a_token_secret(tmp_path: Path) -> None:
    db = tmp_path / "new.db"
    result = invoke("init", db)
    assert_ok(result)
    assert result.stdout == f"created {db} (schema version {SCHEMA_VERSION}) and a new token secret\n"
    with Store.open(db, readonly=True) as store:
        assert store.stats()["schema_version"] == SCHEMA_VERSION
    assert len(secret_of(db)) == 32


def test_init_again_keeps_the_database_and_its_secret(tmp_path: Path) -> None:
    db = make_db(tmp_path, "h1")
    secret = secret_of(db)
    result = invoke("init", db)
    assert_ok(result)
    assert result.stdout == f"{db} is up to date (schema version {SCHEMA_VERSION})\n"
    assert secret_of(db) == secret
    assert len(logged_events(db)) == 2


def test_init_gives_an_initialised_database_without_a_secret_one(tmp_path: Path) -> None:
    db = tmp_path / "h.db"
    Store.open(db).close()
    result = invoke("init", db)
    assert_ok(result)
    assert "made a new token secret" in result.stdout
    assert len(secret_of(db)) == 32


def test_init_defaults_to_thengine_db_in_the_current_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert_ok(invoke("init"))
    assert (tmp_path / "thengine.db").is_file()


def test_init_migrates_a_database_while_no_engine_runs_but_not_under_one(tmp_path: Path) -> None:
    db = tmp_path / "empty.db"
    db.write_bytes(b"")  # a SQLite file at schema version 0: needs migrating
    with EngineLock.acquire(db):
        assert_error(invoke("init", db), 2, "cannot migrate", "in use by another engine", f"pid {os.getpid()}")
    result = invoke("init", db)
    assert_ok(result)
    assert result.stdout.startswith(f"migrated {db} from schema version 0 to {SCHEMA_VERSION}")


def test_init_of_a_current_database_works_while_an_engine_runs(tmp_path: Path) -> None:
    db = make_db(tmp_path)
    with EngineLock.acquire(db):
        assert_ok(invoke("init", db))


def test_init_refuses_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("hello, this is not SQLite\n" * 100)
    assert_error(invoke("init", notes), 2, "not a thengine database")
    assert notes.read_text().startswith("hello")


def test_init_refuses_a_sqlite_database_of_another_program(tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    conn = apsw.Connection(str(other))
    conn.execute("CREATE TABLE t (x)")
    conn.close()
    assert_error(invoke("init", other), 2, "not a thengine database")


def test_init_refuses_a_database_from_a_newer_thengine(tmp_path: Path) -> None:
    db = make_db(tmp_path)
    conn = apsw.Connection(str(db))
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    assert_error(invoke("init", db), 2, "newer than this thengine")


def test_init_refuses_a_directory_that_does_not_exist(tmp_path: Path) -> None:
    assert_error(invoke("init", tmp_path / "nowhere" / "h.db"), 2, "no directory")
    assert not (tmp_path / "nowhere").exists()


# -- hunt add -------------------------------------------------------------------


def test_hunt_add_creates_the_hunt_without_starting_it(tmp_path: Path) -> None:
    db = make_db(tmp_path)
    result = invoke("hunt", "add", db, write_hunt(tmp_path, "h1"))
    assert_ok(result)
    assert result.stdout == "hunt h1: created, 2 clues, status created\n"
    assert [e["type"] for e in logged_events(db)] == ["hunt_created"]


def test_hunt_add_with_start_starts_the_hunt(tmp_path: Path) -> None:
    db = make_db(tmp_path)
    result = invoke("hunt", "add", db, write_hunt(tmp_path, "h1"), "--start")
    assert_ok(result)
    assert result.stdout == "hunt h1: created and started, 2 clues, status running\n"
    assert [e["type"] for e in logged_events(db)] == ["hunt_created", "hunt_started"]


def test_hunt_add_with_one_argument_takes_it_as_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert_ok(invoke("init"))
    assert_ok(invoke("hunt", "add", write_hunt(tmp_path, "solo")))
    assert [e["hunt_id"] for e in logged_events(tmp_path / "thengine.db")] == ["solo"]


def test_hunt_add_stores_the_definition_of_the_file(tmp_path: Path) -> None:
    db = make_db(tmp_path, "h1")
    created = logged_events(db)[0]
    expected = thengine.parse_hunt_toml(write_hunt(tmp_path, "h1").read_text()).to_json()
    assert created["data"]["definition"] == expected


def test_hunt_add_lists_every_problem_of_the_file_with_its_path(tmp_path: Path) -> None:
    db = make_db(tmp_path)
    bad = tmp_path / "bad.toml"
    bad.write_text(write_hunt(tmp_path).read_text()
                   .replace('id = "h1"', 'id = "has space"')
                   .replace("points = 10", "points = -1")
                   .replace("penalty = 5", "penalty = -5"))
    result = invoke("hunt", "add", db, bad)
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 3
    assert all(line.startswith(f"thengine: error: {bad}: ") for line in lines)
    assert any("id: must be" in line for line in lines)
    assert any("clues[0].points: " in line for line in lines)
    assert any("clues[1].hints[0].penalty: must be >= 0, got -5" in line for line in lines)
    assert "Traceback" not in result.output
    assert logged_events(db) == []


def test_hunt_add_of_a_file_that_is_not_toml_exits_2(tmp_path: Path) -> None:
    db = make_db(tmp_path)
    bad = tmp_path / "bad.toml"
    bad.write_text("id = \n")
    assert_error(invoke("hunt", "add", db, bad), 2, f"{bad}: toml: ")


def test_hunt_add_of_a_file_that_is_not_utf8_exits_2(tmp_path: Path) -> None:
    db = make_db(tmp_path)
    bad = tmp_path / "bad.toml"
    bad.write_bytes(b'title = "\xff"\n')
    assert_error(invoke("hunt", "add", db, bad), 2, "not UTF-8")


def test_hunt_add_of_an_oversized_file_exits_2_without_reading_it_all(tmp_path: Path) -> None:
    db = make_db(tmp_path)
    big = tmp_path / "big.toml"
    big.write_bytes(b"# " + b"x" * 3_000_000 + b"\n")
    assert_error(invoke("hunt", "add", db, big), 2, "must be at most 1048576 bytes")


def test_hunt_add_of_a_missing_file_exits_2(tmp_path: Path) -> None:
    db = make_db(tmp_path)
    assert_error(invoke("hunt", "add", db, tmp_path / "nope.toml"), 2, "cannot read", "nope.toml")


def test_hunt_add_of_an_existing_hunt_is_refused_with_its_code(tmp_path: Path) -> None:
    db = make_db(tmp_path, "h1")
    assert_error(invoke("hunt", "add", db, write_hunt(tmp_path, "h1")), 2, "already exists", "(hunt_exists)")
    assert len(logged_events(db)) == 2


def test_hunt_add_to_a_missing_database_exits_2_and_creates_nothing(tmp_path: Path) -> None:
    db = tmp_path / "missing.db"
    assert_error(invoke("hunt", "add", db, write_hunt(tmp_path)), 2, "no database at", "thengine init")
    assert list(tmp_path.glob("missing.db*")) == []


def test_hunt_add_while_an_engine_holds_the_database_exits_2_naming_it(tmp_path: Path) -> None:
    db = make_db(tmp_path)
    with EngineLock.acquire(db):
        assert_error(invoke("hunt", "add", db, write_hunt(tmp_path)), 2, "in use by another engine",
                     f"pid {os.getpid()}")


def test_hunt_add_with_url_but_no_token_exits_2_and_writes_nothing(tmp_path: Path) -> None:
    db = make_db(tmp_path)
    result = invoke("hunt", "add", db, write_hunt(tmp_path), "--url", "ws://127.0.0.1:8765/v1")
    assert_error(result, 2, "--url needs --token")
    assert logged_events(db) == []


def test_hunt_add_with_a_token_but_no_url_exits_2(tmp_path: Path) -> None:
    db = make_db(tmp_path)
    assert_error(invoke("hunt", "add", db, write_hunt(tmp_path), "--token", "t"), 2, "--token goes with --url")


@pytest.mark.parametrize("args", [[], ["a.db", "b.toml", "c"]])
def test_hunt_add_with_a_wrong_number_of_arguments_exits_2(args: list[str]) -> None:
    assert_error(invoke("hunt", "add", *args), 2, "argument")


def test_an_unknown_hunt_subcommand_is_one_error_line() -> None:
    assert_error(invoke("hunt", "remove"), 2, "No such command 'remove'")


# -- stats ----------------------------------------------------------------------


def ingest(db: Path, *commands: object) -> None:
    assert_ok(invoke("ingest", db, "-", input=jsonl(*commands)))


def test_stats_counts_events_hunts_and_distinct_players(tmp_path: Path) -> None:
    db = make_db(tmp_path, "h1", "h2")
    ingest(db,
           {"type": "join_hunt", "hunt_id": "h1", "player_id": "ann"},
           {"type": "leave_hunt", "hunt_id": "h1", "player_id": "ann"},
           {"type": "join_hunt", "hunt_id": "h1", "player_id": "ann"},
           {"type": "join_hunt", "hunt_id": "h1", "player_id": "bob"},
           {"type": "join_hunt", "hunt_id": "h2", "player_id": "ann"})
    result = invoke("stats", db, "--json")
    assert_ok(result)
    stats = json.loads(result.stdout)
    assert (stats["events"], stats["last_seq"], stats["hunts"], stats["players"]) == (9, 9, 2, 3)
    assert stats["by_hunt"]["h1"]["players"] == 2
    assert stats["by_hunt"]["h2"]["players"] == 1
    assert stats["schema_version"] == SCHEMA_VERSION
    assert stats["db_bytes"] > 0


def test_stats_reports_snapshot_coverage_per_hunt_and_overall(tmp_path: Path) -> None:
    db = make_db(tmp_path, "h1", "h2")
    ingest(db, *({"type": "join_hunt", "hunt_id": "h2", "player_id": f"p{i}"} for i in range(6)))
    with Store.open(db) as store:
        store.delete_snapshots("h2")
    stats = json.loads(invoke("stats", db, "--json").stdout)
    assert stats["by_hunt"]["h1"]["snapshot_version"] == 2
    assert stats["by_hunt"]["h1"]["events_after_snapshot"] == 0
    assert stats["by_hunt"]["h2"]["snapshot_version"] == 0
    assert stats["by_hunt"]["h2"]["events_after_snapshot"] == 8
    assert stats["snapshot_coverage"] == {"covered_events": 2, "percent": 20.0}


def test_stats_table_names_the_schema_sizes_and_each_hunt(tmp_path: Path) -> None:
    db = make_db(tmp_path, "h1")
    result = invoke("stats", db)
    assert_ok(result)
    assert f"(schema version {SCHEMA_VERSION})" in result.stdout
    assert "+ WAL" in result.stdout
    assert "100.0%" in result.stdout
    assert any(line.startswith("h1 ") for line in result.stdout.splitlines())


def test_stats_of_a_missing_database_exits_2_and_creates_nothing(tmp_path: Path) -> None:
    assert_error(invoke("stats", tmp_path / "missing.db"), 2, "no database at")
    assert list(tmp_path.iterdir()) == []


def test_stats_of_an_uninitialised_database_says_to_run_init(tmp_path: Path) -> None:
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    assert_error(invoke("stats", empty), 2, "thengine init")


# -- token ----------------------------------------------------------------------


def test_token_prints_only_a_player_token_signed_with_the_database_secret(tmp_path: Path) -> None:
    db = make_db(tmp_path)
    result = invoke("token", db, "--role", "player", "--player", "p1")
    assert_ok(result)
    assert result.stderr == ""
    token = result.stdout.strip()
    assert result.stdout == token + "\n"
    claims = verify(secret_of(db), token, now_s=int(time.time()))
    assert (claims.role, claims.player_id) == ("player", "p1")
    assert claims.exp - claims.iat == 24 * 3600


@pytest.mark.parametrize(("ttl", "seconds"), [("90", 90), ("15m", 900), ("2h", 7200), ("7d", 604800)])
def test_token_ttl_takes_seconds_or_a_unit(tmp_path: Path, ttl: str, seconds: int) -> None:
    db = make_db(tmp_path)
    result = invoke("token", db, "--role", "admin", "--ttl", ttl)
    claims = verify(secret_of(db), result.stdout.strip(), now_s=int(time.time()))
    assert (claims.role, claims.exp - claims.iat) == ("admin", seconds)


@pytest.mark.parametrize(("args", "message"), [
    ([], "give --role"),
    (["--role", "player"], "--role player needs --player"),
    (["--role", "admin", "--player", "p1"], "--player is only for --role player"),
    (["--role", "player", "--player", "not an id"], "--player:"),
    (["--role", "root"], "Invalid value for '--role'"),
    (["--role", "admin", "--ttl", "0"], "Invalid value for '--ttl'"),
    (["--role", "admin", "--ttl", "soon"], "Invalid value for '--ttl'"),
])
def test_token_with_bad_arguments_exits_2(tmp_path: Path, args: list[str], message: str) -> None:
    db = make_db(tmp_path)
    assert_error(invoke("token", db, *args), 2, message)


def test_rotating_the_secret_invalidates_every_earlier_token(tmp_path: Path) -> None:
    db = make_db(tmp_path)
    old = invoke("token", db, "--role", "admin").stdout.strip()
    result = invoke("token", db, "--rotate-secret")
    assert_ok(result)
    assert result.stdout == ""
    assert "rotated the token secret" in result.stderr
    now = int(time.time())
    with pytest.raises(TokenError, match="bad signature"):
        verify(secret_of(db), old, now_s=now)
    new = invoke("token", db, "--role", "admin").stdout.strip()
    assert verify(secret_of(db), new, now_s=now).role == "admin"


def test_rotate_secret_with_a_role_prints_a_token_of_the_new_secret(tmp_path: Path) -> None:
    db = make_db(tmp_path)
    before = secret_of(db)
    result = invoke("token", db, "--rotate-secret", "--role", "admin")
    assert_ok(result)
    assert secret_of(db) != before
    verify(secret_of(db), result.stdout.strip(), now_s=int(time.time()))


def test_token_makes_the_secret_of_a_database_that_has_none(tmp_path: Path) -> None:
    db = tmp_path / "h.db"
    Store.open(db).close()
    result = invoke("token", db, "--role", "admin")
    assert_ok(result)
    assert "had no token secret; made one" in result.stderr
    verify(secret_of(db), result.stdout.strip(), now_s=int(time.time()))


def test_token_works_while_an_engine_holds_the_database(tmp_path: Path) -> None:
    db = make_db(tmp_path)
    with EngineLock.acquire(db):
        assert_ok(invoke("token", db, "--rotate-secret", "--role", "admin"))


def test_token_for_a_missing_database_exits_2_and_creates_nothing(tmp_path: Path) -> None:
    assert_error(invoke("token", tmp_path / "missing.db", "--role", "admin"), 2, "no database at")
    assert list(tmp_path.iterdir()) == []


# -- backup ---------------------------------------------------------------------


def event_count(path: Path) -> int:
    """Events in the main database file alone (no WAL beside it): 0 if it has no log yet."""
    conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        return conn.execute("SELECT count(*) FROM events").fetchall()[0][0]
    except apsw.SQLError:
        return 0
    finally:
        conn.close()


async def test_backup_includes_events_that_are_only_in_the_wal(tmp_path: Path) -> None:
    db = make_db(tmp_path)
    definition = thengine.parse_hunt_toml(write_hunt(tmp_path, "h1").read_text())
    async with thengine.open_engine(db) as engine:
        await engine.submit(thengine.CreateHunt(definition=definition))
        await engine.submit(thengine.StartHunt(hunt_id="h1"))
        assert os.path.getsize(f"{db}-wal") > 0
        plain = tmp_path / "plain-copy.db"
        shutil.copyfile(db, plain)  # what a plain file copy would keep
        result = invoke("backup", db, tmp_path / "copy.db")
        assert_ok(result)
    assert event_count(plain) == 0
    assert event_count(tmp_path / "copy.db") == 2
    assert "events up to seq 2" in result.stdout
    assert not (tmp_path / "copy.db-wal").exists()


def test_a_backup_is_a_database_thengine_can_open(tmp_path: Path) -> None:
    db = make_db(tmp_path, "h1")
    assert_ok(invoke("backup", db, tmp_path / "copy.db"))
    assert logged_events(tmp_path / "copy.db") == logged_events(db)


def test_backup_refuses_to_overwrite_an_existing_file(tmp_path: Path) -> None:
    db = make_db(tmp_path, "h1")
    dest = tmp_path / "precious.db"
    dest.write_text("keep me")
    assert_error(invoke("backup", db, dest), 2, "already exists")
    assert dest.read_text() == "keep me"


def test_backup_with_one_argument_copies_the_default_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert_ok(invoke("init"))
    assert_ok(invoke("backup", "copy.db"))
    assert (tmp_path / "copy.db").is_file()


def test_backup_of_a_missing_database_exits_2_and_creates_nothing(tmp_path: Path) -> None:
    assert_error(invoke("backup", tmp_path / "missing.db", tmp_path / "copy.db"), 2, "no database at")
    assert list(tmp_path.iterdir()) == []


def test_backup_into_a_missing_directory_exits_2(tmp_path: Path) -> None:
    db = make_db(tmp_path)
    assert_error(invoke("backup", db, tmp_path / "nowhere" / "copy.db"), 2, "no directory")


# -- every command ----------------------------------------------------------------


@pytest.mark.parametrize("command", [["init"], ["hunt", "add"], ["ingest"], ["events"], ["stats"], ["token"],
                                     ["backup"]])
def test_each_command_has_help_with_an_example(command: list[str]) -> None:
    result = invoke(*command, "--help")
    assert_ok(result)
    assert "Example" in result.stdout
    assert "thengine " in result.stdout.split("Example", 1)[1]


@pytest.mark.parametrize("command", ["init", "events", "stats", "token", "backup", "ingest"])
def test_an_unknown_option_is_one_error_line_and_exit_2(command: str) -> None:
    assert_error(invoke(command, "--frobnicate"), 2, "No such option", "--help")


def test_a_non_database_file_is_refused_by_every_command(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not a database\n" * 100)
    hunt_file = write_hunt(tmp_path)
    for args in (["events", notes], ["stats", notes], ["token", notes, "--role", "admin"],
                 ["backup", notes, tmp_path / "copy.db"], ["hunt", "add", notes, hunt_file],
                 ["ingest", notes, "-"]):
        assert_error(invoke(*args, input=""), 2, "not a thengine database")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["h1.toml", "notes.txt"]
