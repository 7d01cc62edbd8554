"""The same port answers HTTP: /healthz, /metrics (Prometheus text) and / (the browser client)."""

from __future__ import annotations

import json
import re
from urllib.parse import urlsplit

import trio

from .conftest import Harness, connected, make_hunt


async def http_get(base: str, path: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    """A minimal HTTP/1.1 GET over a trio stream (the test needs no HTTP library)."""
    parts = urlsplit(base)
    stream = await trio.open_tcp_stream(parts.hostname, parts.port)
    async with stream:
        await stream.send_all(f"{method} {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        with trio.fail_after(5):
            while chunk := await stream.receive_some(65536):
                data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    return status, headers, body


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one Prometheus sample (0 if absent)."""
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    pattern = re.escape(name) + (r"\{" + re.escape(want) + r"\}" if want else r"(?:\{\})?") + r" (\S+)"
    match = re.search("^" + pattern + "$", text, re.M)
    return float(match.group(1)) if match else 0.0


async def test_healthz(server: Harness) -> None:
    status, headers, body = await http_get(server.http_url, "/healthz")
    assert status == 200 and headers["content-type"] == "application/json"
    report = json.loads(body)
    assert report["status"] == "ok" and report["seq"] == 0


async def test_metrics_move_with_commands(server: Harness) -> None:
    status, headers, body = await http_get(server.http_url, "/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain")
    before = body.decode()
    for name in ("thengine_commands_total", "thengine_command_latency_seconds", "thengine_commit_latency_seconds",
                 "thengine_commit_batch_size", "thengine_inbox_depth", "thengine_connections",
                 "thengine_subscribers", "thengine_stage_seconds", "thengine_loop_lag_seconds",
                 "thengine_gc_pause_seconds"):
        assert f"# TYPE {name} " in before, name
    assert sample(before, "thengine_inbox_depth", shard="0") == 0
    async with server.client() as ws, server.player("p1") as p1:
        await ws.request({"op": "subscribe", "id": 1})
        await make_hunt(ws)
        await p1.command({"type": "join_hunt", "hunt_id": "h", "player_id": "p1"})
        await p1.command({"type": "join_hunt", "hunt_id": "h", "player_id": "p2"})
        _, _, body = await http_get(server.http_url, "/metrics")
        during = body.decode()
        assert sample(during, "thengine_connections") == 2
        assert sample(during, "thengine_subscribers") == 1
    _, _, body = await http_get(server.http_url, "/metrics")
    after = body.decode()
    assert sample(after, "thengine_commands_total", type="create_hunt", outcome="ok") == 1
    assert sample(after, "thengine_commands_total", type="join_hunt", outcome="ok") == 1
    assert sample(after, "thengine_commands_total", type="join_hunt", outcome="forbidden") == 1
    assert sample(after, "thengine_command_latency_seconds_count", type="join_hunt") == 1
    assert sample(after, "thengine_commit_latency_seconds_count") >= 1
    assert sample(after, "thengine_commit_batch_size_sum") >= 3
    assert sample(after, "thengine_committed_seq") == 3
    assert sample(after, "thengine_connections") == 0 and sample(after, "thengine_subscribers") == 0
    decided = sample(after, "thengine_stage_seconds_count", stage="decide")
    assert decided - sample(before, "thengine_stage_seconds_count", stage="decide") == 3  # the forbidden one never got there
    assert sample(after, "thengine_stage_seconds_count", stage="commit_sync") >= 1
    assert sample(after, "thengine_stage_seconds_bucket", stage="decide", le="+Inf") == decided


async def test_the_browser_client_is_served(server: Harness) -> None:
    for path in ("/", "/client"):
        status, headers, body = await http_get(server.http_url, path)
        assert status == 200 and headers["content-type"].startswith("text/html")
        page = body.decode()
        assert "new WebSocket(" in page and 'op: "hello"' in page and 'op: "subscribe"' in page


async def test_other_paths_and_methods(server: Harness) -> None:
    assert (await http_get(server.http_url, "/nope"))[0] == 404
    assert (await http_get(server.http_url, "/v1"))[0] == 426
    assert (await http_get(server.http_url, "/healthz", "POST"))[0] == 405
    status, _, body = await http_get(server.http_url, "/healthz", "HEAD")
    assert status == 200 and body == b""


async def test_the_websocket_endpoint_takes_a_query_string(server: Harness) -> None:
    """(A load balancer routes ``/v1?hunt=H`` to the node hosting the hunt.)"""
    async with connected(server.url + "?hunt=h", server.token()) as ws:
        assert (await ws.request({"op": "ping"}))["op"] == "pong"


async def test_a_healthz_report_counts_websocket_connections(server: Harness) -> None:
    async with connected(server.url, server.token()), connected(server.url, server.token()):
        status, _, body = await http_get(server.http_url, "/healthz")
        report = json.loads(body)
        assert status == 200 and report["connections"] == 2
        assert set(report) == {"status", "seq", "connections", "version"}
