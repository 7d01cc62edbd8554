"""The `thengine` command line: thin commands over the engine, the log and replay."""

from __future__ import annotations

from ._group import main as main

# Each module adds its commands to `main`.
from . import admin as _admin  # noqa: E402,F401
from . import bench as _bench  # noqa: E402,F401
from . import cluster as _cluster  # noqa: E402,F401
from . import codes as _codes  # noqa: E402,F401
from . import demo as _demo  # noqa: E402,F401
from . import events as _events  # noqa: E402,F401
from . import ingest as _ingest  # noqa: E402,F401
from . import replay as _replay  # noqa: E402,F401
from . import serve as _serve  # noqa: E402,F401

__all__ = ["main"]
