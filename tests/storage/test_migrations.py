from __future__ import annotations

from pathlib import Path
from typing import Any

import apsw
import pytest

from thengine.errors import SchemaTooNew, StorageError
from thengine.storage import migrations
from thengine.storage.connection import connect
from thengine.storage.migrations import (
    FALLBACK_DIR,
    MIGRATIONS,
    SCHEMA_VERSION,
    check_schema,
    migrate,
    migration_files,
    migrations_dir,
    user_version,
)
from thengine.storage.store import Store

TABLES = {"events", "snapshots", "commands", "timers", "meta", "hunts"}


def schema(conn: apsw.Connection) -> list[tuple[Any, ...]]:
    return conn.execute("SELECT type, name, sql FROM sqlite_schema ORDER BY name").fetchall()


def tables(conn: apsw.Connection) -> set[str]:
    return {name for kind, name, _ in schema(conn) if kind == "table"}


def test_migrate_creates_every_table_from_scratch(db_path: Path) -> None:
    conn = connect(db_path)
    try:
        assert migrate(conn) == SCHEMA_VERSION
        assert tables(conn) == TABLES
        assert user_version(conn) == SCHEMA_VERSION
    finally:
        conn.close()


def test_migrate_again_changes_nothing(db_path: Path) -> None:
    conn = connect(db_path)
    try:
        migrate(conn)
        before = schema(conn)
        assert migrate(conn) == SCHEMA_VERSION
        assert schema(conn) == before
    finally:
        conn.close()


def test_user_version_records_each_applied_migration(db_path: Path) -> None:
    one = (1, "0001_a.sql", "CREATE TABLE a (x INTEGER);")
    two = (2, "0002_b.sql", "CREATE TABLE b (x INTEGER);")
    conn = connect(db_path)
    try:
        assert migrate(conn, [one]) == 1
        assert user_version(conn) == 1
        # Only the pending file runs: re-running 0001 would fail ("table a already exists").
        assert migrate(conn, [one, two]) == 2
        assert user_version(conn) == 2
        assert tables(conn) == {"a", "b"}
    finally:
        conn.close()


def test_a_failing_migration_applies_nothing_of_itself(db_path: Path) -> None:
    one = (1, "0001_a.sql", "CREATE TABLE a (x INTEGER);")
    bad = (2, "0002_bad.sql", "CREATE TABLE b (x INTEGER); INSERT INTO nowhere VALUES (1);")
    conn = connect(db_path)
    try:
        with pytest.raises(StorageError, match="migration 0002_bad.sql failed: .*no such table: nowhere"):
            migrate(conn, [one, bad])
        assert user_version(conn) == 1
        assert tables(conn) == {"a"}
        assert not conn.in_transaction
    finally:
        conn.close()


def test_store_open_refuses_a_newer_schema(db_path: Path) -> None:
    Store.open(db_path).close()
    conn = connect(db_path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    expected = (
        f"^{db_path}: schema version {SCHEMA_VERSION + 1} is newer than this thengine "
        f"\\({SCHEMA_VERSION}\\); upgrade thengine$"
    )
    with pytest.raises(SchemaTooNew, match=expected):
        Store.open(db_path)
    with pytest.raises(SchemaTooNew, match=expected):
        Store.open(db_path, readonly=True)


def test_migrate_refuses_a_sqlite_database_of_another_application(db_path: Path) -> None:
    conn = connect(db_path)
    try:
        conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY)")
        with pytest.raises(StorageError, match="is not a thengine database: it has tables but no thengine schema"):
            migrate(conn)
        assert tables(conn) == {"invoices"}
        assert user_version(conn) == 0
    finally:
        conn.close()


def test_readonly_open_of_an_uninitialised_database_says_run_init(db_path: Path) -> None:
    db_path.touch()  # an empty file is a valid, empty SQLite database
    with pytest.raises(StorageError, match=f"^{db_path} is not initialised; run `thengine init`$"):
        Store.open(db_path, readonly=True)


def test_check_schema_refuses_a_database_older_than_the_code(db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    Store.open(db_path).close()
    monkeypatch.setattr(migrations, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    conn = connect(db_path, readonly=True)
    try:
        with pytest.raises(StorageError, match="is older than this thengine .*run `thengine init` to migrate it"):
            check_schema(conn)
    finally:
        conn.close()


def test_check_schema_accepts_a_current_database(db_path: Path) -> None:
    Store.open(db_path).close()
    conn = connect(db_path, readonly=True)
    try:
        assert check_schema(conn) == SCHEMA_VERSION
    finally:
        conn.close()


def test_migration_files_are_found_in_the_checkout_when_not_packaged(tmp_path: Path) -> None:
    assert migrations_dir(packaged=tmp_path / "_migrations") == FALLBACK_DIR
    assert FALLBACK_DIR == Path(migrations.__file__).resolve().parents[2] / "migrations"
    numbers = [number for number, _, _ in migration_files(FALLBACK_DIR)]
    assert numbers[0] == 1 and numbers[-1] == SCHEMA_VERSION


def test_packaged_migration_files_win_over_the_checkout(tmp_path: Path) -> None:
    packaged = tmp_path / "_migrations"
    packaged.mkdir()
    (packaged / "0001_only.sql").write_text("CREATE TABLE only (x INTEGER);")
    (packaged / "README.txt").write_text("not a migration")
    assert migrations_dir(packaged=packaged) == packaged
    assert migration_files(packaged) == [(1, "0001_only.sql", "CREATE TABLE only (x INTEGER);")]


def test_missing_migrations_are_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="installed without its migrations"):
        migrations_dir(packaged=tmp_path / "a", fallback=tmp_path / "b")


def test_gaps_in_migration_numbers_are_refused(tmp_path: Path) -> None:
    (tmp_path / "0001_a.sql").write_text("")
    (tmp_path / "0003_c.sql").write_text("")
    with pytest.raises(StorageError, match=r"numbered 1, 2, 3\.\.\.; found \[1, 3\]"):
        migration_files(tmp_path)


def test_schema_version_is_the_highest_migration_number() -> None:
    assert SCHEMA_VERSION == max(number for number, _, _ in migration_files())


def test_schema_2_backfills_the_hunt_catalog_from_a_schema_1_log(db_path: Path) -> None:
    conn = connect(db_path)
    try:
        migrate(conn, [m for m in MIGRATIONS if m[0] == 1])
        rows = [(1, "a", 1, "hunt_created", 10, "{}"), (2, "a", 2, "hunt_started", 20, "{}"),
                (3, "b", 1, "hunt_created", 30, "{}"), (4, "a", 3, "hunt_ended", 40, "{}")]
        conn.executemany("INSERT INTO events (seq, hunt_id, version, type, ts, data) VALUES (?, ?, ?, ?, ?, ?)", rows)
        migrate(conn)
        catalog = conn.execute("SELECT hunt_id, status, ended_ts FROM hunts ORDER BY hunt_id").fetchall()
        assert catalog == [("a", "ended", 40), ("b", "created", None)]
    finally:
        conn.close()
