"""Answering a run's tool calls with Python functions.

Every call of one `requires_action` runs at once: async functions on the event loop (async
client) or each in its own thread (sync client), sync functions always in a thread. A thread
cannot be stopped, so a sync tool that overruns its timeout is abandoned, not killed; the threads
are daemons so an abandoned tool never holds up the process's exit.

Whatever goes wrong with one call (an unknown name, arguments that are not JSON or do not fit the
function, an exception, a timeout, a result JSON cannot carry) becomes that call's output, an
`{"error": ...}` the model can read and recover from; `on_tool_error="raise"` raises
`ToolCallError` instead.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import dataclasses
import enum
import inspect
import json
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

from assistants_grpc_client._errors import AssistantsError
from assistants_grpc_client._function_tool import FunctionTool
from assistants_grpc_client._gen.assistants.v1 import run_pb2

__all__ = [
    "OnToolError",
    "ToolCallError",
    "ToolsParam",
    "resolve_tools",
    "run_calls_async",
    "run_calls_sync",
]

ToolsParam: TypeAlias = (
    Mapping[str, Callable[..., Any]] | Iterable[FunctionTool[..., Any] | Callable[..., Any]]
)
"""`{"name": function}`, or functions / `@function_tool`s named by their own name."""

OnToolError: TypeAlias = Literal["report", "raise"]
FailureKind: TypeAlias = Literal[
    "unknown_tool", "invalid_arguments", "raised", "timeout", "unencodable"
]


class ToolCallError(AssistantsError):
    """A tool call failed and the runner was told to raise rather than report it."""

    def __init__(self, message: str, *, kind: FailureKind, tool_name: str, call_id: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.tool_name = tool_name
        self.call_id = call_id


@dataclass(frozen=True, slots=True)
class Tool:
    name: str
    fn: Callable[..., Any]
    timeout: float | None
    is_async: bool
    parse: Callable[[str], dict[str, Any]]


def _is_async(fn: Any) -> bool:
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 - an object with an async __call__
    )


def _plain_parser(fn: Callable[..., Any]) -> Callable[[str], dict[str, Any]]:
    signature = inspect.signature(fn)

    def parse(arguments: str) -> dict[str, Any]:
        decoded = json.loads(arguments or "{}")
        if not isinstance(decoded, dict):
            raise ValueError(f"arguments must be a JSON object, got {decoded!r}")
        try:
            signature.bind(**decoded)
        except TypeError as error:
            raise ValueError(str(error)) from None
        return decoded

    return parse


def resolve_tools(tools: ToolsParam) -> dict[str, Tool]:
    named: Iterable[tuple[str, Callable[..., Any]]]
    if isinstance(tools, Mapping):
        named = tools.items()
    else:
        named = ((fn.name if isinstance(fn, FunctionTool) else fn.__name__, fn) for fn in tools)
    resolved: dict[str, Tool] = {}
    for name, fn in named:
        if isinstance(fn, FunctionTool):
            resolved[name] = Tool(name, fn.fn, fn.timeout, _is_async(fn.fn), fn.parse_arguments)
        else:
            resolved[name] = Tool(name, fn, None, _is_async(fn), _plain_parser(fn))
    return resolved


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, set | frozenset):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def encode_result(value: Any) -> str:
    """A string as it is; anything else as JSON (dataclasses and enums included)."""
    if isinstance(value, str):
        return value
    return json.dumps(value, default=_jsonable, allow_nan=False, ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class _Failure:
    kind: FailureKind
    message: str
    cause: BaseException | None = None


def _error_output(failure: _Failure) -> str:
    return json.dumps({"error": failure.message}, ensure_ascii=False)


@dataclass(slots=True)
class _Prepared:
    call_id: str
    name: str
    tool: Tool | None = None
    kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    failure: _Failure | None = None
    output: str | None = None


def _prepare(tools: Mapping[str, Tool], call: run_pb2.RequiredToolCall) -> _Prepared:
    name = call.function.name
    prepared = _Prepared(call.id, name)
    tool = tools.get(name)
    if tool is None:
        available = ", ".join(sorted(tools)) or "none"
        prepared.failure = _Failure(
            "unknown_tool", f"Unknown tool {name!r}. Available tools: {available}."
        )
        return prepared
    try:
        prepared.kwargs = tool.parse(call.function.arguments)
    except ValueError as error:
        prepared.failure = _Failure(
            "invalid_arguments", f"Invalid arguments for {name}: {error}", error
        )
        return prepared
    prepared.tool = tool
    return prepared


def _finish(prepared: _Prepared, value: Any) -> None:
    try:
        prepared.output = encode_result(value)
    except (TypeError, ValueError) as error:
        prepared.failure = _Failure(
            "unencodable",
            f"{prepared.name} returned a value that cannot be encoded as JSON: {error}",
            error,
        )


def _raised(prepared: _Prepared, error: BaseException) -> None:
    prepared.failure = _Failure(
        "raised", f"{prepared.name} raised {type(error).__name__}: {error}", error
    )


def _timed_out(prepared: _Prepared, timeout: float | None) -> None:
    prepared.failure = _Failure("timeout", f"{prepared.name} timed out after {timeout} s")


def _outputs(prepared: Sequence[_Prepared], on_error: OnToolError) -> list[run_pb2.ToolOutput]:
    outputs = []
    for item in prepared:
        if item.failure is not None:
            if on_error == "raise":
                raise ToolCallError(
                    item.failure.message,
                    kind=item.failure.kind,
                    tool_name=item.name,
                    call_id=item.call_id,
                ) from item.failure.cause
            item.output = _error_output(item.failure)
        outputs.append(run_pb2.ToolOutput(tool_call_id=item.call_id, output=item.output or ""))
    return outputs


def _in_thread(fn: Callable[..., Any], kwargs: dict[str, Any]) -> concurrent.futures.Future[Any]:
    """Run `fn(**kwargs)` in a new daemon thread (module docstring: why not a pool). An async
    function gets an event loop of its own there."""
    future: concurrent.futures.Future[Any] = concurrent.futures.Future()
    context = contextvars.copy_context()

    def target() -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            result = context.run(fn, **kwargs)
            if inspect.isawaitable(result):
                result = asyncio.run(_awaited(result))
        except BaseException as error:
            future.set_exception(error)
        else:
            future.set_result(result)

    threading.Thread(
        target=target, name=f"tool-{getattr(fn, '__name__', 'call')}", daemon=True
    ).start()
    return future


async def _awaited(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


def run_calls_sync(
    tools: Mapping[str, Tool],
    calls: Iterable[run_pb2.RequiredToolCall],
    *,
    default_timeout: float | None,
    on_error: OnToolError,
) -> list[run_pb2.ToolOutput]:
    """Call every tool at once, each in a thread; the outputs in the calls' order."""
    prepared = [_prepare(tools, call) for call in calls]
    started = time.monotonic()
    running = [
        (item, _in_thread(item.tool.fn, item.kwargs)) for item in prepared if item.tool is not None
    ]
    for item, future in running:
        assert item.tool is not None
        timeout = item.tool.timeout if item.tool.timeout is not None else default_timeout
        remaining = None if timeout is None else max(0.0, started + timeout - time.monotonic())
        try:
            value = future.result(timeout=remaining)
        except Exception as error:
            # A tool may raise TimeoutError itself: only an unfinished future timed out here.
            if future.done():
                _raised(item, error)
            else:
                _timed_out(item, timeout)
            continue
        _finish(item, value)
    return _outputs(prepared, on_error)


async def _call_async(item: _Prepared, default_timeout: float | None) -> None:
    tool = item.tool
    assert tool is not None
    timeout = tool.timeout if tool.timeout is not None else default_timeout
    try:
        async with asyncio.timeout(timeout) as deadline:
            if tool.is_async:
                value = await tool.fn(**item.kwargs)
            else:
                value = await asyncio.wrap_future(_in_thread(tool.fn, item.kwargs))
    except Exception as error:
        if deadline.expired():
            _timed_out(item, timeout)
        else:
            _raised(item, error)
        return
    _finish(item, value)


async def run_calls_async(
    tools: Mapping[str, Tool],
    calls: Iterable[run_pb2.RequiredToolCall],
    *,
    default_timeout: float | None,
    on_error: OnToolError,
) -> list[run_pb2.ToolOutput]:
    """Call every tool at once; the outputs in the calls' order."""
    prepared = [_prepare(tools, call) for call in calls]
    await asyncio.gather(
        *(_call_async(item, default_timeout) for item in prepared if item.tool is not None)
    )
    return _outputs(prepared, on_error)
