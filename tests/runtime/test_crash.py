"""Crash trials: run a real engine in a subprocess under load, SIGKILL it, check the file.

Each trial runs `crash_worker.py` on a fresh database, reads the JSON line it prints
for every acknowledged command, kills it (``kill -9``) at a random moment, then runs
it again on the same file (a restart that also retries some of the first run's
commands with their command ids) and kills it again. After each kill the log is
checked read-only; after the last one the engine is reopened in this process.

What is checked, by promise (DESIGN.md):

1. every acknowledged command's events are in the log, exactly as acknowledged;
3. the state an engine rebuilds (latest snapshot + tail) equals a replay of the
   whole log from nothing, and so does the state after deleting every snapshot;
   every snapshot written equals the replay at its version;
5. ``seq`` is gapless 1..N and each hunt's versions are gapless 1..k;
7. an acknowledged command sent again with its command_id, by the restarted worker
   or after reopening, gets the same events and writes nothing.
"""

from __future__ import annotations

import json
import os
import queue
import random
import subprocess
import sys
import threading
import time
import zlib
from collections import defaultdict
from itertools import islice
from pathlib import Path
from typing import Any

import pytest
import trio

from thengine import JoinHunt, open_engine, parse_command
from thengine.domain.events import StoredEvent
from thengine.domain.rules import evolve
from thengine.domain.state import HuntState, to_snapshot
from thengine.storage.store import SnapshotRow, Store

from .crash_worker import setup_commands, task_stream

pytestmark = pytest.mark.slow

WORKER = Path(__file__).with_name("crash_worker.py")
ROOT = Path(__file__).resolve().parents[2]
SHARDS = 3
TASKS = 20
RETRY_COUNT = 30
STARTUP_TIMEOUT_S = 30.0
RESUBMIT_SAMPLE = 120

Ack = dict[str, Any]


# -- running the worker -----------------------------------------------------------------

def run_and_kill(db: Path, *, seed: int, kill_after: float, snapshot_every: int,
                 retry_seed: int | None = None) -> list[Ack]:
    """Run the worker on `db`, SIGKILL it `kill_after` s after its first ack, return every ack.

    An ack counts if its whole line (newline included) was written before the kill;
    the pipe keeps what was written, so lines are read to EOF after the kill. A worker
    that prints nothing for `STARTUP_TIMEOUT_S`, or exits on its own, fails the test.
    """
    argv = [sys.executable, str(WORKER), str(db), "--seed", str(seed), "--shards", str(SHARDS),
            "--tasks", str(TASKS), "--snapshot-every", str(snapshot_every)]
    if retry_seed is not None:
        argv += ["--retry-seed", str(retry_seed), "--retry-count", str(RETRY_COUNT)]
    err_path = db.with_name(f"worker-{seed}.stderr")
    # The worker must run this checkout's thengine, whatever the venv has installed.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    lines: queue.Queue[bytes | None] = queue.Queue()
    with open(err_path, "wb") as err:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err, cwd=ROOT, env=env)

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    raw: list[bytes] = []
    try:
        try:
            first = lines.get(timeout=STARTUP_TIMEOUT_S)
        except queue.Empty:
            pytest.fail(f"worker seed={seed}: no ack within {STARTUP_TIMEOUT_S} s\n{_tail(err_path)}")
        if first is None:
            pytest.fail(f"worker seed={seed} exited before its first ack\n{_tail(err_path)}")
        raw.append(first)
        deadline = time.monotonic() + kill_after
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = lines.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                pytest.fail(f"worker seed={seed} exited before the kill\n{_tail(err_path)}")
            raw.append(line)
        if proc.poll() is not None:
            pytest.fail(f"worker seed={seed} exited (rc {proc.returncode}) before the kill\n{_tail(err_path)}")
    finally:
        proc.kill()
        proc.wait(timeout=10)
        reader.join(timeout=10)
        assert proc.stdout is not None
        proc.stdout.close()
    assert proc.returncode == -9, f"worker seed={seed}: rc {proc.returncode}\n{_tail(err_path)}"
    assert not reader.is_alive(), "the worker's stdout did not reach EOF after the kill"
    while (line := lines.get_nowait()) is not None:
        raw.append(line)
    return [json.loads(line) for line in raw if line.endswith(b"\n")]


