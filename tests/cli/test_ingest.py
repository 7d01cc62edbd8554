"""`thengine ingest`: one committed result line per command, in input order; Ctrl-C and kill -9 safe."""

from __future__ import annotations

import io
import json
import signal
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from thengine.cli import ingest as ingest_module
from thengine.cli.admin import write_all
from thengine.cli.ingest import TOO_LONG, _LineSplitter
from thengine.storage.lock import EngineLock

from tests.cli.helpers_admin import (
    LineReader,
    assert_error,
    assert_ok,
    definition,
    invoke,
    jsonl,
    logged_events,
    make_db,
    parse_lines,
    stored_events,
    thengine_process,
    workload,
)


def join(hunt_id: str, player_id: str, **extra: Any) -> dict[str, Any]:
    return {"type": "join_hunt", "hunt_id": hunt_id, "player_id": player_id, **extra}


def answer(hunt_id: str, player_id: str, clue_id: str, text: str, **extra: Any) -> dict[str, Any]:
    return {"type": "submit_answer", "hunt_id": hunt_id, "player_id": player_id, "clue_id": clue_id,
            "answer": text, **extra}


def ingest(db: Path, text: str) -> list[dict[str, Any]]:
    result = invoke("ingest", db, "-", input=text)
    assert_ok(result)
    assert result.stderr == ""
    return parse_lines(result.stdout)


# -- output -----------------------------------------------------------------------


def test_results_come_in_input_order_with_each_hunts_events_in_order(tmp_path: Path) -> None:
    db = make_db(tmp_path, "h1", "h2", "h3")
    commands = []
    for player in ("a", "b", "c"):
        for hunt_id in ("h1", "h2", "h3"):
            commands += [join(hunt_id, player), answer(hunt_id, player, "first", "hello")]
    results = ingest(db, jsonl(*commands))
    assert [r["line"] for r in results] == list(range(1, 19))
    assert all(r["ok"] for r in results)
    for command, result in zip(commands, results):
        (event,) = result["events"]
        assert (event["hunt_id"], event["data"]["player_id"]) == (command["hunt_id"], command["player_id"])
    for hunt_id in ("h1", "h2", "h3"):
        versions = [r["events"][0]["version"] for r, c in zip(results, commands) if c["hunt_id"] == hunt_id]
        assert versions == list(range(3, 9))  # after hunt_created and hunt_started


def test_result_lines_carry_the_stored_events(tmp_path: Path) -> None:
    db = make_db(tmp_path, "h1")
    (result,) = ingest(db, jsonl(join("h1", "ann")))
    assert result["events"] == [stored_events(db)[3]]


def test_command_ids_are_echoed_on_ok_and_rejected_lines(tmp_path: Path) -> None:
    db = make_db(tmp_path, "h1")
    results = ingest(db, jsonl(join("h1", "ann", command_id="k1"), join("h1", "ann", team_id="t", command_id="k2"),
                               join("h1", "bob")))
    assert [(r["command_id"], r["ok"]) for r in results[:2]] == [("k1", True), ("k2", False)]
    assert results[1]["error"]["code"] == "already_joined"
    assert "command_id" not in results[2]


def test_rejections_are_result_lines_and_ingest_still_exits_0(tmp_path: Path) -> None:
    db = make_db(tmp_path, "h1")
    results = ingest(db, jsonl(join("nope", "ann"), answer("h1", "ann", "first", "hello")))
    assert [r["error"]["code"] for r in results] == ["unknown_hunt", "not_joined"]
    assert [r["line"] for r in results] == [1, 2]


def test_a_wrong_answer_is_an_ok_line_with_an_answer_wrong_event(tmp_path: Path) -> None:
    db = make_db(tmp_path, "h1")
    results = ingest(db, jsonl(join("h1", "ann"), answer("h1", "ann", "first", "nope")))
    assert results[1]["ok"] is True
    assert [e["type"] for e in results[1]["events"]] == ["answer_wrong"]


