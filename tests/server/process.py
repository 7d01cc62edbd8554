"""A real `thengine serve` process for the tests that must see what an operator sees.

It listens on a free loopback port (``--listen 127.0.0.1:0``; the URL is read from
the first line it writes on stderr), and a thread keeps everything it writes on
stderr (a pipe, so even a full disk cannot stop it from saying why), so a test can
assert that no input of a client put a traceback there.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import trio

from thengine.tokens import issue

from .conftest import ROOT, read_secret


class ServeProcess:
    """`thengine serve DB --listen 127.0.0.1:PORT --sync normal ARGS...` in its own process
    (PORT 0: a free one; pass a port to restart a server where it was)."""

    def __init__(self, db: Path, *args: str, port: int = 0) -> None:
        self.db = db
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "thengine", "serve", str(db), "--listen", f"127.0.0.1:{port}", "--sync", "normal",
             *args], stderr=subprocess.PIPE, env=env)
        self._lines: list[str] = []
        self._drain = threading.Thread(target=self._read_stderr, daemon=True)
        self._drain.start()
        deadline = time.monotonic() + 30
        while (match := re.search(r" at (ws://\S+)", self.stderr())) is None:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the server did not start: {self.stderr()}")
            time.sleep(0.05)
        self.url = match.group(1)
        parts = urlsplit(self.url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 0
        self.secret = read_secret(db)

    def token(self, role: str = "admin", player: str | None = None, ttl: int = 600) -> str:
        return issue(self.secret, role=role, player_id=player, ttl_s=ttl, now_s=int(time.time()))

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        with self.proc.stderr:
            for line in self.proc.stderr:
                self._lines.append(line.decode(errors="replace"))

    def stderr(self) -> str:
        """What the server wrote on stderr so far (all of it once it has exited)."""
        if self.proc.poll() is not None:
            self._drain.join(10)
        return "".join(self._lines)

    def stop(self) -> str:
        """SIGTERM; asserts a clean exit and returns what the server wrote on stderr."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(30) == 0, self.stderr()
        return self.stderr()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)

    async def healthz(self) -> dict:
        """``GET /healthz`` as JSON (a 503 while shutting down is a report too)."""
        stream = await trio.open_tcp_stream(self.host, self.port)
        async with stream:
            await stream.send_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            with trio.fail_after(10):
                while chunk := await stream.receive_some(65536):
                    data += chunk
        return json.loads(data.partition(b"\r\n\r\n")[2])


def assert_no_traceback(stderr: str) -> None:
    assert "Traceback" not in stderr and "ERROR" not in stderr, stderr
