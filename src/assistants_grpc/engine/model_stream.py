"""One streamed chat completion, normalized into a few small events.

:func:`stream_completion` returns a :class:`ModelStream`: an async iterator of
:data:`ModelEvent` that sends the request on first iteration and can be closed at any time::

    async with stream_completion(client, {"model": ..., "messages": ...}) as events:
        async for event in events:
            ...

Events, in order: :class:`TextDelta` / :class:`RefusalDelta` / :class:`ToolCallStarted` /
:class:`ToolCallArguments` as they arrive, then at most one :class:`UsageReport`, then exactly one
:class:`Finished`, always last.

Tool calls are assembled from fragments. Calls get dense indexes 0, 1, ... in order of
appearance (equal to the upstream indexes for a well-behaved server); ``ToolCallStarted`` comes
before any ``ToolCallArguments`` of its call and the calls start in index order. A call starts at
its first non-empty arguments fragment (or when the stream ends), so a name sent in pieces, a
repeated name or an id sent late are all assembled first. A fragment with a new non-empty id on an
index already holding another id is a new call (servers that send every call at index 0). A
missing id becomes ``call_`` + 24 base62 characters.

``Finished.reason`` is one of ``"stop"``, ``"length"``, ``"tool_calls"``, ``"content_filter"``:
``"stop"`` (or no reason at all) with tool calls becomes ``"tool_calls"`` (OpenAI itself says
``"stop"`` when ``tool_choice`` forces a function), ``"function_call"``/``"tool_use"`` become
``"tool_calls"``, ``"max_tokens"`` becomes ``"length"`` and anything else ``"stop"``.

Every failure is raised as :class:`ModelError` (``code`` ``"rate_limit_exceeded"`` or
``"server_error"``, a readable ``message`` without the API key). ``asyncio.CancelledError``
propagates untouched.

The request goes through the ``openai`` client (its retries, errors and authentication), but the
streamed chunks are read as JSON here rather than as the SDK's pydantic models: building those
objects was the largest single CPU cost of a run (~0.2 ms a chunk on this kind of machine).

Closing: cancelling the task iterating the stream, leaving ``async with``, or calling
:meth:`ModelStream.aclose` (from any task, even while another task waits for the next event or
for the response headers) closes the HTTP response at once; a pending ``__anext__`` then ends the
iteration (``StopAsyncIteration``) instead of raising.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, Literal, Self, TypeAlias
from urllib.parse import urlsplit

import openai
from openai._response import AsyncAPIResponse
from openai._streaming import SSEDecoder

from assistants_grpc.ids import random_id

__all__ = [
    "FINISH_REASONS",
    "Finished",
    "ModelError",
    "ModelErrorCode",
    "ModelEvent",
    "ModelStream",
    "RefusalDelta",
    "TextDelta",
    "ToolCallArguments",
    "ToolCallStarted",
    "UsageReport",
    "stream_completion",
]


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str


@dataclass(frozen=True, slots=True)
class RefusalDelta:
    text: str


@dataclass(frozen=True, slots=True)
class ToolCallStarted:
    index: int
    call_id: str
    name: str


@dataclass(frozen=True, slots=True)
class ToolCallArguments:
    index: int
    fragment: str


@dataclass(frozen=True, slots=True)
class Finished:
    reason: str
    """``"stop"``, ``"length"``, ``"tool_calls"`` or ``"content_filter"``."""


@dataclass(frozen=True, slots=True)
class UsageReport:
    prompt_tokens: int
    completion_tokens: int


ModelEvent: TypeAlias = (
    TextDelta | RefusalDelta | ToolCallStarted | ToolCallArguments | Finished | UsageReport
)

ModelErrorCode: TypeAlias = Literal["rate_limit_exceeded", "server_error"]

FINISH_REASONS: Final = frozenset({"stop", "length", "tool_calls", "content_filter"})
_REASON_ALIASES: Final = {
    "function_call": "tool_calls",
    "tool_use": "tool_calls",
    "max_tokens": "length",
}
_MAX_DETAIL: Final = 500
_DRAIN_SECONDS: Final = 0.1
_PASSED_AS_JSON: Final = ("messages", "tools", "response_format")


class ModelError(Exception):
    """A model call failed; ``code`` is the run's ``last_error.code``."""

    def __init__(self, code: ModelErrorCode, message: str, *, endpoint: str | None = None) -> None:
        super().__init__(message)
        self.code: ModelErrorCode = code
        self.message = message
        self.endpoint = endpoint
        """The endpoint's base URL without credentials, for logs (never in ``message``)."""

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"ModelError({self.code!r}, {self.message!r})"


