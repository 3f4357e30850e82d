"""The fake chat-completions server, driven by the real ``openai`` client."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest
from hypothesis import given
from hypothesis import strategies as st
from openai.types.chat import ChatCompletionChunk

from assistants_grpc.fake_model import (
    ErrorReply,
    FakeModelServer,
    HangReply,
    MalformedReply,
    Reply,
    TextReply,
    ToolCallsReply,
    default_responder,
)
from assistants_grpc.fake_model import _server as fake_server_module
from assistants_grpc.fake_model._responses import split_even, split_words
from tests.sockets import tcp_ends_or_skip

USER_HI: list[Any] = [{"role": "user", "content": "hi"}]
TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {}}},
    }
]
CALL_ID = re.compile(r"^call_[A-Za-z0-9]{24}$")


@pytest.fixture
async def server() -> AsyncIterator[FakeModelServer]:
    async with FakeModelServer() as fake:
        yield fake


@pytest.fixture
async def client(server: FakeModelServer) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(base_url=server.base_url, api_key="x", max_retries=0) as c:
        yield c


async def stream_chunks(
    client: openai.AsyncOpenAI, messages: list[Any] | None = None, **kwargs: Any
) -> list[ChatCompletionChunk]:
    stream = await client.chat.completions.create(
        model=kwargs.pop("model", "fake-model"),
        messages=messages if messages is not None else USER_HI,
        stream=True,
        stream_options={"include_usage": True},
        **kwargs,
    )
    return [chunk async for chunk in stream]


def content_chunks(chunks: list[ChatCompletionChunk]) -> list[str]:
    return [
        c.choices[0].delta.content
        for c in chunks
        if c.choices and c.choices[0].delta.content is not None
    ]


def reassemble_calls(chunks: list[ChatCompletionChunk]) -> dict[int, dict[str, Any]]:
    calls: dict[int, dict[str, Any]] = {}
    for chunk in chunks:
        for tc in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            call = calls.setdefault(tc.index, {"id": None, "name": None, "args": [], "n": 0})
            if tc.id is not None:
                call["id"] = tc.id
            if tc.function is not None:
                if tc.function.name is not None:
                    call["name"] = tc.function.name
                if tc.function.arguments:
                    call["args"].append(tc.function.arguments)
    return calls


# -- text ----------------------------------------------------------------------------------------


async def test_text_reply_reassembles_and_reports_usage(
    server: FakeModelServer, client: openai.AsyncOpenAI
) -> None:
    text = "  Hello there,  general Kenobi!\nHow are you? "
    server.push(TextReply(text))
    messages: list[Any] = [{"role": "user", "content": "x" * 41}]
    chunks = await stream_chunks(client, messages)

    pieces = content_chunks(chunks)
    assert "".join(pieces) == text
    assert pieces == split_words(text) and len(pieces) == 7
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[0].choices[0].delta.content == pieces[0]
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert all(c.model == "fake-model" and c.id == chunks[0].id for c in chunks)

    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (10, 7)
    assert last.usage.total_tokens == 17
    assert all(c.usage is None for c in chunks[:-1])
    assert server.disconnects == 0


async def test_text_reply_exact_chunk_count(
    server: FakeModelServer, client: openai.AsyncOpenAI
) -> None:
    text = "abcdefghij klmnopqrstu vwxyz"
    server.push(
        TextReply(text, chunks=5),
        TextReply("ok", chunks=1, finish_reason="length", prompt_tokens=11, completion_tokens=3),
    )
    pieces = content_chunks(await stream_chunks(client))
    assert len(pieces) == 5
    assert "".join(pieces) == text
    assert max(map(len, pieces)) - min(map(len, pieces)) <= 1

    chunks = await stream_chunks(client)
    assert content_chunks(chunks) == ["ok"]
    assert chunks[-2].choices[0].finish_reason == "length"
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.model_dump(include={"prompt_tokens", "completion_tokens"}) == {
        "prompt_tokens": 11,
        "completion_tokens": 3,
    }


async def test_without_include_usage_there_is_no_usage_chunk(
    server: FakeModelServer, client: openai.AsyncOpenAI
) -> None:
    server.push(TextReply("a b"))
    stream = await client.chat.completions.create(model="m", messages=USER_HI, stream=True)
    chunks = [chunk async for chunk in stream]
    assert all(c.choices and c.usage is None for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"


async def test_a_reply_can_leave_usage_out_even_when_asked(
    server: FakeModelServer, client: openai.AsyncOpenAI
) -> None:
    server.push(TextReply("a b", report_usage=False))
    chunks = await stream_chunks(client)
    assert all(c.choices and c.usage is None for c in chunks)
    assert content_chunks(chunks) == ["a ", "b"]


async def test_chunk_delay_spaces_the_fragments(
    server: FakeModelServer, client: openai.AsyncOpenAI
) -> None:
    server.push(TextReply("one two three four", chunk_delay=0.05))
    started = time.perf_counter()
    pieces = content_chunks(await stream_chunks(client))
    assert len(pieces) == 4
    assert time.perf_counter() - started >= 0.15


# -- tool calls ----------------------------------------------------------------------------------


@pytest.mark.parametrize("interleave", [True, False])
async def test_parallel_tool_calls_reassemble(
    server: FakeModelServer, client: openai.AsyncOpenAI, interleave: bool
) -> None:
    calls = [
        ("get_weather", '{"city": "Paris", "unit": "celsius"}'),
        ("get_time", '{"tz": "Europe/Paris"}'),
    ]
    server.push(ToolCallsReply(calls, fragments=4, interleave=interleave))
    chunks = await stream_chunks(client, tools=TOOLS)

    assert chunks[0].choices[0].delta.role == "assistant"
    got = reassemble_calls(chunks)
    assert sorted(got) == [0, 1]
    for index, (name, arguments) in enumerate(calls):
        assert got[index]["name"] == name
        assert "".join(got[index]["args"]) == arguments
        assert len(got[index]["args"]) == 4  # split mid-token
        assert CALL_ID.match(got[index]["id"])
    assert got[0]["id"] != got[1]["id"]

    # First fragment per call: id, type and name with empty arguments; later ones: arguments only.
    order: list[int] = []
    for chunk in chunks:
        if chunk.choices and chunk.choices[0].delta.tool_calls:
            [tc] = chunk.choices[0].delta.tool_calls
            order.append(tc.index)
            assert tc.function is not None
            if tc.id is not None:
                assert tc.type == "function" and tc.function.arguments == ""
            else:
                assert tc.type is None and tc.function.name is None
    assert order == ([0, 1] * 5 if interleave else [0] * 5 + [1] * 5)
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "tool_calls" and finishes.count("tool_calls") == 1
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 8


async def test_tool_calls_with_leading_text(
    server: FakeModelServer, client: openai.AsyncOpenAI
) -> None:
    server.push(ToolCallsReply([("get_weather", "{}")], fragments=1, text="Let me check."))
    chunks = await stream_chunks(client, tools=TOOLS)
    assert "".join(content_chunks(chunks)) == "Let me check."
    got = reassemble_calls(chunks)
    assert got[0]["name"] == "get_weather" and "".join(got[0]["args"]) == "{}"


async def test_tool_calls_with_text_between_and_after(
    server: FakeModelServer, client: openai.AsyncOpenAI
) -> None:
    server.push(
        ToolCallsReply(
            [("get_weather", '{"city": "Paris"}'), ("get_time", "{}")],
            fragments=2,
            text_between="one two three ",
            text_after="And done.",
        )
    )
    chunks = await stream_chunks(client, tools=TOOLS)
    kinds = [
        "text" if c.choices[0].delta.content else "call"
        for c in chunks
        if c.choices and (c.choices[0].delta.content or c.choices[0].delta.tool_calls)
    ]
    # A word after each of the first call fragments, the rest of the text at the end.
    assert kinds[:6] == ["call", "text", "call", "text", "call", "text"]
    assert kinds[-2:] == ["text", "text"]
    assert "".join(content_chunks(chunks)) == "one two three And done."
    got = reassemble_calls(chunks)
    assert "".join(got[0]["args"]) == '{"city": "Paris"}' and "".join(got[1]["args"]) == "{}"


# -- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "exc_type"),
    [
        (429, openai.RateLimitError),
        (500, openai.InternalServerError),
        (503, openai.InternalServerError),
        (400, openai.BadRequestError),
        (401, openai.AuthenticationError),
        (404, openai.NotFoundError),
    ],
)
async def test_error_reply_raises_matching_exception(
    server: FakeModelServer,
    client: openai.AsyncOpenAI,
    status: int,
    exc_type: type[openai.APIStatusError],
) -> None:
    server.push(ErrorReply(status, "scripted failure", code="some_code"))
    with pytest.raises(exc_type) as info:
        await stream_chunks(client)
    assert info.value.status_code == status
    assert "scripted failure" in str(info.value)
    assert isinstance(info.value.body, dict)
    assert info.value.body["message"] == "scripted failure"
    assert info.value.body["code"] == "some_code"
    assert set(info.value.body) == {"message", "type", "param", "code"}
    # The connection (and server) stays usable.
    assert "".join(content_chunks(await stream_chunks(client))) == "You said: hi"


@pytest.mark.parametrize("stream", [True, False])
async def test_malformed_reply_makes_the_client_raise(
    server: FakeModelServer, client: openai.AsyncOpenAI, stream: bool
) -> None:
    server.push(MalformedReply())
    with pytest.raises(Exception):  # noqa: B017 - any failure is fine
        if stream:
            await stream_chunks(client)
        else:
            await client.chat.completions.create(model="m", messages=USER_HI)
    assert server.disconnects == 0
    assert "".join(content_chunks(await stream_chunks(client))) == "You said: hi"


async def test_responder_exception_is_a_500(
    server: FakeModelServer, client: openai.AsyncOpenAI
) -> None:
    def broken(request: dict[str, Any]) -> Reply:
        raise ValueError("boom")

    server.set_responder("broken", broken)
    with pytest.raises(openai.InternalServerError, match="boom"):
        await stream_chunks(client, model="broken")


# -- default responder ---------------------------------------------------------------------------


async def test_default_responder_over_http(
    server: FakeModelServer, client: openai.AsyncOpenAI
) -> None:
    text = "".join(content_chunks(await stream_chunks(client, [{"role": "user", "content": "yo"}])))
    assert text == "You said: yo"

    chunks = await stream_chunks(
        client,
        [{"role": "user", "content": '/tool get_weather {"city": "Oslo"}\n/tool get_time'}],
        tools=TOOLS,
    )
    got = reassemble_calls(chunks)
    assert [(c["name"], "".join(c["args"])) for c in got.values()] == [
        ("get_weather", '{"city": "Oslo"}'),
        ("get_time", "{}"),
    ]

    messages: list[Any] = [
        {"role": "user", "content": "/tool a {}\n/tool b {}"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "a", "arguments": "{}"}},
                {"id": "call_2", "type": "function", "function": {"name": "b", "arguments": "{}"}},
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "12:00"}]},
    ]
    text = "".join(content_chunks(await stream_chunks(client, messages, tools=TOOLS)))
    assert text == "Tool results: sunny; 12:00"


def test_default_responder_rules() -> None:
    parts = {
        "role": "user",
        "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
    }
    assert default_responder({"messages": [parts]}) == TextReply("You said: a\nb")
    assert default_responder({"messages": []}) == TextReply("You said: ")
    # The last *user* message counts, even if something follows it.
    later = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "r"}]
    assert default_responder({"messages": later}) == TextReply("You said: q")
    # /tool needs tools (and tool_choice other than "none").
    command = [{"role": "user", "content": '/tool f {"x": 1}'}]
    assert default_responder({"messages": command}) == TextReply('You said: /tool f {"x": 1}')
    none = {"messages": command, "tools": TOOLS, "tool_choice": "none"}
    assert isinstance(default_responder(none), TextReply)
    reply = default_responder({"messages": command, "tools": TOOLS})
    assert reply == ToolCallsReply([("f", '{"x": 1}')])
    # Only the trailing tool messages are reported.
    tools = [
        {"role": "tool", "content": "old"},
        {"role": "user", "content": "again"},
        {"role": "tool", "content": "1"},
        {"role": "tool", "content": "2"},
    ]
    assert default_responder({"messages": tools}) == TextReply("Tool results: 1; 2")
    # max_completion_tokens cuts the echo (in word fragments).
    long = {"messages": [{"role": "user", "content": "a b c d"}], "max_completion_tokens": 3}
    assert default_responder(long) == TextReply("You said: a ", finish_reason="length")


# -- scripting -----------------------------------------------------------------------------------


async def test_queue_then_model_responders_then_default(
    server: FakeModelServer, client: openai.AsyncOpenAI
) -> None:
    async def async_responder(request: dict[str, Any]) -> Reply:
        await asyncio.sleep(0)
        return TextReply(f"async {len(request['messages'])}")

    server.set_responder("sync-model", lambda request: TextReply("sync " + request["model"]))
    server.set_responder("async-model", async_responder)
    server.push(TextReply("queued 1"), TextReply("queued 2"))

    async def text(model: str) -> str:
        return "".join(content_chunks(await stream_chunks(client, model=model)))

    assert await text("sync-model") == "queued 1"
    assert await text("other") == "queued 2"
    assert await text("sync-model") == "sync sync-model"
    assert await text("async-model") == "async 1"
    assert await text("other") == "You said: hi"
    assert server.pending == 0


async def test_requests_are_recorded_and_reset(
    server: FakeModelServer, client: openai.AsyncOpenAI
) -> None:
    await stream_chunks(client, model="m1", temperature=0.5)
    await client.chat.completions.create(
        model="m2", messages=[{"role": "user", "content": "second"}], tools=TOOLS
    )
    assert [r["model"] for r in server.requests] == ["m1", "m2"]
    assert server.requests[0]["stream"] is True
    assert server.requests[0]["stream_options"] == {"include_usage": True}
    assert server.requests[0]["temperature"] == 0.5
    assert server.requests[1]["messages"] == [{"role": "user", "content": "second"}]
    assert server.requests[1]["tools"] == TOOLS
    assert "stream" not in server.requests[1] or not server.requests[1]["stream"]

    server.push(TextReply("never used"))
    server.set_responder("m1", lambda request: TextReply("nope"))
    server.reset()
    assert (server.requests, server.pending, server.disconnects) == ([], 0, 0)
    assert "".join(content_chunks(await stream_chunks(client, model="m1"))) == "You said: hi"


# -- cancellation --------------------------------------------------------------------------------


async def test_closing_the_stream_during_a_hang_is_noticed(
    server: FakeModelServer, client: openai.AsyncOpenAI
) -> None:
    server.push(HangReply(30))
    stream = await client.chat.completions.create(
        model="m", messages=USER_HI, stream=True, stream_options={"include_usage": True}
    )
    first = await stream.__anext__()
    assert first.choices[0].delta.role == "assistant"
    assert server.disconnects == 0
    await stream.close()
    started = time.perf_counter()
    assert await server.wait_for_disconnects(1, timeout=1.0)
    assert time.perf_counter() - started < 1.0
    assert server.disconnects == 1
    # The client recovers on a new connection.
    assert "".join(content_chunks(await stream_chunks(client))) == "You said: hi"


async def test_hang_reply_finishes_after_its_delay(
    server: FakeModelServer, client: openai.AsyncOpenAI
) -> None:
    server.push(HangReply(0.05, text="late"))
    chunks = await stream_chunks(client)
    assert content_chunks(chunks) == ["", "late"]
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert server.disconnects == 0


async def test_closing_mid_stream_with_chunk_delay_is_noticed(
    server: FakeModelServer, client: openai.AsyncOpenAI
) -> None:
    server.push(TextReply("x" * 100, chunks=100, chunk_delay=0.05))
    stream = await client.chat.completions.create(model="m", messages=USER_HI, stream=True)
    async for _ in stream:
        break
    await stream.close()
    assert await server.wait_for_disconnects(1, timeout=1.0)


async def test_cancelled_non_streaming_request_is_noticed(
    server: FakeModelServer, client: openai.AsyncOpenAI
) -> None:
    server.push(HangReply(30))
    task = asyncio.create_task(client.chat.completions.create(model="m", messages=USER_HI))
    while not server.requests:
        await asyncio.sleep(0.005)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await server.wait_for_disconnects(1, timeout=1.0)


# -- non-streaming, models, transport ------------------------------------------------------------


async def test_non_streaming(server: FakeModelServer, client: openai.AsyncOpenAI) -> None:
    server.push(
        TextReply("plain answer", chunks=3),
        ToolCallsReply([("a", '{"k": 1}'), ("b", "{}")], fragments=2, text="calling"),
    )
    completion = await client.chat.completions.create(model="m", messages=USER_HI)
    assert completion.object == "chat.completion"
    assert completion.choices[0].message.content == "plain answer"
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.completion_tokens == 3

    completion = await client.chat.completions.create(model="m", messages=USER_HI, tools=TOOLS)
    message = completion.choices[0].message
    assert completion.choices[0].finish_reason == "tool_calls"
    assert message.content == "calling"
    assert message.tool_calls is not None
    got = [
        (c.function.name, c.function.arguments) for c in message.tool_calls if c.type == "function"
    ]
    assert got == [("a", '{"k": 1}'), ("b", "{}")]
    assert all(CALL_ID.match(c.id) for c in message.tool_calls)


async def test_models_and_unknown_routes(
    server: FakeModelServer, client: openai.AsyncOpenAI
) -> None:
    server.set_responder("custom", lambda request: TextReply("c"))
    models = await client.models.list()
    assert {m.id for m in models.data} == {"fake-model", "custom"}
    assert (await client.models.retrieve("anything")).id == "anything"
    with pytest.raises(openai.NotFoundError):
        await client.images.generate(prompt="x")


async def test_embeddings_are_deterministic_and_topical(client: openai.AsyncOpenAI) -> None:
    import numpy as np

    texts = ["searching for files", "files are searched", "volcanoes erupt lava"]
    first = await client.embeddings.create(model="e", input=texts)
    again = await client.embeddings.create(model="e", input=texts, encoding_format="float")
    vectors = np.array([d.embedding for d in first.data])
    assert np.allclose(vectors, [d.embedding for d in again.data], atol=1e-6)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0)
    similar, unrelated = vectors[0] @ vectors[1], vectors[0] @ vectors[2]
    assert similar > 0.5 > unrelated
    with pytest.raises(openai.BadRequestError):
        await client.embeddings.create(model="e", input=[])


async def test_path_without_v1_prefix(server: FakeModelServer) -> None:
    base_url = f"http://127.0.0.1:{server.port}"
    async with openai.AsyncOpenAI(base_url=base_url, api_key="x", max_retries=0) as c:
        assert "".join(content_chunks(await stream_chunks(c))) == "You said: hi"


async def test_keep_alive_50_sequential_requests(
    server: FakeModelServer, client: openai.AsyncOpenAI
) -> None:
    for i in range(50):
        server.push(TextReply(f"reply {i}", chunks=2))
        assert "".join(content_chunks(await stream_chunks(client))) == f"reply {i}"
    assert len(server.requests) == 50
    assert server.connections == 1
    assert server.disconnects == 0


async def test_raw_http_framing(server: FakeModelServer) -> None:
    """Chunked request body, ``Connection: close``, and the exact SSE bytes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        body = json.dumps({"model": "raw", "messages": USER_HI, "stream": True}).encode()
        half = len(body) // 2
        chunked = b"".join(
            f"{len(part):x}\r\n".encode() + part + b"\r\n" for part in (body[:half], body[half:])
        )
        server.push(TextReply("a b", chunks=1))
        writer.write(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
            b"Connection: close\r\n\r\n" + chunked + b"0\r\n\r\n"
        )
        raw = await asyncio.wait_for(reader.read(), timeout=5)  # until the server closes
    finally:
        writer.close()
        await writer.wait_closed()
    head, _, payload = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"Transfer-Encoding: chunked" in head and b"text/event-stream" in head
    assert payload.endswith(b"e\r\ndata: [DONE]\n\n\r\n0\r\n\r\n")
    frames = re.findall(rb"data: (.*)\n\n", payload)
    assert frames[-1] == b"[DONE]"
    first = json.loads(frames[0])
    assert first["object"] == "chat.completion.chunk"
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": "a b"}
    assert server.requests[0]["model"] == "raw"


