"""A load worker for the deleted-WAL trial: like `crash_worker.py`, and it reports failures.

    python tests/runtime/wal_worker.py DB --seed S [--tasks T] [--checkpoint-every SECONDS]

It plays `crash_worker`'s hunts and command streams through an engine on DB and prints
one JSON line per acknowledged command, exactly as `crash_worker` does. When a submit
raises `StorageError` it prints ``{"storage_error": message}`` and kills itself with
SIGKILL at once: a crash right after the error, so that nothing a clean shutdown would
do (the last checkpoint when the engine closes) can hide what the error path left.

``--checkpoint-every`` defaults to an hour: the engine's own checkpoints then never
copy the WAL into the database during a trial, so whatever is acknowledged lives only
in the WAL, the worst case for a deleted one.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from typing import Any

import trio

from crash_worker import report, setup_commands, task_stream  # run as a script: its own directory

from thengine import open_engine
from thengine.errors import StorageError


def fail(exc: StorageError) -> None:
    sys.stdout.write(json.dumps({"storage_error": str(exc)}) + "\n")
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


async def submit(engine: Any, command_id: str, command: Any) -> None:
    try:
        result = await engine.submit(command, command_id=command_id)
    except StorageError as exc:
        fail(exc)
    report(command_id, command, result)


async def run_task(engine: Any, seed: int, task: int) -> None:
    for command_id, command in task_stream(seed, task):
        await submit(engine, command_id, command)


async def main(args: argparse.Namespace) -> None:
    try:
        async with open_engine(args.db, shards=3, sync="full", snapshot_every=50, snapshot_events_per_player=0,
                               checkpoint_every_s=args.checkpoint_every) as engine:
            for command_id, command in setup_commands():
                await submit(engine, command_id, command)
            async with trio.open_nursery() as nursery:
                for task in range(args.tasks):
                    nursery.start_soon(run_task, engine, args.seed, task)
    except StorageError as exc:  # the engine stopped before a submit saw it
        fail(exc)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("db")
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--tasks", type=int, default=10)
    parser.add_argument("--checkpoint-every", type=float, default=3600.0)
    trio.run(main, parser.parse_args())
