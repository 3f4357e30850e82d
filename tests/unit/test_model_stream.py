"""stream_completion against the fake chat-completions server (and, for odd servers, a raw SSE
server written here), always through a real ``openai.AsyncOpenAI`` client."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import openai
import pytest

from assistants_grpc.engine.model_stream import (
    Finished,
    ModelError,
    ModelEvent,
    ModelStream,
    RefusalDelta,
    TextDelta,
    ToolCallArguments,
    ToolCallStarted,
    UsageReport,
    stream_completion,
)
from assistants_grpc.fake_model import (
    ErrorReply,
    FakeModelServer,
    HangReply,
    MalformedReply,
    TextReply,
    ToolCallsReply,
)
from assistants_grpc.fake_model._responses import new_call_id

API_KEY = "sk-test-VERY-SECRET-0123456789"
CALL_ID = re.compile(r"^call_[A-Za-z0-9]{24}$")
PARAMS: dict[str, Any] = {"model": "fake-model", "messages": [{"role": "user", "content": "hi"}]}

ClientFactory = Callable[..., openai.AsyncOpenAI]


@pytest.fixture
async def server() -> AsyncIterator[FakeModelServer]:
    async with FakeModelServer() as fake:
        yield fake


@pytest.fixture
async def make_client() -> AsyncIterator[ClientFactory]:
    clients: list[openai.AsyncOpenAI] = []

    def make(base_url: str, max_retries: int = 0) -> openai.AsyncOpenAI:
        client = openai.AsyncOpenAI(base_url=base_url, api_key=API_KEY, max_retries=max_retries)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


@pytest.fixture
def client(server: FakeModelServer, make_client: ClientFactory) -> openai.AsyncOpenAI:
    return make_client(server.base_url)


async def collect(client: openai.AsyncOpenAI, params: dict[str, Any] | None = None) -> list[Any]:
    async with stream_completion(client, params or PARAMS) as events:
        return [event async for event in events]


async def model_error(
    client: openai.AsyncOpenAI, params: dict[str, Any] | None = None
) -> ModelError:
    with pytest.raises(ModelError) as info:
        await collect(client, params)
    error = info.value
    assert API_KEY not in error.message
    assert API_KEY not in str(error)
    return error


# -- text ----------------------------------------------------------------------------------------


async def test_text_is_reassembled_with_usage_and_finish_reason(
    server: FakeModelServer, client: openai.AsyncOpenAI
) -> None:
    text = "Hello there, this is a longer answer — with ünïcode ✓ and\nnew lines."
    server.push(TextReply(text, chunks=50, prompt_tokens=11, completion_tokens=50))
    events = await collect(client)
    deltas = [e for e in events if isinstance(e, TextDelta)]
    assert "".join(d.text for d in deltas) == text
    assert all(d.text for d in deltas)  # empty fragments are dropped
    assert len(deltas) == 50
    assert events[-2:] == [UsageReport(11, 50), Finished("stop")]
    assert len(events) == 52


async def test_word_chunks_and_default_usage(
    server: FakeModelServer, client: openai.AsyncOpenAI
) -> None:
    server.push(TextReply("one two three"))
    events = await collect(client)
    assert events == [
        TextDelta("one "),
        TextDelta("two "),
        TextDelta("three"),
        UsageReport(1, 3),
        Finished("stop"),
    ]


async def test_finish_reason_length(server: FakeModelServer, client: openai.AsyncOpenAI) -> None:
    server.push(TextReply("cut short", finish_reason="length"))
    events = await collect(client)
    assert events[-1] == Finished("length")
    # The default responder cuts at max_completion_tokens with "length" too.
    params = {**PARAMS, "messages": [{"role": "user", "content": "a b c d e f"}]}
    events = await collect(client, {**params, "max_completion_tokens": 3})
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "You said: a "
    assert events[-1] == Finished("length")


async def test_content_filter_finish_reason(
    server: FakeModelServer, client: openai.AsyncOpenAI
) -> None:
    server.push(TextReply("", finish_reason="content_filter"))
    assert (await collect(client))[-1] == Finished("content_filter")


async def test_caller_stream_options_are_kept_and_usage_forced(
    server: FakeModelServer, client: openai.AsyncOpenAI
) -> None:
    params = {**PARAMS, "stream": False, "stream_options": {"include_usage": False}}
    await collect(client, params)
    assert server.requests[-1]["stream"] is True
    assert server.requests[-1]["stream_options"] == {"include_usage": True}


# -- tool calls ----------------------------------------------------------------------------------


@pytest.fixture
def fake_call_ids(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The call ids the fake server sends, in order (its id generator, recorded)."""
    sent: list[str] = []

    def recording() -> str:
        call_id = new_call_id()
        sent.append(call_id)
        return call_id

    monkeypatch.setattr("assistants_grpc.fake_model._server.new_call_id", recording)
    return sent


