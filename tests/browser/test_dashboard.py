"""The organisers' dashboard at GET /admin, in a real browser on a big screen."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import sys
from pathlib import Path

from playwright.sync_api import Browser, expect

from .conftest import ROOT, TIMEOUT_MS, Server, invoke

SCREEN = {"viewport": {"width": 1600, "height": 1000}}
#: Where the screenshots go, to be looked at (THENGINE_SCREENSHOTS, default a temporary directory).
SHOTS = Path(os.environ.get("THENGINE_SCREENSHOTS") or tempfile.mkdtemp(prefix="thengine-shots-"))

JUDGED_TOML = """\
id = "{hunt_id}"
title = "Dashboard hunt"
order = "any"
max_speed_kmh = 50

[[clues]]
id = "photo"
title = "Team photo"
prompt = "A photo of the team at the gate"
points = 100
by = "judged"

[[clues]]
id = "gate"
prompt = "Check in at the gate"
points = 30
location = {{ lat = 48.2082, lon = 16.3738, radius_m = 40 }}

[[clues]]
id = "bell"
prompt = "Check in at the bell"
points = 30
location = {{ lat = 48.2100, lon = 16.3738, radius_m = 40 }}
"""


def ingest(server: Server, commands: list[dict]) -> list[dict]:
    """Send `commands` through the running server as an admin (`thengine ingest --url`)."""
    lines = "\n".join(json.dumps(c) for c in commands) + "\n"
    done = subprocess.run([sys.executable, "-m", "thengine", "ingest", "--url", server.url, "--token",
                           server.token("admin"), "-"], input=lines, capture_output=True, text=True, timeout=60,
                          cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_an_organiser_logs_in_sees_an_entry_accepts_it_and_sees_the_rank_change(
        browser: Browser, server: Server, tmp_path: Path) -> None:
    hunt_id = "dashboard"
    path = tmp_path / "dashboard.toml"
    path.write_text(JUDGED_TOML.format(hunt_id=hunt_id))
    invoke("hunt", "add", "--url", server.url, "--token", server.token("admin"), str(path), "--start")
    gate = {"type": "check_in", "hunt_id": hunt_id, "player_id": "bo", "clue_id": "gate", "lat": 48.2082, "lon": 16.3738}
    results = ingest(server, [
        {"type": "join_hunt", "hunt_id": hunt_id, "player_id": "ann", "team_id": "red"},
        {"type": "join_hunt", "hunt_id": hunt_id, "player_id": "bo", "team_id": "blue"},
        gate,
        {**gate, "clue_id": "bell", "lat": 48.2100},  # 200 m at once: a flag
        {"type": "submit_entry", "hunt_id": hunt_id, "player_id": "ann", "clue_id": "photo",
         "text": "all of red at the gate",
         "media": {"url": "https://photos.example/red.jpg", "sha256": "c" * 64, "content_type": "image/jpeg",
                   "bytes": 300000}},
    ])
    assert all(r["ok"] for r in results), results

    context = browser.new_context(**SCREEN)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        page.goto(f"{server.http_url}/admin")
        page.locator("#token").fill(server.token("admin"))
        page.locator("#connect").click()
        page.locator("#hunt").select_option(hunt_id)
        rows = page.locator("#board tr")
        expect(rows).to_have_count(2)
        expect(rows.nth(0)).to_contain_text("blue")
        expect(rows.nth(1)).to_contain_text("red")
        entry = page.locator("#queue .entry").filter(has_text="all of red at the gate")
        expect(entry).to_be_visible()
        expect(page.locator("#flags")).to_contain_text("bo")
        expect(page.locator("#joined")).to_have_text("2")
        expect(page.locator("#map circle")).to_have_count(4)  # two geofences, two check-ins
        page.screenshot(path=str(SHOTS / "dashboard-before.png"))
        entry.get_by_role("button", name="Accept").click()
        expect(rows.nth(0)).to_contain_text("red")  # 100 points beat 60
        expect(rows.nth(0)).to_contain_text("100")
        expect(page.locator("#queue")).to_contain_text("no entries waiting")
        page.screenshot(path=str(SHOTS / "dashboard-after.png"))
    finally:
        context.close()
    assert not errors, errors


def test_a_player_token_does_not_open_the_dashboard(browser: Browser, server: Server) -> None:
    context = browser.new_context(**SCREEN)
    page = context.new_page()
    try:
        page.goto(f"{server.http_url}/admin#token={server.token('player', 'ann')}")
        expect(page.locator("#login-error")).to_contain_text("admin token")
        expect(page.locator("#app")).to_be_hidden()
    finally:
        context.close()


def test_the_dashboard_is_served_at_admin(server: Server) -> None:
    import urllib.request
    with urllib.request.urlopen(f"{server.http_url}/admin", timeout=10) as reply:
        assert reply.status == 200 and reply.headers["Content-Type"].startswith("text/html")
        page = reply.read().decode()
    assert "Judging queue" in page and "http" not in page.replace("http://www.w3.org/2000/svg", "")\
        .replace('location.protocol === "https:"', "")  # nothing loaded from the internet
