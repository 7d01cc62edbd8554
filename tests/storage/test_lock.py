"""The one-writer rule: an exclusive flock on `<db>.lock`, naming the holder's pid."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from thengine.errors import EngineLocked, StorageError
from thengine.storage.lock import EngineLock

ROOT = Path(__file__).resolve().parents[2]

HOLDER = """
import sys
from thengine.storage.lock import EngineLock
lock = EngineLock.acquire(sys.argv[1])
print("locked", flush=True)
sys.stdin.readline()
"""


def test_acquire_writes_the_holder_pid_into_the_lock_file(db_path: Path) -> None:
    with EngineLock.acquire(db_path) as lock:
        assert lock.path == f"{db_path}.lock"
        assert Path(lock.path).read_text() == f"{os.getpid()}\n"


def test_a_second_acquire_fails_naming_the_holder_pid(db_path: Path) -> None:
    with EngineLock.acquire(db_path):
        with pytest.raises(EngineLocked) as info:
            EngineLock.acquire(db_path)
    assert str(info.value) == (
        f"{db_path} is in use by another engine (pid {os.getpid()}); "
        "stop it first, or use a read-only command"
    )


def test_release_lets_the_next_engine_in(db_path: Path) -> None:
    first = EngineLock.acquire(db_path)
    first.release()
    assert not first.held
    first.release()  # again: nothing happens
    with EngineLock.acquire(db_path) as second:
        assert second.held


def test_leaving_the_with_block_releases_the_lock(db_path: Path) -> None:
    with EngineLock.acquire(db_path) as lock:
        pass
    assert not lock.held
    EngineLock.acquire(db_path).release()


def test_a_lock_file_in_a_missing_directory_is_a_storage_error(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="cannot create the lock file"):
        EngineLock.acquire(tmp_path / "nowhere" / "hunts.db")


def test_a_sigkilled_holder_never_leaves_a_stale_lock(db_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(db_path)],
        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "locked\n"
        with pytest.raises(EngineLocked, match=f"\\(pid {holder.pid}\\)"):
            EngineLock.acquire(db_path)
        holder.send_signal(signal.SIGKILL)
        assert holder.wait() == -signal.SIGKILL
    finally:
        holder.kill()
        holder.wait()
        assert holder.stdin is not None and holder.stdout is not None
        holder.stdin.close()
        holder.stdout.close()
    with EngineLock.acquire(db_path) as lock:
        assert Path(lock.path).read_text() == f"{os.getpid()}\n"
