"""The examples run: an embedding game server, and the browser client's script."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib import resources
from pathlib import Path

import trio

from thengine.storage.store import Store

from .conftest import ROOT


async def test_the_embedding_game_server_runs_and_takes_players_over_tcp(tmp_path: Path) -> None:
    db = tmp_path / "game.db"
    proc = await trio.lowlevel.open_process(
        [sys.executable, str(ROOT / "examples" / "game_server.py"), "--db", str(db), "--seconds", "2",
         "--port", "0", "--bots", "8"],
        stdout=subprocess.PIPE)
    out = bytearray()
    try:
        with trio.fail_after(10):
            while b"[server] players: nc " not in out:
                out += await proc.stdout.receive_some(4096)
        host, port = re.search(rb"players: nc (\S+) (\d+)", out).groups()
        stream = await trio.open_tcp_stream(host.decode(), int(port))
        async with stream:
            await stream.send_all(b"join human\nme\nanswer lighthouse a lighthouse\nquit\n")
            replies = b""
            with trio.fail_after(5):
                while replies.count(b"\n") < 5:
                    chunk = await stream.receive_some(4096)
                    if not chunk:
                        break
                    replies += chunk
        lines = replies.decode().splitlines()
        assert lines[1] == "joined as human"
        assert lines[2].startswith("score 0") and "lighthouse" in lines[2]
        assert lines[3] == "clue_solved"
        with trio.fail_after(15):
            while True:
                chunk = await proc.stdout.receive_some(4096)
                if not chunk:
                    break
                out += chunk
            assert await proc.wait() == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await proc.stdout.aclose()
    text = out.decode()
    assert "[event] human solved lighthouse" in text and "[done]" in text
    with Store.open(db, readonly=True) as store:
        types = {e.type for e in store.read_events()}
    assert {"hunt_created", "hunt_started", "player_joined", "clue_solved"} <= types


def test_the_browser_clients_script_is_valid_javascript(tmp_path: Path) -> None:
    page = resources.files("thengine.server").joinpath("static/client.html").read_text()
    script = re.search(r"<script>(.*)</script>", page, re.S).group(1)
    path = tmp_path / "client.js"
    path.write_text(script)
    result = subprocess.run(["node", "--check", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
