"""The WAL deleted under a running engine: nothing more is acknowledged, nothing acknowledged is lost.

An operator's clean-up script deleting ``*.db-wal`` while an engine runs leaves SQLite
writing into a file that no later open reads. The engine notices after the next commit
(and at each checkpoint round, so even when idle), saves what the old file holds into
the database, and stops with an error naming the file.
"""

from __future__ import annotations

import json
import os
import queue
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from thengine.cli import main

from .test_crash import ROOT, Log, check_acks_durable, check_gapless, check_recovery

pytestmark = pytest.mark.slow

WORKER = Path(__file__).with_name("wal_worker.py")
ACKS_BEFORE_DELETING = 300
WAIT_AFTER_DELETING_S = 5.0


def _env() -> dict[str, str]:
    # Subprocesses must run this checkout's thengine, whatever the venv has installed.
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}


def _lines(stream: Any) -> queue.Queue[Any]:
    """The lines of `stream`, read by a thread, then None at EOF."""
    found: queue.Queue[Any] = queue.Queue()

    def pump() -> None:
        for line in stream:
            found.put(line)
        found.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return found


def run_and_delete_the_wal(db: Path) -> tuple[list[dict[str, Any]], list[str], int]:
    """Run the worker, delete DB-wal after some acks, keep reading; SIGKILL it if it still runs.

    Returns (every ack, every storage error it reported, its return code).
    """
    err_path = db.with_name("worker.stderr")
    with open(err_path, "wb") as err:
        proc = subprocess.Popen([sys.executable, str(WORKER), str(db), "--seed", "7"],
                                stdout=subprocess.PIPE, stderr=err, cwd=ROOT, env=_env())
    assert proc.stdout is not None
    lines = _lines(proc.stdout)
    raw: list[bytes] = []
    eof = False
    try:
        while len(raw) < ACKS_BEFORE_DELETING:
            line = lines.get(timeout=30)
            assert line is not None, f"the worker exited early\n{err_path.read_text()}"
            raw.append(line)
        os.remove(f"{db}-wal")
        deadline = time.monotonic() + WAIT_AFTER_DELETING_S
        while not eof and (left := deadline - time.monotonic()) > 0:
            try:
                line = lines.get(timeout=left)
            except queue.Empty:
                break
            eof = line is None
            if not eof:
                raw.append(line)
    finally:
        proc.kill()  # a SIGKILL: no clean shutdown, no last checkpoint
        proc.wait(timeout=10)
    while not eof:  # what was written before the kill
        line = lines.get(timeout=10)
        eof = line is None
        if not eof:
            raw.append(line)
    proc.stdout.close()
    parsed = [json.loads(line) for line in raw if line.endswith(b"\n")]
    acks = [item for item in parsed if "storage_error" not in item]
    errors = [item["storage_error"] for item in parsed if "storage_error" in item]
    return acks, errors, proc.returncode


async def test_an_engine_whose_wal_is_deleted_stops_acknowledging_and_loses_nothing_acknowledged(
        tmp_path: Path) -> None:
    db = tmp_path / "hunts.db"
    assert CliRunner().invoke(main, ["init", str(db)]).exit_code == 0  # the schema is in the file itself
    acks, errors, returncode = run_and_delete_the_wal(db)
    # Killed (by itself, at its first StorageError, or by the test): never closed cleanly.
    assert returncode == -9
    log = Log(db)
    check_gapless(log)
    check_acks_durable(log, acks)  # every acknowledged command, before and after the deletion
    assert errors, "the worker was acknowledged for seconds after its WAL was deleted"
    assert f"{db}-wal was deleted" in errors[0] and "everything committed is saved" in errors[0], errors[0]
    # The database opens again, and remembered commands still give their first results.
    await check_recovery(db, [acks], snapshot_every=50, seed=7)


def test_serve_stops_with_one_error_line_when_its_wal_is_deleted(tmp_path: Path) -> None:
    db = tmp_path / "hunts.db"
    assert CliRunner().invoke(main, ["init", str(db)]).exit_code == 0
    proc = subprocess.Popen([sys.executable, "-m", "thengine", "serve", str(db), "--listen", "127.0.0.1:0",
                             "--sync", "normal"], stderr=subprocess.PIPE, text=True, env=_env())
    assert proc.stderr is not None
    try:
        first = proc.stderr.readline()
        assert re.search(r"serving .* at ws://", first), first + proc.stderr.read()
        os.remove(f"{db}-wal")
        # Idle: no commit will notice, the checkpoint round (every second) must.
        returncode = proc.wait(timeout=30)
        rest = proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()
    assert returncode == 1, rest
    assert "Traceback" not in rest
    errors = [line for line in rest.splitlines() if line.startswith("thengine: error: ")]
    assert len(errors) == 1, rest
    assert f"{db}-wal was deleted" in errors[0] and "restart the engine" in errors[0]
