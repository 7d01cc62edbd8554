"""Load on `thengine serve` over the network: many connections, commands/s and latency.

Not a test. Run from the repository:

    python benchmarks/server_load.py [--connections 200] [--commands 40000] [--hunts 20]
                                     [--depth 1] [--subscribers 0] [--sync full] [--json]

Starts a real `thengine serve` process on a fresh database (loopback, a free port),
creates the hunts through it with an admin token, then opens --connections WebSocket
connections, each authenticated with its own player token, each playing its player
(join, then a mix of right and wrong answers and hints) with --depth commands in
flight. Latency is measured per command from just before its frame is sent to its
reply (so it includes the commit). With --subscribers, that many extra connections
subscribe (player view, batched) to the hunts and count the events pushed to them;
push latency is from the event's accept timestamp to its arrival.

The client side runs in --procs processes (default 1). The server runs with --rate 0
(no per-player limit) unless --rate is given. Prints a summary, or one JSON object.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import trio
from trio_websocket import wrap_client_stream

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from thengine.client import connect  # noqa: E402
from thengine.domain.commands import CreateHunt, JoinHunt, RequestHint, StartHunt, SubmitAnswer  # noqa: E402
from thengine.domain.definition import parse_definition  # noqa: E402
from thengine.storage.store import Store  # noqa: E402
from thengine.tokens import SECRET_META_KEY, decode_secret, issue  # noqa: E402

CLUES = 100


def hunt_definition(hunt_id: str) -> dict[str, Any]:
    return {
        "id": hunt_id, "title": f"Load {hunt_id}", "order": "any",
        "clues": [{"id": f"c{i}", "prompt": f"prompt {i}", "answers": [f"a{i}"], "points": 10,
                   "hints": [{"text": f"hint {i}", "penalty": 1}]} for i in range(CLUES)],
    }


def percentiles(samples: list[float]) -> dict[str, float]:
    if not samples:
        return {}
    ordered = sorted(samples)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 3)

    return {"p50": at(0.50), "p90": at(0.90), "p99": at(0.99), "p999": at(0.999),
            "max": round(ordered[-1] * 1000, 3)}


# -- the client processes --------------------------------------------------------------------


async def play(url: str, token: str, player: str, hunt: str, commands: int, depth: int,
               latencies: list[float], outcomes: dict[str, int], rng: random.Random) -> None:
    """One player's connection: `commands` commands, `depth` in flight at once."""
    async with connect(url, token, timeout=30) as client:
        unsolved = list(range(CLUES))  # clues not yet answered right (hunts are order = "any")
        hinted: set[int] = set()
        sent = 0

        async def timed(command: Any) -> None:
            started = time.perf_counter()
            result = await client.submit(command)
            latencies.append(time.perf_counter() - started)
            code = "ok" if result.ok else result.error.code
            outcomes[code] = outcomes.get(code, 0) + 1

        def next_command() -> Any:
            clue = unsolved[0] if len(unsolved) == 1 else rng.choice(unsolved[:depth + 1])
            roll = rng.random()
            if roll < 0.08 and clue not in hinted:
                hinted.add(clue)
                return RequestHint(hunt_id=hunt, player_id=player, clue_id=f"c{clue}")
            right = roll < 0.45 and len(unsolved) > 1  # the last clue stays open: no treasure, no end
            if right:
                unsolved.remove(clue)  # at issue time, so pipelined lanes never race for it
            return SubmitAnswer(hunt_id=hunt, player_id=player, clue_id=f"c{clue}",
                                answer=f"a{clue}" if right else "wrong")

        async def lane() -> None:
            nonlocal sent
            while sent < commands:
                sent += 1
                await timed(next_command())

        sent = 1
        await timed(JoinHunt(hunt_id=hunt, player_id=player))  # joined before anything else
        async with trio.open_nursery() as nursery:
            for _ in range(depth):
                nursery.start_soon(lane)


