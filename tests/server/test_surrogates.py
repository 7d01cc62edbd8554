"""A lone UTF-16 surrogate (legal JSON, ``"\\ud800"``) anywhere in a frame is refused cleanly.

Against a real `thengine serve` process, with a client that writes raw JSON text as
any third-party client could: the server answers ``invalid_command`` or
``bad_request`` naming the field, keeps serving, and logs no traceback.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from .wsclient import ConnectionClosed

from thengine.client import connect
from thengine.domain.commands import Rejection
from thengine.server import protocol
from thengine.tokens import issue

from .conftest import ROOT, WS, Harness, hunt_definition, init_db, make_hunt, read_secret, websocket

#: What a client sends for the string "\ud800": JSON's escaped form of a lone surrogate.
SURROGATE = json.dumps("\ud800")[1:-1]
assert SURROGATE == "\\ud800"


class ServeProcess:
    """`thengine serve` on a free loopback port, in a process of its own."""

    def __init__(self, db: Path) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "thengine", "serve", str(db), "--listen", "127.0.0.1:0", "--sync", "normal"],
            stderr=subprocess.PIPE, text=True, env=env)
        assert self.proc.stderr is not None
        line = self.proc.stderr.readline()
        match = re.search(r" at (ws://\S+)", line)
        assert match, line + self.proc.stderr.read()
        self.url = match.group(1)
        secret = read_secret(db)
        now = int(time.time())
        self.admin = issue(secret, role="admin", ttl_s=600, now_s=now)
        self.player = issue(secret, role="player", player_id="p1", ttl_s=600, now_s=now)

    def stop(self) -> str:
        """SIGTERM; asserts a clean exit and returns what the server wrote to stderr."""
        self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(15) == 0
        assert self.proc.stderr is not None
        return self.proc.stderr.read()


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[ServeProcess]:
    running = ServeProcess(init_db(tmp_path / "hunts.db"))
    try:
        yield running
    finally:
        if running.proc.poll() is None:
            running.proc.kill()
            running.proc.wait(15)
        assert running.proc.stderr is not None
        running.proc.stderr.close()


@asynccontextmanager
async def raw_client(url: str, token: str) -> AsyncIterator[WS]:
    async with websocket(url) as ws:
        client = WS(ws)
        await ws.send_message(json.dumps({"op": "hello", "token": token}))
        assert (await client.recv())["op"] == "welcome"
        yield client


async def send_raw(client: WS, text: str) -> dict:
    """Send frame text as written (its escapes unread) and return the next frame."""
    await client.ws.send_message(text)
    return await client.recv()


async def setup_hunt(serve: ServeProcess) -> None:
    async with raw_client(serve.url, serve.admin) as admin:
        assert (await admin.command({"type": "create_hunt", "definition": hunt_definition()}))["ok"]
        assert (await admin.command({"type": "start_hunt", "hunt_id": "h"}))["ok"]


def assert_no_traceback(stderr: str) -> None:
    assert "Traceback" not in stderr, stderr
    assert "ERROR" not in stderr, stderr


async def test_a_surrogate_answer_is_invalid_command_and_the_server_keeps_answering(serve: ServeProcess) -> None:
    await setup_hunt(serve)
    async with raw_client(serve.url, serve.player) as p1:
        assert (await p1.command({"type": "join_hunt", "hunt_id": "h", "player_id": "p1"}))["ok"]
        reply = await send_raw(p1, '{"op":"command","id":7,"command":{"type":"submit_answer","hunt_id":"h",'
                                   '"player_id":"p1","clue_id":"c1","answer":"x' + SURROGATE + '"}}')
        assert (reply["op"], reply["id"], reply["ok"]) == ("result", 7, False)
        assert reply["error"]["code"] == "invalid_command"
        assert reply["error"]["message"].startswith("answer:")
        solved = await p1.command({"type": "submit_answer", "hunt_id": "h", "player_id": "p1",
                                   "clue_id": "c1", "answer": "ANSWER-ONE"})
        assert solved["ok"] and solved["events"][0]["type"] == "clue_solved"
    async with raw_client(serve.url, serve.admin) as admin:  # nothing was written for the bad one
        hunt = await admin.query({"type": "hunt", "hunt_id": "h"})
        assert hunt["ok"] and hunt["data"]["players"] == 1
    assert_no_traceback(serve.stop())


async def test_surrogates_in_other_command_and_query_fields_are_invalid_command(serve: ServeProcess) -> None:
    await setup_hunt(serve)
    cases = [
        ('{"type":"join_hunt","hunt_id":"h","player_id":"p1","team_id":"' + SURROGATE + '"}', "team_id:"),
        ('{"type":"join_hunt","hunt_id":"h' + SURROGATE + '","player_id":"p1"}', "hunt_id:"),
        ('{"type":"join_hunt","hunt_id":"h","player_id":"p1","' + SURROGATE + '":1}', "unknown field"),
        ('{"type":"' + SURROGATE + '"}', "type:"),
    ]
    async with raw_client(serve.url, serve.admin) as admin:
        for n, (body, fragment) in enumerate(cases, 1):
            reply = await send_raw(admin, f'{{"op":"command","id":{n},"command":{body}}}')
            assert (reply["id"], reply["error"]["code"]) == (n, "invalid_command"), reply
            assert fragment in reply["error"]["message"]
        reply = await send_raw(admin, '{"op":"command","id":10,"command":{"type":"remove_player","hunt_id":"h",'
                                      '"player_id":"p1","reason":"' + SURROGATE + '"}}')
        assert reply["error"]["code"] == "invalid_command" and reply["error"]["message"].startswith("reason:")
        reply = await send_raw(admin, '{"op":"command","id":11,"command_id":"k' + SURROGATE + '",'
                                      '"command":{"type":"join_hunt","hunt_id":"h","player_id":"p1"}}')
        assert reply["error"]["code"] == "invalid_command" and reply["error"]["message"].startswith("command_id:")
        reply = await send_raw(admin, '{"op":"query","id":12,"query":{"type":"player","hunt_id":"h",'
                                      '"player_id":"' + SURROGATE + '"}}')
        assert reply["error"]["code"] == "invalid_command" and reply["error"]["message"].startswith("player_id:")
        definition = json.dumps(hunt_definition("h2")).replace('"Hunt h2"', '"Hunt ' + SURROGATE + '"')
        reply = await send_raw(admin, '{"op":"command","id":13,"command":{"type":"create_hunt",'
                                      '"definition":' + definition + '}}')
        assert reply["error"]["code"] == "invalid_command" and "title" in reply["error"]["message"]
        assert (await admin.command({"type": "join_hunt", "hunt_id": "h", "player_id": "p1"}))["ok"]
        hunts = await admin.query({"type": "hunts"})
        assert [h["hunt_id"] for h in hunts["data"]["hunts"]] == ["h"]
    assert_no_traceback(serve.stop())


async def test_a_surrogate_request_id_is_a_bad_request_and_the_connection_lives(serve: ServeProcess) -> None:
    async with raw_client(serve.url, serve.admin) as admin:
        reply = await send_raw(admin, '{"op":"ping","id":"a' + SURROGATE + '"}')
        assert (reply["op"], reply["code"], reply["id"]) == ("error", "bad_request", None)
        assert reply["message"].startswith("id:")
        reply = await send_raw(admin, '{"op":"query","id":"' + SURROGATE + '","query":{"type":"hunts"}}')
        assert (reply["code"], reply["id"]) == ("bad_request", None)
        assert (await admin.request({"op": "ping"}))["op"] == "pong"
    assert_no_traceback(serve.stop())


async def test_surrogates_in_op_and_subscribe_fields_are_bad_requests_without_tracebacks(
        serve: ServeProcess) -> None:
    async with raw_client(serve.url, serve.admin) as admin:
        reply = await send_raw(admin, '{"op":"' + SURROGATE + '","id":1}')
        assert (reply["code"], reply["id"]) == ("bad_request", 1) and reply["message"].startswith("op:")
        reply = await send_raw(admin, '{"op":"subscribe","id":2,"hunt_id":"h' + SURROGATE + '"}')
        assert (reply["code"], reply["id"]) == ("bad_request", 2) and reply["message"].startswith("hunt_id:")
        reply = await send_raw(admin, '{"op":"ping","id":3,"' + SURROGATE + '":0}')
        assert (reply["code"], reply["id"]) == ("bad_request", 3) and "unknown field" in reply["message"]
        reply = await send_raw(admin, '{"op":"unsubscribe","id":4,"sub":"' + SURROGATE + '"}')
        assert (reply["code"], reply["id"]) == ("bad_request", 4) and reply["message"].startswith("sub:")
        assert (await admin.request({"op": "ping"}))["op"] == "pong"
    assert_no_traceback(serve.stop())


async def test_a_surrogate_token_is_refused_as_unauthorized(serve: ServeProcess) -> None:
    async with websocket(serve.url) as ws:
        client = WS(ws)
        await ws.send_message('{"op":"hello","token":"' + SURROGATE + '.' + SURROGATE + '"}')
        reply = await client.recv()
        assert reply["code"] == "unauthorized"
        with pytest.raises(ConnectionClosed) as closed:
            await client.recv()
        assert closed.value.reason.code == 1008
    async with raw_client(serve.url, serve.admin) as admin:
        assert (await admin.request({"op": "ping"}))["op"] == "pong"
    assert_no_traceback(serve.stop())


async def test_the_client_sends_a_callers_surrogate_for_the_server_to_refuse(server: Harness) -> None:
    async with server.client() as admin:
        await make_hunt(admin)
    async with connect(server.url, server.token()) as client:
        for _ in range(100):  # (more than the in-flight slots: none is lost to a failed send)
            result = await client.submit({"type": "join_hunt", "hunt_id": "h", "player_id": "p1",
                                          "team_id": "t\ud800"})
            assert result.error is not None and result.error.code == "invalid_command"
            assert result.error.message.startswith("team_id:")
        assert (await client.submit({"type": "join_hunt", "hunt_id": "h", "player_id": "p1"})).ok


# -- the pure protocol: any frame at all, and every reply to it encodes ----------------

_text = st.one_of(st.text(st.characters(exclude_categories=()), max_size=12),
                  st.sampled_from(["\ud800", "a\udfff", "\ud83d\ude00", "h", "p1", "c1"]))
_values = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), _text),
                       lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
                       max_leaves=8)
_ops = st.sampled_from(["hello", "command", "query", "subscribe", "unsubscribe", "ping"]) | _text


@st.composite
def frames(draw) -> dict:
    frame = {"op": draw(_ops), "id": draw(st.one_of(st.integers(0, 9), _text, _values))}
    if draw(st.booleans()):
        frame["command"] = {"type": draw(st.sampled_from(["submit_answer", "join_hunt"]) | _text),
                            **draw(st.dictionaries(st.sampled_from(["hunt_id", "player_id", "clue_id", "answer"])
                                                   | _text, _values, max_size=4))}
    for key in draw(st.lists(st.sampled_from(["hunt_id", "after_seq", "sub", "query", "command_id", "token"])
                             | _text, max_size=3)):
        frame[key] = draw(_values)
    return frame


@settings(max_examples=1000, deadline=None)
@given(frame=frames())
def test_any_frame_is_parsed_and_every_reply_to_it_encodes_as_utf8(frame: dict) -> None:
    request = protocol.parse_frame(json.dumps(frame))  # the \uXXXX escapes a client sends
    rid = getattr(request, "id", None)
    replies = [protocol.error(rid, "bad_request", getattr(request, "message", "")), protocol.pong(rid),
               protocol.subscribed(rid, hunt_id=getattr(request, "hunt_id", None), after_seq=0)]
    for body in (getattr(request, "command", None), getattr(request, "query", None)):
        if isinstance(body, Rejection):
            assert body.code == "invalid_command"
            replies.append(protocol.rejected(rid, body))
    for reply in replies:
        reply.encode("utf-8")  # what the WebSocket does with it; raises on a lone surrogate
        json.loads(reply)


def test_a_frame_never_fails_to_encode_even_with_a_surrogate_in_it() -> None:
    text = protocol.error("a\ud800", "bad_request", "x\udfff")
    assert json.loads(text) == {"op": "error", "id": "a\ud800", "code": "bad_request", "message": "x\udfff"}
    text.encode("utf-8")
    assert protocol.close_reason("bye \ud800").encode("utf-8") == b"bye \\ud800"
