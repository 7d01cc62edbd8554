"""A corrupted database file gives one clear error line on every read path, never a traceback.

Corruption can leave bytes in a TEXT cell that are not UTF-8; apsw then fails converting
the value. The copies here are made in the test: a known value's bytes overwritten with
0xff (found by searching the file for a distinctive string, so the damage is exact), and
seeded random damage to the pages. Each is read with `events`, `replay --verify`,
`stats`, `token` and by opening an engine (what `serve` does at startup).
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import apsw
import pytest
import trio

from thengine import CreateHunt, JoinHunt, StartHunt, open_engine, parse_definition
from thengine.errors import StorageError, ThengineError

from .helpers_replay import assert_error, invoke

MARK_PLAYER = "player-MARKED-5a7c"  # distinctive: found once in the file, in one event's data
MARK_HUNT = "hunt-MARKED-90d1"  # a hunt id: in events, the (hunt_id, version) index and the catalog
HUNT = {"id": MARK_HUNT, "title": "Marked", "order": "any",
        "clues": [{"id": "c", "prompt": "C?", "answers": ["see"], "points": 10}]}
PAGE = 4096
T0 = 1_800_000_000_000
#: Every command that reads events' data (`stats` only counts them).
READS_DATA = (("events",), ("events", "--json"), ("replay", "--verify"), ("replay", "--json"))
READS = (*READS_DATA, ("stats",))


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database with a few hunts and events, checkpointed so that it is all in one file."""
    path = tmp_path_factory.mktemp("pristine") / "hunts.db"

    async def fill() -> None:
        # A fixed clock: the same file, page for page, in every run (so the seeds below hit the same bytes).
        async with open_engine(str(path), sync="normal", snapshot_every=3, clock=lambda: T0) as engine:
            for hunt in (HUNT, {**HUNT, "id": "other"}):
                await engine.submit(CreateHunt(definition=parse_definition(hunt)))
                await engine.submit(StartHunt(hunt_id=hunt["id"]))
            for n in range(20):
                await engine.submit(JoinHunt(hunt_id="other", player_id=f"p{n}"))
            await engine.submit(JoinHunt(hunt_id=MARK_HUNT, player_id=MARK_PLAYER))

    trio.run(fill)
    assert invoke("init", path).exit_code == 0  # the token secret
    sql(path, "PRAGMA journal_mode = DELETE")  # a single self-contained file
    return path


def sql(path: Path, query: str, *bindings: object) -> list[tuple[object, ...]]:
    """Run one statement on `path` through a connection of its own, closed after."""
    conn = apsw.Connection(str(path))
    try:
        return conn.execute(query, bindings).fetchall()
    finally:
        conn.close()


def damaged_copy(pristine: Path, tmp_path: Path, damage: dict[int, bytes]) -> Path:
    """A copy of `pristine` with the bytes at each offset replaced."""
    data = bytearray(pristine.read_bytes())
    for offset, replacement in damage.items():
        data[offset:offset + len(replacement)] = replacement
    copy = tmp_path / "hunts.db"
    copy.write_bytes(bytes(data))
    return copy


def offsets_of(pristine: Path, mark: str) -> list[int]:
    data = pristine.read_bytes()
    found, start = [], 0
    while (at := data.find(mark.encode(), start)) >= 0:
        found.append(at)
        start = at + 1
    return found


def open_engine_error(path: Path) -> str | None:
    """What opening an engine on `path` raises (as `serve` does at startup); None if it opens."""

    async def open_it() -> None:
        async with open_engine(str(path)):
            pass

    try:
        trio.run(open_it)
    except StorageError as exc:
        return str(exc)
    return None


def test_a_player_id_that_is_not_utf8_names_the_file_and_the_event_on_every_read(
        pristine: Path, tmp_path: Path) -> None:
    [at] = offsets_of(pristine, MARK_PLAYER)  # only in its player_joined event's data
    copy = damaged_copy(pristine, tmp_path, {at + 7: b"\xff\xff"})
    [(seq,)] = sql(pristine, "SELECT seq FROM events WHERE data LIKE ?", f"%{MARK_PLAYER}%")
    for args in READS_DATA:
        assert_error(invoke(*args, copy), 1, str(copy), f"row seq={seq} of events", "not valid UTF-8",
                     "corrupted file?")
    sql(copy, "DELETE FROM snapshots")  # so that recovery must read the event, not a snapshot
    message = open_engine_error(copy)
    assert message is not None and f"row seq={seq} of events" in message and "not valid UTF-8" in message


