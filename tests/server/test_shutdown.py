"""Graceful shutdown: no new connections, requests in flight answered, clients closed
with 1001, snapshots taken, exit 0 (SIGTERM to a real `thengine serve` process)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import trio
from .wsclient import ConnectionClosed

from thengine.storage.store import Store
from thengine.tokens import issue

from .conftest import ROOT, SlowVFS, connected, make_hunt, read_secret, running_server


def join(player: str) -> dict:
    return {"type": "join_hunt", "hunt_id": "h", "player_id": player}


async def test_shutdown_answers_commands_in_flight_then_closes_with_1001(db: Path, slow_vfs: SlowVFS) -> None:
    async with running_server(db, engine_options={"vfs": slow_vfs.name}) as server:
        async with server.client() as ws, server.client() as watcher:
            await make_hunt(ws)
            await watcher.request({"op": "subscribe", "id": "s", "hunt_id": "h"})
            slow_vfs.delay = 0.05
            for i in range(20):
                await ws.send({"op": "command", "id": i, "command": join(f"p{i}")})
            await trio.sleep(0.02)
            server.running.shutdown()
            results, reason = await ws.replies_until_closed(10)
            assert (reason.code, reason.reason) == (1001, "the server is shutting down")
            assert sorted(results) == list(range(20)) and all(r["ok"] for r in results.values())
            assert (await watcher.closed()).code == 1001
            slow_vfs.delay = 0.0
    with Store.open(db, readonly=True) as store:
        assert store.hunt_heads()["h"][0] == 22
        assert store.latest_snapshot("h").version == 22


async def _read_until(stream: trio.abc.ReceiveStream, marker: bytes, buffer: bytearray) -> bytes:
    with trio.fail_after(15):
        while marker not in buffer:
            chunk = await stream.receive_some(4096)
            if not chunk:
                raise AssertionError(f"the server exited: {bytes(buffer).decode()}")
            buffer += chunk
    return bytes(buffer)


async def test_sigterm_stops_a_server_process_gracefully(db: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = await trio.lowlevel.open_process(
        [sys.executable, "-m", "thengine", "serve", str(db), "--listen", "127.0.0.1:0", "--sync", "normal",
         "--shards", "2"],
        stderr=subprocess.PIPE, env=env)
    try:
        err = bytearray()
        text = (await _read_until(proc.stderr, b"Ctrl-C stops", err)).decode()
        url = text.split(" at ", 1)[1].split(" ", 1)[0]
        token = issue(read_secret(db), role="admin", ttl_s=600, now_s=int(time.time()))
        acknowledged: dict[int, dict] = {}
        async with connected(url, token) as ws, connected(url, token) as watcher:
            await make_hunt(ws)
            await watcher.request({"op": "subscribe", "id": "s", "hunt_id": "h"})
            for i in range(50):  # a window in flight when the signal arrives
                await ws.send({"op": "command", "id": i, "command": join(f"p{i}")})
            proc.send_signal(signal.SIGTERM)
            reason = None
            with trio.fail_after(15):
                while reason is None:
                    try:
                        frame = await ws.recv()
                    except ConnectionClosed as exc:
                        reason = exc.reason
                    else:
                        if frame.get("op") == "result":
                            acknowledged[frame["id"]] = frame
            assert reason.code == 1001
            assert (await watcher.closed()).code == 1001
        with trio.fail_after(15):
            code = await proc.wait()
        await _read_until(proc.stderr, b"stopped", err)
        assert code == 0, bytes(err).decode()
        assert b"Traceback" not in err
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await proc.stderr.aclose()
    assert acknowledged and all(r["ok"] for r in acknowledged.values())
    with Store.open(db, readonly=True) as store:
        events = {e.seq: e for e in store.read_events()}
        for reply in acknowledged.values():
            for event in reply["events"]:
                assert events[event["seq"]].data == event["data"]  # every answer is durable
        head_version = store.hunt_heads()["h"][0]
        assert store.latest_snapshot("h").version == head_version
