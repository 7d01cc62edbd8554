"""Shared pieces for the server tests: a server in the test's nursery, tokens, a raw client.

The tests talk to the server the way any client would: over loopback with a
WebSocket client (`wsclient`: websockets' Sans-I/O ClientProtocol on a trio stream)
speaking JSON frames.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any, AsyncIterator

import apsw
import pytest
import trio
from click.testing import CliRunner
from thengine.cli import main
from thengine.server.config import ServerConfig
from thengine.server.run import Running, serve
from thengine.storage.store import Store
from thengine.tokens import SECRET_META_KEY, decode_secret, issue

from .wsclient import ConnectionClosed, open_websocket

ROOT = Path(__file__).resolve().parents[2]

#: Strings a player must never see before they are theirs (answers, hint texts, a locked prompt).
SECRETS = ("ANSWER-ONE", "ANSWER-TWO", "HINT-ONE", "HINT-TWO", "PROMPT-TWO")


def hunt_definition(hunt_id: str = "h", **fields: Any) -> dict[str, Any]:
    """A sequential two-clue hunt whose secrets are the `SECRETS` strings."""
    return {
        "id": hunt_id,
        "title": f"Hunt {hunt_id}",
        "order": "sequential",
        "clues": [
            {"id": "c1", "prompt": "PROMPT-ONE", "answers": ["ANSWER-ONE"], "points": 10,
             "hints": [{"text": "HINT-ONE", "penalty": 1}]},
            {"id": "c2", "prompt": "PROMPT-TWO", "answers": ["ANSWER-TWO"], "points": 20,
             "hints": [{"text": "HINT-TWO", "penalty": 2}]},
        ],
        **fields,
    }


def init_db(path: Path) -> Path:
    result = CliRunner().invoke(main, ["init", str(path)])
    assert result.exit_code == 0, result.output
    return path


def read_secret(db: Path) -> bytes:
    with Store.open(db, readonly=True) as store:
        text = store.get_meta(SECRET_META_KEY)
    assert text is not None
    return decode_secret(text)


class SlowVFS(apsw.VFS):
    """The default VFS, but WAL writes (every commit) take `delay` seconds: slow commands."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.delay = 0.0
        super().__init__(name, "")

    def xOpen(self, name: Any, flags: list[int]) -> apsw.VFSFile:
        return _SlowFile(self, name, flags)


class _SlowFile(apsw.VFSFile):
    def __init__(self, vfs: SlowVFS, name: Any, flags: list[int]) -> None:
        self._vfs = vfs
        filename = name.filename() if isinstance(name, apsw.URIFilename) else (name or "")
        self._wal = filename.endswith("-wal")
        super().__init__("", name, flags)

    def xWrite(self, data: bytes, offset: int) -> None:
        if self._wal and self._vfs.delay:
            time.sleep(self._vfs.delay)
        super().xWrite(data, offset)


_vfs_names = itertools.count(1)
_vfs_lock = threading.Lock()


class Harness:
    """A running server on a fresh database, with ways to get tokens and clients."""

    def __init__(self, running: Running, db: Path) -> None:
        self.running = running
        self.db = db
        self.secret = read_secret(db)

    @property
    def url(self) -> str:
        return self.running.url

    @property
    def http_url(self) -> str:
        return self.running.http_url

    def token(self, role: str = "admin", player: str | None = None, *, ttl: int = 3600,
              now: int | None = None) -> str:
        return issue(self.secret, role=role, player_id=player, ttl_s=ttl, now_s=int(time.time()) if now is None else now)

    def client(self, token: str | None = None) -> Any:
        return connected(self.url, token or self.token())

    def player(self, player_id: str) -> Any:
        return connected(self.url, self.token("player", player_id))


@asynccontextmanager
async def running_server(db: Path, *, config: ServerConfig | None = None, shards: int = 2,
                         engine_options: dict[str, Any] | None = None) -> AsyncIterator[Harness]:
    """`serve` on a free loopback port inside this task's nursery; shut down gracefully after."""
    async with trio.open_nursery() as nursery:
        running: Running = await nursery.start(partial(
            serve, str(db), listen="127.0.0.1:0", shards=shards, sync="normal", config=config,
            engine_options=engine_options))
        try:
            yield Harness(running, db)
        finally:
            running.shutdown()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return init_db(tmp_path / "hunts.db")


@pytest.fixture
async def server(db: Path) -> AsyncIterator[Harness]:
    async with running_server(db) as harness:
        yield harness