def test_a_hunt_id_that_is_not_utf8_is_an_error_not_a_traceback_or_a_wrong_answer(
        pristine: Path, tmp_path: Path) -> None:
    offsets = offsets_of(pristine, MARK_HUNT)
    assert len(offsets) > 3  # event rows, index entries, the catalog, snapshots
    copy = damaged_copy(pristine, tmp_path, {at: b"\xff" for at in offsets})
    for args in READS:
        assert_error(invoke(*args, copy), 1, str(copy), "not valid UTF-8", "corrupted file?")
    message = open_engine_error(copy)
    assert message is not None and str(copy) in message and "not valid UTF-8" in message


def test_serve_on_a_corrupted_database_stops_at_startup_with_one_error_line(pristine: Path, tmp_path: Path) -> None:
    copy = damaged_copy(pristine, tmp_path, {at: b"\xff" for at in offsets_of(pristine, MARK_HUNT)})
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-m", "thengine", "serve", str(copy), "--listen", "127.0.0.1:0"],
                          capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 1, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"thengine: error: {copy}: "), lines
    assert "not valid UTF-8" in lines[0]


def test_the_token_secret_that_is_not_utf8_is_an_error_line(pristine: Path, tmp_path: Path) -> None:
    [(secret,)] = sql(pristine, "SELECT value FROM meta WHERE key = 'token_secret'")
    [at] = offsets_of(pristine, secret)
    copy = damaged_copy(pristine, tmp_path, {at: b"\xff"})
    assert_error(invoke("token", copy, "--role", "admin"), 1, str(copy), "reading meta 'token_secret'",
                 "not valid UTF-8")


def test_event_data_that_is_not_json_any_more_names_the_event(pristine: Path, tmp_path: Path) -> None:
    [at] = offsets_of(pristine, MARK_PLAYER)
    copy = damaged_copy(pristine, tmp_path, {at + len(MARK_PLAYER): b"\x01"})  # the closing quote: broken JSON
    [(seq,)] = sql(pristine, "SELECT seq FROM events WHERE data LIKE ?", f"%{MARK_PLAYER}%")
    for args in (("events",), ("replay", "--verify")):
        assert_error(invoke(*args, copy), 1, str(copy), f"event {seq} has malformed data")


#: Seeds 38..123 each broke a read of this file before corrupted text was an error (they hit
#: text cells); the rest hit other bytes: whatever they hit, the answer is never a traceback.
RANDOM_SEEDS = (38, 43, 57, 86, 89, 123, 0, 1, 2, 3)


@pytest.mark.parametrize("seed", RANDOM_SEEDS)
def test_random_damage_to_a_page_gives_an_error_line_never_a_traceback(
        pristine: Path, tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    size = os.path.getsize(pristine)
    page = rng.randrange(1, size // PAGE)  # not page 1: its header only makes "not a database"
    damage = {page * PAGE + rng.randrange(PAGE): bytes([rng.choice((0xFF, 0xFE, 0xC3, 0x80))])
              for _ in range(rng.choice((1, 4, 16)))}
    copy = damaged_copy(pristine, tmp_path, damage)
    for args in (*READS, ("token", "--role", "admin")):
        result = invoke(*args, copy)
        assert isinstance(result.exception, (SystemExit, type(None))), (args, result.exception)
        assert "Traceback" not in result.stderr
        if result.exit_code != 0:  # (`replay --verify` may find a damaged snapshot: a divergence)
            assert_error(result, result.exit_code)
    try:
        open_engine_error(copy)
    except ThengineError:  # (EngineLocked, SchemaTooNew: also one line in the CLI)
        pass
    shutil.rmtree(tmp_path, ignore_errors=True)


def test_an_event_the_rules_cannot_apply_stops_an_engine_opening_with_a_clear_error(
        pristine: Path, tmp_path: Path) -> None:
    copy = damaged_copy(pristine, tmp_path, {})
    [(seq,)] = sql(copy, "SELECT seq FROM events WHERE data LIKE ?", f"%{MARK_PLAYER}%")
    sql(copy, "UPDATE events SET data = '{}' WHERE seq = ?", seq)  # valid JSON, but not a player_joined
    sql(copy, "DELETE FROM snapshots")
    message = open_engine_error(copy)
    assert message is not None and str(copy) in message and f"event {seq} (player_joined" in message


def test_a_catalog_summary_that_is_not_json_stops_an_engine_opening_with_a_clear_error(
        pristine: Path, tmp_path: Path) -> None:
    copy = damaged_copy(pristine, tmp_path, {})
    # A hunt that ended long ago is listed from its catalog row, not rebuilt: spoil that row.
    sql(copy, "UPDATE hunts SET status = 'ended', ended_ts = 1, summary = '{not json'")
    message = open_engine_error(copy)
    assert message is not None and str(copy) in message and "catalog row of hunt" in message
