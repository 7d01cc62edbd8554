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