@pytest.mark.parametrize(("line", "message"), [
    ("not json", "not valid JSON"),
    ('{"type": "join_hunt", "hunt_id": "h1", "player_id": "ann"', "not valid JSON"),
    ("[1, 2]", "must be a JSON object"),
    ('"join_hunt"', "must be a JSON object"),
    ('{"type": "dance", "hunt_id": "h1"}', "unknown command type"),
    ('{"hunt_id": "h1"}', "type"),
    ('{"type": "join_hunt", "hunt_id": "h1", "player_id": 7}', "player_id"),
    ('{"type": "join_hunt", "hunt_id": "h1", "player_id": "ann", "colour": "red"}', "colour"),
    ('{"type": "join_hunt", "hunt_id": "h1"}', "player_id"),
    ('{"type": "join_hunt", "hunt_id": "h1", "player_id": "ann", "command_id": 5}', "command_id"),
    ('{"type": "join_hunt", "hunt_id": "h1", "player_id": "ann", "command_id": ""}', "command_id"),
    (b'{"type": "join_hunt", "hunt_id": "h1", "player_id": "\xff"}', "UTF-8"),
])
def test_a_malformed_line_gets_invalid_command_and_the_rest_still_run(
        tmp_path: Path, line: str | bytes, message: str) -> None:
    db = make_db(tmp_path, "h1")
    good = jsonl(join("h1", "bob")).encode()
    raw = line if isinstance(line, bytes) else line.encode()
    result = invoke("ingest", db, "-", input=good + raw + b"\n" + good.replace(b"bob", b"cy"))
    assert_ok(result)
    first, bad, last = parse_lines(result.stdout)
    assert (first["ok"], last["ok"], bad["line"], bad["ok"]) == (True, True, 2, False)
    assert bad["error"]["code"] == "invalid_command"
    assert message in bad["error"]["message"]
    assert len(logged_events(db)) == 4


def test_blank_lines_get_no_result_but_count_as_lines(tmp_path: Path) -> None:
    db = make_db(tmp_path, "h1")
    results = ingest(db, "\n" + jsonl(join("h1", "ann")) + "   \n\n" + jsonl(join("h1", "bob")))
    assert [r["line"] for r in results] == [2, 5]


def test_a_last_line_without_a_newline_is_applied(tmp_path: Path) -> None:
    db = make_db(tmp_path, "h1")
    results = ingest(db, jsonl(join("h1", "ann")) + json.dumps(join("h1", "bob")))
    assert [r["ok"] for r in results] == [True, True]


def test_a_line_over_the_size_limit_is_invalid_and_never_held_whole(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ingest_module, "MAX_LINE_BYTES", 200)
    monkeypatch.setattr(ingest_module, "READ_BYTES", 64)
    db = make_db(tmp_path, "h1")
    huge = answer("h1", "ann", "first", "x" * 1000)
    results = ingest(db, jsonl(join("h1", "ann"), huge, join("h1", "bob")))
    assert [r["line"] for r in results] == [1, 2, 3]
    assert results[1]["error"] == {"code": "invalid_command", "message": "line is longer than 200 bytes"}
    assert results[2]["ok"] is True


def test_the_line_splitter_joins_lines_that_arrive_in_pieces(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ingest_module, "READ_BYTES", 3)
    splitter = _LineSplitter(io.BufferedReader(io.BytesIO(b"abcdefg\nhi\n\nlast")))  # type: ignore[arg-type]
    lines: list[bytes] = []
    while (chunk := splitter.next_lines()) is not None:
        lines += chunk
    assert lines == [b"abcdefg", b"hi", b"", b"last"]


def test_the_line_splitter_drops_an_overlong_last_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ingest_module, "MAX_LINE_BYTES", 4)
    monkeypatch.setattr(ingest_module, "READ_BYTES", 2)
    splitter = _LineSplitter(io.BufferedReader(io.BytesIO(b"ok\n0123456789")))  # type: ignore[arg-type]
    lines: list[bytes] = []
    while (chunk := splitter.next_lines()) is not None:
        lines += chunk
    assert lines == [b"ok", TOO_LONG]


class Trickle(io.RawIOBase):
    """A raw stream that takes at most 5 bytes per write, like a pipe interrupted by a signal."""

    def __init__(self) -> None:
        self.data = b""

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.data += bytes(data[:5])
        return min(len(data), 5)


def test_output_is_whole_even_when_the_stream_takes_part_of_each_write() -> None:
    stream = Trickle()
    write_all(stream, b'{"line": 1}\n' * 10)  # type: ignore[arg-type]
    assert stream.data == b'{"line": 1}\n' * 10


# -- arguments --------------------------------------------------------------------


