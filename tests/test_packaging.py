"""The wheel carries what an installed thengine needs: migrations and the demo's hunt."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(REPO)],
                   check=True, capture_output=True, timeout=300)
    (built,) = out.glob("thengine-*.whl")
    return built


@pytest.mark.slow
def test_the_wheel_ships_the_migrations_and_the_example_hunts(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    migrations = sorted(p.name for p in (REPO / "migrations").glob("*.sql"))
    hunts = sorted(p.name for p in (REPO / "examples" / "hunts").glob("*.toml"))
    assert {f"thengine/_migrations/{m}" for m in migrations} <= names
    assert {f"thengine/_hunts/{h}" for h in hunts} <= names


@pytest.mark.slow
def test_an_installed_wheel_finds_its_migrations_and_demo_hunt_outside_the_checkout(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    code = (
        "import thengine, thengine.storage.migrations as m, thengine.sim.demo as d;"
        "assert thengine.__file__.startswith(%r), thengine.__file__;"
        "import importlib.resources as r;"
        "assert (r.files('thengine') / '_hunts' / 'old-town.toml').is_file();"
        "print(m.migrations_dir(), m.SCHEMA_VERSION, d.example_hunt().id)" % str(target)
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env={"PYTHONPATH": str(target)},
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    where, version, demo_hunt = out.stdout.split()
    assert demo_hunt == "old-town"
    assert where.startswith(str(target)) and where.endswith("_migrations")
    assert int(version) == len(list((REPO / "migrations").glob("*.sql")))
