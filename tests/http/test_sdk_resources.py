"""Assistants, threads and messages through the official `openai` SDK, async and sync, against
the HTTP face: every method, auto-paging lists, the SDK's error classes."""

from __future__ import annotations

import asyncio

import openai
import pytest

from tests.http.conftest import SDK_DEPRECATIONS, HttpServer

pytestmark = list(SDK_DEPRECATIONS)


async def test_assistants_every_method_async(client: openai.AsyncOpenAI) -> None:
    created = await client.beta.assistants.create(
        model="gpt-4o",
        name="Math Tutor",
        instructions="You are a personal math tutor.",
        tools=[
            {"type": "code_interpreter"},
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
                },
            },
        ],
        metadata={"team": "math"},
        temperature=0.5,
        response_format="auto",
    )
    assert created.id.startswith("asst_") and created.object == "assistant"
    assert created.tools[0].type == "code_interpreter"
    assert created.tools[1].type == "function" and created.tools[1].function.name == "get_weather"
    assert created.temperature == 0.5 and created.metadata == {"team": "math"}
    assert created.response_format == "auto"

    fetched = await client.beta.assistants.retrieve(created.id)
    assert fetched == created
    updated = await client.beta.assistants.update(
        created.id, name="Renamed", tools=[], metadata={"v": "2"}
    )
    assert (updated.name, updated.tools, updated.metadata) == ("Renamed", [], {"v": "2"})
    assert updated.instructions == "You are a personal math tutor."  # untouched

    deleted = await client.beta.assistants.delete(created.id)
    assert (deleted.id, deleted.object, deleted.deleted) == (
        created.id,
        "assistant.deleted",
        True,
    )
    with pytest.raises(openai.NotFoundError) as missing:
        await client.beta.assistants.retrieve(created.id)
    assert missing.value.status_code == 404
    assert missing.value.message.endswith(f"No assistant found with id '{created.id}'.")
    assert missing.value.body == {
        "message": f"No assistant found with id '{created.id}'.",
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }
    assert missing.value.request_id is not None and missing.value.request_id.startswith("req_")


async def test_lists_page_automatically_in_both_orders(client: openai.AsyncOpenAI) -> None:
    made = [
        (await client.beta.assistants.create(model="gpt-4o", name=f"a{i}")).id for i in range(7)
    ]
    newest_first = [a.id async for a in client.beta.assistants.list(limit=3)]
    assert newest_first == made[::-1]
    oldest_first = [a.id async for a in client.beta.assistants.list(limit=2, order="asc")]
    assert oldest_first == made
    page = await client.beta.assistants.list(limit=3, order="asc", after=made[1])
    assert [a.id for a in page.data] == made[2:5] and page.has_more
    assert (page.first_id, page.last_id) == (made[2], made[4])
    before = await client.beta.assistants.list(order="asc", before=made[3])
    assert [a.id for a in before.data] == made[:3]


async def test_bad_input_is_a_bad_request_naming_the_field(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as bad:
        await client.beta.assistants.create(model="gpt-4o", temperature=3)
    assert bad.value.param == "temperature"
    assert bad.value.body["type"] == "invalid_request_error"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as wrong_type:
        await client.beta.assistants.create(model="gpt-4o", metadata={"n": 1})  # type: ignore[dict-item]
    assert wrong_type.value.param == "metadata.n"
    with pytest.raises(openai.BadRequestError) as limit:
        await client.beta.assistants.list(limit=101)
    assert limit.value.param == "limit"
    with pytest.raises(openai.BadRequestError) as unknown:
        await client.beta.assistants.create(model="gpt-4o", extra_body={"colour": "blue"})
    assert unknown.value.param == "colour"


async def test_threads_and_messages_every_method_async(client: openai.AsyncOpenAI) -> None:
    thread = await client.beta.threads.create(
        messages=[
            {"role": "user", "content": "First question"},
            {"role": "assistant", "content": [{"type": "text", "text": "An injected answer"}]},
        ],
        metadata={"user": "u1"},
    )
    assert thread.id.startswith("thread_") and thread.metadata == {"user": "u1"}
    assert await client.beta.threads.retrieve(thread.id) == thread
    changed = await client.beta.threads.update(thread.id, metadata={"user": "u2"})
    assert changed.metadata == {"user": "u2"}

    message = await client.beta.threads.messages.create(
        thread_id=thread.id, role="user", content="Second question", metadata={"k": "v"}
    )
    assert message.content[0].type == "text"
    assert message.content[0].text.value == "Second question"
    assert message.content[0].text.annotations == []
    assert (message.role, message.run_id, message.assistant_id) == ("user", None, None)
    fetched = await client.beta.threads.messages.retrieve(message.id, thread_id=thread.id)
    assert fetched == message
    updated = await client.beta.threads.messages.update(
        message.id, thread_id=thread.id, metadata={"k": "w"}
    )
    assert updated.metadata == {"k": "w"}
    texts = [
        m.content[0].text.value  # type: ignore[union-attr]
        async for m in client.beta.threads.messages.list(thread.id, order="asc", limit=1)
    ]
    assert texts == ["First question", "An injected answer", "Second question"]
    deleted = await client.beta.threads.messages.delete(message.id, thread_id=thread.id)
    assert (deleted.object, deleted.deleted) == ("thread.message.deleted", True)
    with pytest.raises(openai.NotFoundError):
        await client.beta.threads.messages.retrieve(message.id, thread_id=thread.id)

    gone = await client.beta.threads.delete(thread.id)
    assert (gone.id, gone.object, gone.deleted) == (thread.id, "thread.deleted", True)
    with pytest.raises(openai.NotFoundError) as missing:
        await client.beta.threads.retrieve(thread.id)
    assert missing.value.message.endswith(f"No thread found with id '{thread.id}'.")


async def test_every_resource_method_sync(http_server: HttpServer) -> None:
    def work() -> None:
        with http_server.sync_client() as client:
            assistant = client.beta.assistants.create(model="gpt-4o", name="sync")
            assert client.beta.assistants.retrieve(assistant.id).name == "sync"
            assert client.beta.assistants.update(assistant.id, name="s2").name == "s2"
            assert assistant.id in [a.id for a in client.beta.assistants.list(limit=1)]
            thread = client.beta.threads.create(messages=[{"role": "user", "content": "hi"}])
            assert client.beta.threads.retrieve(thread.id).id == thread.id
            assert client.beta.threads.update(thread.id, metadata={"a": "b"}).metadata == {"a": "b"}
            made = client.beta.threads.messages.create(thread.id, role="user", content="again")
            assert client.beta.threads.messages.retrieve(made.id, thread_id=thread.id) == made
            client.beta.threads.messages.update(made.id, thread_id=thread.id, metadata={})
            assert len(list(client.beta.threads.messages.list(thread.id, limit=1))) == 2
            client.beta.threads.messages.delete(made.id, thread_id=thread.id)
            assert client.beta.threads.delete(thread.id).deleted
            assert client.beta.assistants.delete(assistant.id).deleted
            with pytest.raises(openai.NotFoundError):
                client.beta.threads.retrieve(thread.id)

    await asyncio.to_thread(work)


async def test_a_thread_of_another_kind_of_id_is_not_found(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        await client.beta.threads.messages.list("not-a-thread")
    with pytest.raises(openai.NotFoundError):
        await client.beta.threads.runs.retrieve("run_x", thread_id="thread_missing")