def _tail(path: Path) -> str:
    return path.read_text(errors="replace")[-3000:]


# -- reading the file -------------------------------------------------------------------

class Log:
    """Everything the database holds, read once with a read-only Store."""

    def __init__(self, db: Path) -> None:
        with Store.open(db, readonly=True) as store:
            self.events: list[StoredEvent] = list(store.read_events())
            self.snapshots: list[SnapshotRow] = list(store.snapshots())
            self.commands = {r.command_id: (r.first_seq, r.last_seq) for r in store.load_commands(0)}
            self.command_ids: dict[int, str] = dict(
                store.conn.execute("SELECT seq, command_id FROM events WHERE command_id IS NOT NULL"))
        self.by_seq = {event.seq: event for event in self.events}


def _norm(value: Any) -> Any:
    """Through JSON and back: tuples become lists, so snapshots compare as data."""
    return json.loads(json.dumps(value))


def first_difference(a: Any, b: Any, path: str = "") -> str | None:
    """Where two JSON-like values first differ, as ``path: a != b``; None if equal."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in [*a, *(k for k in b if k not in a)]:
            if key not in a or key not in b:
                return f"{path}.{key}: {a.get(key, '<missing>')!r} != {b.get(key, '<missing>')!r}"
            found = first_difference(a[key], b[key], f"{path}.{key}")
            if found is not None:
                return found
        return None
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for index, (x, y) in enumerate(zip(a, b)):
            found = first_difference(x, y, f"{path}[{index}]")
            if found is not None:
                return found
        return None
    return None if a == b else f"{path}: {a!r} != {b!r}"


def decode_snapshot(row: SnapshotRow) -> Any:
    """A stored snapshot's state as data (the engine writes zlib-compressed JSON)."""
    return json.loads(zlib.decompress(row.state))


def replay(events: list[StoredEvent], *, until: dict[tuple[str, int], Any] | None = None
           ) -> tuple[dict[str, Any], dict[tuple[str, int], Any]]:
    """Fold `evolve` over the whole log from nothing.

    Returns every hunt's final state as snapshot data, and the states at the
    `(hunt_id, version)` points asked for in `until`.
    """
    states: dict[str, HuntState] = {}
    at: dict[tuple[str, int], Any] = {}
    for event in events:
        state = states[event.hunt_id] = evolve(states.get(event.hunt_id), event)
        if until is not None and (event.hunt_id, event.version) in until:
            at[(event.hunt_id, event.version)] = _norm(to_snapshot(state))
    return {hunt_id: _norm(to_snapshot(state)) for hunt_id, state in states.items()}, at


# -- the checks -------------------------------------------------------------------------

def check_gapless(log: Log) -> None:
    """Promise 5: seq 1..N with no gap; each hunt's versions 1..k with no gap."""
    seqs = [event.seq for event in log.events]
    assert seqs == list(range(1, len(seqs) + 1)), f"seq has gaps: first bad at {_first_gap(seqs, 1)}"
    versions: dict[str, list[int]] = defaultdict(list)
    for event in log.events:
        versions[event.hunt_id].append(event.version)
    for hunt_id, found in versions.items():
        assert found == list(range(1, len(found) + 1)), (
            f"hunt {hunt_id}: versions have gaps, first bad at {_first_gap(found, 1)}")


def _first_gap(values: list[int], start: int) -> int | None:
    return next((v for i, v in enumerate(values) if v != start + i), None)