@pytest.mark.parametrize("interleave", [True, False])
async def test_parallel_tool_calls_are_reassembled(
    server: FakeModelServer,
    client: openai.AsyncOpenAI,
    fake_call_ids: list[str],
    interleave: bool,
) -> None:
    weather = json.dumps({"city": "Paris", "unit": "celsius", "note": 'a "quoted" ✓'})
    clock = json.dumps({"tz": "Europe/Paris"})
    calls = [("get_weather", weather), ("get_time", clock)]
    server.push(ToolCallsReply(calls, fragments=7, interleave=interleave))
    events = await collect(client)

    started = [e for e in events if isinstance(e, ToolCallStarted)]
    assert started == [
        ToolCallStarted(0, fake_call_ids[0], "get_weather"),
        ToolCallStarted(1, fake_call_ids[1], "get_time"),
    ]
    assert all(CALL_ID.match(e.call_id) for e in started)
    for index, (_, arguments) in enumerate(calls):
        fragments = [
            e.fragment for e in events if isinstance(e, ToolCallArguments) and e.index == index
        ]
        assert "".join(fragments) == arguments
        assert len(fragments) == 7
        # Every fragment of a call comes after its start.
        first = events.index(started[index])
        assert all(
            events.index(e) > first
            for e in events
            if isinstance(e, ToolCallArguments) and e.index == index
        )
    assert events[-2:] == [UsageReport(1, 14), Finished("tool_calls")]


async def test_text_before_tool_calls(
    server: FakeModelServer, client: openai.AsyncOpenAI, fake_call_ids: list[str]
) -> None:
    server.push(ToolCallsReply([("lookup", '{"q": "x"}')], fragments=2, text="Let me check."))
    events = await collect(client)
    assert events[:3] == [TextDelta("Let "), TextDelta("me "), TextDelta("check.")]
    assert events[3] == ToolCallStarted(0, fake_call_ids[0], "lookup")
    assert events[4:6] == [ToolCallArguments(0, '{"q":'), ToolCallArguments(0, ' "x"}')]
    assert events[-1] == Finished("tool_calls")


# -- errors --------------------------------------------------------------------------------------


async def test_429_then_success_is_retried_by_the_sdk(
    server: FakeModelServer, make_client: ClientFactory
) -> None:
    client = make_client(server.base_url, max_retries=2)
    server.push(ErrorReply(429, "Slow down."), TextReply("finally"))
    events = await collect(client)
    assert events[0] == TextDelta("finally")
    assert events[-1] == Finished("stop")
    assert len(server.requests) == 2


async def test_persistent_500_is_a_server_error(
    server: FakeModelServer, make_client: ClientFactory
) -> None:
    client = make_client(server.base_url, max_retries=1)
    server.push(ErrorReply(500, "The engine is overloaded."), ErrorReply(500, "Still overloaded."))
    error = await model_error(client)
    assert error.code == "server_error"
    assert error.message == "model endpoint returned HTTP 500: Still overloaded."
    assert len(server.requests) == 2
    assert error.endpoint == server.base_url


async def test_persistent_429_is_rate_limit_exceeded(
    server: FakeModelServer, make_client: ClientFactory
) -> None:
    client = make_client(server.base_url, max_retries=1)
    server.push(ErrorReply(429, "Rate limit reached for requests."), ErrorReply(429, "Again."))
    error = await model_error(client)
    assert error.code == "rate_limit_exceeded"
    assert "429" in error.message
    assert "Again." in error.message
    assert len(server.requests) == 2


async def test_unknown_model_404_is_a_server_error(
    server: FakeModelServer, client: openai.AsyncOpenAI
) -> None:
    message = "The model `nope` does not exist or you do not have access to it."
    server.push(ErrorReply(404, message, code="model_not_found"))
    error = await model_error(client)
    assert error.code == "server_error"
    assert error.message == f"model endpoint returned HTTP 404: {message}"


