"""`thengine events`: read the log, as a table or JSON lines, optionally following it.

Read-only: the database is opened with SQLITE_OPEN_READONLY, so this never writes to
it (nor creates it) and works while an engine runs. Following polls for new events;
each poll is its own short read, so a follower never holds back WAL checkpoints.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from itertools import islice
from typing import Any

import click

from ..domain.events import EVENT_TYPES, StoredEvent
from ..storage.store import Store
from ._group import DEFAULT_DB, fail, main
from .admin import Command, open_store, silence_stdout, sql_rows, write_all

PAGE = 1000
POLL_S = 0.2
SUMMARY_WIDTH = 80

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


@main.command(cls=Command)
@click.argument("db", default=DEFAULT_DB, required=False)
@click.option("--hunt", "hunt_id", metavar="H", help="Only the events of hunt H.")
@click.option("--after", "after_seq", type=click.IntRange(min=0), default=0, metavar="SEQ",
              help="Only events with seq > SEQ (resume where you stopped).")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new events as an engine writes them, until Ctrl-C.")
@click.option("--json", "as_json", is_flag=True,
              help="One JSON object per line: {seq, hunt_id, version, type, ts, data}.")
@click.option("--limit", type=click.IntRange(min=1), metavar="N", help="Stop after N events.")
def events(db: str, hunt_id: str | None, after_seq: int, follow: bool, as_json: bool, limit: int | None) -> None:
    """Print the events of DB in log order (read-only; works while an engine runs).

    The table shows seq, time (UTC), hunt, version, type and a short summary of the
    event's data; --json prints the events exactly as stored (`ts` in milliseconds
    since the epoch). --follow keeps polling for new events until Ctrl-C (exit 0).

    \b
    Examples:
      thengine events hunts.db --hunt old-town
      thengine events hunts.db --after 1200 --json
      thengine events hunts.db --follow
    """
    out = sys.stdout.buffer
    with open_store(db) as store, _quiet_broken_pipe():
        after_version = None
        if hunt_id is not None:
            after_version = _version_at(store, hunt_id, after_seq)
        if as_json:
            render = _json_line
        else:
            table = _Table(store, hunt_id)
            render = table.row
            write_all(out, (table.header() + "\n").encode())
        remaining = limit
        try:
            while remaining is None or remaining > 0:
                want = PAGE if remaining is None else min(PAGE, remaining)
                if hunt_id is None:
                    page = list(store.read_events(after_seq=after_seq, limit=want))
                else:
                    assert after_version is not None
                    page = list(islice(store.read_hunt_events(hunt_id, after_version=after_version), want))
                if page:
                    write_all(out, "".join(render(event) + "\n" for event in page).encode())
                    after_seq, after_version = page[-1].seq, page[-1].version
                    if remaining is not None:
                        remaining -= len(page)
                if len(page) < want:
                    if not follow:
                        break
                    time.sleep(POLL_S)
        except KeyboardInterrupt:
            if not follow:
                raise


def _version_at(store: Store, hunt_id: str, after_seq: int) -> int:
    """The hunt's last version with seq <= after_seq; bad input if the hunt has no events."""
    if not sql_rows(store, f"reading hunt {hunt_id!r}", "SELECT 1 FROM events WHERE hunt_id = ? LIMIT 1", (hunt_id,)):
        fail(f"no hunt {hunt_id!r} in {store.path}")
    if after_seq == 0:
        return 0
    # Within a hunt, version order is seq order; `+seq` keeps the (hunt_id, version) index.
    rows = sql_rows(store, f"reading hunt {hunt_id!r}",
                    "SELECT coalesce(max(version), 0) FROM events WHERE hunt_id = ? AND +seq <= ?",
                    (hunt_id, after_seq))
    return int(rows[0][0])


def _json_line(event: StoredEvent) -> str:
    return json.dumps(event.to_json(), ensure_ascii=False, separators=(",", ":"))


class _Table:
    """Aligned columns, sized once from the log's heads (later wider values just stick out)."""

    def __init__(self, store: Store, hunt_id: str | None) -> None:
        heads = store.hunt_heads()
        hunts = [hunt_id] if hunt_id is not None else list(heads)
        self.seq_w = max(3, len(str(store.last_seq())))
        self.hunt_w = max([4, *(len(h) for h in hunts)])
        self.version_w = max([7, *(len(str(heads.get(h, (0, 0))[0])) for h in hunts)])
        self.type_w = max(len(t) for t in EVENT_TYPES)

    def header(self) -> str:
        return self._line("seq", "time (UTC)", "hunt", "version", "type", "data").rstrip()

    def row(self, event: StoredEvent) -> str:
        return self._line(str(event.seq), format_time(event.ts), event.hunt_id, str(event.version),
                          event.type, summarize(event))

    def _line(self, seq: str, when: str, hunt: str, version: str, type_: str, data: str) -> str:
        return (f"{seq:>{self.seq_w}}  {when:<24}  {hunt:<{self.hunt_w}}  {version:>{self.version_w}}  "
                f"{type_:<{self.type_w}}  {data}")


def format_time(ts: int) -> str:
    """Milliseconds since the epoch as a fixed-width UTC time: 2026-12-01T10:00:00.250Z."""
    try:
        moment = _EPOCH + timedelta(milliseconds=ts)
    except OverflowError:
        return str(ts)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts % 1000:03d}Z"


def summarize(event: StoredEvent) -> str:
    """A one-line gist of an event's data, at most SUMMARY_WIDTH characters."""
    data = event.data
    if event.type == "hunt_created" and isinstance(data.get("definition"), dict):
        definition = data["definition"]
        text = (f"{_value(definition.get('title'))} ({len(definition.get('clues') or ())} clues, "
                f"{definition.get('order', 'sequential')})")
    else:
        text = " ".join(f"{key}={_value(value)}" for key, value in data.items())
    return text if len(text) <= SUMMARY_WIDTH else text[: SUMMARY_WIDTH - 1] + "…"


def _value(value: Any) -> str:
    if isinstance(value, str) and value and not any(c.isspace() or c in "\"=" for c in value):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


@contextmanager
def _quiet_broken_pipe() -> Iterator[None]:
    """`thengine events | head`: stop quietly when the reader goes away."""
    try:
        yield
    except BrokenPipeError:
        silence_stdout(sys.stdout)
