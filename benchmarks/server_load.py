"""Load on `thengine serve` over the network, with the server's CPU per unit of work.

Not a test. Run from the repository (needs node and npm; the first run installs the
`ws` package into benchmarks/load/node_modules):

    python benchmarks/server_load.py                 # the closed loop and its two baselines
    python benchmarks/server_load.py --watched --raw --memory   # other scenarios
    python benchmarks/server_load.py --all --json    # everything, one JSON object

Each scenario starts its own `thengine serve` on a fresh database (loopback, a free
port, `--rate 0`: no per-player limit) and drives it with the Node client in
benchmarks/load/client.mjs, which costs far less CPU than a Python client would, so
the server keeps a core to itself. The server's CPU is read from /proc/<pid>/stat
(utime + stime, threads and child processes included) at the start and the end of
the measured window, which the client marks; CPU per command is stable on a noisy
machine where commands/s is not, so compare ratios taken in the same run.

Scenarios:

- ``--closed`` (the default): --connections players (200), each on its own
  connection, each with a `command_id` on every command (join, then a mix of right
  and wrong answers and hints), --depth in flight (1). Reports commands/s, latency
  and server CPU µs per command, beside two baselines run at once:
  (a) the engine alone (`thengine.open_engine` in this process, the same number of
      commands with ids, the same hunts, shards and sync; process CPU per command);
  (b) benchmarks/echo_server.py, websockets' Sans-I/O ServerProtocol on trio streams,
      which parses each request and answers a result-sized frame, driven by the
      same client; its CPU µs per message.
  and prints server/engine and server/echo.
- ``--watched``: one hunt, --watchers connections (5,000) each watching the
  leaderboard (``watch``, interval --interval-ms), --watch-players of them (500) also
  playing at --watch-rate commands/s offered in total (1,000; open loop, latency
  from when each command was due). Reports command latency, leaderboard staleness
  (from a command's result to the first `leaderboard` frame with `seq` >= the seq of
  its last event that moves the board, at the connection that sent it) and the
  server's CPU as a fraction of one core. A server without `watch` is reported as
  such; the run then measures the players beside idle connections.
- ``--raw``: one hunt, --subscribers raw event subscribers (1,000; ``batch``) and
  --sub-players players (100) in a closed loop for --sub-duration s; then the same
  without subscribers; reports both commands/s and their ratio.
- ``--memory``: the server's RSS (VmRSS) before and after --idle connections (2,000)
  said hello and sit idle, per connection; then they all close together and the run
  reports how long until /healthz says 0 connections, how slow /healthz was
  meanwhile, and how much RSS came back. Done with permessage-deflate offered, then
  without.

Everything is bounded (counts, the measured windows, a timeout per client run), on
loopback only. The driver raises its soft open-files limit to the hard one; the
server and the client inherit it. `--serve-arg=--opt` passes options to
`thengine serve` (repeatable), e.g. a compression switch of a newer server.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import resource
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
LOAD = ROOT / "benchmarks" / "load"
CLIENT = LOAD / "client.mjs"
ECHO = ROOT / "benchmarks" / "echo_server.py"
sys.path.insert(0, str(ROOT))

CLUES = 100
P_HINT = 0.08   # of commands after the join: a hint (once per clue) ...
P_RIGHT = 0.37  # ... else the right answer (never the last open clue) ...  else a wrong one
CLK_TCK = os.sysconf("SC_CLK_TCK")


def hunt_definition(hunt_id: str) -> dict[str, Any]:
    return {
        "id": hunt_id, "title": f"Load {hunt_id}", "order": "any",
        "clues": [{"id": f"c{i}", "prompt": f"prompt {i}", "answers": [f"a{i}"], "points": 10,
                   "hints": [{"text": f"hint {i}", "penalty": 1}]} for i in range(CLUES)],
    }


def percentiles_ms(samples: list[float]) -> dict[str, float]:
    if not samples:
        return {}
    ordered = sorted(samples)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 3)

    return {"n": len(ordered), "p50": at(0.50), "p90": at(0.90), "p99": at(0.99), "p999": at(0.999),
            "max": round(ordered[-1] * 1000, 3)}


# -- processes: CPU and memory from /proc ---------------------------------------------------


def _descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        try:
            tasks = os.listdir(f"/proc/{parent}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                children = Path(f"/proc/{parent}/task/{task}/children").read_text().split()
            except OSError:
                continue
            for child in map(int, children):
                found.append(child)
                todo.append(child)
    return found


def cpu_seconds(pid: int) -> float:
    """utime + stime of `pid` (all its threads) and of its live descendants, in seconds."""
    total = 0
    for p in [pid, *_descendants(pid)]:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            if p == pid:
                return float("nan")
    return total / CLK_TCK


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return -1


def self_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)  # every thread of this process
    return usage.ru_utime + usage.ru_stime


def raise_open_files() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            return soft
    return hard


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port: int, proc: subprocess.Popen[Any], log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"the server did not listen on {port} within {timeout} s:\n{log.read_text()[-3000:]}")


# -- tokens ---------------------------------------------------------------------------------


def _issue() -> Callable[..., str]:
    try:
        from thengine.tokens import issue
    except ImportError:  # the module may move beside the server code
        from thengine.server.tokens import issue  # type: ignore[no-redef]
    return issue


def read_secret(db: Path) -> bytes:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        row = conn.execute("SELECT value FROM meta WHERE key = 'token_secret'").fetchone()
    if not row:
        raise SystemExit(f"{db} has no token secret after `thengine init`")
    return bytes.fromhex(row[0])


class Tokens:
    def __init__(self, secret: bytes) -> None:
        self.secret, self.issue, self.now = secret, _issue(), int(time.time())

    def admin(self) -> str:
        return self.issue(self.secret, role="admin", ttl_s=6 * 3600, now_s=self.now)

    def player(self, player_id: str) -> str:
        return self.issue(self.secret, role="player", player_id=player_id, ttl_s=6 * 3600, now_s=self.now)


# -- the servers ----------------------------------------------------------------------------


_SERVE_HELP: list[str] = []


def serve_help(env: dict[str, str]) -> str:
    if not _SERVE_HELP:
        _SERVE_HELP.append(subprocess.run([sys.executable, "-m", "thengine", "serve", "--help"], env=env,
                                          capture_output=True, text=True).stdout)
    return _SERVE_HELP[0]


class Server:
    """A `thengine serve` (or the echo server) process on a free loopback port."""

    def __init__(self, workdir: Path, name: str) -> None:
        self.workdir, self.name = workdir, name
        self.log = workdir / f"{name}.log"
        self.proc: subprocess.Popen[Any] | None = None
        self.port = 0
        self.tokens: Tokens | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start_thengine(self, args: argparse.Namespace, max_connections: int) -> "Server":
        db = self.workdir / f"{self.name}.db"
        for leftover in self.workdir.glob(f"{self.name}.db*"):
            leftover.unlink()
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        subprocess.run([sys.executable, "-m", "thengine", "init", str(db)], check=True, env=env, capture_output=True)
        self.tokens = Tokens(read_secret(db))
        self.port = free_port()
        command = [sys.executable, "-m", "thengine", "serve", str(db), "--listen", f"127.0.0.1:{self.port}",
                   "--sync", args.sync, "--shards", str(args.shards)]
        # options a rewritten server might not have are passed only if `serve --help` names them
        for option, value in (("--rate", "0"), ("--max-connections", str(max_connections)), ("--grace", "2")):
            if option in serve_help(env):
                command += [option, value]
            elif option == "--rate":
                print("warning: `thengine serve` has no --rate; the per-player limit stays on", file=sys.stderr)
        command += args.serve_arg
        self._spawn(command, env)
        return self

    def start_echo(self, args: argparse.Namespace) -> "Server":
        self.tokens = None
        self.port = free_port()
        command = [sys.executable, str(ECHO), "--listen", f"127.0.0.1:{self.port}"]
        if args.echo_deflate:
            command.append("--deflate")
        self._spawn(command, os.environ.copy())
        return self

    def _spawn(self, command: list[str], env: dict[str, str]) -> None:
        with self.log.open("w") as log:
            self.proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env)
        wait_listening(self.port, self.proc, self.log)

    def healthz(self, timeout: float = 30) -> tuple[dict[str, Any] | None, float]:
        started = time.perf_counter()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=timeout) as response:
                body = json.loads(response.read())
        except Exception:  # noqa: BLE001 - a missing or failing /healthz is reported as None
            body = None
        return body, time.perf_counter() - started

    def stop(self) -> dict[str, Any]:
        """Stop it (SIGTERM, then SIGKILL) and say what its log holds that it should not."""
        if self.proc is None:
            return {}
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        text = self.log.read_text(errors="replace")
        return {"exit": self.proc.returncode, "tracebacks": text.count("Traceback (most recent call last)"),
                "log_lines": len(text.splitlines())}


# -- the node client ------------------------------------------------------------------------


def ensure_client() -> str:
    node = shutil.which("node")
    if not node:
        raise SystemExit("node is needed for the load client (benchmarks/load/client.mjs)")
    if not (LOAD / "node_modules" / "ws").is_dir():
        npm = shutil.which("npm")
        if not npm:
            raise SystemExit("npm is needed once, to install the `ws` package into benchmarks/load")
        subprocess.run([npm, "install", "--prefix", str(LOAD), "--no-audit", "--no-fund"], check=True,
                       stdout=subprocess.DEVNULL)
    return node


class Window:
    """The server's (and the client's) CPU over the window the client marks."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.cpu0 = self.cpu1 = self.t0 = self.t1 = 0.0

    def start(self) -> None:
        self.t0, self.cpu0 = time.perf_counter(), cpu_seconds(self.pid)

    def end(self) -> None:
        self.t1, self.cpu1 = time.perf_counter(), cpu_seconds(self.pid)

    @property
    def cpu(self) -> float:
        return self.cpu1 - self.cpu0

    @property
    def seconds(self) -> float:
        return self.t1 - self.t0


