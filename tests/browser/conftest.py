"""A live `thengine serve` process and headless Chromium on phone-sized pages.

The browser is Debian's `chromium` (`apt-get install -y chromium`), driven by
Playwright's Python package (`pip install -e '.[dev]'`); nothing is downloaded at run
time. A missing browser fails the tests with that advice: they are never skipped.

One server and one browser serve the whole module; each test gets its own hunt and a
fresh browser context per player, so tests do not see each other's state. Every page
is watched for console errors and uncaught exceptions, and a test that produced any
fails at teardown.
"""

from __future__ import annotations

import itertools
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Callable, Iterator

import attrs
import pytest
from click.testing import CliRunner

from thengine.cli import main

try:
    from playwright.sync_api import Browser, Locator, Page, expect, sync_playwright
except ModuleNotFoundError as exc:  # pragma: no cover - a developer's environment
    raise ImportError(
        "the browser tests need Playwright's Python package: pip install -e '.[dev]'") from exc

ROOT = Path(__file__).resolve().parents[2]

#: Debian's package (/usr/bin/chromium); Playwright's own browser builds cannot be downloaded here.
CHROMIUM = "chromium"

#: A phone held upright (an iPhone 12-15 in CSS pixels): players play on phones.
PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 3,
         "is_mobile": True, "has_touch": True}

#: How long to wait for anything the page should show (ms); generous for a loaded CI machine.
TIMEOUT_MS = 15_000

#: A sequential two-clue hunt; `{hunt_id}` is filled in per test.
HUNT_TOML = """\
id = "{hunt_id}"
title = "Browser hunt {hunt_id}"
order = "sequential"

[[clues]]
id = "harbour"
title = "The harbour"
prompt = "What is painted on the lighthouse door?"
answers = ["anchor"]
points = 10

[[clues]]
id = "tower"
title = "The tower"
prompt = "How many bells hang in the tower?"
answers = ["seven"]
points = 20
"""


def invoke(*args: str) -> str:
    """Run `thengine ARGS` in-process; its stdout."""
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    return result.stdout


@attrs.frozen(kw_only=True)
class Server:
    """A `thengine serve` process on a fresh database, and the CLI calls a test needs."""

    db: Path
    url: str  # ws://HOST:PORT/v1
    http_url: str  # http://HOST:PORT, which serves the browser client at /

    def token(self, role: str, player: str | None = None) -> str:
        """A token from `thengine token`, as an organiser would hand it out."""
        args = ["token", str(self.db), "--role", role, "--ttl", "1h"]
        if player is not None:
            args += ["--player", player]
        return invoke(*args).strip()

    def add_hunt(self, hunt_id: str) -> None:
        """Create and start a hunt through the running server (`hunt add --url ... --start`)."""
        path = self.db.parent / f"{hunt_id}.toml"
        path.write_text(HUNT_TOML.format(hunt_id=hunt_id))
        invoke("hunt", "add", "--url", self.url, "--token", self.token("admin"), str(path), "--start")


def _read_lines(stream: object, lines: list[str], found: queue.Queue[str]) -> None:
    """Keep the server's stderr drained; hand over its `serving ... at ws://...` line."""
    for line in stream:  # type: ignore[attr-defined]
        lines.append(line)
        if re.search(r"ws://\S+/v1", line):
            found.put(line)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`thengine serve` on a free loopback port; stopped with SIGTERM, which must exit cleanly."""
    db = tmp_path_factory.mktemp("browser") / "hunts.db"
    invoke("init", str(db))
    proc = subprocess.Popen(
        [sys.executable, "-m", "thengine", "serve", str(db), "--listen", "127.0.0.1:0",
         "--sync", "normal", "--shards", "2"],
        stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    lines: list[str] = []
    found: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=_read_lines, args=(proc.stderr, lines, found), daemon=True)
    reader.start()
    try:
        try:
            line = found.get(timeout=30)
        except queue.Empty:
            raise AssertionError(f"the server did not start: {''.join(lines)}") from None
        url = re.search(r"ws://\S+/v1", line).group(0)
        yield Server(db=db, url=url, http_url="http" + url[2:-3])
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, "".join(lines)
        reader.join(timeout=10)
        assert "Traceback" not in "".join(lines), "".join(lines)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Headless Chromium, once per module (starting it costs about a second)."""
    chromium = shutil.which(CHROMIUM)
    if chromium is None:
        pytest.fail(f"the browser tests need Debian's Chromium ({CHROMIUM} is not on PATH): "
                    "run `apt-get install -y chromium`", pytrace=False)
    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as playwright:
        # --no-sandbox: Chromium refuses to start as root (CI and these machines) with its sandbox.
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()


_hunt_numbers = itertools.count(1)


@pytest.fixture
def hunt(server: Server) -> str:
    """A fresh, started hunt for this test; its id."""
    hunt_id = f"hunt-{next(_hunt_numbers)}"
    server.add_hunt(hunt_id)
    return hunt_id


@attrs.define
class Phone:
    """One player's page on a phone-sized screen, the steps a player takes, and what went wrong."""

    page: Page
    server: Server
    errors: list[str] = attrs.Factory(list)

    def connect(self, player_id: str) -> None:
        """Open the page with a player token in its address (`/#token=...`), press Connect."""
        self.page.goto(f"{self.server.http_url}/#token={self.server.token('player', player_id)}")
        self.page.locator("#connect").click()
        expect(self.page.locator("#status")).to_have_text(f"connected as player {player_id}")

    def join(self, hunt_id: str) -> None:
        """Type the hunt id, press Join, and wait for the first clue's answer box."""
        self.page.locator("#hunt").fill(hunt_id)
        self.page.locator("#join").click()
        expect(self.answer_box("The harbour")).to_be_visible()

    def clue(self, title: str) -> Locator:
        return self.page.locator("#clues .clue").filter(has_text=title)

    def answer_box(self, title: str) -> Locator:
        return self.clue(title).get_by_placeholder("your answer")

    def answer(self, title: str, text: str) -> None:
        """Type `text` into the clue's answer box and press its Answer button."""
        self.answer_box(title).fill(text)
        self.clue(title).get_by_role("button", name="Answer").click()

    def expect_board(self, *rows: tuple[int, str, int, int]) -> None:
        """The leaderboard shows exactly these (rank, who, score, solved) rows, in order."""
        expect(self.page.locator("#board tr")).to_have_text(
            ["\t".join(map(str, row)) for row in rows], use_inner_text=True)


@pytest.fixture
def phone(browser: Browser, server: Server) -> Iterator[Callable[[], Phone]]:
    """Open the browser client at GET / in a new phone-sized context: `phone()` per player."""
    phones: list[Phone] = []

    def open_phone() -> Phone:
        context = browser.new_context(**PHONE)
        context.set_default_timeout(TIMEOUT_MS)
        page = context.new_page()
        opened = Phone(page=page, server=server)
        page.on("console", lambda msg: opened.errors.append(f"console {msg.type}: {msg.text}")
                if msg.type == "error" else None)
        page.on("pageerror", lambda exc: opened.errors.append(f"uncaught: {exc}"))
        phones.append(opened)
        return opened

    yield open_phone
    for opened in phones:
        opened.page.context.close()
    errors = [error for opened in phones for error in opened.errors]
    assert not errors, "the page reported errors:\n" + "\n".join(errors)
