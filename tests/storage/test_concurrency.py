"""Readers and the writer in different processes: WAL lets them run side by side."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.storage.rows import event
from thengine.storage.store import Batch, Store

ROOT = Path(__file__).resolve().parents[2]

# A writer process: commits seq 1..2, then holds a write transaction with seq 3 and 4
# inserted but not committed, until told to go on.
WRITER = """
import sys
from thengine.storage.store import Batch, Store
from tests.storage.rows import event
store = Store.open(sys.argv[1])
store.write(Batch(events=[event(1), event(2)]))
store.conn.execute("BEGIN IMMEDIATE")
store.conn.executemany("INSERT INTO events VALUES (?, 'h', ?, 't', 0, '{}', NULL, 1)", [(3, 3), (4, 4)])
print("holding", flush=True)
sys.stdin.readline()
store.conn.execute("COMMIT")
print("committed", flush=True)
sys.stdin.readline()
store.close()
"""


@pytest.fixture
def writer(db_path: Path) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(db_path)],
        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "holding\n"
        yield proc
    finally:
        proc.kill()
        proc.wait()
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.close()
        proc.stdout.close()


def go_on(proc: subprocess.Popen[str], expect: str) -> None:
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write("\n")
    proc.stdin.flush()
    assert proc.stdout.readline() == expect


def test_a_reader_reads_committed_events_while_another_process_holds_a_write_transaction(
    db_path: Path, writer: subprocess.Popen[str]
) -> None:
    with Store.open(db_path, readonly=True) as reader:
        assert [e.seq for e in reader.read_events()] == [1, 2]
        assert reader.last_seq() == 2
        go_on(writer, "committed\n")
        assert [e.seq for e in reader.read_events()] == [1, 2, 3, 4]


def test_a_reader_opened_after_the_writer_closed_still_reads_everything(db_path: Path) -> None:
    with Store.open(db_path) as store:
        store.write(Batch(events=[event(1)]))
    with Store.open(db_path, readonly=True) as reader:
        assert [e.seq for e in reader.read_events()] == [1]
