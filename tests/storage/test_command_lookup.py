"""Command records found by id (for ids that left the engine's memory), and the newest
records read at open."""

from __future__ import annotations

from pathlib import Path

import apsw

from tests.storage.rows import T0, command
from thengine.storage.migrations import MIGRATIONS, migrate
from thengine.storage.store import Batch, Store


def test_find_commands_gives_the_record_of_each_id_in_the_window(store: Store) -> None:
    store.write(Batch(commands=[command("k1", ts=T0, first_seq=3, last_seq=4), command("k2", ts=T0 + 1)]))
    assert store.find_commands(["k1", "nope", "k2"], T0) == {
        "k1": command("k1", ts=T0, first_seq=3, last_seq=4), "k2": command("k2", ts=T0 + 1)}


def test_find_commands_ignores_records_older_than_the_window(store: Store) -> None:
    store.write(Batch(commands=[command("k1", ts=T0)]))
    assert store.find_commands(["k1"], T0 + 1) == {}


def test_find_commands_gives_the_newest_record_of_an_id_used_again_after_its_window(store: Store) -> None:
    store.write(Batch(commands=[command("k1", ts=T0, first_seq=1), command("k1", ts=T0 + 9, first_seq=7)]))
    assert store.find_commands(["k1"], 0)["k1"].first_seq == 7


def test_find_commands_goes_through_the_command_id_index(store: Store) -> None:
    plan = store.conn.execute("EXPLAIN QUERY PLAN SELECT * FROM commands WHERE command_id = ?", ("k",)).fetchall()
    assert "commands_command_id" in plan[0][3]


def test_recent_commands_gives_the_newest_oldest_first_and_the_newest_left_out(store: Store) -> None:
    store.write(Batch(commands=[command(f"k{i}", ts=T0 + i) for i in range(6)]))
    records, left_out = store.recent_commands(T0 + 1, 3)
    assert [r.command_id for r in records] == ["k3", "k4", "k5"]
    assert left_out == command("k2", ts=T0 + 2)


def test_recent_commands_leaves_nothing_out_when_the_window_fits(store: Store) -> None:
    store.write(Batch(commands=[command(f"k{i}", ts=T0 + i) for i in range(3)]))
    records, left_out = store.recent_commands(T0, 3)
    assert [r.command_id for r in records] == ["k0", "k1", "k2"]
    assert left_out is None


def test_schema_3_indexes_the_command_records_of_an_older_database(db_path: Path) -> None:
    conn = apsw.Connection(str(db_path))
    migrate(conn, MIGRATIONS[:2])
    conn.execute("INSERT INTO commands VALUES ('old', 'fp', 'h', 1, 1, ?)", (T0,))
    conn.close()
    with Store.open(db_path) as store:
        assert store.find_commands(["old"], T0) == {
            "old": command("old", ts=T0)._replace(fingerprint="fp")}


def test_prune_commands_with_a_limit_forgets_the_oldest_first(store: Store) -> None:
    store.write(Batch(commands=[command(f"k{i}", ts=T0 + 4 - i) for i in range(5)]))  # written newest first
    assert store.prune_commands(T0 + 3, limit=2) == 2
    assert sorted(c.command_id for c in store.load_commands(0)) == ["k0", "k1", "k2"]
    assert store.prune_commands(T0 + 3, limit=2) == 1
    assert sorted(c.command_id for c in store.load_commands(0)) == ["k0", "k1"]