async def test_api_key_echoed_by_the_endpoint_is_redacted(
    server: FakeModelServer, client: openai.AsyncOpenAI
) -> None:
    server.push(ErrorReply(401, f"Incorrect API key provided: {API_KEY}."))
    error = await model_error(client)
    assert error.message == "model endpoint returned HTTP 401: Incorrect API key provided: ***."


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_unreachable_endpoint(make_client: ClientFactory) -> None:
    client = make_client(f"http://{API_KEY}:pw@127.0.0.1:{closed_port()}/v1?key={API_KEY}")
    error = await model_error(client)
    assert error.code == "server_error"
    assert error.message.startswith("model endpoint unreachable: ")
    assert error.endpoint is not None
    assert API_KEY not in error.endpoint and "pw" not in error.endpoint
    assert error.endpoint.startswith("http://127.0.0.1:")


async def test_malformed_stream(server: FakeModelServer, client: openai.AsyncOpenAI) -> None:
    server.push(MalformedReply())
    error = await model_error(client)
    assert error.code == "server_error"
    assert error.message.startswith("malformed response from the model endpoint: ")


async def test_error_after_some_events_keeps_the_earlier_events(
    server: FakeModelServer, client: openai.AsyncOpenAI
) -> None:
    server.push(MalformedReply())
    seen: list[ModelEvent] = []
    with pytest.raises(ModelError):
        async with stream_completion(client, PARAMS) as events:
            async for event in events:
                seen.append(event)
    assert seen == []
    # The client is still usable afterwards.
    server.push(TextReply("ok"))
    assert (await collect(client))[0] == TextDelta("ok")


# -- closing -------------------------------------------------------------------------------------


async def start_hanging(
    server: FakeModelServer, client: openai.AsyncOpenAI
) -> tuple[ModelStream, asyncio.Task[list[ModelEvent]]]:
    server.push(HangReply(30))
    stream = stream_completion(client, PARAMS)

    async def consume() -> list[ModelEvent]:
        return [event async for event in stream]

    task = asyncio.create_task(consume())
    while not server.requests:  # wait for the request, then for the first chunk to be read
        await asyncio.sleep(0.005)
    await asyncio.sleep(0.05)
    assert not task.done()
    return stream, task


async def test_aclose_from_another_task_disconnects_promptly(
    server: FakeModelServer, client: openai.AsyncOpenAI
) -> None:
    stream, task = await start_hanging(server, client)
    started = time.monotonic()
    await stream.aclose()
    assert await asyncio.wait_for(task, 1.0) == []  # the consumer just stops
    assert await server.wait_for_disconnects(1, timeout=1.0)
    assert time.monotonic() - started < 1.0
    assert stream.closed
    await stream.aclose()  # idempotent


async def test_cancelling_the_consumer_disconnects_promptly(
    server: FakeModelServer, client: openai.AsyncOpenAI
) -> None:
    _, task = await start_hanging(server, client)
    started = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await server.wait_for_disconnects(1, timeout=1.0)
    assert time.monotonic() - started < 1.0


async def test_timeout_around_iteration_disconnects_promptly(
    server: FakeModelServer, client: openai.AsyncOpenAI
) -> None:
    server.push(HangReply(30))
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.2), stream_completion(client, PARAMS) as events:
            async for _ in events:
                pass
    assert await server.wait_for_disconnects(1, timeout=1.0)
    assert time.monotonic() - started < 1.2


async def test_breaking_out_early_closes_the_response(
    server: FakeModelServer, client: openai.AsyncOpenAI
) -> None:
    server.push(TextReply("a b c d e f g h", chunk_delay=0.5))
    async with stream_completion(client, PARAMS) as events:
        async for event in events:
            assert event == TextDelta("a ")
            break
    assert await server.wait_for_disconnects(1, timeout=1.0)


async def test_close_before_iterating_sends_nothing(
    server: FakeModelServer, client: openai.AsyncOpenAI
) -> None:
    stream = stream_completion(client, PARAMS)
    await stream.aclose()
    assert [e async for e in stream] == []
    assert server.requests == []


# -- odd servers (a raw SSE server) --------------------------------------------------------------


