"""A database that cannot be written: what only reads works, and what must write names the cause.

The tests run as root in CI, and root ignores file modes, so a file is made read-only
with `chattr +i` (immutable) when running as root, and with chmod otherwise.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import apsw
import pytest
import trio

from thengine import open_engine
from thengine.errors import StorageError
from thengine.tokens import verify

from .helpers_admin import invoke
from .helpers_replay import assert_error
from .test_admin import secret_of

ROOT = Path(__file__).resolve().parents[2]
READ_ONLY = "the database is read-only (attempt to write a readonly database)"


@contextmanager
def read_only(path: Path) -> Iterator[None]:
    """`path` (a file or a directory) cannot be written, even by root, until the block ends."""
    if os.geteuid() == 0:
        if shutil.which("chattr") is None:
            pytest.skip("running as root without chattr: cannot make a file read-only")
        made = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True)
        if made.returncode != 0:
            pytest.skip(f"chattr +i is not supported here: {made.stderr.strip()}")
        try:
            yield
        finally:
            subprocess.run(["chattr", "-i", str(path)], check=True)
    else:
        mode = path.stat().st_mode
        path.chmod(0o555 if path.is_dir() else 0o444)
        try:
            yield
        finally:
            path.chmod(mode)


def init_db(path: Path, *, secret: bool = True) -> Path:
    assert invoke("init", path).exit_code == 0
    if not secret:
        conn = apsw.Connection(str(path))
        try:
            conn.execute("DELETE FROM meta WHERE key = 'token_secret'")
        finally:
            conn.close()  # the last connection: all of it in the file, no -wal left
    assert not Path(f"{path}-wal").exists()
    return path


def serve(db: Path) -> subprocess.CompletedProcess[str]:
    """`thengine serve DB` in a subprocess (it must refuse at once, before serving)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, "-m", "thengine", "serve", str(db), "--listen", "127.0.0.1:0"],
                          capture_output=True, text=True, timeout=60, env=env)


def test_serve_on_a_read_only_database_names_the_real_cause(tmp_path: Path) -> None:
    db = init_db(tmp_path / "hunts.db")
    with read_only(db):
        done = serve(db)
    assert done.returncode == 1, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"thengine: error: {db}: "), lines
    assert READ_ONLY in lines[0] and "token secret" not in lines[0]


def test_token_on_a_read_only_database_that_has_a_secret_issues_one(tmp_path: Path) -> None:
    db = init_db(tmp_path / "hunts.db")
    with read_only(db):
        result = invoke("token", db, "--role", "admin")
    assert result.exit_code == 0, result.stderr
    claims = verify(secret_of(db), result.stdout.strip(), now_s=int(time.time()))
    assert claims.role == "admin"


def test_token_on_a_read_only_database_without_a_secret_names_the_real_cause(tmp_path: Path) -> None:
    db = init_db(tmp_path / "hunts.db", secret=False)
    with read_only(db):
        result = invoke("token", db, "--role", "admin")
    assert_error(result, 1, str(db), "making the token secret failed", READ_ONLY)


def test_rotating_the_secret_of_a_read_only_database_names_the_real_cause(tmp_path: Path) -> None:
    db = init_db(tmp_path / "hunts.db")
    with read_only(db):
        result = invoke("token", db, "--rotate-secret")
    assert_error(result, 1, str(db), "rotating the token secret failed", READ_ONLY)


def test_an_engine_refuses_a_read_only_database_at_once(tmp_path: Path) -> None:
    db = init_db(tmp_path / "hunts.db")

    async def open_it() -> None:
        async with open_engine(str(db)):
            pass

    with read_only(db), pytest.raises(StorageError) as caught:
        trio.run(open_it)
    assert str(caught.value).startswith(f"{db}: starting an engine failed: {READ_ONLY}")


def test_serve_in_a_directory_that_cannot_be_written_says_so(tmp_path: Path) -> None:
    directory = tmp_path / "data"
    directory.mkdir()
    db = init_db(directory / "hunts.db")  # closed cleanly: SQLite must make a new -wal and -shm
    with read_only(directory):
        done = serve(db)
    assert done.returncode in (1, 2), done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and str(db) in lines[0], lines
    assert "can its directory be written?" in lines[0]