async def watch(url: str, token: str, hunt: str, stop: trio.Event, counts: list[int], lags: list[float]) -> None:
    """A subscriber that costs the client little: it counts events without decoding most frames."""
    parts = urlsplit(url)
    async with trio.open_nursery() as nursery:
        stream = await trio.open_tcp_stream(parts.hostname, parts.port)
        try:
            ws = await wrap_client_stream(nursery, stream, parts.hostname, parts.path, message_queue_size=256,
                                          max_message_size=1 << 26, receive_buffer_size=1 << 16)
            await ws.send_message(json.dumps({"op": "hello", "token": token}))
            await ws.get_message()
            await ws.send_message(json.dumps({"op": "subscribe", "id": 1, "hunt_id": hunt, "batch": True}))
            frames = 0
            with trio.CancelScope() as scope:
                nursery.start_soon(_cancel_on, stop, scope)
                while True:
                    text = await ws.get_message()
                    counts[0] += text.count('"seq":')
                    frames += 1
                    if frames % 20 == 0 and text.startswith('{"op":"events"'):  # sample the push lag
                        last = json.loads(text)["events"][-1]
                        lags.append(time.time() - last["ts"] / 1000)
            await ws.aclose()
        finally:
            await trio.aclose_forcefully(stream)
            nursery.cancel_scope.cancel()


async def _cancel_on(event: trio.Event, scope: trio.CancelScope) -> None:
    await event.wait()
    scope.cancel()


async def client_process_main(job: dict[str, Any]) -> dict[str, Any]:
    latencies: list[float] = []
    outcomes: dict[str, int] = {}
    pushed = [0]
    lags: list[float] = []
    stop = trio.Event()
    secret = bytes.fromhex(job["secret"])
    now = int(time.time())
    rng = random.Random(job["seed"])
    async with trio.open_nursery() as watchers:
        for i, hunt in enumerate(job["watch"]):
            token = issue(secret, role="player", player_id=f"watcher{job['seed']}-{i}", ttl_s=3600, now_s=now)
            watchers.start_soon(watch, job["url"], token, hunt, stop, pushed, lags)
        await trio.sleep(0.5 if job["watch"] else 0)
        started = time.perf_counter()
        async with trio.open_nursery() as players:
            for player, hunt in job["players"]:
                token = issue(secret, role="player", player_id=player, ttl_s=3600, now_s=now)
                players.start_soon(play, job["url"], token, player, hunt, job["commands_each"], job["depth"],
                                   latencies, outcomes, random.Random(rng.random()))
        seconds = time.perf_counter() - started
        await trio.sleep(0.5)  # let the last pushes arrive
        stop.set()
    return {"latencies": latencies, "outcomes": outcomes, "seconds": seconds, "pushed": pushed[0], "lags": lags}


def client_process(job: dict[str, Any], queue: Any) -> None:
    queue.put(trio.run(client_process_main, job))


# -- the server and the run ------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


async def setup_hunts(url: str, secret: bytes, hunts: list[str]) -> None:
    token = issue(secret, role="admin", ttl_s=3600, now_s=int(time.time()))
    async with connect(url, token) as admin:
        for hunt in hunts:
            assert (await admin.submit(CreateHunt(definition=parse_definition(hunt_definition(hunt))))).ok
            assert (await admin.submit(StartHunt(hunt_id=hunt))).ok


