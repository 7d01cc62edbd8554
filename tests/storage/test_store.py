from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import apsw
import pytest

from tests.storage.rows import T0, command, event, interleaved, snapshot
from thengine.domain.events import StoredEvent
from thengine.errors import StorageError
from thengine.storage.migrations import SCHEMA_VERSION
from thengine.storage.store import Batch, CommandRecord, EventRow, Store


def seqs(events: object) -> list[int]:
    return [e.seq for e in events]  # type: ignore[attr-defined]


# -- opening ----------------------------------------------------------------------


def test_open_creates_and_initialises_a_new_database(db_path: Path) -> None:
    with Store.open(db_path) as store:
        assert store.path == str(db_path)
        assert not store.readonly
        assert store.stats()["schema_version"] == SCHEMA_VERSION
        assert store.last_seq() == 0


def test_readonly_store_refuses_writes_with_a_storage_error(db_path: Path) -> None:
    Store.open(db_path).close()
    with Store.open(db_path, readonly=True) as store:
        with pytest.raises(StorageError, match="open read-only"):
            store.write(Batch(events=[event(1)]))
        assert store.last_seq() == 0


def test_close_twice_is_harmless(db_path: Path) -> None:
    store = Store.open(db_path)
    store.close()
    store.close()


# -- writing ----------------------------------------------------------------------


def test_write_stores_every_part_of_a_batch(store: Store) -> None:
    store.write(Batch(
        events=[event(1, command_id="c1"), event(2, command_id="c1")],
        commands=[command("c1", ts=T0, first_seq=1, last_seq=2)],
        snapshots=[snapshot("h", 2)],
        timers_set=[("h", "end", T0 + 60_000)],
    ))
    assert seqs(store.read_events()) == [1, 2]
    assert store.conn.execute("SELECT command_id FROM events ORDER BY seq").fetchall() == [("c1",), ("c1",)]
    assert list(store.load_commands(0)) == [command("c1", ts=T0, first_seq=1, last_seq=2)]
    assert list(store.snapshots()) == [snapshot("h", 2)]
    assert store.timers() == [("h", "end", T0 + 60_000)]


def test_a_batch_is_atomic_when_a_row_violates_unique_hunt_version(store: Store) -> None:
    store.write(Batch(events=[event(1, "h", 1)]))
    clashing = Batch(
        events=[event(2, "h", 2), event(3, "h", 2), event(4, "h", 3)],  # version 2 twice
        commands=[command("c", ts=T0, first_seq=2, last_seq=4)],
        timers_set=[("h", "end", T0)],
    )
    unique = r"writing a batch of 3 events failed: .*UNIQUE constraint failed: events\.hunt_id, events\.version"
    with pytest.raises(StorageError, match=unique) as info:
        store.write(clashing)
    assert isinstance(info.value.__cause__, apsw.ConstraintError)
    assert not store.conn.in_transaction
    assert seqs(store.read_events()) == [1]
    assert list(store.load_commands(0)) == []
    assert store.timers() == []


def test_a_batch_reusing_a_seq_is_refused(store: Store) -> None:
    store.write(Batch(events=[event(1, "h", 1)]))
    with pytest.raises(StorageError, match="UNIQUE constraint failed: events.seq"):
        store.write(Batch(events=[event(1, "other", 1)]))
    assert store.hunt_ids() == ["h"]


def test_a_value_of_the_wrong_type_is_refused_not_stored(store: Store) -> None:
    bad = EventRow(seq=1, hunt_id="h", version=1, type="t", ts="yesterday", data="{}", command_id=None)  # type: ignore[arg-type]
    with pytest.raises(StorageError, match="cannot store TEXT value in INTEGER column events.ts"):
        store.write(Batch(events=[bad]))
    assert store.last_seq() == 0


def test_the_store_is_usable_after_a_failed_batch(store: Store) -> None:
    with pytest.raises(StorageError):
        store.write(Batch(events=[event(1, "h", 1), event(2, "h", 1)]))
    store.write(Batch(events=[event(1, "h", 1), event(2, "h", 2)]))
    assert seqs(store.read_events()) == [1, 2]