class _Call:
    __slots__ = ("call_id", "index", "name", "started")

    def __init__(self, index: int) -> None:
        self.index = index
        self.call_id: str | None = None
        self.name = ""
        self.started = False


def stream_completion(client: openai.AsyncOpenAI, params: dict[str, Any]) -> ModelStream:
    """Stream ``client.chat.completions.create(**params)`` as :data:`ModelEvent` s.

    ``stream=True`` and ``stream_options.include_usage=True`` are added to ``params``. Nothing is
    sent until the first ``__anext__``. Use ``async with`` (or call ``aclose()``) so the HTTP
    response is closed when iteration stops early.
    """
    return ModelStream(client, params)


class ModelStream:
    """The iterator returned by :func:`stream_completion` (see the module docstring)."""

    def __init__(self, client: openai.AsyncOpenAI, params: dict[str, Any]) -> None:
        self._client = client
        self._params = params
        self._response: AsyncAPIResponse[Any] | None = None
        self._next: Callable[[], Awaitable[dict[str, Any]]] | None = None
        self._opening: asyncio.Future[Any] | None = None
        self._events: deque[ModelEvent] = deque()
        self._closed = False
        self._ended = False
        self._calls: list[_Call] = []
        self._by_upstream: dict[int, _Call] = {}
        self._unstarted = 0  # index of the first call not started yet
        self._finish_reason: str | None = None
        self._usage: UsageReport | None = None

    # -- iteration -----------------------------------------------------------------------------

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> ModelEvent:
        events = self._events
        while True:
            if events:
                return events.popleft()
            if self._ended or self._closed:
                raise StopAsyncIteration
            next_chunk = self._next
            if next_chunk is None:
                next_chunk = await self._open()
            try:
                chunk = await next_chunk()
            except StopAsyncIteration:
                self._end()
                continue
            except Exception as exc:
                if self._closed:
                    raise StopAsyncIteration from None
                self._ended = True
                await self._close_response()
                raise self._error(exc) from exc
            except BaseException:  # cancellation: close the response before propagating
                self._ended = True
                await self._close_response()
                raise
            try:
                self._process(chunk)
            except Exception as exc:
                self._ended = True
                await self._close_response()
                raise self._error(_malformed(exc)) from exc

    async def _open(self) -> Callable[[], Awaitable[dict[str, Any]]]:
        kwargs = dict(self._params)
        kwargs["stream"] = True
        options = kwargs.get("stream_options")
        kwargs["stream_options"] = {**(options or {}), "include_usage": True}
        # The prompt and the tools are already plain JSON built here: passed through
        # `extra_body`, they skip the SDK's recursive TypedDict transform, whose cost grows with
        # the prompt (the request is the same on the wire).
        heavy = {key: kwargs.pop(key) for key in _PASSED_AS_JSON if key in kwargs}
        if heavy:
            kwargs["extra_body"] = {**(kwargs.get("extra_body") or {}), **heavy}
            kwargs.setdefault("messages", [])
        # A separate task, so aclose() from another task can abort a request still waiting for
        # its response headers (or sleeping between the SDK's retries).
        # The request is made inside the task: a task cancelled before it first runs (a cancel
        # right after the turn started) then leaves no request coroutine never awaited.
        create = self._client.chat.completions.with_streaming_response.create

        async def request() -> Any:
            return await create(**kwargs).__aenter__()

        opening = asyncio.ensure_future(request())
        self._opening = opening
        try:
            result = await opening
        except asyncio.CancelledError:
            self._ended = True
            if opening.done() and not opening.cancelled():
                # Cancelled just as the request finished: don't leak the response (or leave the
                # task's exception unretrieved).
                if opening.exception() is None and isinstance(opening.result(), AsyncAPIResponse):
                    with contextlib.suppress(Exception):
                        await opening.result().close()
            task = asyncio.current_task()
            if self._closed and (task is None or task.cancelling() == 0):
                raise StopAsyncIteration from None  # aborted by aclose(), not cancelled
            raise
        except Exception as exc:
            self._ended = True
            if self._closed:
                raise StopAsyncIteration from None
            raise self._error(exc) from exc
        finally:
            self._opening = None
        if not isinstance(result, AsyncAPIResponse):
            self._ended = True
            got = type(result).__name__
            raise self._error(_malformed(TypeError(f"expected an event stream, got {got}")))
        self._response = result
        if self._closed:  # closed while the response was arriving
            await self._close_response()
            raise StopAsyncIteration
        self._next = _chunks(result).__anext__
        return self._next

    # -- closing -------------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Stop now: abort the request or close the HTTP response. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._events.clear()
        opening = self._opening
        if opening is not None and not opening.done():
            opening.cancel()
        await self._close_response()

    async def _close_response(self) -> None:
        response = self._response
        if response is not None:
            with contextlib.suppress(Exception):
                await response.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    @property
    def closed(self) -> bool:
        return self._closed

    # -- chunks --------------------------------------------------------------------------------

    def _process(self, chunk: dict[str, Any]) -> None:
        usage = chunk.get("usage")
        if usage:
            self._usage = UsageReport(
                prompt_tokens=int(usage.get("prompt_tokens") or 0),
                completion_tokens=int(usage.get("completion_tokens") or 0),
            )
        choices = chunk.get("choices")
        if not choices:
            return
        events = self._events
        for choice in choices:
            if choice.get("index", 0) not in (0, None):
                continue  # only the first choice (n=1)
            delta = choice.get("delta")
            if delta:
                content = delta.get("content")
                if content:
                    events.append(TextDelta(str(content)))
                refusal = delta.get("refusal")
                if refusal:
                    events.append(RefusalDelta(str(refusal)))
                for tool_call in delta.get("tool_calls") or ():
                    function = tool_call.get("function") or {}
                    self._tool_fragment(
                        tool_call.get("index"),
                        tool_call.get("id"),
                        function.get("name"),
                        function.get("arguments"),
                    )
            reason = choice.get("finish_reason")
            if reason:
                self._finish_reason = reason

    def _tool_fragment(
        self, upstream: int | None, call_id: str | None, name: str | None, arguments: str | None
    ) -> None:
        calls = self._calls
        call = self._by_upstream.get(upstream) if upstream is not None else None
        if upstream is None and calls:
            call = calls[-1]
        if call is not None and call_id and call.call_id is not None and call_id != call.call_id:
            call = None  # a new call reusing the index
        if call is None:
            call = _Call(len(calls))
            calls.append(call)
        if upstream is not None:
            self._by_upstream[upstream] = call
        if not call.started:
            if call_id and call.call_id is None:
                call.call_id = call_id
            if name:
                if not call.name or name.startswith(call.name):
                    call.name = name  # first piece, or a cumulative / repeated name
                else:
                    call.name += name
        if arguments:
            if not call.started:
                self._start_through(call.index)
            self._events.append(ToolCallArguments(call.index, arguments))

    def _start_through(self, index: int) -> None:
        """Emit ToolCallStarted for every call up to ``index`` not started yet (in order)."""
        calls = self._calls
        while self._unstarted <= index:
            call = calls[self._unstarted]
            self._unstarted += 1
            if call.started:
                continue
            call.started = True
            if call.call_id is None:
                call.call_id = random_id("call")
            self._events.append(ToolCallStarted(call.index, call.call_id, call.name))

    def _end(self) -> None:
        self._ended = True
        if self._calls:
            self._start_through(len(self._calls) - 1)
        if self._usage is not None:
            self._events.append(self._usage)
        self._events.append(Finished(self._normalized_reason()))

    def _normalized_reason(self) -> str:
        reason = self._finish_reason
        if reason is not None:
            reason = _REASON_ALIASES.get(reason, reason)
        if self._calls and reason in (None, "stop"):
            return "tool_calls"
        if reason is None or reason not in FINISH_REASONS:
            return "stop"
        return reason

    # -- errors --------------------------------------------------------------------------------

    def _error(self, exc: Exception) -> ModelError:
        error = _map_error(exc)
        message = error.message
        api_key = self._client.api_key
        if api_key and len(api_key) >= 4:
            message = message.replace(api_key, "***")
        return ModelError(error.code, message, endpoint=self._endpoint())

    def _endpoint(self) -> str:
        """The endpoint's base URL without credentials, query or fragment."""
        try:
            parts = urlsplit(str(self._client.base_url))
            host = parts.hostname or ""
            if ":" in host:
                host = f"[{host}]"
            port = f":{parts.port}" if parts.port is not None else ""
            return f"{parts.scheme}://{host}{port}{parts.path.rstrip('/')}"
        except ValueError:
            return "the model endpoint"


