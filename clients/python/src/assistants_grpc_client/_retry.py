"""Exponential backoff, and the retry of idempotent calls on UNAVAILABLE.

Only reads are retried: a write that failed with UNAVAILABLE may still have been applied, so
retrying it silently could create a second message or run. Streams resume instead (they continue
from the last event they saw, `_streaming.py`), which is safe for the same reason.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc

__all__ = ["Backoff", "is_unavailable", "retry_async", "retry_sync"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delays of initial, initial*multiplier, ... capped at maximum, each with jitter."""

    initial: float = 0.1
    maximum: float = 2.0
    multiplier: float = 2.0

    def delays(self) -> Iterator[float]:
        delay = self.initial
        while True:
            # Half fixed, half random: clients that lost the same server don't all come back in
            # the same instant, and none waits much less than the schedule says.
            yield delay / 2 + random.uniform(0, delay / 2)
            delay = min(self.maximum, delay * self.multiplier)


def is_unavailable(error: BaseException) -> bool:
    code = getattr(error, "code", None)
    return (
        isinstance(error, grpc.RpcError)
        and callable(code)
        and code() == grpc.StatusCode.UNAVAILABLE
    )


def retry_sync(
    call: Callable[[], T],
    *,
    retries: int,
    backoff: Backoff,
    sleep: Callable[[float], Any] = time.sleep,
) -> T:
    """`call()`, repeated after a pause on each UNAVAILABLE, `retries` times at most."""
    delays = backoff.delays()
    for _ in range(retries):
        try:
            return call()
        except grpc.RpcError as error:
            if not is_unavailable(error):
                raise
        sleep(next(delays))
    return call()


async def retry_async(
    call: Callable[[], Awaitable[T]],
    *,
    retries: int,
    backoff: Backoff,
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
) -> T:
    """The async twin of `retry_sync`."""
    delays = backoff.delays()
    for _ in range(retries):
        try:
            return await call()
        except grpc.RpcError as error:
            if not is_unavailable(error):
                raise
        await sleep(next(delays))
    return await call()