def test_an_empty_batch_writes_nothing(store: Store) -> None:
    store.write(Batch())
    assert store.stats()["events"] == 0


# -- reading the log ----------------------------------------------------------------


@pytest.fixture
def log(store: Store) -> Store:
    """Three hunts, ten events each, round robin: seq 1..30."""
    store.write(Batch(events=interleaved(["a", "b", "c"], 10)))
    return store


def test_read_events_returns_stored_events_in_seq_order(log: Store) -> None:
    events = list(log.read_events())
    assert seqs(events) == list(range(1, 31))
    assert events[0] == StoredEvent(seq=1, hunt_id="a", version=1, type="player_joined", ts=T0 + 1,
                                    data={"player_id": "p1"})


def test_read_events_after_seq_excludes_that_seq(log: Store) -> None:
    assert seqs(log.read_events(after_seq=27)) == [28, 29, 30]


def test_read_events_until_seq_includes_that_seq(log: Store) -> None:
    assert seqs(log.read_events(until_seq=3)) == [1, 2, 3]


def test_read_events_limit_caps_the_count(log: Store) -> None:
    assert seqs(log.read_events(after_seq=10, limit=4)) == [11, 12, 13, 14]


def test_read_events_of_one_hunt(log: Store) -> None:
    events = list(log.read_events(hunt_id="b", after_seq=10, until_seq=26))
    assert seqs(events) == [11, 14, 17, 20, 23, 26]
    assert {e.hunt_id for e in events} == {"b"}
    assert [e.version for e in events] == [4, 5, 6, 7, 8, 9]


def test_read_events_of_one_hunt_with_limit(log: Store) -> None:
    assert seqs(log.read_events(hunt_id="c", limit=2)) == [3, 6]


