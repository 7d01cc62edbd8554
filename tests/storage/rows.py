"""Builders for storage rows, so tests state only what matters to them."""

from __future__ import annotations

import json
from typing import Any

from thengine.storage.store import Batch, CommandRecord, EventRow, SnapshotRow

T0 = 1_800_000_000_000


def event(seq: int, hunt_id: str = "h", version: int | None = None, *, type: str = "player_joined",
          ts: int | None = None, command_id: str | None = None, **data: Any) -> EventRow:
    """An event row; version defaults to seq (one hunt), ts to T0 + seq."""
    return EventRow(
        seq=seq,
        hunt_id=hunt_id,
        version=seq if version is None else version,
        type=type,
        ts=T0 + seq if ts is None else ts,
        data=json.dumps(data or {"player_id": f"p{seq}"}),
        command_id=command_id,
    )


def interleaved(hunts: list[str], per_hunt: int, *, first_seq: int = 1) -> list[EventRow]:
    """`per_hunt` events for each hunt, round robin: seq global, version per hunt."""
    rows = []
    seq = first_seq
    for version in range(1, per_hunt + 1):
        for hunt_id in hunts:
            rows.append(event(seq, hunt_id, version))
            seq += 1
    return rows


def command(command_id: str, *, ts: int, hunt_id: str = "h", first_seq: int = 1, last_seq: int = 1) -> CommandRecord:
    return CommandRecord(command_id=command_id, fingerprint=f"fp-{command_id}", hunt_id=hunt_id,
                         first_seq=first_seq, last_seq=last_seq, ts=ts)


def snapshot(hunt_id: str, version: int, *, seq: int | None = None, state: bytes = b"state") -> SnapshotRow:
    return SnapshotRow(hunt_id=hunt_id, version=version, seq=version if seq is None else seq,
                       format=1, state=state, ts=T0 + version)


def events_batch(rows: list[EventRow]) -> Batch:
    return Batch(events=rows)