async def _chunks(response: AsyncAPIResponse[Any]) -> AsyncIterator[dict[str, Any]]:
    """The JSON chunks of a chat-completions event stream, until `data: [DONE]`.

    As the SDK's own stream does, a chunk carrying an `error` is raised as `openai.APIError`.
    """
    http = response.http_response
    body = http.aiter_bytes()
    async for sse in SSEDecoder().aiter_bytes(body):
        if sse.data.startswith("[DONE]"):
            # Read the rest of the body (HTTP/1.1 chunked trailer) so the connection goes back
            # to the pool: a new connection per run costs more than the whole stream.
            with contextlib.suppress(Exception):
                async with asyncio.timeout(_DRAIN_SECONDS):
                    async for _ in body:
                        pass
            return
        chunk = json.loads(sse.data)
        if not isinstance(chunk, dict):
            raise TypeError(f"a chunk must be a JSON object, got {type(chunk).__name__}")
        if chunk.get("error"):
            error = chunk["error"]
            message = error.get("message") if isinstance(error, dict) else None
            raise openai.APIError(
                message=message if isinstance(message, str) and message else "stream error",
                request=http.request,
                body=error,
            )
        yield chunk


def _map_error(exc: Exception) -> ModelError:
    if isinstance(exc, ModelError):
        return exc
    if isinstance(exc, openai.APIStatusError):
        detail = _clip(_body_message(exc.body) or exc.message)
        status = exc.status_code
        if isinstance(exc, openai.RateLimitError):
            return ModelError(
                "rate_limit_exceeded",
                f"model endpoint rate limit exceeded (HTTP {status}): {detail}",
            )
        return ModelError("server_error", f"model endpoint returned HTTP {status}: {detail}")
    if isinstance(exc, openai.APITimeoutError):
        return ModelError("server_error", "model endpoint unreachable: the request timed out")
    if isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__
        reason = _clip(str(cause)) if cause is not None and str(cause) else exc.message
        return ModelError("server_error", f"model endpoint unreachable: {reason}")
    if isinstance(exc, openai.APIError):  # an error event inside the stream
        detail = _clip(_body_message(exc.body) or exc.message)
        return ModelError("server_error", f"model endpoint reported an error: {detail}")
    return _malformed(exc)


def _malformed(exc: BaseException) -> ModelError:
    if isinstance(exc, json.JSONDecodeError):
        detail = f"invalid JSON in the event stream ({exc.msg} at char {exc.pos})"
    else:
        text = str(exc)
        detail = f"{type(exc).__name__}: {_clip(text)}" if text else type(exc).__name__
    return ModelError("server_error", f"malformed response from the model endpoint: {detail}")


def _body_message(body: object) -> str | None:
    if isinstance(body, dict):
        message = body.get("message")
        if isinstance(message, str) and message:
            return message
        error = body.get("error")
        if isinstance(error, dict):
            return _body_message(error)
        if isinstance(error, str) and error:
            return error
    return None


def _clip(text: str) -> str:
    text = " ".join(text.split())
    if len(text) > _MAX_DETAIL:
        return text[: _MAX_DETAIL - 1] + "…"
    return text