def test_ingest_reads_a_file_named_after_the_database(tmp_path: Path) -> None:
    db = make_db(tmp_path, "h1")
    commands = tmp_path / "in.jsonl"
    commands.write_text(jsonl(join("h1", "ann"), join("h1", "bob")))
    result = invoke("ingest", db, commands)
    assert_ok(result)
    assert [r["line"] for r in parse_lines(result.stdout)] == [1, 2]


def test_ingest_with_one_argument_reads_stdin_into_that_database(tmp_path: Path) -> None:
    db = make_db(tmp_path, "h1")
    result = invoke("ingest", db, input=jsonl(join("h1", "ann")))
    assert_ok(result)
    assert parse_lines(result.stdout)[0]["ok"] is True


def test_ingest_with_no_argument_uses_the_default_database_and_stdin(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    make_db(tmp_path, "h1", name="thengine.db")
    result = invoke("ingest", input=jsonl(join("h1", "ann")))
    assert_ok(result)
    assert parse_lines(result.stdout)[0]["ok"] is True


def test_ingest_of_a_missing_file_exits_2(tmp_path: Path) -> None:
    db = make_db(tmp_path)
    assert_error(invoke("ingest", db, tmp_path / "nope.jsonl"), 2, "cannot read")


def test_ingest_into_a_missing_database_exits_2_and_creates_nothing(tmp_path: Path) -> None:
    assert_error(invoke("ingest", tmp_path / "missing.db", "-", input=""), 2, "no database at")
    assert list(tmp_path.iterdir()) == []


def test_ingest_while_an_engine_holds_the_database_exits_2(tmp_path: Path) -> None:
    db = make_db(tmp_path)
    with EngineLock.acquire(db):
        assert_error(invoke("ingest", db, "-", input=jsonl(join("h1", "ann"))), 2, "in use by another engine")


def test_ingest_with_url_but_no_token_exits_2(tmp_path: Path) -> None:
    db = make_db(tmp_path)
    assert_error(invoke("ingest", db, "--url", "ws://127.0.0.1:8765/v1", input=""), 2, "--url needs --token")


def test_ingest_with_three_paths_exits_2(tmp_path: Path) -> None:
    assert_error(invoke("ingest", "a.db", "b.jsonl", "c"), 2, "too many arguments")


# -- idempotency, kill -9 and Ctrl-C ------------------------------------------------


def test_a_rerun_with_the_same_command_ids_returns_the_same_events_and_writes_nothing(tmp_path: Path) -> None:
    db = make_db(tmp_path)
    text = jsonl(*workload(hunts=3, players=12))
    first = ingest(db, text)
    logged = len(logged_events(db))
    again = ingest(db, text)
    assert len(logged_events(db)) == logged
    assert [(r["line"], r.get("events")) for r in again if r["ok"]] == [(r["line"], r.get("events")) for r in first
                                                                        if r["ok"]]


def lines_of(data: list[dict[str, Any]]) -> bytes:
    return jsonl(*data).encode()


def clean_run(tmp_path: Path, text: bytes) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Results and logged events of one uninterrupted ingest of `text` into a fresh database."""
    db = make_db(tmp_path, name="clean.db")
    result = invoke("ingest", db, "-", input=text)
    assert_ok(result)
    return parse_lines(result.stdout), logged_events(db)


def assert_printed_lines_are_committed(db: Path, printed: list[dict[str, Any]]) -> None:
    stored = stored_events(db)
    for result in printed:
        for event in result.get("events", []):
            assert stored[event["seq"]] == event


def test_a_killed_ingest_loses_no_printed_line_and_a_rerun_completes_it_without_duplicates(tmp_path: Path) -> None:
    commands = workload(hunts=4, players=1000)  # 4,008 commands, each with a command_id
    text = lines_of(commands)
    source = tmp_path / "in.jsonl"
    source.write_bytes(text)
    clean_results, clean_log = clean_run(tmp_path, text)

    db = make_db(tmp_path)
    with thengine_process("ingest", db, source, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL) as proc:
        try:
            reader = LineReader(proc)
            reader.read_until(1000)
        finally:
            proc.kill()
            proc.wait()
        printed = [json.loads(line) for line in reader.lines if line.endswith(b"}")]
    assert 1000 <= len(printed) < len(commands), "the kill should land mid-stream"
    assert [r["line"] for r in printed] == list(range(1, len(printed) + 1))
    assert_printed_lines_are_committed(db, printed)

    rerun = invoke("ingest", db, source)
    assert_ok(rerun)
    results = parse_lines(rerun.stdout)
    assert [r["line"] for r in results] == list(range(1, len(commands) + 1))
    for before, after in zip(printed, results):
        assert before == after  # the same command_id gives the first result
    log = logged_events(db)
    assert [e["seq"] for e in log] == list(range(1, len(log) + 1))
    assert len(log) == len(clean_log)
    assert Counter((e["hunt_id"], e["type"]) for e in log) == Counter((e["hunt_id"], e["type"]) for e in clean_log)
    lines_per_event = Counter(e["seq"] for r in results for e in r.get("events", []))
    assert set(lines_per_event.values()) == {1}  # each command_id's events appear once
    assert [(r["line"], r["ok"]) for r in results] == [(r["line"], r["ok"]) for r in clean_results]


def test_each_result_is_printed_as_soon_as_its_command_is_committed(tmp_path: Path) -> None:
    db = make_db(tmp_path, "h1")
    with thengine_process("ingest", db, "-", stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL) as proc:
        assert proc.stdin is not None
        try:
            reader = LineReader(proc)
            for n, player in enumerate(["ann", "bob", "cy"], start=1):
                proc.stdin.write(jsonl(join("h1", player)).encode())
                proc.stdin.flush()  # more input may follow: the result must not wait for it
                assert json.loads(reader.read_until(n, timeout=10)[-1])["line"] == n
            proc.stdin.close()
            assert proc.wait(timeout=10) == 0
        finally:
            proc.kill()


def test_ctrl_c_stops_reading_finishes_what_is_in_flight_and_exits_130(tmp_path: Path) -> None:
    commands = workload(hunts=2, players=400)
    half = lines_of(commands[: len(commands) // 2])
    db = make_db(tmp_path)
    with thengine_process("ingest", db, "-", stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE) as proc:
        assert proc.stdin is not None and proc.stderr is not None
        try:
            proc.stdin.write(half)
            proc.stdin.flush()  # stdin stays open: the reader is waiting for more when Ctrl-C comes
            reader = LineReader(proc)
            reader.read_until(100)
            proc.send_signal(signal.SIGINT)
            printed = [json.loads(line) for line in reader.read_all()]
            code = proc.wait(timeout=20)
            stderr = proc.stderr.read().decode()
        finally:
            proc.kill()
            proc.wait()
    assert code == 130
    assert f"interrupted: results up to line {len(printed)} are printed and committed" in stderr
    assert "Traceback" not in stderr and "Fatal" not in stderr
    assert [r["line"] for r in printed] == list(range(1, len(printed) + 1))
    assert len(printed) <= len(commands) // 2
    assert_printed_lines_are_committed(db, printed)
    # Everything sent to the engine got its line: the log holds no event that no line reports.
    reported = {e["seq"] for r in printed for e in r.get("events", [])}
    assert {e["seq"] for e in logged_events(db)} == reported


# -- text that UTF-8 cannot hold ---------------------------------------------------


def test_a_lone_surrogate_is_invalid_command_and_every_other_line_is_applied(tmp_path: Path) -> None:
    db = make_db(tmp_path, "h1")
    bad_title = {**definition("h2"), "title": "Hunt \ud83d"}
    text = jsonl(
        join("h1", "ann"),
        answer("h1", "ann", "first", "x\ud800"),
        answer("h1", "ann", "first", "hello", command_id="k\udfff"),
        {"type": "create_hunt", "definition": bad_title},
        {**join("h1", "bob"), "\ud800": 1},
        answer("h1", "ann", "first", "hello"),
    )
    assert "\\ud800" in text  # what any producer writes: JSON's escape of a lone surrogate
    results = ingest(db, text)
    assert [r["line"] for r in results] == [1, 2, 3, 4, 5, 6]
    assert results[0]["ok"] and results[5]["ok"]
    assert results[5]["events"][0]["type"] == "clue_solved"
    for result, fragment in zip(results[1:5], ("answer:", "command_id:", "definition: title:", "unknown field")):
        assert result["error"]["code"] == "invalid_command", result
        assert fragment in result["error"]["message"], result
    assert results[2]["command_id"] == "k\udfff"  # echoed as given (as its \uXXXX escape)
    logged = logged_events(db)
    assert [e["hunt_id"] for e in logged] == ["h1"] * 4
    assert [e["type"] for e in logged[2:]] == ["player_joined", "clue_solved"]
