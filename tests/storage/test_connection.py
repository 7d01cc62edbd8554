from __future__ import annotations

from pathlib import Path

import apsw
import pytest

from thengine.errors import StorageError
from thengine.storage.connection import BUSY_TIMEOUT_MS, CACHE_SIZE_KIB, connect


def pragma(conn: apsw.Connection, name: str) -> object:
    return conn.execute(f"PRAGMA {name}").fetchall()[0][0]


def test_writable_connection_uses_wal_and_thengine_pragmas(db_path: Path) -> None:
    conn = connect(db_path)
    try:
        assert pragma(conn, "journal_mode") == "wal"
        assert pragma(conn, "synchronous") == 2  # FULL
        assert pragma(conn, "foreign_keys") == 1
        assert pragma(conn, "temp_store") == 2  # MEMORY
        assert pragma(conn, "cache_size") == -CACHE_SIZE_KIB
        assert pragma(conn, "busy_timeout") == BUSY_TIMEOUT_MS
    finally:
        conn.close()


def test_sync_normal_sets_synchronous_normal(db_path: Path) -> None:
    conn = connect(db_path, sync="normal")
    try:
        assert pragma(conn, "synchronous") == 1  # NORMAL
    finally:
        conn.close()


def test_unknown_sync_level_is_a_value_error(db_path: Path) -> None:
    with pytest.raises(ValueError, match="sync must be 'full' or 'normal', got 'off'"):
        connect(db_path, sync="off")  # type: ignore[arg-type]
    assert not db_path.exists()


def test_double_quoted_strings_are_identifiers_only(db_path: Path) -> None:
    conn = connect(db_path)
    try:
        with pytest.raises(apsw.SQLError, match="no such column"):
            conn.execute('SELECT "not a column"').fetchall()
    finally:
        conn.close()


def test_readonly_connect_to_missing_file_says_no_database(db_path: Path) -> None:
    with pytest.raises(StorageError, match=f"^no database at {db_path}$"):
        connect(db_path, readonly=True)
    assert not db_path.exists()


@pytest.mark.parametrize("readonly", [True, False])
def test_connect_to_a_file_that_is_not_sqlite_says_so(db_path: Path, readonly: bool) -> None:
    db_path.write_text("these are my notes, not a database\n" * 100)
    with pytest.raises(StorageError, match=f"^{db_path} is not a thengine database: ") as info:
        connect(db_path, readonly=readonly)
    assert isinstance(info.value.__cause__, apsw.NotADBError)


def test_connect_in_a_missing_directory_is_a_storage_error(tmp_path: Path) -> None:
    path = tmp_path / "no-such-dir" / "hunts.db"
    with pytest.raises(StorageError, match=f"^cannot open {path}: ") as info:
        connect(path)
    assert isinstance(info.value.__cause__, apsw.Error)


def test_readonly_connection_cannot_write(db_path: Path) -> None:
    connect(db_path).close()
    conn = connect(db_path, readonly=True)
    try:
        with pytest.raises(apsw.ReadOnlyError):
            conn.execute("CREATE TABLE t (x)")
    finally:
        conn.close()
