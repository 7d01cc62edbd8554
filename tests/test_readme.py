"""The README's embedded example runs as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).parents[1] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_the_embedded_example_runs_as_written_and_prints_what_it_says(tmp_path):
    block = next(b for b in python_blocks() if "open_engine" in b)
    out = subprocess.run([sys.executable, "-c", block], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "True ['player_joined']"
    assert lines[1] == "the well -> ['answer_wrong']"
    assert lines[2] == "FOUNTAIN -> ['clue_solved', 'treasure_found']"
    assert "'id': 'p1'" in lines[3] and "'score': 100" in lines[3]
    assert lines[4] == "1 ranked, p1 is #1"
    assert lines[5:] == [f"{seq} {kind}" for seq, kind in enumerate(
        ["hunt_created", "hunt_started", "player_joined", "answer_wrong", "clue_solved", "treasure_found"], 1)]
    assert (tmp_path / "hunts.db").exists()


def shell_blocks() -> list[str]:
    return re.findall(r"```sh\n(.*?)```", README.read_text(), flags=re.S)


def test_the_cli_tour_runs_as_written(tmp_path):
    tour = next(block for block in shell_blocks() if "thengine init tour.db" in block)
    (tmp_path / "examples").symlink_to(README.parent / "examples")
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(tmp_path)}
    out = subprocess.run(["bash", "-euo", "pipefail", "-c", tour], cwd=tmp_path, capture_output=True,
                         text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    assert "verified" in out.stdout and "no divergence" in out.stdout
    first_run = [line for line in out.stdout.splitlines() if line.startswith('{"line"')]
    assert len(first_run) == 4
    assert (tmp_path / "again.jsonl").read_text().splitlines() == first_run
    assert (tmp_path / "tour-copy.db").exists()


WAIT_FOR_SERVER = (
    "python -c 'import time, urllib.request\n"
    "for _ in range(200):\n"
    "    try: urllib.request.urlopen(\"http://127.0.0.1:8765/healthz\"); break\n"
    "    except OSError: time.sleep(0.1)'"
)


def test_the_server_walkthrough_and_client_example_run_as_written(tmp_path):
    walkthrough = next(block for block in shell_blocks() if "thengine serve hunts.db" in block)
    client = next(block for block in python_blocks() if "thengine.client" in block)
    (tmp_path / "examples").symlink_to(README.parent / "examples")
    (tmp_path / "commands.jsonl").write_text(
        '{"type": "join_hunt", "hunt_id": "old-town", "player_id": "bob", "command_id": "bob-join"}\n')
    (tmp_path / "client.py").write_text(client)
    # The walkthrough leaves the server running in the background: wait for it to
    # listen, run the client as `ann`, then stop it the way an operator would.
    script = walkthrough.replace("&          #", "& SERVER=$!; #", 1).replace(
        "ADMIN=$(", WAIT_FOR_SERVER + "\nADMIN=$(", 1)
    script = script.replace("thengine token hunts.db --rotate-secret",
                            'python client.py "$PLAYER"\nthengine token hunts.db --rotate-secret', 1)
    script += '\nkill -TERM "$SERVER"; wait "$SERVER"\n'
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(tmp_path)}
    out = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, capture_output=True,
                         text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert "True" in lines
    assert "['bob', 'ann']" in lines or "['ann', 'bob']" in lines
    assert '"command_id":"bob-join"' in out.stdout
