"""The plain HTTP GETs of the server's port: /metrics, /healthz, the browser client and /admin.

websockets' `ServerProtocol` parses the request; this module only decides the
`Response`. ``/v1`` is the WebSocket endpoint: a request there that is not an
upgrade gets 426. Every response says ``Cache-Control: no-store`` and closes the
connection; HEAD gets the headers of GET without the body.
"""

from __future__ import annotations

from importlib import resources
from typing import Any, Callable

from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from . import protocol

WEBSOCKET_PATH = "/v1"
CLIENT_PATHS = ("/", "/client", "/client.html")
ADMIN_PATHS = ("/admin", "/admin.html")
_TEXT = "text/plain; charset=utf-8"
_REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 426: "Upgrade Required",
            503: "Service Unavailable"}


def path_of(request: Request) -> str:
    """The request's path without its query (``/v1?hunt=H`` is ``/v1``)."""
    return request.path.split("?", 1)[0]


def is_upgrade(request: Request) -> bool:
    """Whether `request` asks for a WebSocket on ``/v1`` (the handshake decides the rest)."""
    return path_of(request) == WEBSOCKET_PATH and "websocket" in request.headers.get("Upgrade", "").lower()


class Endpoints:
    """Answers the plain GETs. `health` gives the ``/healthz`` report and whether the server is shutting down."""

    def __init__(self, *, metrics: Callable[[], tuple[bytes, str]],
                 health: Callable[[], tuple[dict[str, Any], bool]]) -> None:
        self._metrics = metrics
        self._health = health
        static = resources.files("thengine.server").joinpath("static")
        self._html = static.joinpath("client.html").read_bytes()
        self._admin = static.joinpath("admin.html").read_bytes()  # the organisers' dashboard

    def respond(self, request: Request) -> Response:
        """The response to a request that is not a WebSocket upgrade."""
        path, method = path_of(request), request.method
        extra: list[tuple[str, str]] = []
        if method not in ("GET", "HEAD"):
            status, body, ctype = 405, b"method not allowed\n", _TEXT
            extra.append(("Allow", "GET, HEAD"))
        elif path == "/metrics":
            body, ctype = self._metrics()
            status = 200
        elif path == "/healthz":
            report, shutting_down = self._health()
            status, body, ctype = (503 if shutting_down else 200), protocol.dumps(report).encode(), "application/json"
        elif path in CLIENT_PATHS:
            status, body, ctype = 200, self._html, "text/html; charset=utf-8"
        elif path in ADMIN_PATHS:
            status, body, ctype = 200, self._admin, "text/html; charset=utf-8"
        elif path == WEBSOCKET_PATH:
            status, body, ctype = 426, b"/v1 is a WebSocket endpoint\n", _TEXT
            extra.append(("Upgrade", "websocket"))
        else:
            status, body, ctype = 404, b"not found\n", _TEXT
        return response(status, body, ctype, extra, head=method == "HEAD")


def response(status: int, body: bytes, content_type: str = _TEXT, extra: list[tuple[str, str]] | None = None,
             *, head: bool = False) -> Response:
    """A complete response that closes the connection (HEAD: the headers only)."""
    headers = Headers([("Content-Type", content_type), ("Content-Length", str(len(body))),
                       ("Cache-Control", "no-store"), ("Connection", "close"), *(extra or [])])
    return Response(status, _REASONS.get(status, ""), headers, b"" if head else body)
