"""The command line and the server: `thengine serve`, and `hunt add` / `ingest` with --url."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from thengine.cli import main
from thengine.tokens import issue

from .conftest import ROOT, hunt_definition, init_db, read_secret

HUNT_TOML = """\
id = "h"
title = "Hunt h"

[[clues]]
id = "c1"
prompt = "Say hello"
answers = ["hello"]
points = 10
"""


def invoke(*args: object, input: str | None = None) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args], input=input)


class ServerProcess:
    def __init__(self, db: Path) -> None:
        self.db = db
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "thengine", "serve", str(db), "--listen", "127.0.0.1:0", "--sync", "normal"],
            stderr=subprocess.PIPE, text=True, env=env)
        line = self.proc.stderr.readline()
        match = re.search(r" at (ws://\S+)", line)
        assert match, line + self.proc.stderr.read()
        self.url = match.group(1)
        secret = read_secret(db)
        self.admin = issue(secret, role="admin", ttl_s=600, now_s=int(time.time()))
        self.player = issue(secret, role="player", player_id="p1", ttl_s=600, now_s=int(time.time()))

    def stop(self) -> str:
        self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(15) == 0
        return self.proc.stderr.read()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    running = ServerProcess(init_db(tmp_path / "hunts.db"))
    try:
        yield running
    finally:
        if running.proc.poll() is None:
            running.stop()
        running.proc.stderr.close()


def test_hunt_add_through_a_running_server(server: ServerProcess, tmp_path: Path) -> None:
    hunt = tmp_path / "h.toml"
    hunt.write_text(HUNT_TOML)
    result = invoke("hunt", "add", hunt, "--start", "--url", server.url, "--token", server.admin)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "hunt h: created and started, 1 clues, status running"
    again = invoke("hunt", "add", hunt, "--url", server.url, "--token", server.admin)
    assert again.exit_code == 2 and "cannot create hunt 'h'" in again.stderr and "(hunt_exists)" in again.stderr
    as_player = invoke("hunt", "add", hunt, "--url", server.url, "--token", server.player)
    assert as_player.exit_code == 2 and "(forbidden)" in as_player.stderr
    assert "stopped" in server.stop()


def test_ingest_through_a_running_server(server: ServerProcess) -> None:
    lines = [
        {"type": "create_hunt", "definition": hunt_definition()},
        {"type": "start_hunt", "hunt_id": "h"},
        *({"type": "join_hunt", "hunt_id": "h", "player_id": f"p{i}", "command_id": f"k{i}"} for i in range(150)),
        {"type": "submit_answer", "hunt_id": "h", "player_id": "p0", "clue_id": "c1", "answer": "answer-one"},
    ]
    big = hunt_definition("big")
    big["clues"] = [{"id": f"c{i}", "prompt": "p" * 900, "answers": ["a"], "points": 1} for i in range(100)]
    text = "\n".join(json.dumps(line) for line in lines) + "\nnot json\n" + json.dumps(
        {"type": "create_hunt", "definition": big}) + "\n"
    result = invoke("ingest", "--url", server.url, "--token", server.admin, "-", input=text)
    assert result.exit_code == 0, result.stderr
    out = [json.loads(line) for line in result.stdout.splitlines()]
    assert [o["line"] for o in out] == list(range(1, len(lines) + 3))
    assert all(o["ok"] for o in out[: len(lines)])
    assert out[2]["command_id"] == "k0" and out[2]["events"][0]["data"]["player_id"] == "p0"
    assert out[-3]["events"][0]["type"] == "clue_solved"
    assert out[-2]["error"]["code"] == "invalid_command"
    assert out[-1]["error"]["code"] == "invalid_command" and "frame limit" in out[-1]["error"]["message"]
    # The same input again: command ids are not applied twice.
    again = invoke("ingest", "--url", server.url, "--token", server.admin, "-",
                   input=json.dumps(lines[2]) + "\n")
    assert json.loads(again.stdout)["events"] == out[2]["events"]


def test_url_and_token_go_together(tmp_path: Path) -> None:
    hunt = tmp_path / "h.toml"
    hunt.write_text(HUNT_TOML)
    result = invoke("hunt", "add", hunt, "--url", "ws://127.0.0.1:9/v1")
    assert result.exit_code == 2 and "--url needs --token" in result.stderr
    result = invoke("ingest", "--token", "t", input="")
    assert result.exit_code == 2 and "--token goes with --url" in result.stderr


def test_a_bad_token_or_no_server_is_one_error_line(server: ServerProcess, tmp_path: Path) -> None:
    result = invoke("ingest", "--url", server.url, "--token", "nope.nope", input="{}\n")
    assert result.exit_code == 1 and result.stderr.startswith("thengine: error: ")
    assert "refused the connection: unauthorized: bad signature" in result.stderr
    assert "Traceback" not in result.stderr
    result = invoke("ingest", "--url", "ws://127.0.0.1:9/v1", "--token", "t", input="{}\n")
    assert result.exit_code == 1 and "cannot connect to ws://127.0.0.1:9/v1" in result.stderr


def test_serve_refuses_bad_arguments(tmp_path: Path) -> None:
    result = invoke("serve", tmp_path / "missing.db")
    assert result.exit_code == 2 and "no database at" in result.stderr
    db = init_db(tmp_path / "hunts.db")
    result = invoke("serve", db, "--listen", "nowhere")
    assert result.exit_code == 2 and "--listen: expected HOST:PORT" in result.stderr
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = invoke("serve", db, "--listen", f"127.0.0.1:{port}")
        assert result.exit_code == 1 and f"cannot listen on 127.0.0.1:{port}" in result.stderr


def test_serve_hands_remember_commands_to_the_engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from thengine.cli import serve as serve_cli

    seen: dict[str, object] = {}

    async def fake_server(db: str, **kwargs: object) -> None:
        seen.update(kwargs)
        kwargs["task_status"].started(type("Running", (), {"url": "ws://x/v1", "http_url": "http://x"}))  # type: ignore[attr-defined]

    monkeypatch.setattr(serve_cli, "run_server", fake_server)
    db = init_db(tmp_path / "hunts.db")
    result = invoke("serve", db, "--remember-commands", "5000")
    assert result.exit_code == 0, result.output
    assert seen["engine_options"] == {"remember_commands": 5000}
    assert invoke("serve", db, "--remember-commands", "0").exit_code == 2


def test_serve_refuses_a_database_an_engine_holds(server: ServerProcess) -> None:
    result = invoke("serve", server.db, "--listen", "127.0.0.1:0")
    assert result.exit_code == 2 and "in use by another engine" in result.stderr