def test_read_events_pages_through_a_log_longer_than_a_page(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("thengine.storage.store.PAGE_SIZE", 4)
    store.write(Batch(events=interleaved(["a", "b"], 9)))
    assert seqs(store.read_events()) == list(range(1, 19))
    assert seqs(store.read_events(limit=10)) == list(range(1, 11))
    assert seqs(store.read_events(hunt_id="b")) == list(range(2, 19, 2))
    assert [e.version for e in store.read_hunt_events("a", after_version=2)] == list(range(3, 10))


def test_read_events_sees_events_committed_while_it_is_paused(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("thengine.storage.store.PAGE_SIZE", 2)
    store.write(Batch(events=[event(1), event(2), event(3)]))
    reader = store.read_events()
    assert next(reader).seq == 1
    store.write(Batch(events=[event(4), event(5)]))  # no statement is held open meanwhile
    assert seqs(reader) == [2, 3, 4, 5]


def test_read_hunt_events_after_version_and_until_seq(log: Store) -> None:
    events = list(log.read_hunt_events("a", after_version=7, until_seq=25))
    assert [(e.version, e.seq) for e in events] == [(8, 22), (9, 25)]


def test_read_hunt_events_of_an_unknown_hunt_is_empty(log: Store) -> None:
    assert list(log.read_hunt_events("nope")) == []


def test_events_in_range_is_inclusive(log: Store) -> None:
    assert seqs(log.events_in_range(5, 7)) == [5, 6, 7]
    assert log.events_in_range(31, 40) == []


def test_event_data_round_trips_as_json(store: Store) -> None:
    data: dict[str, Any] = {"player_id": "p1", "answer": "Fontäne ✓", "attempts": 3, "nested": {"x": [1, None, True]}}
    store.write(Batch(events=[event(1, **data)]))
    [stored] = store.read_events()
    assert stored.data == data
    [(text,)] = store.conn.execute("SELECT data FROM events").fetchall()
    assert isinstance(text, str) and json.loads(text) == data


def test_last_seq(log: Store) -> None:
    assert log.last_seq() == 30


def test_hunt_heads_give_last_version_and_its_seq(log: Store) -> None:
    log.write(Batch(events=[event(31, "b", 11)]))
    assert log.hunt_heads() == {"a": (10, 28), "b": (11, 31), "c": (10, 30)}


def test_hunt_heads_of_an_empty_log_is_empty(store: Store) -> None:
    assert store.hunt_heads() == {}
    assert store.hunt_ids() == []


def test_hunt_ids_are_sorted_and_distinct(store: Store) -> None:
    store.write(Batch(events=interleaved(["zeta", "alpha", "mid"], 3)))
    assert store.hunt_ids() == ["alpha", "mid", "zeta"]


# -- snapshots ----------------------------------------------------------------------


@pytest.fixture
def snapshotted(store: Store) -> Store:
    store.write(Batch(snapshots=[snapshot("a", v, seq=v * 10) for v in (5, 10, 15)] + [snapshot("b", 7, seq=71)]))
    return store


def test_latest_snapshot_is_the_highest_version(snapshotted: Store) -> None:
    assert snapshotted.latest_snapshot("a") == snapshot("a", 15, seq=150)


def test_latest_snapshot_at_or_before_max_seq(snapshotted: Store) -> None:
    assert snapshotted.latest_snapshot("a", max_seq=149) == snapshot("a", 10, seq=100)
    assert snapshotted.latest_snapshot("a", max_seq=100) == snapshot("a", 10, seq=100)
    assert snapshotted.latest_snapshot("a", max_seq=49) is None


def test_latest_snapshot_of_a_hunt_without_one_is_none(snapshotted: Store) -> None:
    assert snapshotted.latest_snapshot("c") is None


def test_a_snapshot_at_the_same_version_replaces_the_old_one(snapshotted: Store) -> None:
    snapshotted.write(Batch(snapshots=[snapshot("b", 7, seq=71, state=b"new")]))
    assert [s.state for s in snapshotted.snapshots("b")] == [b"new"]


def test_snapshots_are_listed_by_hunt_then_version(snapshotted: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("thengine.storage.store.SNAPSHOT_PAGE_SIZE", 2)
    assert [(s.hunt_id, s.version) for s in snapshotted.snapshots()] == [("a", 5), ("a", 10), ("a", 15), ("b", 7)]
    assert [s.version for s in snapshotted.snapshots("a")] == [5, 10, 15]


def test_snapshot_state_is_bytes(snapshotted: Store) -> None:
    snapshotted.write(Batch(snapshots=[snapshot("c", 1, state=bytes(range(256)) * 1000)]))
    latest = snapshotted.latest_snapshot("c")
    assert latest is not None and latest.state == bytes(range(256)) * 1000


def test_prune_snapshots_keeps_the_newest_per_hunt(snapshotted: Store) -> None:
    assert snapshotted.prune_snapshots(keep=2) == 1
    assert [(s.hunt_id, s.version) for s in snapshotted.snapshots()] == [("a", 10), ("a", 15), ("b", 7)]


def test_prune_snapshots_keep_one(snapshotted: Store) -> None:
    snapshotted.prune_snapshots(keep=1)
    assert [(s.hunt_id, s.version) for s in snapshotted.snapshots()] == [("a", 15), ("b", 7)]


def test_delete_snapshots_of_one_hunt(snapshotted: Store) -> None:
    assert snapshotted.delete_snapshots("a") == 3
    assert [(s.hunt_id, s.version) for s in snapshotted.snapshots()] == [("b", 7)]


def test_delete_all_snapshots(snapshotted: Store) -> None:
    assert snapshotted.delete_snapshots() == 4
    assert list(snapshotted.snapshots()) == []


# -- command records ------------------------------------------------------------------


def test_load_commands_since_ts_in_write_order(store: Store) -> None:
    store.write(Batch(commands=[command("old", ts=T0 - 1), command("k2", ts=T0), command("k1", ts=T0 + 5)]))
    assert [c.command_id for c in store.load_commands(T0)] == ["k2", "k1"]


def test_load_commands_pages_through_many(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("thengine.storage.store.PAGE_SIZE", 3)
    store.write(Batch(commands=[command(f"k{i}", ts=T0 + i) for i in range(10)]))
    assert [c.command_id for c in store.load_commands(T0 + 2)] == [f"k{i}" for i in range(2, 10)]


def test_load_commands_returns_every_field(store: Store) -> None:
    record = CommandRecord(command_id="req-1", fingerprint="abc", hunt_id="h", first_seq=4, last_seq=6, ts=T0)
    store.write(Batch(commands=[record]))
    assert list(store.load_commands(0)) == [record]


def test_prune_commands_forgets_those_before_ts(store: Store) -> None:
    store.write(Batch(commands=[command(f"k{i}", ts=T0 + i) for i in range(5)]))
    assert store.prune_commands(T0 + 3) == 3
    assert [c.command_id for c in store.load_commands(0)] == ["k3", "k4"]


# -- timers and meta ----------------------------------------------------------------


def test_timers_set_upserts_by_hunt_and_kind(store: Store) -> None:
    store.write(Batch(timers_set=[("h", "end", T0 + 10)]))
    store.write(Batch(timers_set=[("h", "end", T0 + 20), ("h", "start", T0 + 5)]))
    assert store.timers() == [("h", "start", T0 + 5), ("h", "end", T0 + 20)]


def test_timers_deleted_removes_only_that_timer(store: Store) -> None:
    store.write(Batch(timers_set=[("h", "start", T0), ("h", "end", T0 + 1), ("g", "start", T0)]))
    store.write(Batch(timers_deleted=[("h", "start"), ("nope", "end")]))
    assert store.timers() == [("g", "start", T0), ("h", "end", T0 + 1)]


def test_timers_are_ordered_by_due_then_hunt_then_kind(store: Store) -> None:
    store.write(Batch(timers_set=[("b", "end", T0), ("a", "start", T0 + 1), ("a", "start2", T0), ("a", "end", T0)]))
    assert store.timers() == [("a", "end", T0), ("a", "start2", T0), ("b", "end", T0), ("a", "start", T0 + 1)]


def test_a_timer_set_and_deleted_in_one_batch_is_deleted(store: Store) -> None:
    store.write(Batch(timers_set=[("h", "end", T0)], timers_deleted=[("h", "end")]))
    assert store.timers() == []


def test_meta_get_set_and_replace(store: Store) -> None:
    assert store.get_meta("token_secret") is None
    store.set_meta("token_secret", "s1")
    store.set_meta("token_secret", "s2")
    assert store.get_meta("token_secret") == "s2"


# -- stats and backup ---------------------------------------------------------------


def test_stats_counts_everything(store: Store) -> None:
    store.write(Batch(
        events=interleaved(["a", "b"], 3),
        commands=[command("k", ts=T0)],
        snapshots=[snapshot("a", 3)],
        timers_set=[("a", "end", T0), ("b", "end", T0)],
    ))
    stats = store.stats()
    assert {k: stats[k] for k in ("events", "hunts", "snapshots", "commands", "timers", "last_seq")} == {
        "events": 6, "hunts": 2, "snapshots": 1, "commands": 1, "timers": 2, "last_seq": 6,
    }
    assert stats["schema_version"] == SCHEMA_VERSION
    assert stats["db_bytes"] == os.path.getsize(store.path)
    assert stats["wal_bytes"] == os.path.getsize(store.path + "-wal") > 0


def test_backup_copies_everything_including_what_is_only_in_the_wal(store: Store, tmp_path: Path) -> None:
    store.conn.execute("PRAGMA wal_autocheckpoint = 0")  # keep every commit in the WAL
    store.write(Batch(events=interleaved(["a", "b"], 50), snapshots=[snapshot("a", 50, seq=99)],
                      commands=[command("k", ts=T0)], timers_set=[("a", "end", T0)]))
    store.set_meta("token_secret", "s")
    plain_copy = tmp_path / "plain-copy.db"
    shutil.copyfile(store.path, plain_copy)  # what a file copy gets: not even the schema
    with pytest.raises(StorageError, match="is not initialised"):
        Store.open(plain_copy, readonly=True)

    dest = tmp_path / "backup.db"
    store.backup_to(dest)

    assert not Path(f"{dest}-wal").exists()  # a single self-contained file
    with Store.open(dest, readonly=True) as copy:
        assert list(copy.read_events()) == list(store.read_events())
        assert list(copy.snapshots()) == list(store.snapshots())
        assert list(copy.load_commands(0)) == list(store.load_commands(0))
        assert copy.timers() == store.timers()
        assert copy.get_meta("token_secret") == "s"


def test_backup_taken_while_a_write_transaction_is_open_has_only_committed_data(db_path: Path, tmp_path: Path) -> None:
    with Store.open(db_path) as writer, Store.open(db_path, readonly=True) as reader:
        writer.write(Batch(events=[event(1), event(2)]))
        writer.conn.execute("BEGIN IMMEDIATE")
        writer.conn.execute("INSERT INTO events VALUES (3, 'h', 3, 't', 0, '{}', NULL, 1)")
        reader.backup_to(tmp_path / "copy.db")
        writer.conn.execute("ROLLBACK")
    with Store.open(tmp_path / "copy.db", readonly=True) as copy:
        assert seqs(copy.read_events()) == [1, 2]


def test_backup_refuses_to_overwrite_an_existing_file(store: Store, tmp_path: Path) -> None:
    dest = tmp_path / "precious.db"
    dest.write_bytes(b"keep me")
    with pytest.raises(StorageError, match="precious.db already exists; not overwriting it"):
        store.backup_to(dest)
    assert dest.read_bytes() == b"keep me"


def test_backup_into_a_missing_directory_is_a_storage_error(store: Store, tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="cannot create"):
        store.backup_to(tmp_path / "nowhere" / "copy.db")


def test_a_backup_opens_as_a_normal_writable_database(store: Store, tmp_path: Path) -> None:
    store.write(Batch(events=[event(1)]))
    store.backup_to(tmp_path / "copy.db")
    with Store.open(tmp_path / "copy.db") as copy:
        assert copy.conn.execute("PRAGMA journal_mode").fetchall() == [("wal",)]
        copy.write(Batch(events=[event(2)]))
        assert seqs(copy.read_events()) == [1, 2]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "^no database at {path}$"),
        (b"not a database" * 100, "^{path} is not a thengine database: "),
        (b"", "^{path} is not initialised; run `thengine init`$"),
    ],
    ids=["missing", "not-sqlite", "uninitialised"],
)
def test_readonly_open_explains_why_a_file_cannot_be_read(db_path: Path, content: bytes | None, message: str) -> None:
    if content is not None:
        db_path.write_bytes(content)
    with pytest.raises(StorageError, match=message.format(path=db_path)):
        Store.open(db_path, readonly=True)


def test_every_column_is_stored_exactly_as_given_whatever_the_text(store: Store) -> None:
    """Rows go in as one JSON array per batch: no text or number may change on the way."""
    texts = ['quote " and \\\\ backslash', "nul \x00 inside", "émoji 🗝️ and 漢字", "\u2028 line sep", "tab\tnew\nline", ""]
    rows = [EventRow(seq=n + 1, hunt_id=f"h{text}", version=1, type=f"t{text}", ts=-(2**62) + n,
                     data='{"k":"' + text.encode("unicode_escape").decode() + '"}', command_id=f"c{text}" or None)
            for n, text in enumerate(texts)]
    commands = [CommandRecord(command_id=f"c{text}", fingerprint=f"2:{text}", hunt_id=f"h{text}",
                              first_seq=n + 1, last_seq=2**62 + n, ts=2**63 - 1) for n, text in enumerate(texts)]
    store.write(Batch(events=rows, commands=commands))
    stored = store.conn.execute("SELECT seq, hunt_id, version, type, ts, data, command_id FROM events ORDER BY seq")
    assert [EventRow(*row) for row in stored] == rows
    assert sorted(store.load_commands(-(2**63))) == sorted(commands)
    assert store.conn.execute("SELECT typeof(seq), typeof(ts), typeof(data) FROM events LIMIT 1").fetchall() == [
        ("integer", "integer", "text")]