@pytest.fixture
def slow_vfs() -> Any:
    with _vfs_lock:
        vfs = SlowVFS(f"thengine-slow-{next(_vfs_names)}")
    yield vfs
    vfs.delay = 0.0
    vfs.unregister()


class WS:
    """A raw protocol client: send frames, receive frames, match replies by id."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.texts: list[str] = []  # every text frame received, in order
        self.backlog: list[dict[str, Any]] = []  # frames received while waiting for something else
        self._ids = itertools.count(1)

    def next_id(self) -> int:
        return next(self._ids)

    async def send(self, frame: dict[str, Any] | str) -> None:
        await self.ws.send_message(frame if isinstance(frame, str) else json.dumps(frame))

    async def recv(self, timeout: float = 5.0) -> dict[str, Any]:
        with trio.fail_after(timeout):
            text = await self.ws.get_message()
        self.texts.append(text)
        return json.loads(text)

    async def reply_to(self, rid: Any, timeout: float = 5.0) -> dict[str, Any]:
        """The reply with id `rid`; other frames on the way go to `backlog`."""
        for i, frame in enumerate(self.backlog):
            if frame.get("id") == rid and frame.get("op") != "event":
                return self.backlog.pop(i)
        with trio.fail_after(timeout):
            while True:
                frame = await self.recv()
                if frame.get("id") == rid and frame.get("op") not in ("event", "events"):
                    return frame
                self.backlog.append(frame)

    async def request(self, frame: dict[str, Any], timeout: float = 5.0) -> dict[str, Any]:
        frame = dict(frame)
        frame.setdefault("id", self.next_id())
        await self.send(frame)
        return await self.reply_to(frame["id"], timeout)

    async def command(self, command: dict[str, Any], **extra: Any) -> dict[str, Any]:
        return await self.request({"op": "command", "command": command, **extra})

    async def query(self, query: dict[str, Any]) -> dict[str, Any]:
        return await self.request({"op": "query", "query": query})

    async def events(self, sub: Any, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        """The next `count` events pushed for subscription `sub`."""
        out: list[dict[str, Any]] = []
        keep: list[dict[str, Any]] = []
        for frame in self.backlog:
            if frame.get("sub") == sub and frame.get("op") in ("event", "events") and len(out) < count:
                out.extend(_events_of(frame))
            else:
                keep.append(frame)
        self.backlog = keep
        with trio.fail_after(timeout):
            while len(out) < count:
                frame = await self.recv()
                if frame.get("sub") == sub and frame.get("op") in ("event", "events"):
                    out.extend(_events_of(frame))
                else:
                    self.backlog.append(frame)
        return out

    async def closed(self, timeout: float = 5.0) -> Any:
        """Read until the server closes the connection; returns the CloseReason."""
        return (await self.replies_until_closed(timeout))[1]

    async def replies_until_closed(self, timeout: float = 5.0) -> tuple[dict[Any, dict[str, Any]], Any]:
        """Every frame read until the server closes, by request id, and the CloseReason."""
        frames: dict[Any, dict[str, Any]] = {}
        with trio.fail_after(timeout):
            while True:
                try:
                    frame = await self.recv(timeout)
                except ConnectionClosed as exc:
                    return frames, exc.reason
                frames[frame.get("id")] = frame


def _events_of(frame: dict[str, Any]) -> list[dict[str, Any]]:
    return frame["events"] if frame["op"] == "events" else [frame["event"]]


@asynccontextmanager
async def websocket(url: str, **options: Any) -> AsyncIterator[Any]:
    """A client WebSocket connection (`wsclient.WebSocket`), closed on leaving."""
    async with open_websocket(url, **options) as ws:
        yield ws


@asynccontextmanager
async def connected(url: str, token: str | None, **options: Any) -> AsyncIterator[WS]:
    """A WebSocket that has said hello with `token` (None: no hello) and got a welcome."""
    async with websocket(url, **options) as ws:
        client = WS(ws)
        if token is not None:
            await client.send({"op": "hello", "token": token})
            welcome = await client.recv()
            assert welcome["op"] == "welcome", welcome
            client.welcome = welcome  # type: ignore[attr-defined]
        yield client


async def make_hunt(admin: WS, hunt_id: str = "h", *, start: bool = True, **fields: Any) -> None:
    reply = await admin.command({"type": "create_hunt", "definition": hunt_definition(hunt_id, **fields)})
    assert reply["ok"], reply
    if start:
        reply = await admin.command({"type": "start_hunt", "hunt_id": hunt_id})
        assert reply["ok"], reply
