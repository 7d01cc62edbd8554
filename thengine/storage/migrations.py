"""Schema migrations: numbered SQL files, tracked with `PRAGMA user_version`.

The files live in the top-level `migrations/` directory (`0001_initial.sql`, ...).
A wheel ships them as `thengine/_migrations`; a checkout or editable install reads
them from the repository. Each file is applied in its own transaction together with
the new `user_version`, so a database is always at exactly one schema version.

A database whose version is newer than the newest file here was written by a newer
thengine, and is refused (`SchemaTooNew`) rather than misread.
"""

from __future__ import annotations

import importlib.resources
import re
from importlib.resources.abc import Traversable
from pathlib import Path

import apsw

from thengine.errors import SchemaTooNew, StorageError

PACKAGED_DIR = "_migrations"
FALLBACK_DIR = Path(__file__).resolve().parents[2] / "migrations"
REQUIRED_TABLES = frozenset({"events", "snapshots", "commands", "timers", "meta"})

_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


def migrations_dir(
    packaged: Traversable | None = None, fallback: Traversable | None = None
) -> Traversable:
    """Where the migration files are: inside the installed package, else the checkout."""
    if packaged is None:
        packaged = importlib.resources.files("thengine") / PACKAGED_DIR
    if packaged.is_dir():
        return packaged
    if fallback is None:
        fallback = FALLBACK_DIR
    if fallback.is_dir():
        return fallback
    raise StorageError(f"thengine is installed without its migrations (looked in {packaged} and {fallback})")


def migration_files(directory: Traversable | None = None) -> list[tuple[int, str, str]]:
    """Every migration as `(number, file name, sql)`, in order.

    Numbers must run 1, 2, 3... without gaps or duplicates; anything else is a
    packaging mistake and fails loudly.
    """
    if directory is None:
        directory = migrations_dir()
    found = []
    for entry in directory.iterdir():
        match = _FILE_NAME.match(entry.name)
        if match is None:
            continue
        found.append((int(match.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    found.sort()
    numbers = [number for number, _, _ in found]
    if numbers != list(range(1, len(found) + 1)):
        raise StorageError(f"migration files in {directory} must be numbered 1, 2, 3...; found {numbers}")
    return found


MIGRATIONS = migration_files()
SCHEMA_VERSION = MIGRATIONS[-1][0]


def user_version(conn: apsw.Connection) -> int:
    """The schema version recorded in the database (0: never initialised)."""
    version = conn.execute("PRAGMA user_version").fetchall()[0][0]
    assert isinstance(version, int)
    return version


def _tables(conn: apsw.Connection) -> set[str]:
    rows = conn.execute("SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
    return {name for (name,) in rows}


def _refuse_if_too_new(conn: apsw.Connection, version: int, newest: int) -> None:
    if version > newest:
        raise SchemaTooNew(
            f"{conn.filename}: schema version {version} is newer than this thengine "
            f"({newest}); upgrade thengine"
        )


def migrate(conn: apsw.Connection, migrations: list[tuple[int, str, str]] | None = None) -> int:
    """Apply every pending migration, each in its own transaction. Returns the new version.

    Safe to run concurrently from two processes: the version is re-read once the
    write lock is held, so a migration is never applied twice.

    Raises:
        SchemaTooNew: the database was written by a newer thengine.
        StorageError: a migration failed (nothing of it is applied), or the file is a
            SQLite database belonging to something else.
    """
    if migrations is None:
        migrations = MIGRATIONS
    newest = migrations[-1][0] if migrations else 0
    path = conn.filename
    try:
        version = user_version(conn)
        _refuse_if_too_new(conn, version, newest)
        for number, name, sql in migrations:
            if number <= version:
                continue
            conn.execute("BEGIN IMMEDIATE")
            try:
                version = user_version(conn)  # another process may have migrated meanwhile
                _refuse_if_too_new(conn, version, newest)
                if version == 0 and number == 1 and _tables(conn):
                    raise StorageError(
                        f"{path} is not a thengine database: it has tables but no thengine schema"
                    )
                if version < number:
                    conn.execute(sql)
                    conn.execute(f"PRAGMA user_version = {number:d}")
                conn.execute("COMMIT")
            except apsw.Error as exc:
                _rollback(conn)
                raise StorageError(f"{path}: migration {name} failed: {exc}") from exc
            except BaseException:
                _rollback(conn)
                raise
            version = user_version(conn)
    except apsw.Error as exc:
        raise StorageError(f"{path}: cannot migrate: {exc}") from exc
    _refuse_if_too_new(conn, version, newest)
    return version


def check_schema(conn: apsw.Connection) -> int:
    """Check that a database can be read by this thengine without migrating it.

    For read-only users (replay, events, stats, backup), which must not change the file.

    Raises:
        SchemaTooNew: the database was written by a newer thengine.
        StorageError: the database is not initialised, or is older than this thengine.
    """
    path = conn.filename
    try:
        version = user_version(conn)
        tables = _tables(conn)
    except (apsw.Error, UnicodeDecodeError) as exc:  # (a table name that is not UTF-8: a corrupted page)
        raise StorageError(f"{path}: cannot read the schema (corrupted file?): {exc}") from exc
    _refuse_if_too_new(conn, version, SCHEMA_VERSION)
    if version == 0 or not REQUIRED_TABLES <= tables:
        raise StorageError(f"{path} is not initialised; run `thengine init`")
    if version < SCHEMA_VERSION:
        raise StorageError(
            f"{path}: schema version {version} is older than this thengine ({SCHEMA_VERSION}); "
            "run `thengine init` to migrate it"
        )
    return version


def _rollback(conn: apsw.Connection) -> None:
    if conn.in_transaction:
        conn.execute("ROLLBACK")
