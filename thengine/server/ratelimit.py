"""The per-player command rate limit: a token bucket per player id."""

from __future__ import annotations

from typing import Callable

import trio

#: Buckets kept before full ones are forgotten (forgetting a full bucket changes nothing).
RATE_LIMIT_KEYS = 100_000


class RateLimiter:
    """A token bucket per key (player id): `rate` per second, up to `burst` at once."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = trio.current_time) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._buckets: dict[str, list[float]] = {}  # key -> [tokens, last refill]

    def allow(self, key: str) -> bool:
        """Take one token for `key`; False if it has none left (the command is refused)."""
        if self.rate <= 0:
            return True
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= RATE_LIMIT_KEYS:
                self._prune(now)
            self._buckets[key] = [self.burst - 1.0, now]
            return True
        tokens = min(float(self.burst), bucket[0] + (now - bucket[1]) * self.rate)
        bucket[1] = now
        if tokens < 1.0:
            bucket[0] = tokens
            return False
        bucket[0] = tokens - 1.0
        return True

    def _prune(self, now: float) -> None:
        """Forget buckets that are full again: forgetting them changes nothing."""
        full = [k for k, (tokens, last) in self._buckets.items() if tokens + (now - last) * self.rate >= self.burst]
        for key in full:
            del self._buckets[key]
