"""`thengine ingest`: apply JSON-lines commands, one JSON result line per command.

Three tasks share one engine: the reader parses lines and pipelines them into the
engine with `Engine.send` (which keeps per-hunt input order) and hands each ticket
to a bounded window; the writer takes tickets from the window in input order and
prints each result once its events are committed; the signal watcher turns Ctrl-C
(or SIGTERM) into "stop reading", so in-flight commands still finish and get their
lines, and the engine closes gracefully. The window bounds memory and gives
backpressure: the reader waits while WINDOW results are unprinted.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import sys
from typing import IO, Any

import click
import trio

from ..domain.commands import Rejection, parse_command
from ..domain.fields import NOT_UTF8, escape_surrogates, is_utf8
from ..domain.result import Result
from ..runtime.engine import Engine, Ticket
from ._group import DEFAULT_DB, Failure, fail, main
from .admin import (
    Command,
    check_remote,
    engine_or_server,
    remote_options,
    require_database,
    run_async,
    silence_stdout,
    write_all,
)

WINDOW = 10_000
READ_BYTES = 1 << 20
MAX_LINE_BYTES = 8 << 20
MAX_COMMAND_ID_LEN = 256
FLUSH_LINES = 1000
FLUSH_S = 0.05

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode

#: A line longer than MAX_LINE_BYTES (its bytes are skipped, never held in memory).
TOO_LONG = b"\0too long"


@main.command(cls=Command)
@click.argument("paths", nargs=-1, metavar="[DB] [FILE.jsonl|-]")
@remote_options
def ingest(paths: tuple[str, ...], url: str | None, token: str | None) -> None:
    """Apply the JSON commands in FILE.jsonl (or stdin) to DB, one result line each.

    Each input line is one command, `{"type": ..., ..., "command_id": "optional"}`.
    Each gets one output line, in input order, printed only once its events are
    committed:

    \b
      {"line": N, "command_id": ..., "ok": true, "events": [...]}
      {"line": N, "command_id": ..., "ok": false, "error": {"code": ..., "message": ...}}

    `line` counts physical input lines from 1; blank lines are skipped and get no
    output line. `command_id` is echoed when the input had one. A malformed line
    gets an `invalid_command` result and the rest still run; the exit status is 0
    once every line has its result, rejections included.

    Ctrl-C stops reading, lets the commands in flight finish and print their lines,
    and exits 130 (SIGTERM: 143; a second Ctrl-C stops printing too). Every printed line is committed; run the same input again to
    finish: commands with a `command_id` are not applied twice.

    With no argument DB is ./thengine.db and commands come from stdin; one argument
    is DB ("-" alone means stdin). DB must exist (`thengine init`). While
    `thengine serve` holds DB, --url ws://HOST:PORT/v1 --token ADMIN_TOKEN sends the
    commands through the server instead (then the one argument is the input).

    \b
    Examples:
      thengine ingest hunts.db commands.jsonl > results.jsonl
      producer | thengine ingest hunts.db -
      thengine ingest --url ws://127.0.0.1:8765/v1 --token "$TOKEN" commands.jsonl
    """
    if len(paths) > 2:
        fail(f"too many arguments: expected [DB] [FILE.jsonl|-], got {len(paths)}")
    if not paths or paths == ("-",):
        db, source = DEFAULT_DB, "-"
    elif url is not None and len(paths) == 1:  # through a server: the one argument is the input
        db, source = DEFAULT_DB, paths[0]
    else:
        db, source = paths[0], (paths[1] if len(paths) == 2 else "-")
    check_remote(url, token)
    if url is None:
        require_database(db)
    if source == "-":
        infile: IO[bytes] = sys.stdin.buffer
    else:
        try:
            infile = open(source, "rb")  # noqa: SIM115 - closed below
        except OSError as exc:
            fail(f"cannot read {source}: {exc.strerror or exc}")
    try:
        run = _Ingest(infile, sys.stdout.buffer)
        run_async(run.main, db, url, token)
    finally:
        if source != "-":
            infile.close()
    if run.signum is not None and not run.complete:
        click.echo(f"thengine: interrupted: results up to line {run.printed_through} are printed and committed; "
                   "run the same input again to finish (command_ids are not applied twice)", err=True)
        click.get_current_context().exit(128 + run.signum)


class _Ingest:
    """One run of `thengine ingest`: its reader, writer and signal watcher."""

    def __init__(self, infile: IO[bytes], out: IO[bytes]) -> None:
        self.out = out
        self.lines = _LineSplitter(infile)
        self.reading = trio.CancelScope()
        self.writing = trio.CancelScope()
        self.signum: int | None = None
        self.lines_read = 0
        self.printed_through = 0
        self.eof = False
        self.complete = False

    async def main(self, db: str, url: str | None = None, token: str | None = None) -> None:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with trio.open_nursery() as watcher:
                watcher.start_soon(self._watch, signals)
                async with engine_or_server(db, url, token) as engine:
                    send, receive = trio.open_memory_channel[tuple[int, Any, Ticket | Result]](WINDOW)
                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(self._read, engine, send)
                        with self.writing:
                            await self._write(receive)
                # The engine is closed: every command sent to it is committed.
                watcher.cancel_scope.cancel()

    async def _watch(self, signals: Any) -> None:
        """First signal: stop reading. Second: stop printing too (the engine still closes cleanly)."""
        async for signum in signals:
            if self.signum is None:
                self.signum = signum
                self.reading.cancel()
            else:
                self.writing.cancel()

    async def _read(self, engine: Engine, send: trio.MemorySendChannel[tuple[int, Any, Ticket | Result]]) -> None:
        with self.reading:
            async with send:
                while True:
                    lines = await trio.to_thread.run_sync(self.lines.next_lines, abandon_on_cancel=True)
                    if lines is None:
                        self.eof = True
                        return
                    for raw in lines:
                        self.lines_read += 1
                        item = await self._start(engine, self.lines_read, raw)
                        if item is not None and not await self._hand_over(send, item):
                            return

    @staticmethod
    async def _hand_over(send: trio.MemorySendChannel[Any], item: Any) -> bool:
        """Queue a line for the writer; False if the writer has stopped (a second Ctrl-C)."""
        try:
            try:
                send.send_nowait(item)
            except trio.WouldBlock:
                # The window is full. The command is in the engine already, so its
                # line must reach the writer even if reading is being stopped.
                with trio.CancelScope(shield=True):
                    await send.send(item)
        except trio.BrokenResourceError:
            return False
        return True

    async def _start(self, engine: Engine, line: int, raw: bytes) -> tuple[int, Any, Ticket | Result] | None:
        """Parse one line and send its command; None for a blank line."""
        if raw is TOO_LONG:
            return line, None, _invalid(f"line is longer than {MAX_LINE_BYTES} bytes")
        if not raw.strip():
            return None
        try:
            obj = json.loads(raw)
        except UnicodeDecodeError:
            return line, None, _invalid("line is not valid UTF-8")
        except json.JSONDecodeError as exc:
            return line, None, _invalid(f"not valid JSON: {exc.msg} at column {exc.colno}")
        except (ValueError, RecursionError):
            return line, None, _invalid("not valid JSON")
        if not isinstance(obj, dict):
            return line, None, _invalid(f"a command must be a JSON object, got {type(obj).__name__}")
        command_id = obj.pop("command_id", None)
        if command_id is not None and not (isinstance(command_id, str) and 1 <= len(command_id) <= MAX_COMMAND_ID_LEN):
            return line, command_id, _invalid(f"command_id: must be a string of 1-{MAX_COMMAND_ID_LEN} characters, "
                                              f"got {json.dumps(command_id)[:60]}")
        if command_id is not None and not is_utf8(command_id):
            return line, command_id, _invalid(f"command_id: {NOT_UTF8}, got {json.dumps(command_id)[:60]}")
        command = parse_command(obj)
        if isinstance(command, Rejection):
            return line, command_id, Result(ok=False, error=command)
        return line, command_id, await engine.send(command, command_id=command_id)

    async def _write(self, receive: trio.MemoryReceiveChannel[tuple[int, Any, Ticket | Result]]) -> None:
        pending: list[bytes] = []  # result lines ready to print, up to line `ready_through`
        ready_through = 0
        last_flush = trio.current_time()
        async with receive:
            try:
                async for line, command_id, outcome in receive:
                    result = outcome if isinstance(outcome, Result) else await outcome.result()
                    obj: dict[str, Any] = {"line": line}
                    if command_id is not None:
                        obj["command_id"] = command_id
                    obj.update(result.to_json())
                    # (A command_id echoed as given may hold a lone surrogate: as its \uXXXX escape.)
                    pending.append(escape_surrogates(_dumps(obj)).encode() + b"\n")
                    ready_through = line
                    now = trio.current_time()
                    if (len(pending) >= FLUSH_LINES or now - last_flush >= FLUSH_S
                            or receive.statistics().current_buffer_used == 0):
                        self._flush(pending, ready_through)
                        pending = []
                        last_flush = now
            except trio.Cancelled:
                if pending:  # (a second Ctrl-C) these results are committed: print them
                    self._flush(pending, ready_through)
                raise
            if pending:
                self._flush(pending, ready_through)
        self.complete = self.eof

    def _flush(self, chunk: list[bytes], last_line: int) -> None:
        """Write ready lines. Synchronously: a pipe that is not read is backpressure anyway."""
        try:
            write_all(self.out, b"".join(chunk))
        except BrokenPipeError:
            silence_stdout(self.out)
            raise Failure("the output was closed (broken pipe); stopped") from None
        self.printed_through = last_line


def _invalid(message: str) -> Result:
    return Result.rejected("invalid_command", message)


class _LineSplitter:
    """Whole lines from a binary stream, as soon as they arrive (runs in a worker thread).

    `read1` returns what is available now, so a slow producer's lines are applied at
    once rather than after a full buffer. A line over MAX_LINE_BYTES becomes
    `TOO_LONG` and its bytes are dropped as they come, never held whole.
    """

    def __init__(self, stream: IO[bytes]) -> None:
        self.carry = b""
        self.skipping = False  # inside a too-long line, dropping bytes until its newline
        try:
            fd = stream.fileno()
        except (OSError, ValueError):  # an in-memory stream (tests)
            self._read = getattr(stream, "read1", stream.read)
        else:
            # The file descriptor itself, not the buffered stream: a reader abandoned
            # on Ctrl-C then holds no lock that Python needs at exit.
            self._read = functools.partial(os.read, fd)

    def next_lines(self) -> list[bytes] | None:
        """The next complete lines (without newlines); None at end of input."""
        while True:
            data = self._read(READ_BYTES)
            if not data:
                if self.skipping:
                    self.skipping = False
                    return [TOO_LONG]
                if self.carry:
                    last, self.carry = self.carry, b""
                    return [last]
                return None
            lines: list[bytes] = []
            if self.skipping:
                cut = data.find(b"\n")
                if cut < 0:
                    continue
                self.skipping = False
                lines.append(TOO_LONG)
                data = data[cut + 1:]
            parts = (self.carry + data).split(b"\n")
            self.carry = parts.pop()
            for part in parts:
                lines.append(TOO_LONG if len(part) > MAX_LINE_BYTES else part)
            if len(self.carry) > MAX_LINE_BYTES:
                self.carry = b""
                self.skipping = True
            if lines:
                return lines