def main() -> None:
    parser = argparse.ArgumentParser(description="Load on thengine serve over WebSocket.")
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--commands", type=int, default=40_000, help="in total, over all connections")
    parser.add_argument("--hunts", type=int, default=20)
    parser.add_argument("--depth", type=int, default=1, help="commands in flight per connection")
    parser.add_argument("--subscribers", type=int, default=0, help="extra connections watching the hunts")
    parser.add_argument("--sync", choices=["full", "normal"], default="full")
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--rate", type=float, default=0.0, help="the server's per-player limit (0: none)")
    parser.add_argument("--procs", type=int, default=1, help="client processes")
    parser.add_argument("--dir", help="where to put the database (default: a temporary directory)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    workdir = Path(args.dir or tempfile.mkdtemp(prefix="thengine-load-"))
    db = workdir / "load.db"
    for leftover in workdir.glob("load.db*"):
        leftover.unlink()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-m", "thengine", "init", str(db)], check=True, env=env, capture_output=True)
    with Store.open(db, readonly=True) as store:
        secret = decode_secret(store.get_meta(SECRET_META_KEY) or "")
    server = subprocess.Popen(
        [sys.executable, "-m", "thengine", "serve", str(db), "--listen", "127.0.0.1:0", "--sync", args.sync,
         "--shards", str(args.shards), "--rate", str(args.rate) if args.rate else "0",
         "--max-connections", str(args.connections + args.subscribers + 10)],
        stderr=subprocess.PIPE, env=env, text=True)
    try:
        line = server.stderr.readline()
        match = re.search(r" at (ws://\S+)", line)
        if not match:
            raise SystemExit(f"the server did not start: {line}{server.stderr.read()}")
        url = match.group(1)
        hunts = [f"load{i}" for i in range(args.hunts)]
        trio.run(setup_hunts, url, secret, hunts)

        each = max(1, args.commands // args.connections)
        players = [(f"p{i}", hunts[i % len(hunts)]) for i in range(args.connections)]
        watched = [hunts[i % len(hunts)] for i in range(args.subscribers)]
        jobs = [{"url": url, "secret": secret.hex(), "players": players[k::args.procs], "watch": watched[k::args.procs],
                 "commands_each": each, "depth": args.depth, "seed": k} for k in range(args.procs)]
        cpu_before = cpu_seconds(server.pid)
        context = multiprocessing.get_context("spawn")
        queue = context.Queue()
        procs = [context.Process(target=client_process, args=(job, queue)) for job in jobs]
        for proc in procs:
            proc.start()
        results = [queue.get() for _ in procs]
        for proc in procs:
            proc.join()
        cpu = cpu_seconds(server.pid) - cpu_before
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()

    latencies = [x for r in results for x in r["latencies"]]
    lags = [x for r in results for x in r["lags"]]
    outcomes: dict[str, int] = {}
    for r in results:
        for code, n in r["outcomes"].items():
            outcomes[code] = outcomes.get(code, 0) + n
    seconds = max(r["seconds"] for r in results)
    pushed = sum(r["pushed"] for r in results)
    report = {
        "connections": args.connections, "depth": args.depth, "hunts": args.hunts, "sync": args.sync,
        "shards": args.shards, "subscribers": args.subscribers, "client_procs": args.procs,
        "commands": len(latencies), "seconds": round(seconds, 3),
        "commands_per_s": round(len(latencies) / seconds, 1),
        "latency_ms": percentiles(latencies), "outcomes": dict(sorted(outcomes.items())),
        "server_cpu_s": round(cpu, 2), "server_cpu_share": round(cpu / seconds, 2),
        "events_pushed": pushed, "events_pushed_per_s": round(pushed / seconds, 1),
        "push_lag_ms": percentiles(lags),
        "machine": f"{platform.machine()} {os.cpu_count()} cpus, python {platform.python_version()}",
    }
    if args.json:
        print(json.dumps(report))
        return
    lat = report["latency_ms"]
    print(f"{report['commands']:,} commands over {args.connections} connections (depth {args.depth}, "
          f"{args.hunts} hunts, sync {args.sync}) in {report['seconds']} s")
    print(f"  {report['commands_per_s']:,} commands/s; latency ms p50 {lat['p50']} p90 {lat['p90']} "
          f"p99 {lat['p99']} p99.9 {lat['p999']} max {lat['max']}")
    print(f"  outcomes: {report['outcomes']}")
    print(f"  server CPU {report['server_cpu_s']} s ({report['server_cpu_share']:.0%} of one core)")
    if args.subscribers:
        lag = report["push_lag_ms"]
        print(f"  {args.subscribers} subscribers got {pushed:,} events ({report['events_pushed_per_s']:,}/s); "
              f"push lag ms p50 {lag.get('p50')} p99 {lag.get('p99')} max {lag.get('max')}")
    print(f"  {report['machine']}")


if __name__ == "__main__":
    main()
