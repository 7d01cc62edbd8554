"""A `-wal` file deleted (or replaced) under a writer is noticed at the next write, and
what it held is saved into the database first: `Store.watch_wal` / `check_wal`."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.storage.rows import event
from thengine.errors import StorageError
from thengine.storage.store import Batch, Store


def visible(path: Path) -> list[int]:
    """What a fresh reader sees in the log."""
    with Store.open(path, readonly=True) as reader:
        return [e.seq for e in reader.read_events()]


def test_writes_pass_the_check_while_the_wal_is_the_one_watched(store: Store, db_path: Path) -> None:
    store.watch_wal()
    for seq in range(1, 4):
        store.write(Batch(events=[event(seq)]))
    store.check_wal()
    assert visible(db_path) == [1, 2, 3]


def test_a_deleted_wal_fails_the_next_write_and_what_it_held_is_saved(store: Store, db_path: Path) -> None:
    store.watch_wal()
    store.write(Batch(events=[event(1)]))
    os.remove(f"{db_path}-wal")
    with pytest.raises(StorageError) as caught:
        store.write(Batch(events=[event(2)]))  # committed into the deleted file: must not be acknowledged
    message = str(caught.value)
    assert f"{db_path}-wal was deleted" in message and "everything committed is saved" in message
    # Read while the writer is still open (no close-time checkpoint has helped yet):
    # both events are in the database file itself.
    assert visible(db_path) == [1, 2]


def test_a_replaced_wal_is_noticed_too(store: Store, db_path: Path) -> None:
    store.watch_wal()
    store.write(Batch(events=[event(1)]))
    wal = Path(f"{db_path}-wal")
    wal.unlink()
    wal.write_bytes(b"")  # e.g. another process opened the database and made a new, empty one
    with pytest.raises(StorageError, match="-wal was replaced by another file"):
        store.check_wal()


def test_a_store_that_watches_nothing_never_fails_the_check(store: Store, db_path: Path) -> None:
    store.write(Batch(events=[event(1)]))
    os.remove(f"{db_path}-wal")
    store.check_wal()  # not watched (tools, tests): nothing to say