def check_acks_durable(log: Log, acks: list[Ack]) -> None:
    """Promise 1: each accepted ack's events are in the log as acknowledged, with its command record."""
    for ack in acks:
        if not ack["ok"]:
            continue
        assert ack["events"], f"{ack['command_id']}: ok with no events"
        for acked in ack["events"]:
            stored = log.by_seq.get(acked["seq"])
            assert stored is not None, f"{ack['command_id']}: acknowledged seq {acked['seq']} is not in the log"
            assert stored.to_json() == acked, f"{ack['command_id']}: the log differs from the ack at seq {acked['seq']}"
        seqs = (ack["events"][0]["seq"], ack["events"][-1]["seq"])
        assert log.commands.get(ack["command_id"]) == seqs, f"{ack['command_id']}: no command record for {seqs}"


def check_rejections_wrote_nothing(log: Log, acks: list[Ack], resent: set[str]) -> None:
    """A rejected command wrote nothing (unless a later run sent the same id again)."""
    stamped = set(log.command_ids.values())
    for ack in acks:
        if not ack["ok"] and ack["command_id"] not in resent:
            assert ack["command_id"] not in stamped, f"{ack['command_id']} was rejected but has events"


def check_retries_agree(runs: list[list[Ack]]) -> None:
    """Promise 7 across a crash: once acknowledged ok, an id always gets the same events."""
    first: dict[str, Ack] = {}
    for acks in runs:
        for ack in acks:
            earlier = first.get(ack["command_id"])
            if earlier is None:
                if ack["ok"]:
                    first[ack["command_id"]] = ack
                continue
            assert ack["command"] == earlier["command"]
            assert ack["ok"], f"{ack['command_id']}: ok before the crash, {ack['error']} after"
            assert ack["events"] == earlier["events"], f"{ack['command_id']}: other events after the crash"


def check_snapshots(log: Log, snapshot_every: int) -> None:
    """Promise 3: each snapshot is the replayed state at its version, and snapshots were taken."""
    wanted = {(row.hunt_id, row.version): row for row in log.snapshots}
    _, at = replay(log.events, until=wanted)
    seq_of = {(event.hunt_id, event.version): event.seq for event in log.events}
    for key, row in wanted.items():
        assert key in at, f"snapshot of {key} is past the end of the log"
        assert row.seq == seq_of[key], f"snapshot {key} says seq {row.seq}, the log has {seq_of[key]}"
        difference = first_difference(decode_snapshot(row), at[key])
        assert difference is None, f"snapshot {key} (seq {row.seq}) differs from the replay at {difference}"
    heads: dict[str, int] = {}
    for event in log.events:
        heads[event.hunt_id] = event.version
    snapshotted = {row.hunt_id for row in log.snapshots}
    for hunt_id, version in heads.items():
        if version >= snapshot_every:
            assert hunt_id in snapshotted, f"hunt {hunt_id} reached version {version} without a snapshot"


def check_log(db: Path, runs: list[list[Ack]], *, snapshot_every: int, resent: set[str]) -> Log:
    """Every read-only check of a database just after a kill."""
    log = Log(db)
    check_gapless(log)
    for acks in runs:
        check_acks_durable(log, acks)
    check_rejections_wrote_nothing(log, [ack for acks in runs for ack in acks], resent)
    check_retries_agree(runs)
    check_snapshots(log, snapshot_every)
    return log