async def test_raw_http_errors(server: FakeModelServer) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(
            b"POST /v1/chat/completions HTTP/1.1\r\nContent-Length: 5\r\n\r\nnope!"
            b"GET /v1/chat/completions HTTP/1.1\r\n\r\n"
            b"GET /health HTTP/1.1\r\nConnection: close\r\n\r\n"
        )
        raw = await asyncio.wait_for(reader.read(), timeout=5)
    finally:
        writer.close()
        await writer.wait_closed()
    statuses = re.findall(rb"HTTP/1.1 (\d+) ", raw)
    assert statuses == [b"400", b"405", b"200"]
    assert b'"type":"invalid_request_error"' in raw
    assert server.requests == []


# -- thread-hosted variant -----------------------------------------------------------------------


def test_thread_hosted_server_with_sync_client() -> None:
    with FakeModelServer.start_in_thread() as handle:
        handle.push(TextReply("from a thread", chunks=2))
        with openai.OpenAI(base_url=handle.base_url, api_key="x", max_retries=0) as c:
            stream = c.chat.completions.create(
                model="m", messages=USER_HI, stream=True, stream_options={"include_usage": True}
            )
            chunks = list(stream)
            completion = c.chat.completions.create(model="m", messages=USER_HI)
        assert content_chunks(chunks) == ["from a", " thread"]
        assert completion.choices[0].message.content == "You said: hi"
        assert len(handle.requests) == 2
    handle.stop()  # idempotent


