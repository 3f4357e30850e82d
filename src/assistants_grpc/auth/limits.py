"""Per-key limits on the transport: a request rate (token bucket) and concurrent streams.

Both count per API key. A call without a key (authentication off, so the server listens on
loopback only unless told otherwise) has no key to count against and is not limited here.
"""

from __future__ import annotations

from dataclasses import dataclass

from assistants_grpc.clock import Clock


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """A token bucket per key: `burst` calls at once, refilled at `rate` calls per second."""

    def __init__(self, clock: Clock, *, rate: float, burst: int) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("a rate limit needs rate > 0 and burst >= 1")
        self._clock = clock
        self._rate = rate
        self._burst = float(burst)
        self._buckets: dict[str, _Bucket] = {}

    def take(self, key_id: str) -> float | None:
        """Spend one call; None if allowed, else the seconds until one would be."""
        now = self._clock.now()
        bucket = self._buckets.get(key_id)
        if bucket is None:
            bucket = self._buckets[key_id] = _Bucket(self._burst, now)
        # max(0, …): a clock stepped backwards refills nothing rather than draining the bucket.
        elapsed = max(0.0, now - bucket.updated)
        bucket.tokens = min(self._burst, bucket.tokens + elapsed * self._rate)
        bucket.updated = now
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return None
        return (1 - bucket.tokens) / self._rate


class StreamLimiter:
    """How many streams each key has open; a new one past `maximum` is refused."""

    def __init__(self, maximum: int) -> None:
        if maximum < 1:
            raise ValueError("a stream limit needs maximum >= 1")
        self.maximum = maximum
        self._open: dict[str, int] = {}

    def acquire(self, key_id: str) -> bool:
        count = self._open.get(key_id, 0)
        if count >= self.maximum:
            return False
        self._open[key_id] = count + 1
        return True

    def release(self, key_id: str) -> None:
        count = self._open.get(key_id, 0) - 1
        if count > 0:
            self._open[key_id] = count
        else:
            self._open.pop(key_id, None)

    def open_streams(self, key_id: str) -> int:
        return self._open.get(key_id, 0)


__all__ = ["RateLimiter", "StreamLimiter"]