class RawServer:
    """Answers every POST with the given SSE ``data:`` payloads (then ``[DONE]``), or, with
    ``hang``, reads the request and never answers; records bodies and client disconnects."""

    def __init__(self, payloads: list[Any] | None = None, *, hang: bool = False) -> None:
        self.payloads = payloads or []
        self.hang = hang
        self.requests: list[dict[str, Any]] = []
        self.disconnected = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def __aenter__(self) -> RawServer:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()
        await self._server.wait_closed()

    @property
    def base_url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/v1"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            match = re.search(rb"content-length:\s*(\d+)", head, re.IGNORECASE)
            assert match is not None
            self.requests.append(json.loads(await reader.readexactly(int(match.group(1)))))
            if self.hang:
                await reader.read()  # until the client goes away
                self.disconnected.set()
                return
            body = b"".join(
                b"data: " + (p if isinstance(p, bytes) else json.dumps(p).encode()) + b"\n\n"
                for p in [*self.payloads, b"[DONE]"]
            )
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body
            )
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            self.disconnected.set()
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


def chunk(
    delta: dict[str, Any] | None = None,
    finish: str | None = None,
    *,
    usage: tuple[int, int] | None = None,
    no_choices: bool = False,
) -> dict[str, Any]:
    value: dict[str, Any] = {
        "id": "chatcmpl-raw",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "m",
        "choices": []
        if no_choices
        else [{"index": 0, "delta": delta or {}, "finish_reason": finish}],
    }
    if usage is not None:
        value["usage"] = {
            "prompt_tokens": usage[0],
            "completion_tokens": usage[1],
            "total_tokens": sum(usage),
        }
    return value


def calls(*fragments: dict[str, Any]) -> dict[str, Any]:
    return chunk({"tool_calls": list(fragments)})


async def raw_events(make_client: ClientFactory, payloads: list[Any]) -> list[ModelEvent]:
    async with RawServer(payloads) as raw:
        return await collect(make_client(raw.base_url))


async def test_name_in_pieces_and_late_empty_ids(make_client: ClientFactory) -> None:
    events = await raw_events(
        make_client,
        [
            calls({"index": 0, "id": "call_A", "type": "function", "function": {"name": "get_"}}),
            calls({"index": 0, "id": "", "function": {"name": "weather", "arguments": ""}}),
            calls({"index": 0, "id": "", "function": {"arguments": '{"city":'}}),
            calls({"index": 0, "function": {"arguments": ' "Oslo"}'}}),
            chunk(finish="tool_calls"),
            chunk(usage=(5, 2), no_choices=True),
        ],
    )
    assert events == [
        ToolCallStarted(0, "call_A", "get_weather"),
        ToolCallArguments(0, '{"city":'),
        ToolCallArguments(0, ' "Oslo"}'),
        UsageReport(5, 2),
        Finished("tool_calls"),
    ]


async def test_repeated_id_and_name_and_a_missing_id(make_client: ClientFactory) -> None:
    events = await raw_events(
        make_client,
        [
            calls({"index": 0, "id": "call_X", "function": {"name": "f", "arguments": "{"}}),
            calls({"index": 0, "id": "call_X", "function": {"name": "f", "arguments": "}"}}),
            calls({"index": 1, "id": "call_Y", "function": {"name": "g", "arguments": ""}}),
            # Whole call in one chunk, reusing index 1 with another id (a new call).
            calls({"index": 1, "id": "call_Z", "function": {"name": "h", "arguments": "[]"}}),
            # No id at all.
            calls({"index": 2, "type": "function", "function": {"name": "k", "arguments": "1"}}),
            chunk(finish="stop"),  # "stop" with tool calls is reported as "tool_calls"
        ],
    )
    started = [e for e in events if isinstance(e, ToolCallStarted)]
    assert [(e.index, e.name) for e in started] == [(0, "f"), (1, "g"), (2, "h"), (3, "k")]
    assert [e.call_id for e in started[:3]] == ["call_X", "call_Y", "call_Z"]
    assert CALL_ID.match(started[3].call_id)
    assert [(e.index, e.fragment) for e in events if isinstance(e, ToolCallArguments)] == [
        (0, "{"),
        (0, "}"),
        (2, "[]"),
        (3, "1"),
    ]
    # Call 1 (no arguments at all) starts before call 2's first fragment.
    assert events.index(started[1]) < events.index(ToolCallArguments(2, "[]"))
    assert events[-1] == Finished("tool_calls")  # no usage report without usage


async def test_id_sent_after_the_name(make_client: ClientFactory) -> None:
    events = await raw_events(
        make_client,
        [
            calls({"index": 0, "function": {"name": "f", "arguments": ""}}),
            calls({"index": 0, "id": "call_L", "function": {"arguments": "{}"}}),
            chunk(finish="tool_calls"),
        ],
    )
    assert events == [
        ToolCallStarted(0, "call_L", "f"),
        ToolCallArguments(0, "{}"),
        Finished("tool_calls"),
    ]