# -- splitting -----------------------------------------------------------------------------------


@given(st.text(max_size=200))
def test_split_words_round_trips(text: str) -> None:
    pieces = split_words(text)
    assert "".join(pieces) == text and pieces
    assert all(p.strip() for p in pieces) or len(pieces) == 1


@given(st.text(max_size=200), st.integers(min_value=1, max_value=50))
def test_split_even_round_trips(text: str, n: int) -> None:
    pieces = split_even(text, n)
    assert len(pieces) == n and "".join(pieces) == text
    assert max(map(len, pieces)) - min(map(len, pieces)) <= 1


# -- Nagle left on (FakeModelServer(nodelay=False), fake-model --nagle) ---------------------------


@pytest.mark.parametrize("nodelay", [True, False])
async def test_nodelay_option_on_accepted_connections(nodelay: bool) -> None:
    async with FakeModelServer(nodelay=nodelay) as fake:
        reader, writer = await asyncio.open_connection("127.0.0.1", fake.port)
        try:
            writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
            assert head.startswith(b"HTTP/1.1 200 OK")
            ends = {end.local_port: end for end in tcp_ends_or_skip(fake.port)}
            client_port = writer.get_extra_info("sockname")[1]
            assert ends[fake.port].peer_port == client_port
            assert ends[fake.port].nodelay is nodelay  # the server's end
            assert ends[client_port].nodelay  # asyncio's default on ours
        finally:
            writer.close()
            await writer.wait_closed()


async def test_nagle_server_streams_the_same_reply() -> None:
    async with (
        FakeModelServer(nodelay=False) as fake,
        openai.AsyncOpenAI(base_url=fake.base_url, api_key="x", max_retries=0) as nagle_client,
    ):
        fake.push(TextReply("one two three"))
        assert content_chunks(await stream_chunks(nagle_client)) == ["one ", "two ", "three"]


def test_main_nagle_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Any] = []

    async def fake_serve(host: str, port: int, *, nodelay: bool = True) -> None:
        seen.append((host, port, nodelay))

    monkeypatch.setattr(fake_server_module, "serve", fake_serve)
    assert fake_server_module.main(["--port", "9", "--nagle"]) == 0
    assert fake_server_module.main(["--port", "9"]) == 0
    assert seen == [("127.0.0.1", 9, False), ("127.0.0.1", 9, True)]