def run_client(node: str, workdir: Path, config: dict[str, Any], server: Server,
               on_ready: Callable[[subprocess.Popen[str]], dict[str, Any]] | None = None) -> dict[str, Any]:
    """Run the node client with `config`; the summary, with the server's CPU over the window."""
    config = {"url": server.url, "deflate": True, "clues": CLUES, "p_hint": P_HINT, "p_right": P_RIGHT,
              "command_ids": True, "connect_concurrency": 64, "timeout_s": 300, "run_id": f"r{random.randrange(1 << 30)}",
              **config}
    path = workdir / "client-config.json"
    path.write_text(json.dumps(config))
    errlog = (workdir / "client.log").open("w")
    proc = subprocess.Popen([node, str(CLIENT), str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=errlog, text=True, cwd=LOAD)
    window = Window(server.pid)
    summary: dict[str, Any] | None = None
    hold: dict[str, Any] = {}
    client_cpu = [0.0, 0.0]
    killer = threading.Timer(config["timeout_s"] + 30, proc.kill)  # a client that hangs anyway
    killer.start()
    try:
        assert proc.stdout is not None and proc.stdin is not None
        for line in proc.stdout:
            try:
                message = json.loads(line)
            except ValueError:
                continue
            phase = message.get("phase")
            if phase == "start":
                window.start()
                client_cpu[0] = cpu_seconds(proc.pid)
            elif phase == "end":
                window.end()
                client_cpu[1] = cpu_seconds(proc.pid)
            elif phase == "ready" and on_ready is not None:
                hold = on_ready(proc)
            elif phase == "summary":
                summary = message
        proc.wait()
    finally:
        killer.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        errlog.close()
    if summary is None:
        raise SystemExit(f"the load client gave no summary (exit {proc.returncode}):\n"
                         f"{(workdir / 'client.log').read_text()[-3000:]}")
    if summary.get("fatal"):
        summary["client_stderr"] = (workdir / "client.log").read_text()[-1000:]
    summary["server_cpu_s"] = round(window.cpu, 3) if window.t1 else None
    summary["server_cpu_share"] = round(window.cpu / window.seconds, 3) if window.t1 and window.seconds else None
    summary["client_cpu_share"] = (round((client_cpu[1] - client_cpu[0]) / window.seconds, 3)
                                   if window.t1 and window.seconds else None)
    summary.update(hold)
    return summary


def setup_commands(hunts: list[str]) -> list[dict[str, Any]]:
    commands: list[dict[str, Any]] = []
    for hunt in hunts:
        commands.append({"type": "create_hunt", "definition": hunt_definition(hunt)})
        commands.append({"type": "start_hunt", "hunt_id": hunt})
    return commands


def per_unit_us(summary: dict[str, Any]) -> float | None:
    cpu, n = summary.get("server_cpu_s"), summary.get("commands")
    return round(cpu / n * 1e6, 1) if cpu is not None and n else None


# -- (1) the closed loop and its baselines --------------------------------------------------


def closed_players(args: argparse.Namespace, tokens: Tokens | None, hunts: list[str]) -> list[dict[str, Any]]:
    return [{"player": f"p{i}", "hunt": hunts[i % len(hunts)], "token": tokens.player(f"p{i}") if tokens else "echo"}
            for i in range(args.connections)]


def closed_config(args: argparse.Namespace, players: list[dict[str, Any]]) -> dict[str, Any]:
    return {"mode": "closed", "players": players, "commands_each": max(1, args.commands // args.connections),
            "depth": args.depth, "window": args.depth + 1, "duration_s": args.duration, "deflate": not args.no_deflate,
            "require_all": True}


def scenario_closed(args: argparse.Namespace, node: str, workdir: Path) -> dict[str, Any]:
    hunts = [f"load{i}" for i in range(args.hunts)]
    report: dict[str, Any] = {"connections": args.connections, "depth": args.depth, "hunts": args.hunts,
                              "sync": args.sync, "shards": args.shards}
    server = Server(workdir, "closed").start_thengine(args, args.connections + 100)
    try:
        assert server.tokens is not None
        config = closed_config(args, closed_players(args, server.tokens, hunts))
        config["setup"] = {"token": server.tokens.admin(), "commands": setup_commands(hunts)}
        result = run_client(node, workdir, config, server)
    finally:
        result_log = server.stop()
    result["server_cpu_us_per_command"] = per_unit_us(result)
    result["server_log"] = result_log
    report["server"] = result
    if not args.no_baselines:
        try:
            report["engine"] = engine_baseline(args, workdir, hunts, result.get("commands") or 0)
        except Exception as exc:  # noqa: BLE001 - the engine is being edited; report, go on
            report["engine"] = {"error": f"{type(exc).__name__}: {exc}", "cpu_us_per_command": None}
        echo = Server(workdir, "echo").start_echo(args)
        try:
            echo_result = run_client(node, workdir, closed_config(args, closed_players(args, None, hunts)), echo)
        finally:
            echo_log = echo.stop()
        echo_result["server_log"] = echo_log
        echo_result["server_cpu_us_per_message"] = per_unit_us(echo_result)
        report["echo"] = echo_result
        server_us = result["server_cpu_us_per_command"]
        engine_us = report["engine"].get("cpu_us_per_command")
        echo_us = echo_result["server_cpu_us_per_message"]
        report["ratios"] = {
            "server_over_engine": round(server_us / engine_us, 2) if server_us and engine_us else None,
            "server_over_echo": round(server_us / echo_us, 2) if server_us and echo_us else None,
            "targets": {"server_over_engine": 2.0, "server_over_engine_stretch": 1.5, "server_over_echo": 3.0},
        }
    return report


def engine_baseline(args: argparse.Namespace, workdir: Path, hunts: list[str], commands: int) -> dict[str, Any]:
    """The same players and commands (with command ids) through the embedded engine."""
    import trio

    import thengine

    db = workdir / "engine.db"
    for leftover in workdir.glob("engine.db*"):
        leftover.unlink()
    each = max(1, args.commands // args.connections)
    latencies: list[float] = []
    outcomes: dict[str, int] = {}

    async def player(engine: Any, k: int, hunt: str, rng: random.Random) -> None:
        pid = f"p{k}"
        unsolved = list(range(CLUES))
        hinted: set[int] = set()
        sent = 0
        window = args.depth + 1

        def next_command() -> Any:
            nonlocal sent
            sent += 1
            if sent == 1:
                return thengine.JoinHunt(hunt_id=hunt, player_id=pid)
            clue = unsolved[0] if len(unsolved) == 1 else unsolved[int(rng.random() * min(len(unsolved), window))]
            roll = rng.random()
            if roll < P_HINT and clue not in hinted:
                hinted.add(clue)
                return thengine.RequestHint(hunt_id=hunt, player_id=pid, clue_id=f"c{clue}")
            right = roll < P_HINT + P_RIGHT and len(unsolved) > 1
            if right:
                unsolved.remove(clue)
            return thengine.SubmitAnswer(hunt_id=hunt, player_id=pid, clue_id=f"c{clue}",
                                         answer=f"a{clue}" if right else "wrong")

        async def lane() -> None:
            while sent < each:
                n = sent + 1
                command = next_command()
                started = time.perf_counter()
                result = await engine.submit(command, command_id=f"e-{pid}-{n}")
                latencies.append(time.perf_counter() - started)
                code = "ok" if result.ok else result.error.code
                outcomes[code] = outcomes.get(code, 0) + 1

        async with trio.open_nursery() as nursery:
            # the join first, as the client sends it first
            command = next_command()
            started = time.perf_counter()
            result = await engine.submit(command, command_id=f"e-{pid}-1")
            latencies.append(time.perf_counter() - started)
            outcomes["ok" if result.ok else result.error.code] = outcomes.get("ok" if result.ok else result.error.code, 0) + 1
            for _ in range(args.depth):
                nursery.start_soon(lane)

    async def run() -> dict[str, float]:
        async with thengine.open_engine(str(db), shards=args.shards, sync=args.sync) as engine:
            for hunt in hunts:
                definition = thengine.parse_definition(hunt_definition(hunt))
                assert (await engine.submit(thengine.CreateHunt(definition=definition))).ok
                assert (await engine.submit(thengine.StartHunt(hunt_id=hunt))).ok
            cpu0, t0 = self_cpu_seconds(), time.perf_counter()
            rng = random.Random(1)
            async with trio.open_nursery() as nursery:
                for k in range(args.connections):
                    nursery.start_soon(player, engine, k, hunts[k % len(hunts)], random.Random(rng.random()))
            return {"cpu": self_cpu_seconds() - cpu0, "seconds": time.perf_counter() - t0}

    measured = trio.run(run)
    n = len(latencies)
    return {"commands": n, "seconds": round(measured["seconds"], 3),
            "commands_per_s": round(n / measured["seconds"], 1), "latency_ms": percentiles_ms(latencies),
            "outcomes": dict(sorted(outcomes.items())), "cpu_s": round(measured["cpu"], 3),
            "cpu_share": round(measured["cpu"] / measured["seconds"], 3),
            "cpu_us_per_command": round(measured["cpu"] / n * 1e6, 1) if n else None,
            "server_commands": commands}


# -- (2) the watched hunt -------------------------------------------------------------------


def scenario_watched(args: argparse.Namespace, node: str, workdir: Path) -> dict[str, Any]:
    hunt = "watched"
    playing = min(args.watch_players, args.watchers)
    server = Server(workdir, "watched").start_thengine(args, args.watchers + 100)
    try:
        tokens = server.tokens
        assert tokens is not None
        players = [{"player": f"w{i}", "hunt": hunt, "token": tokens.player(f"w{i}")} for i in range(playing)]
        watchers = [{"token": tokens.player(f"v{i}")} for i in range(args.watchers - playing)]
        config = {"mode": "open", "players": players, "watchers": watchers, "rate": args.watch_rate,
                  "duration_s": args.watch_duration, "window": 3, "drain_s": 10, "linger_s": 1.0, "settle_s": 1.0,
                  "deflate": not args.no_deflate, "connect_concurrency": 128,
                  "watch": {"hunt": hunt, "limit": 10, "interval_ms": args.interval_ms},
                  "setup": {"token": tokens.admin(), "commands": setup_commands([hunt])}}
        result = run_client(node, workdir, config, server)
    finally:
        log = server.stop()
    result["server_log"] = log
    result["server_cpu_us_per_command"] = per_unit_us(result)
    result["watchers"], result["playing"], result["offered_per_s"] = args.watchers, playing, args.watch_rate
    result["targets"] = {"latency_p99_ms": 50, "staleness_p99_ms": 350, "server_cpu_share": 1.0}
    return result


# -- (3) raw subscribers --------------------------------------------------------------------


def scenario_raw(args: argparse.Namespace, node: str, workdir: Path) -> dict[str, Any]:
    hunt = "raw"
    runs = {}
    for label, subscribers in (("with_subscribers", args.subscribers), ("without", 0)):
        server = Server(workdir, f"raw-{label}").start_thengine(args, args.subscribers + args.sub_players + 100)
        try:
            tokens = server.tokens
            assert tokens is not None
            players = [{"player": f"p{i}", "hunt": hunt, "token": tokens.player(f"p{i}")} for i in range(args.sub_players)]
            subs = [{"token": tokens.player(f"s{i}")} for i in range(subscribers)]
            config = {"mode": "closed", "players": players, "subscribers": subs, "commands_each": 1_000_000,
                      "depth": 1, "window": 2, "duration_s": args.sub_duration, "linger_s": 0.5, "settle_s": 0.5,
                      "deflate": not args.no_deflate, "connect_concurrency": 128,
                      "setup": {"token": tokens.admin(), "commands": setup_commands([hunt])}}
            if subscribers:
                config["subscribe"] = {"hunt": hunt, "after_seq": 0}
            result = run_client(node, workdir, config, server)
        finally:
            log = server.stop()
        result["server_log"] = log
        result["server_cpu_us_per_command"] = per_unit_us(result)
        runs[label] = result
    with_subs, without = runs["with_subscribers"].get("commands_per_s"), runs["without"].get("commands_per_s")
    return {"subscribers": args.subscribers, "players": args.sub_players, **runs,
            "ratio": round(with_subs / without, 3) if with_subs and without else None, "target_ratio": 0.5}


# -- (4) memory per idle connection ---------------------------------------------------------


def scenario_memory(args: argparse.Namespace, node: str, workdir: Path) -> dict[str, Any]:
    """Per round (deflate offered or not), on a fresh server: two storms of idle connections."""
    report: dict[str, Any] = {"idle": args.idle, "close": args.close}
    for label, deflate in (("deflate_offered", True), ("no_deflate", False)):
        server = Server(workdir, f"memory-{label}").start_thengine(args, args.idle + 100)
        try:
            tokens = server.tokens
            assert tokens is not None
            # a small warm-up first, so one-time allocations are not charged to connections
            warm = [{"token": tokens.player(f"warm{i}")} for i in range(50)]
            run_client(node, workdir, {"mode": "hold", "idle": warm, "deflate": deflate}, server,
                       on_ready=_closer(server))
            time.sleep(1.0)
            rss_before = rss_kib(server.pid)
            storms = []
            for storm in range(2):  # the second storm says whether the first one's memory is reused
                idle = [{"token": tokens.player(f"i{storm}-{i}")} for i in range(args.idle)]
                result = run_client(node, workdir, {"mode": "hold", "idle": idle, "deflate": deflate,
                                                    "connect_concurrency": 128, "close": args.close},
                                    server, on_ready=_closer(server))
                time.sleep(2.0)
                result["rss_after_close_kib"] = rss_kib(server.pid)
                storms.append(result)
        finally:
            log = server.stop()
        first, second = storms
        opened = first["connections"]["open"]
        grown = first["rss_open_kib"] - rss_before
        report[label] = {
            "connections": first["connections"], "connect_s": first.get("connect_s"),
            "rss_before_kib": rss_before, "rss_open_kib": first["rss_open_kib"],
            "rss_after_close_kib": first["rss_after_close_kib"],
            "rss_per_connection_kib": round(grown / opened, 1) if opened else None,
            "rss_returned_share": round((first["rss_open_kib"] - first["rss_after_close_kib"]) / grown, 2)
            if grown > 0 else None,
            "second_storm_rss_open_kib": second["rss_open_kib"],
            "second_storm_rss_after_close_kib": second["rss_after_close_kib"],
            "second_storm_growth_kib_per_connection": round((second["rss_open_kib"] - first["rss_open_kib"])
                                                            / opened, 1) if opened else None,
            "idle_cpu_share": first.get("idle_cpu_share"),
            "teardown_s": [first.get("teardown_s"), second.get("teardown_s")],
            "healthz_slowest_during_teardown_s": [first.get("healthz_slowest_during_teardown_s"),
                                                  second.get("healthz_slowest_during_teardown_s")],
            "client_close_s": [first.get("close_s"), second.get("close_s")],
            "server_log": log,
        }
    return report


def _closer(server: Server) -> Callable[[subprocess.Popen[str]], dict[str, Any]]:
    """On `ready`: read RSS, tell the client to close everything, time the teardown via /healthz."""

    def on_ready(proc: subprocess.Popen[str]) -> dict[str, Any]:
        time.sleep(0.5)  # let the last hellos settle
        cpu0, t0 = cpu_seconds(server.pid), time.perf_counter()
        time.sleep(1.5)
        idle_cpu = (cpu_seconds(server.pid) - cpu0) / (time.perf_counter() - t0)
        rss_open = rss_kib(server.pid)
        health, _ = server.healthz()
        assert proc.stdin is not None
        proc.stdin.write("close\n")
        proc.stdin.flush()
        started = time.perf_counter()
        slowest = 0.0
        zero_after = None
        while time.perf_counter() - started < 60:
            body, took = server.healthz()
            slowest = max(slowest, took)
            if body is not None and body.get("connections") == 0:
                zero_after = time.perf_counter() - started
                break
            time.sleep(0.05)
        return {"rss_open_kib": rss_open, "idle_cpu_share": round(idle_cpu, 3), "healthz_connections_open": (health or {}).get("connections"),
                "teardown_s": round(zero_after, 3) if zero_after is not None else None,
                "healthz_slowest_during_teardown_s": round(slowest, 3)}

    return on_ready


# -- the readable summary -------------------------------------------------------------------


def _lat(lat: dict[str, Any]) -> str:
    if not lat:
        return "no samples"
    return (f"p50 {lat.get('p50')} p90 {lat.get('p90')} p99 {lat.get('p99')} p99.9 {lat.get('p999')} "
            f"max {lat.get('max')}")


def _conns(result: dict[str, Any]) -> str:
    c = result.get("connections", {})
    text = f"{c.get('open')} connections ({', '.join(f'{k}: {v}' for k, v in c.get('extensions', {}).items())})"
    if c.get("failed"):
        text += f", {c['failed']} failed: {c.get('errors')}"
    if c.get("unexpected_closes"):
        text += f", closed by the server: {c['unexpected_closes']}"
    return text


def _problems(result: dict[str, Any]) -> list[str]:
    out = []
    if result.get("fatal"):
        out.append(f"    FATAL: {result['fatal']}")
    if result.get("timed_out"):
        out.append("    the client timed out")
    log = result.get("server_log") or {}
    if log.get("tracebacks"):
        out.append(f"    the server logged {log['tracebacks']} tracebacks")
    if log.get("exit") not in (0, None):
        out.append(f"    the server exited with {log['exit']} (0 after a graceful shutdown)")
    if (result.get("subscribe") or {}).get("sequence_breaks"):
        out.append(f"    subscribers saw {result['subscribe']['sequence_breaks']} gaps or repeats in the seqs")
    return out


def print_report(report: dict[str, Any]) -> None:
    if "closed" in report:
        r = report["closed"]
        s = r["server"]
        print(f"closed loop: {r['connections']} connections, depth {r['depth']}, {r['hunts']} hunts, "
              f"sync {r['sync']}, {r['shards']} shards")
        print(f"  server: {s.get('commands'):,} commands in {s.get('window_s')} s = {s.get('commands_per_s'):,}/s; "
              f"latency ms {_lat(s.get('latency_ms', {}))}")
        print(f"          server CPU {s.get('server_cpu_us_per_command')} µs/command "
              f"({s.get('server_cpu_share')} of a core; client {s.get('client_cpu_share')}); "
              f"{_conns(s)}; reply {s.get('reply_bytes_mean')} B")
        print(f"          outcomes {s.get('outcomes')}")
        print("\n".join(_problems(s)) or "", end="\n" if _problems(s) else "")
        if "engine" in r and r["engine"].get("error"):
            print(f"  engine alone: FAILED: {r['engine']['error']}")
        elif "engine" in r:
            e = r["engine"]
            print(f"  engine alone: {e['commands']:,} commands = {e['commands_per_s']:,}/s; "
                  f"CPU {e['cpu_us_per_command']} µs/command ({e['cpu_share']} of a core); "
                  f"latency ms {_lat(e['latency_ms'])}")
        if "echo" in r:
            o = r["echo"]
            print(f"  echo (websockets ServerProtocol on trio): {o.get('commands_per_s'):,} messages/s; "
                  f"CPU {o.get('server_cpu_us_per_message')} µs/message ({o.get('server_cpu_share')} of a core; "
                  f"client {o.get('client_cpu_share')}); "
                  f"{_conns(o)}")
            print("\n".join(_problems(o)) or "", end="\n" if _problems(o) else "")
        if "ratios" in r:
            q = r["ratios"]
            print(f"  ratios: server/engine {q['server_over_engine']} (target <= 2, stretch 1.5); "
                  f"server/echo {q['server_over_echo']} (target <= 3)")
    if "watched" in report:
        w = report["watched"]
        watch = w.get("watch") or {}
        print(f"watched hunt: {w['watchers']} watchers, {w['playing']} of them playing at {w['offered_per_s']:,}/s offered")
        print(f"  {_conns(w)}; connected in {w.get('connect_s')} s")
        if watch.get("supported"):
            st = watch.get("staleness_ms", {})
            print(f"  leaderboard frames {watch.get('frames'):,} ({watch.get('frames_per_s')}/s); "
                  f"staleness ms {_lat(st)}; unresolved {watch.get('staleness_unresolved')}")
        else:
            print(f"  watch not supported by this server ({watch.get('error')}); "
                  "the players ran beside idle connections")
        print(f"  commands {w.get('commands'):,} of {w.get('offered', 0):,} offered, {w.get('unanswered')} unanswered; "
              f"latency ms {_lat(w.get('latency_ms', {}))}")
        print(f"  server CPU {w.get('server_cpu_share')} of a core, {w.get('server_cpu_us_per_command')} µs/command "
              f"(client {w.get('client_cpu_share')}); "
              f"outcomes {w.get('outcomes')}")
        print("\n".join(_problems(w)) or "", end="\n" if _problems(w) else "")
    if "raw" in report:
        r = report["raw"]
        print(f"raw subscribers: {r['subscribers']} subscribers (batch), {r['players']} players in a closed loop")
        for label in ("with_subscribers", "without"):
            x = r[label]
            sub = x.get("subscribe") or {}
            extra = (f"; {sub.get('subscribed')} subscribed, {sub.get('events'):,} events pushed "
                     f"({sub.get('events_per_s')}/s, {sub.get('sequence_breaks')} gaps or repeats), "
                     f"push lag ms {_lat(sub.get('push_lag_ms', {}))}; load client "
                     f"{x.get('client_cpu_share')} of a core") if sub else ""
            print(f"  {label}: {x.get('commands_per_s')} commands/s, latency ms {_lat(x.get('latency_ms', {}))}; "
                  f"server CPU {x.get('server_cpu_us_per_command')} µs/command ({x.get('server_cpu_share')} of a core)"
                  f"{extra}")
            if x.get("connections", {}).get("unexpected_closes"):
                print(f"    closed by the server: {x['connections']['unexpected_closes']}")
            print("\n".join(_problems(x)) or "", end="\n" if _problems(x) else "")
        print(f"  ratio with/without: {r['ratio']} (target >= {r['target_ratio']})")
    if "memory" in report:
        m = report["memory"]
        print(f"memory: {m['idle']} idle authenticated connections, twice, closed together ({m['close']}); fresh server each")
        for label in ("deflate_offered", "no_deflate"):
            x = m.get(label)
            if not x:
                continue
            print(f"  {label}: RSS {x['rss_before_kib']:,} -> {x['rss_open_kib']:,} KiB "
                  f"= {x['rss_per_connection_kib']} KiB/connection; {_conns(x)}; connected in {x['connect_s']} s; "
                  f"server CPU while they idle {x['idle_cpu_share']} of a core")
            print(f"    after close: RSS {x['rss_after_close_kib']:,} KiB ({x['rss_returned_share']} of the growth "
                  f"returned); a second storm: {x['second_storm_rss_open_kib']:,} KiB open "
                  f"({x['second_storm_growth_kib_per_connection']} KiB/connection more), "
                  f"{x['second_storm_rss_after_close_kib']:,} KiB after")
            print(f"    /healthz at 0 connections after {x['teardown_s']} s; slowest /healthz meanwhile "
                  f"{x['healthz_slowest_during_teardown_s']} s")
            if x["server_log"].get("tracebacks"):
                print(f"    the server logged {x['server_log']['tracebacks']} tracebacks")
    print(report["machine"])


def main() -> None:
    parser = argparse.ArgumentParser(description="Load on thengine serve over WebSocket, with server CPU per unit of work.",
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    pick = parser.add_argument_group("scenarios (none given: --closed)")
    pick.add_argument("--closed", action="store_true", help="closed loop, with the engine and echo baselines")
    pick.add_argument("--watched", action="store_true", help="one hunt watched by many, some playing")
    pick.add_argument("--raw", action="store_true", help="raw event subscribers vs none")
    pick.add_argument("--memory", action="store_true", help="RSS per idle connection, and after they close")
    pick.add_argument("--all", action="store_true")
    closed = parser.add_argument_group("closed loop")
    closed.add_argument("--connections", type=int, default=200)
    closed.add_argument("--commands", type=int, default=20_000, help="in total, over all connections")
    closed.add_argument("--hunts", type=int, default=20)
    closed.add_argument("--depth", type=int, default=1, help="commands in flight per connection")
    closed.add_argument("--duration", type=float, default=60, help="at most this many seconds")
    closed.add_argument("--no-baselines", action="store_true")
    closed.add_argument("--echo-deflate", action="store_true", help="the echo server accepts permessage-deflate")
    watched = parser.add_argument_group("watched hunt")
    watched.add_argument("--watchers", type=int, default=5000, help="connections watching (players included)")
    watched.add_argument("--watch-players", type=int, default=500, help="watchers that also play")
    watched.add_argument("--watch-rate", type=float, default=1000, help="commands/s offered in total")
    watched.add_argument("--watch-duration", type=float, default=15)
    watched.add_argument("--interval-ms", type=int, default=250)
    raw = parser.add_argument_group("raw subscribers")
    raw.add_argument("--subscribers", type=int, default=1000)
    raw.add_argument("--sub-players", type=int, default=100)
    raw.add_argument("--sub-duration", type=float, default=10)
    memory = parser.add_argument_group("memory")
    memory.add_argument("--idle", type=int, default=2000)
    memory.add_argument("--close", choices=["close", "terminate"], default="close",
                        help="close handshakes, or TCP resets without one")
    common = parser.add_argument_group("common")
    common.add_argument("--sync", choices=["full", "normal"], default="full")
    common.add_argument("--shards", type=int, default=4)
    common.add_argument("--no-deflate", action="store_true", help="the client does not offer permessage-deflate")
    common.add_argument("--serve-arg", action="append", default=[], metavar="ARG",
                        help="an extra argument for `thengine serve` (repeatable; use --serve-arg=--x)")
    common.add_argument("--dir", help="where to put databases and logs (default: a temporary directory)")
    common.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    if args.all:
        args.closed = args.watched = args.raw = args.memory = True
    if not (args.closed or args.watched or args.raw or args.memory):
        args.closed = True

    node = ensure_client()
    if args.closed and not args.no_baselines:
        import importlib.util
        if importlib.util.find_spec("websockets") is None:
            raise SystemExit("the echo baseline needs the websockets package: pip install websockets "
                             "(or run with --no-baselines)")
    open_files = raise_open_files()
    need = max(args.connections, args.watchers if args.watched else 0,
               args.subscribers + args.sub_players if args.raw else 0, args.idle if args.memory else 0) + 200
    if open_files < need:
        print(f"warning: the open-files limit is {open_files}, below the {need} a run needs", file=sys.stderr)
    workdir = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="thengine-load-"))
    workdir.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {}
    started = time.perf_counter()
    try:
        if args.closed:
            report["closed"] = scenario_closed(args, node, workdir)
        if args.watched:
            report["watched"] = scenario_watched(args, node, workdir)
        if args.raw:
            report["raw"] = scenario_raw(args, node, workdir)
        if args.memory:
            report["memory"] = scenario_memory(args, node, workdir)
    finally:
        if not args.dir:
            shutil.rmtree(workdir, ignore_errors=True)
    report["run_s"] = round(time.perf_counter() - started, 1)
    report["open_files_limit"] = open_files
    report["machine"] = (f"{platform.machine()} {os.cpu_count()} cpus, python {platform.python_version()}, "
                         f"node {subprocess.run([node, '--version'], capture_output=True, text=True).stdout.strip()}, "
                         f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if args.json:
        print(json.dumps(report))
    else:
        print_report(report)


if __name__ == "__main__":
    main()
