"""`Result`: what `Engine.submit` returns for every command it decided."""

from __future__ import annotations

from typing import Any

import attrs

from .commands import Rejection
from .events import StoredEvent


@attrs.frozen(kw_only=True)
class Result:
    """``ok`` with the stored `events`, or not ``ok`` with an `error` and nothing written."""

    ok: bool
    events: tuple[StoredEvent, ...] = ()
    error: Rejection | None = None

    @classmethod
    def rejected(cls, code: str, message: str) -> Result:
        return cls(ok=False, error=Rejection(code=code, message=message))

    def to_json(self) -> dict[str, Any]:
        if self.ok:
            return {"ok": True, "events": [e.to_json() for e in self.events]}
        assert self.error is not None
        return {"ok": False, "error": self.error.to_json()}
