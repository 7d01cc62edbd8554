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
    (block,) = python_blocks()
    out = subprocess.run([sys.executable, "-c", block], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "True ['player_joined']"
    assert lines[1] == "the well -> ['answer_wrong']"
    assert lines[2] == "FOUNTAIN -> ['clue_solved', 'treasure_found']"
    assert "'id': 'p1'" in lines[3] and "'score': 100" in lines[3]
    assert lines[4:] == [f"{seq} {kind}" for seq, kind in enumerate(
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
