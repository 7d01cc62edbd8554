"""A failed write raises StorageError, leaves nothing of its batch visible, and the
Store keeps working: with a tiny fake connection and with real I/O faults."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import apsw
import pytest

from tests.storage.faults import FaultyVFS, faulty_vfs
from tests.storage.rows import T0, command, event, interleaved
from thengine.errors import StorageError
from thengine.storage.store import Batch, Store


class FailingOnCommands:
    """Wraps a real connection; inserting command records fails like a full disk."""

    def __init__(self, conn: apsw.Connection) -> None:
        self._conn = conn

    def execute(self, sql: str, bindings: Any = None) -> Any:
        if sql.startswith("INSERT INTO commands"):
            raise apsw.FullError("database or disk is full")
        return self._conn.execute(sql, bindings)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


def visible(path: Path) -> list[int]:
    """What a fresh reader sees in the log."""
    with Store.open(path, readonly=True) as reader:
        return [e.seq for e in reader.read_events()]


def test_a_fault_midway_through_a_batch_rolls_all_of_it_back(store: Store, db_path: Path) -> None:
    real = store.conn
    store.conn = FailingOnCommands(real)  # type: ignore[assignment]
    with pytest.raises(StorageError, match=f"^{db_path}: writing a batch of 2 events failed: .*disk is full") as info:
        store.write(Batch(events=[event(1), event(2)], commands=[command("k", ts=T0, last_seq=2)]))
    assert isinstance(info.value.__cause__, apsw.FullError)
    assert not real.in_transaction
    assert visible(db_path) == []
    store.conn = real
    store.write(Batch(events=[event(1), event(2)]))
    assert visible(db_path) == [1, 2]


@pytest.fixture
def vfs() -> Iterator[FaultyVFS]:
    with faulty_vfs() as registered:
        yield registered


@pytest.fixture
def faulty_store(db_path: Path, vfs: FaultyVFS) -> Iterator[Store]:
    with Store.open(db_path, vfs=vfs.name) as opened:
        opened.write(Batch(events=[event(1)]))
        yield opened


def test_an_io_error_writing_the_wal_fails_the_batch_and_hides_it(
    faulty_store: Store, vfs: FaultyVFS, db_path: Path
) -> None:
    vfs.fail(op="xWrite", file_suffix="-wal", after=3)  # partway through the batch's pages
    expected = "writing a batch of 500 events failed: injected fault: xWrite on .*-wal$"
    with pytest.raises(StorageError, match=expected) as info:
        faulty_store.write(Batch(events=interleaved(["h2", "h3"], 250, first_seq=2)))
    assert isinstance(info.value.__cause__, apsw.IOError)
    assert vfs.faults >= 1
    assert not faulty_store.conn.in_transaction
    assert faulty_store.last_seq() == 1
    assert visible(db_path) == [1]


def test_the_store_works_again_once_the_io_error_clears(faulty_store: Store, vfs: FaultyVFS, db_path: Path) -> None:
    vfs.fail(op="xWrite", file_suffix="-wal")
    with pytest.raises(StorageError):
        faulty_store.write(Batch(events=[event(2), event(3)]))
    vfs.heal()
    faulty_store.write(Batch(events=[event(2), event(3)]))
    assert [e.seq for e in faulty_store.read_events()] == [1, 2, 3]
    assert visible(db_path) == [1, 2, 3]


def test_a_failed_fsync_of_the_wal_fails_the_batch(faulty_store: Store, vfs: FaultyVFS, db_path: Path) -> None:
    vfs.fail(op="xSync", file_suffix="-wal", sticky=False)
    with pytest.raises(StorageError, match="injected fault: xSync") as info:
        faulty_store.write(Batch(events=[event(2)]))
    assert isinstance(info.value.__cause__, apsw.IOError)
    assert faulty_store.last_seq() == 1
    assert visible(db_path) == [1]
    faulty_store.write(Batch(events=[event(2)]))
    assert visible(db_path) == [1, 2]


def test_disk_full_fails_the_batch_with_a_storage_error(faulty_store: Store, vfs: FaultyVFS) -> None:
    vfs.fail(op="xWrite", file_suffix="-wal", error=apsw.FullError)
    with pytest.raises(StorageError, match="injected fault: xWrite") as info:
        faulty_store.write(Batch(events=[event(2)]))
    assert isinstance(info.value.__cause__, apsw.FullError)
    vfs.heal()
    assert faulty_store.last_seq() == 1
