"""`Client` and `AsyncClient`: one channel, the resources, and closing.

```python
with Client("127.0.0.1:50051", api_key="sk-...") as client:
    assistant = client.assistants.create(model="gpt-4o", name="Helper")
```
"""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType
from typing import Any, Self

from assistants_grpc_client._resources.assistants import Assistants, AsyncAssistants
from assistants_grpc_client._resources.files import AsyncFiles, Files
from assistants_grpc_client._resources.messages import AsyncMessages, Messages
from assistants_grpc_client._resources.runs import AsyncRuns, Runs
from assistants_grpc_client._resources.threads import AsyncThreads, Threads
from assistants_grpc_client._resources.vector_stores import AsyncVectorStores, VectorStores
from assistants_grpc_client._retry import Backoff
from assistants_grpc_client._transport import (
    AsyncTransport,
    CallSettings,
    SyncTransport,
    open_async_channel,
    open_sync_channel,
)

__all__ = ["AsyncClient", "Client"]

DEFAULT_TIMEOUT = 60.0
DEFAULT_MAX_RETRIES = 2
DEFAULT_RESUME_TIMEOUT = 30.0


def _settings(
    api_key: str | None, timeout: float | None, max_retries: int, resume_timeout: float
) -> CallSettings:
    metadata = (("authorization", f"Bearer {api_key}"),) if api_key else ()
    return CallSettings(
        metadata=metadata,
        timeout=timeout,
        max_retries=max_retries,
        backoff=Backoff(),
        resume_timeout=resume_timeout,
    )


class Client:
    """A blocking client of an assistants-grpc server.

    Args:
        target: The server, `host:port`.
        api_key: Sent as `authorization: Bearer <key>` on every call.
        credentials: `grpc.ChannelCredentials` (e.g. `grpc.ssl_channel_credentials()`) for TLS;
            without them the channel is plaintext.
        timeout: Seconds each unary call may take. Streams have no deadline (a run may wait on
            a slow model); a broken stream resumes instead.
        max_retries: How many times a read (Get/List) is retried on UNAVAILABLE.
        resume_timeout: How long a broken stream keeps trying to resume (the server may be
            restarting) before it raises `UnavailableError`.
        options: Extra gRPC channel options.
    """

    def __init__(
        self,
        target: str,
        *,
        api_key: str | None = None,
        credentials: Any = None,
        timeout: float | None = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        resume_timeout: float = DEFAULT_RESUME_TIMEOUT,
        options: Sequence[tuple[str, Any]] = (),
    ) -> None:
        self.target = target
        self._channel = open_sync_channel(target, credentials, options)
        transport = SyncTransport(
            self._channel, _settings(api_key, timeout, max_retries, resume_timeout)
        )
        self.assistants = Assistants(transport)
        self.threads = Threads(transport)
        self.messages = Messages(transport)
        self.runs = Runs(transport)
        self.files = Files(transport)
        # upload_and_poll uploads through client.files.
        self.vector_stores = VectorStores(transport, self.files)

    def close(self) -> None:
        """Close the channel; calls still in flight are cancelled."""
        self._channel.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client({self.target!r})"


class AsyncClient:
    """The asyncio client; the same arguments and resources as `Client`, with `await`.

    Create it inside the event loop that will use it (grpc.aio channels belong to one loop).
    """

    def __init__(
        self,
        target: str,
        *,
        api_key: str | None = None,
        credentials: Any = None,
        timeout: float | None = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        resume_timeout: float = DEFAULT_RESUME_TIMEOUT,
        options: Sequence[tuple[str, Any]] = (),
    ) -> None:
        self.target = target
        self._channel = open_async_channel(target, credentials, options)
        transport = AsyncTransport(
            self._channel, _settings(api_key, timeout, max_retries, resume_timeout)
        )
        self.assistants = AsyncAssistants(transport)
        self.threads = AsyncThreads(transport)
        self.messages = AsyncMessages(transport)
        self.runs = AsyncRuns(transport)
        self.files = AsyncFiles(transport)
        self.vector_stores = AsyncVectorStores(transport, self.files)

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"AsyncClient({self.target!r})"
