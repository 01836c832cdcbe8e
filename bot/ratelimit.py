"""Per-user rate limiting: a token bucket per key, in process memory.

Limits protect the LLM endpoint from one noisy user; exactness across replicas is not needed, so no database
round-trip is spent on it.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from bot.errors import RateLimited

WINDOW_S = 60.0


class RateLimiter:
    """Allow ``per_minute`` requests per key, refilled continuously; ``per_minute=0`` disables limiting."""

    def __init__(self, per_minute: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._capacity = float(per_minute)
        self._refill_per_s = per_minute / WINDOW_S
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}

    def check(self, key: str) -> None:
        """Take one token for ``key`` or raise :class:`RateLimited` saying when the next one is due."""
        if self._capacity <= 0:
            return
        now = self._clock()
        tokens, last = self._buckets.get(key, (self._capacity, now))
        tokens = min(self._capacity, tokens + (now - last) * self._refill_per_s)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            raise RateLimited(f"rate limit for {key}", retry_after=(1.0 - tokens) / self._refill_per_s)
        self._buckets[key] = (tokens - 1.0, now)
