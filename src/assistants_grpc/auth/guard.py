"""The one door every call of every face goes through: who is calling, and whether their key
may make one more call or open one more stream right now.

It is transport-neutral: a face hands it the call's headers (lowercase names: HTTP's own, or
gRPC metadata through `api.errors.metadata_headers`), gets the Caller back or a ServiceError to
report in its own terms (UNAUTHENTICATED, RESOURCE_EXHAUSTED with the wait), and holds a stream
slot for as long as a stream is open. One Guard serves every face of a runtime, so a key's rate
and its open streams count across gRPC and HTTP together: one face cannot starve the other.

Health and reflection are separate servicers that never pass here, so they stay open.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from assistants_grpc.auth.authenticator import Authenticator, Headers
from assistants_grpc.auth.caller import Caller
from assistants_grpc.auth.limits import RateLimiter, StreamLimiter
from assistants_grpc.services.errors import ResourceExhaustedError


class Guard:
    def __init__(
        self,
        authenticator: Authenticator,
        *,
        rate: RateLimiter | None = None,
        streams: StreamLimiter | None = None,
    ) -> None:
        self.authenticator = authenticator
        self._rate = rate
        self._streams = streams

    async def admit(self, headers: Headers) -> Caller:
        """The caller of a new call; UNAUTHENTICATED or RESOURCE_EXHAUSTED if it may not."""
        caller = await self.authenticator.authenticate(headers)
        if caller.key_id is not None and self._rate is not None:
            wait = self._rate.take(caller.key_id)
            if wait is not None:
                raise ResourceExhaustedError(
                    f"Rate limit reached for this API key; retry in {wait:.3f} s.",
                    retry_after=wait,
                )
        return caller

    @contextmanager
    def stream_slot(self, caller: Caller) -> Iterator[None]:
        """Hold one of the caller's stream slots for as long as the stream is open;
        RESOURCE_EXHAUSTED (raised on entering) when the key has all of its streams open."""
        key_id = caller.key_id
        if key_id is None or self._streams is None:
            yield
            return
        if not self._streams.acquire(key_id):
            raise ResourceExhaustedError(
                f"Too many open streams for this API key (at most {self._streams.maximum}); "
                "close one and retry."
            )
        try:
            yield
        finally:
            self._streams.release(key_id)


__all__ = ["Guard"]
