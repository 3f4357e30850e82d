"""Channels and calls: the one place that knows grpc's calling conventions.

Every call goes out with the client's metadata (the API key) and deadline; unary reads are
retried on UNAVAILABLE; any failure leaves here as an `AssistantsError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
from google.protobuf.message import Message

from assistants_grpc_client._errors import from_rpc_error
from assistants_grpc_client._pagination import (
    AsyncPaginator,
    ListResponse,
    PageData,
    SyncCursorPage,
    page_data,
)
from assistants_grpc_client._retry import Backoff, retry_async, retry_sync

__all__ = [
    "AsyncTransport",
    "CallSettings",
    "SyncTransport",
    "channel_options",
    "open_async_channel",
    "open_sync_channel",
]

T = TypeVar("T")
M = TypeVar("M", bound=Message)


def _page_request(request: M, after: str | None) -> M:
    """A copy of a List*Request that asks for the page after `after`, same filters."""
    page = type(request)()
    page.CopyFrom(request)
    if after is not None:
        setattr(page, "after", after)  # noqa: B010 - every List*Request has it
    return page


# gRPC reconnects after 1 s at first and backs off to 120 s. A resuming stream and a retried read
# both wait on that schedule, so a restart of a few seconds could cost minutes; these keep the
# channel trying at a pace that matches the retry budget. Callers' options win.
_DEFAULT_OPTIONS: tuple[tuple[str, Any], ...] = (
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 5000),
)


def channel_options(options: Sequence[tuple[str, Any]]) -> list[tuple[str, Any]]:
    given = {name for name, _ in options}
    return [*(o for o in _DEFAULT_OPTIONS if o[0] not in given), *options]


def open_sync_channel(target: str, credentials: Any, options: Sequence[tuple[str, Any]]) -> Any:
    if credentials is not None:
        return grpc.secure_channel(target, credentials, options=channel_options(options))
    return grpc.insecure_channel(target, options=channel_options(options))


def open_async_channel(target: str, credentials: Any, options: Sequence[tuple[str, Any]]) -> Any:
    if credentials is not None:
        return grpc.aio.secure_channel(target, credentials, options=channel_options(options))
    return grpc.aio.insecure_channel(target, options=channel_options(options))


@dataclass(frozen=True, slots=True)
class CallSettings:
    """What every call of one client shares."""

    metadata: tuple[tuple[str, str], ...]
    timeout: float | None
    max_retries: int
    backoff: Backoff
    resume_timeout: float


class SyncTransport:
    def __init__(self, channel: Any, settings: CallSettings) -> None:
        self.channel = channel
        self.settings = settings

    def unary(self, method: Any, request: Any, returns: type[T], *, idempotent: bool) -> T:
        """Call a unary method; `returns` is the response type, for the type checker."""

        def once() -> T:
            response: T = method(
                request, timeout=self.settings.timeout, metadata=self.settings.metadata
            )
            return response

        try:
            if not idempotent:
                return once()
            return retry_sync(
                once, retries=self.settings.max_retries, backoff=self.settings.backoff
            )
        except grpc.RpcError as error:
            raise from_rpc_error(error) from error

    def paginate(
        self, method: Any, request: Message, returns: type[ListResponse[T]]
    ) -> SyncCursorPage[T]:
        """The first page of a List call, which fetches the following ones as it is iterated."""

        def fetch(after: str | None) -> PageData[T]:
            page = _page_request(request, after)
            return page_data(self.unary(method, page, returns, idempotent=True))

        return SyncCursorPage(fetch(None), fetch)

    def stream(self, method: Any, request: Any) -> Any:
        """Start a server-streaming call. Streams get no deadline: a run may legitimately take
        longer than any unary timeout, and a broken stream is resumed rather than timed out."""
        return method(request, metadata=self.settings.metadata)


class AsyncTransport:
    def __init__(self, channel: Any, settings: CallSettings) -> None:
        self.channel = channel
        self.settings = settings

    async def unary(self, method: Any, request: Any, returns: type[T], *, idempotent: bool) -> T:
        async def once() -> T:
            response: T = await method(
                request, timeout=self.settings.timeout, metadata=self.settings.metadata
            )
            return response

        try:
            if not idempotent:
                return await once()
            return await retry_async(
                once, retries=self.settings.max_retries, backoff=self.settings.backoff
            )
        except grpc.RpcError as error:
            raise from_rpc_error(error) from error

    def paginate(
        self, method: Any, request: Message, returns: type[ListResponse[T]]
    ) -> AsyncPaginator[T]:
        async def fetch(after: str | None) -> PageData[T]:
            page = _page_request(request, after)
            return page_data(await self.unary(method, page, returns, idempotent=True))

        return AsyncPaginator(lambda: fetch(None), fetch)

    def stream(self, method: Any, request: Any) -> Any:
        return method(request, metadata=self.settings.metadata)
