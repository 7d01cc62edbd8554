"""Shared pieces for engine tests: a hunt, a fake wall clock on trio's clock, fakes."""

from __future__ import annotations

import threading
from typing import Any

import trio

from thengine.domain.commands import CreateHunt, JoinHunt, StartHunt, SubmitAnswer
from thengine.domain.definition import format_ts, parse_definition
from thengine.errors import StorageError
from thengine.storage.store import Batch, Store

#: 2027-01-15T08:00:00Z: the fake wall clock's epoch in tests.
T0 = 1_800_000_000_000


def definition(hunt_id: str = "h", *, clues: int = 3, **fields: Any):
    return parse_definition({
        "id": hunt_id,
        "title": f"Hunt {hunt_id}",
        "clues": [{"id": f"c{i}", "prompt": f"prompt {i}", "answers": [f"a{i}"], "points": 10 * (i + 1),
                   "hints": [{"text": f"hint {i}", "penalty": 1}]}
                  for i in range(clues)],
        **{k: format_ts(v) if k in ("starts_at", "ends_at", "freeze_at") else v for k, v in fields.items()},
    })


def trio_clock() -> int:
    """A wall clock that follows trio's (Mock)Clock: T0 plus trio time."""
    return T0 + int(trio.current_time() * 1000)


async def running_hunt(engine, hunt_id: str = "h", **fields: Any) -> None:
    assert (await engine.submit(CreateHunt(definition=definition(hunt_id, **fields)))).ok
    assert (await engine.submit(StartHunt(hunt_id=hunt_id))).ok


def join(hunt_id: str, player_id: str) -> JoinHunt:
    return JoinHunt(hunt_id=hunt_id, player_id=player_id)


def answer(hunt_id: str, player_id: str, clue: int, text: str | None = None) -> SubmitAnswer:
    return SubmitAnswer(hunt_id=hunt_id, player_id=player_id, clue_id=f"c{clue}", answer=text or f"a{clue}")


class GatedStore:
    """Wraps the engine's Store: writes wait until the test opens the gate (in a thread)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.gate = threading.Event()
        self.writing = threading.Event()

    def write(self, batch: Batch) -> None:
        self.writing.set()
        self.gate.wait(10)
        self._store.write(batch)

    @property
    def last_commit_s(self) -> float:
        return self._store.last_commit_s


class FailingStore:
    """Wraps the engine's Store: every write fails as a full disk would."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def write(self, batch: Batch) -> None:
        raise StorageError(f"{self._store.path}: writing a batch failed: database or disk is full")