async def test_all_calls_at_index_zero_and_missing_index(make_client: ClientFactory) -> None:
    events = await raw_events(
        make_client,
        [
            calls({"index": 0, "id": "call_1", "function": {"name": "a", "arguments": "{}"}}),
            calls({"index": 0, "id": "call_2", "function": {"name": "b", "arguments": "{}"}}),
            calls({"id": "call_3", "function": {"name": "c", "arguments": "{"}}),
            calls({"function": {"arguments": "}"}}),
        ],
    )
    assert [e for e in events if isinstance(e, ToolCallStarted)] == [
        ToolCallStarted(0, "call_1", "a"),
        ToolCallStarted(1, "call_2", "b"),
        ToolCallStarted(2, "call_3", "c"),
    ]
    assert [e for e in events if isinstance(e, ToolCallArguments) and e.index == 2] == [
        ToolCallArguments(2, "{"),
        ToolCallArguments(2, "}"),
    ]
    assert events[-1] == Finished("tool_calls")  # no finish reason at all


async def test_refusal_usage_in_a_choice_chunk_and_odd_reasons(make_client: ClientFactory) -> None:
    events = await raw_events(
        make_client,
        [
            chunk({"role": "assistant", "content": None, "refusal": "I can't "}),
            chunk({"refusal": "help with that."}),
            chunk({"content": "", "reasoning_content": "hmm"}),
            chunk(finish="max_tokens", usage=(3, 4)),
        ],
    )
    assert events == [
        RefusalDelta("I can't "),
        RefusalDelta("help with that."),
        UsageReport(3, 4),
        Finished("length"),
    ]
    events = await raw_events(make_client, [chunk({"content": "x"}, finish="eos")])
    assert events == [TextDelta("x"), Finished("stop")]


async def test_error_event_inside_the_stream(make_client: ClientFactory) -> None:
    error = await model_error_raw(
        make_client, [chunk({"content": "x"}), {"error": {"message": "Engine overloaded."}}]
    )
    assert error.code == "server_error"
    assert error.message == "model endpoint reported an error: Engine overloaded."


async def test_garbage_data_line(make_client: ClientFactory) -> None:
    error = await model_error_raw(make_client, [b"{not json"])
    assert error.code == "server_error"
    assert error.message.startswith("malformed response from the model endpoint: invalid JSON")


async def model_error_raw(make_client: ClientFactory, payloads: list[Any]) -> ModelError:
    async with RawServer(payloads) as raw:
        return await model_error(make_client(raw.base_url))


async def hanging_before_headers(
    make_client: ClientFactory,
    stop: Callable[[ModelStream, asyncio.Task[list[ModelEvent]]], Awaitable[None]],
) -> None:
    async with RawServer(hang=True) as raw:
        stream = stream_completion(make_client(raw.base_url), PARAMS)

        async def consume() -> list[ModelEvent]:
            return [event async for event in stream]

        task = asyncio.create_task(consume())
        while not raw.requests:
            await asyncio.sleep(0.005)
        started = time.monotonic()
        await stop(stream, task)
        await asyncio.wait_for(raw.disconnected.wait(), 1.0)
        assert time.monotonic() - started < 1.0


async def test_aclose_while_waiting_for_headers(make_client: ClientFactory) -> None:
    async def stop(stream: ModelStream, task: asyncio.Task[list[ModelEvent]]) -> None:
        await stream.aclose()
        assert await asyncio.wait_for(task, 1.0) == []

    await hanging_before_headers(make_client, stop)


async def test_cancel_while_waiting_for_headers(make_client: ClientFactory) -> None:
    async def stop(stream: ModelStream, task: asyncio.Task[list[ModelEvent]]) -> None:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 1.0)

    await hanging_before_headers(make_client, stop)


async def test_cancel_during_sdk_retry_backoff(
    server: FakeModelServer, make_client: ClientFactory
) -> None:
    client = make_client(server.base_url, max_retries=5)
    server.push(*[ErrorReply(503)] * 6)
    stream = stream_completion(client, PARAMS)
    task = asyncio.create_task(stream.__anext__())
    while not server.requests:
        await asyncio.sleep(0.005)
    await asyncio.sleep(0.05)  # now sleeping before the first retry
    started = time.monotonic()
    await stream.aclose()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(task, 1.0)
    assert time.monotonic() - started < 0.2
    assert len(server.requests) == 1