async def check_recovery(db: Path, runs: list[list[Ack]], *, snapshot_every: int, seed: int) -> None:
    """Reopen in this process: rebuilt state = full replay, with and without snapshots; retries write nothing."""
    log = Log(db)
    replayed, _ = replay(log.events)
    last_seq = len(log.events)
    latest: dict[str, Ack] = {}
    for acks in runs:
        for ack in acks:
            if ack["ok"]:
                latest.setdefault(ack["command_id"], ack)
    rng = random.Random(seed)
    setup = [latest[cid] for cid, _ in setup_commands() if cid in latest]
    sample = setup + rng.sample(list(latest.values()), min(RESUBMIT_SAMPLE, len(latest)))
    assert len(sample) > len(setup), "the worker acknowledged no accepted command"

    with trio.fail_after(60):
        async with open_engine(str(db), shards=SHARDS, snapshot_every=snapshot_every) as engine:
            rebuilt = {hunt_id: _norm(to_snapshot(state)) for hunt_id, state in engine.hunts.items()}
            difference = first_difference(rebuilt, replayed)
            assert difference is None, f"recovered state (snapshots + tail) != replay at {difference}"
            assert engine.committed_seq == last_seq

            for ack in sample:
                command = parse_command(ack["command"])
                result = await engine.submit(command, command_id=ack["command_id"])
                assert result.ok, f"{ack['command_id']}: {result.error}"
                assert [e.to_json() for e in result.events] == ack["events"], ack["command_id"]
            other = JoinHunt(hunt_id="crash-seq", player_id="someone-else")
            reused = await engine.submit(other, command_id=sample[-1]["command_id"])
            assert not reused.ok and reused.error is not None and reused.error.code == "invalid_command"
            assert engine.committed_seq == last_seq

    after = Log(db)
    assert len(after.events) == last_seq and after.commands == log.commands, "a retry wrote something"

    with Store.open(db) as store:
        store.delete_snapshots()
    with trio.fail_after(60):
        async with open_engine(str(db), shards=SHARDS, snapshot_every=snapshot_every) as engine:
            rebuilt = {hunt_id: _norm(to_snapshot(state)) for hunt_id, state in engine.hunts.items()}
    difference = first_difference(rebuilt, replayed)
    assert difference is None, f"state rebuilt without snapshots != replay at {difference}"


def resent_ids(seed: int) -> set[str]:
    """The command ids a later run sends again: the setup, and the retried head of `seed`'s stream."""
    ids = {cid for cid, _ in setup_commands()}
    for task in range(TASKS):
        ids.update(cid for cid, _ in islice(task_stream(seed, task), RETRY_COUNT))
    return ids


# -- the trials -------------------------------------------------------------------------

TRIALS = [
    # (seed, snapshot_every, reopen in-process between the two crashes)
    pytest.param(101, 50, False, id="seed101"),
    pytest.param(202, 50, True, id="seed202-reopen-between"),
    pytest.param(303, 50, False, id="seed303"),
    pytest.param(404, 50, False, id="seed404"),
    pytest.param(505, 50, True, id="seed505-reopen-between"),
    pytest.param(606, 5, False, id="seed606-heavy-snapshots"),
]


@pytest.mark.parametrize(("seed", "snapshot_every", "reopen_between"), TRIALS)
async def test_kill_restart_kill_loses_nothing_acknowledged(
    tmp_path: Path, seed: int, snapshot_every: int, reopen_between: bool
) -> None:
    db = tmp_path / "crash.db"
    delays = random.Random(seed)
    second_seed = seed + 1

    first = await trio.to_thread.run_sync(lambda: run_and_kill(
        db, seed=seed, kill_after=delays.uniform(0.2, 1.5), snapshot_every=snapshot_every))
    assert any(ack["ok"] for ack in first)
    check_log(db, [first], snapshot_every=snapshot_every, resent=resent_ids(seed))
    if reopen_between:
        await check_recovery(db, [first], snapshot_every=snapshot_every, seed=seed)

    second = await trio.to_thread.run_sync(lambda: run_and_kill(
        db, seed=second_seed, kill_after=delays.uniform(0.2, 1.5), snapshot_every=snapshot_every,
        retry_seed=seed))
    assert any(ack["ok"] and ack["command_id"].startswith(f"s{second_seed}-") for ack in second), (
        "the restarted worker acknowledged nothing new")
    runs = [first, second]
    check_log(db, runs, snapshot_every=snapshot_every, resent=resent_ids(seed))
    await check_recovery(db, runs, snapshot_every=snapshot_every, seed=seed)
