"""Hello: a token or the door. Closes say why (1008), with an error frame first."""

from __future__ import annotations

import time

import trio
from click.testing import CliRunner

from thengine.cli import main

from .conftest import Harness, connected


async def refused(server: Harness, hello: dict | str | None) -> tuple[list[dict], object]:
    """Send `hello` as the first frame; the frames before the close and the close reason."""
    async with connected(server.url, None) as ws:
        if hello is not None:
            await ws.send(hello)
        frames = []
        reason = None
        from .wsclient import ConnectionClosed
        with trio.fail_after(5):
            while True:
                try:
                    frames.append(await ws.recv())
                except ConnectionClosed as exc:
                    reason = exc.reason
                    break
        return frames, reason


async def test_missing_token_is_refused(server: Harness) -> None:
    frames, reason = await refused(server, {"op": "hello"})
    assert reason.code == 1008 and "unauthorized: hello needs a token" in reason.reason
    assert frames == [{"op": "error", "id": None, "code": "unauthorized", "message": reason.reason}]


async def test_forged_token_is_refused(server: Harness) -> None:
    token = server.token("player", "p1")
    payload, signature = token.split(".")
    forged = payload + "." + ("A" if signature[0] != "A" else "B") + signature[1:]
    _, reason = await refused(server, {"op": "hello", "token": forged})
    assert (reason.code, reason.reason) == (1008, "unauthorized: bad signature")


async def test_a_token_with_another_secret_is_refused(server: Harness) -> None:
    from thengine.tokens import issue
    token = issue(b"x" * 32, role="admin", ttl_s=60, now_s=int(time.time()))
    _, reason = await refused(server, {"op": "hello", "token": token})
    assert reason.code == 1008 and reason.reason.startswith("unauthorized: bad signature")


async def test_expired_token_is_refused(server: Harness) -> None:
    token = server.token("admin", ttl=60, now=int(time.time()) - 3600)
    _, reason = await refused(server, {"op": "hello", "token": token})
    assert (reason.code, reason.reason) == (1008, "unauthorized: token expired")


async def test_rotating_the_secret_refuses_older_tokens_on_new_connections(server: Harness) -> None:
    old = server.token("admin")
    async with server.client(old) as ws:  # connected before the rotation: stays connected
        result = CliRunner().invoke(main, ["token", str(server.db), "--rotate-secret"])
        assert result.exit_code == 0, result.output
        _, reason = await refused(server, {"op": "hello", "token": old})
        assert reason.code == 1008 and "rotated since?" in reason.reason
        assert (await ws.request({"op": "ping"}))["op"] == "pong"
    new = CliRunner().invoke(main, ["token", str(server.db), "--role", "admin"]).stdout.strip()
    async with server.client(new) as ws:
        assert ws.welcome["role"] == "admin"


async def test_the_first_frame_must_be_hello(server: Harness) -> None:
    frames, reason = await refused(server, {"op": "ping", "id": 1})
    assert reason.code == 1008 and "first frame must be" in reason.reason
    _, reason = await refused(server, "not json")
    assert reason.code == 1008 and "first frame must be" in reason.reason


async def test_welcome_says_who_the_client_is(server: Harness) -> None:
    async with server.player("p1") as ws:
        welcome = ws.welcome
        assert welcome["op"] == "welcome" and welcome["role"] == "player" and welcome["player_id"] == "p1"
        assert welcome["limits"]["max_frame_bytes"] == 65536 and welcome["seq"] == 0
    async with server.client() as ws:
        assert (ws.welcome["role"], ws.welcome["player_id"]) == ("admin", None)


async def test_a_second_hello_is_a_bad_request(server: Harness) -> None:
    async with server.client() as ws:
        reply = await ws.request({"op": "hello", "token": server.token()})
        assert reply["code"] == "bad_request"


async def test_the_connection_closes_when_its_token_expires(server: Harness) -> None:
    async with server.client(server.token("player", "p1", ttl=1)) as ws:
        assert (await ws.request({"op": "ping"}))["op"] == "pong"
        reason = await ws.closed(timeout=3)
        assert (reason.code, reason.reason) == (1008, "unauthorized: token expired")
