"""Printable signed codes: `thengine hunt codes` writes QR codes that a real decoder reads
back, and the scanned text solves its clue in its own hunt only."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from PIL import Image

from thengine import open_engine
from thengine.domain.codes import code_for, hunt_key, solves
from thengine.domain.commands import CreateHunt, JoinHunt, StartHunt, SubmitAnswer
from thengine.domain.definition import parse_definition
from thengine.storage.store import Store

from .helpers_replay import assert_error, invoke


def definition(hunt_id: str) -> dict:
    return {"id": hunt_id, "title": f"Codes {hunt_id}", "order": "any",
            "clues": [{"id": "gate", "title": "The north gate", "prompt": "Scan the code at the gate",
                       "points": 50, "by": "code"},
                      {"id": "well", "prompt": "Scan the code at the well", "points": 70, "by": "code"},
                      {"id": "q", "prompt": "Say yes", "points": 5, "answers": ["yes"]}]}


async def make_hunts(db: Path, *hunt_ids: str) -> None:
    async with open_engine(db) as engine:
        for hunt_id in hunt_ids:
            assert (await engine.submit(CreateHunt(definition=parse_definition(definition(hunt_id))))).ok
            assert (await engine.submit(StartHunt(hunt_id=hunt_id))).ok
            assert (await engine.submit(JoinHunt(hunt_id=hunt_id, player_id="ann"))).ok


def scan(png: Path) -> str:
    done = subprocess.run(["zbarimg", "--quiet", "--raw", str(png)], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return done.stdout.rstrip("\n")


async def test_a_scanned_code_solves_its_clue_and_nothing_in_another_hunt(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    await make_hunts(db, "north", "south")
    result = invoke("hunt", "codes", db, "north", "--out", tmp_path / "out")
    assert result.exit_code == 0, result.stderr
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == ["gate.png", "gate.svg", "index.html", "well.png", "well.svg"]
    gate, well = scan(out / "gate.png"), scan(out / "well.png")
    assert gate != well and len(gate) <= 256
    png = Image.open(out / "gate.png").convert("L")
    strip = png.crop((0, png.width, png.width, png.height))  # below the square code: its caption
    assert png.height > png.width + 20 and strip.getextrema()[0] < 100
    svg = (out / "gate.svg").read_text()
    assert "The north gate" in svg and "Clue 2" in (out / "well.svg").read_text()  # a title, or "Clue N"
    sheet = (out / "index.html").read_text()
    assert "size: A4" in sheet and sheet.count("<figure>") == 2

    async with open_engine(db) as engine:
        copied = await engine.submit(SubmitAnswer(hunt_id="south", player_id="ann", clue_id="gate", answer=gate))
        assert [e.type for e in copied.events] == ["answer_wrong"]  # a code of north, in south
        swapped = await engine.submit(SubmitAnswer(hunt_id="north", player_id="ann", clue_id="well", answer=gate))
        assert [e.type for e in swapped.events] == ["answer_wrong"]  # another clue's code
        solved = await engine.submit(SubmitAnswer(hunt_id="north", player_id="ann", clue_id="gate", answer=gate))
        assert [(e.type, e.data["points"]) for e in solved.events] == [("clue_solved", 50)]
    with Store.open(db, readonly=True) as store:
        log = json.dumps([e.to_json() for e in store.read_events() if e.type != "answer_wrong"])
    assert gate not in log and well not in log  # nor in hunt_created, as admins see it


async def test_a_url_prefix_makes_the_scan_a_link_that_still_solves(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    await make_hunts(db, "north")
    prefix = "https://game.example/scan?c="
    assert invoke("hunt", "codes", db, "north", "--out", tmp_path / "o", "--url-prefix", prefix).exit_code == 0
    link = scan(tmp_path / "o" / "gate.png")
    assert link.startswith(prefix)
    async with open_engine(db) as engine:
        solved = await engine.submit(SubmitAnswer(hunt_id="north", player_id="ann", clue_id="gate", answer=link))
        assert solved.events[0].type == "clue_solved"


async def test_the_codes_stay_the_same_and_the_secret_stays_in_the_database(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    await make_hunts(db, "north")
    for out in ("a", "b"):
        assert invoke("hunt", "codes", db, "north", "--out", tmp_path / out).exit_code == 0
    assert scan(tmp_path / "a" / "gate.png") == scan(tmp_path / "b" / "gate.png")
    with Store.open(db, readonly=True) as store:
        secret = store.code_secret()
    assert scan(tmp_path / "a" / "gate.png") == code_for(hunt_key(secret, "north"), "gate")


def test_a_code_solves_only_as_scanned_or_at_the_end_of_a_link() -> None:
    key = hunt_key(b"k" * 32, "h")
    code = code_for(key, "c")
    assert solves(key, "c", code) and solves(key, "c", "https://x.example/s?c=" + code)
    assert not solves(key, "c", code.lower()) and not solves(key, "c", "x" + code)
    assert not solves(key, "c", code + "/") and not solves(hunt_key(b"k" * 32, "other"), "c", code)


async def test_bad_uses_are_one_line_errors(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    await make_hunts(db, "north")
    assert_error(invoke("hunt", "codes", db, "nope", "--out", tmp_path / "o"), 2, "no hunt 'nope'")
    assert_error(invoke("hunt", "codes", tmp_path / "missing.db", "north", "--out", tmp_path / "o"), 2,
                 "no database")
    assert_error(invoke("hunt", "codes", db, "north", "--out", tmp_path / "o", "--url-prefix", "ftp://x/"), 2,
                 "--url-prefix")
    async with open_engine(db) as engine:
        plain = {**definition("plain"), "clues": [definition("plain")["clues"][2]]}
        assert (await engine.submit(CreateHunt(definition=parse_definition(plain)))).ok
    assert_error(invoke("hunt", "codes", db, "plain", "--out", tmp_path / "o"), 2, "no code clues")
