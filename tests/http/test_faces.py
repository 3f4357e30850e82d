"""The HTTP face beside the gRPC face on one runtime: a run created on one face is followed on
the other, what HTTP renders validates strictly against the `openai` package's own types, and a
shutdown ends open HTTP streams cleanly."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx2
import openai
from openai.types.beta import Assistant, AssistantDeleted, Thread, ThreadDeleted
from openai.types.beta.threads import Message, MessageDeleted, Run
from openai.types.beta.threads.runs import RunStep
from pydantic import BaseModel

from assistants_grpc.contract.openai_json import render
from assistants_grpc.contract.pb import run_pb2
from assistants_grpc.fake_model import HangReply
from tests.http.conftest import SDK_DEPRECATIONS, HttpServer
from tests.integration.runs_helpers import WEATHER, collect, make_assistant, make_thread, names

pytestmark = list(SDK_DEPRECATIONS)
R = run_pb2


def _frames(text: str) -> list[tuple[str, Any]]:
    out = []
    for block in text.split("\n\n"):
        if block and not block.startswith(":"):
            lines = dict(line.split(": ", 1) for line in block.split("\n"))
            data = lines["data"]
            out.append((lines["event"], data if data == "[DONE]" else json.loads(data)))
    return out


async def test_a_run_created_over_http_is_watched_over_grpc(
    http_server: HttpServer, client: openai.AsyncOpenAI
) -> None:
    assistant = await client.beta.assistants.create(model="gpt-4o")
    thread = await client.beta.threads.create(messages=[{"role": "user", "content": "both"}])
    async with http_server.raw() as raw:
        answer = await raw.post(
            f"/threads/{thread.id}/runs", json={"assistant_id": assistant.id, "stream": True}
        )
    over_http = _frames(answer.text)
    run_id = over_http[0][1]["id"]
    watched = await collect(
        http_server.running.stubs.runs.WatchRun(
            R.WatchRunRequest(thread_id=thread.id, run_id=run_id)
        )
    )
    # The same events, in the same order, with the same data.
    assert names(watched) == [name for name, _ in over_http]
    for event, (_, data) in zip(watched, over_http, strict=True):
        case = event.WhichOneof("data")
        if case is not None:
            assert render(getattr(event, case)) == data


async def test_a_run_created_over_grpc_is_continued_over_http(
    http_server: HttpServer, client: openai.AsyncOpenAI
) -> None:
    stubs = http_server.running.stubs
    assistant = await make_assistant(stubs, tools=[WEATHER])
    thread = await make_thread(stubs, '/tool get_weather {"city": "Nice"}')
    events = await collect(
        stubs.runs.CreateRunStream(
            R.CreateRunRequest(thread_id=thread.id, assistant_id=assistant.id)
        )
    )
    run = events[-2].run
    assert run.status == R.RUN_STATUS_REQUIRES_ACTION
    polled = await client.beta.threads.runs.poll(run.id, thread_id=thread.id)
    assert polled.status == "requires_action"
    assert polled.required_action is not None
    call = polled.required_action.submit_tool_outputs.tool_calls[0]
    assert call.id == run.required_action.submit_tool_outputs.tool_calls[0].id
    watcher = asyncio.ensure_future(
        collect(stubs.runs.WatchRun(R.WatchRunRequest(thread_id=thread.id, run_id=run.id)))
    )
    async with client.beta.threads.runs.submit_tool_outputs_stream(
        run_id=run.id,
        thread_id=thread.id,
        tool_outputs=[{"tool_call_id": call.id, "output": "20C"}],
    ) as stream:
        await stream.until_done()
        final = stream.current_run
    assert final is not None and final.status == "completed"
    whole = await asyncio.wait_for(watcher, 10)
    assert names(whole)[-2:] == ["thread.run.completed", "done"]
    grpc_run = await stubs.runs.GetRun(R.GetRunRequest(thread_id=thread.id, run_id=run.id))
    assert render(grpc_run) == (
        await client.beta.threads.runs.retrieve(run.id, thread_id=thread.id)
    ).model_dump(mode="json")


def _strict(model: type[BaseModel], data: Any) -> None:
    """Valid for the SDK's own type, strictly, and with no key the type does not know."""
    parsed = model.model_validate(data, strict=True)
    _no_extras(parsed, model.__name__)


def _no_extras(value: Any, where: str) -> None:
    if isinstance(value, BaseModel):
        assert not value.model_extra, f"{where}: keys the SDK does not know: {value.model_extra}"
        for name in type(value).model_fields:
            _no_extras(getattr(value, name), f"{where}.{name}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _no_extras(item, f"{where}[{index}]")


async def test_every_rendered_object_validates_strictly(http_server: HttpServer) -> None:
    from openai.types.beta.threads import MessageDeltaEvent
    from openai.types.beta.threads.runs import RunStepDeltaEvent

    async with http_server.raw() as raw:

        async def ok(answer: Any) -> Any:
            response = await answer
            assert response.status_code == 200, response.text
            return response.json()

        assistant = await ok(
            raw.post(
                "/assistants",
                json={
                    "model": "gpt-4o",
                    "name": "strict",
                    "instructions": "x",
                    "tools": [WEATHER_JSON, {"type": "code_interpreter"}, {"type": "file_search"}],
                    "metadata": {"a": "b"},
                    "response_format": {"type": "json_object"},
                    "temperature": 1,
                    "top_p": 0.5,
                },
            )
        )
        _strict(Assistant, assistant)
        for page in [await ok(raw.get("/assistants"))]:
            for item in page["data"]:
                _strict(Assistant, item)
        thread = await ok(
            raw.post(
                "/threads",
                json={
                    "messages": [{"role": "user", "content": '/tool get_weather {"city": "x"}'}],
                    "tool_resources": {"code_interpreter": {"file_ids": []}},
                },
            )
        )
        _strict(Thread, thread)
        tid = thread["id"]
        streamed = _frames(
            (
                await raw.post(
                    f"/threads/{tid}/runs",
                    json={
                        "assistant_id": assistant["id"],
                        "stream": True,
                        "tools": [WEATHER_JSON],
                        "truncation_strategy": {"type": "last_messages", "last_messages": 5},
                        "tool_choice": "auto",
                        "max_completion_tokens": 1000,
                    },
                )
            ).text
        )
        types: dict[str, type[BaseModel]] = {
            "thread.run": Run,
            "thread.run.step": RunStep,
            "thread.run.step.delta": RunStepDeltaEvent,
            "thread.message": Message,
            "thread.message.delta": MessageDeltaEvent,
        }
        for _, data in streamed[:-1]:
            _strict(types[data["object"]], data)
        run = streamed[-2][1]
        call = run["required_action"]["submit_tool_outputs"]["tool_calls"][0]
        continued = _frames(
            (
                await raw.post(
                    f"/threads/{tid}/runs/{run['id']}/submit_tool_outputs",
                    json={
                        "tool_outputs": [{"tool_call_id": call["id"], "output": "1"}],
                        "stream": True,
                    },
                )
            ).text
        )
        for _, data in continued[:-1]:
            _strict(types[data["object"]], data)
        _strict(Run, await ok(raw.get(f"/threads/{tid}/runs/{run['id']}")))
        for item in (await ok(raw.get(f"/threads/{tid}/runs")))["data"]:
            _strict(Run, item)
        steps = (await ok(raw.get(f"/threads/{tid}/runs/{run['id']}/steps")))["data"]
        assert len(steps) == 2
        for step in steps:
            _strict(RunStep, step)
            _strict(
                RunStep, await ok(raw.get(f"/threads/{tid}/runs/{run['id']}/steps/{step['id']}"))
            )
        messages = (await ok(raw.get(f"/threads/{tid}/messages")))["data"]
        for message in messages:
            _strict(Message, message)
        _strict(
            MessageDeleted, await ok(raw.delete(f"/threads/{tid}/messages/{messages[0]['id']}"))
        )
        _strict(ThreadDeleted, await ok(raw.delete(f"/threads/{tid}")))
        _strict(AssistantDeleted, await ok(raw.delete(f"/assistants/{assistant['id']}")))


async def test_files_and_vector_stores_validate_strictly(
    http_server: HttpServer, client: openai.AsyncOpenAI
) -> None:
    from openai.types import FileDeleted, FileObject, VectorStore, VectorStoreDeleted
    from openai.types.vector_store_search_response import VectorStoreSearchResponse
    from openai.types.vector_stores import (
        FileContentResponse,
        VectorStoreFile,
        VectorStoreFileBatch,
        VectorStoreFileDeleted,
    )

    text = b"# Pumps\n\nThe pump station lifts water forty metres.\n"
    async with http_server.raw() as raw:

        async def ok(answer: Any) -> Any:
            response = await answer
            assert response.status_code == 200, response.text
            return response.json()

        file = await ok(
            raw.post(
                "/files",
                data={
                    "purpose": "assistants",
                    "expires_after[anchor]": "created_at",
                    "expires_after[seconds]": "7200",
                },
                files={"file": ("pumps.md", text)},
            )
        )
        _strict(FileObject, file)
        _strict(FileObject, await ok(raw.get(f"/files/{file['id']}")))
        for item in (await ok(raw.get("/files")))["data"]:
            _strict(FileObject, item)
        store = await ok(
            raw.post(
                "/vector_stores",
                json={
                    "name": "s",
                    "metadata": {"k": "v"},
                    "expires_after": {"anchor": "last_active_at", "days": 3},
                },
            )
        )
        _strict(VectorStore, store)
        sid = store["id"]
        await client.vector_stores.files.create_and_poll(
            file_id=file["id"], vector_store_id=sid, attributes={"n": 1.5, "ok": True, "s": "x"}
        )
        _strict(VectorStoreFile, await ok(raw.get(f"/vector_stores/{sid}/files/{file['id']}")))
        for item in (await ok(raw.get(f"/vector_stores/{sid}/files")))["data"]:
            _strict(VectorStoreFile, item)
        batch = await client.vector_stores.file_batches.create_and_poll(
            vector_store_id=sid, file_ids=[file["id"]]
        )
        batch_json = await ok(raw.get(f"/vector_stores/{sid}/file_batches/{batch.id}"))
        _strict(VectorStoreFileBatch, batch_json)
        listed = await ok(raw.get(f"/vector_stores/{sid}/file_batches/{batch.id}/files"))
        for item in listed["data"]:
            _strict(VectorStoreFile, item)
        _strict(VectorStore, await ok(raw.get(f"/vector_stores/{sid}")))
        for item in (await ok(raw.get("/vector_stores")))["data"]:
            _strict(VectorStore, item)
        found = await ok(raw.post(f"/vector_stores/{sid}/search", json={"query": "pump"}))
        assert found["object"] == "vector_store.search_results.page" and found["data"]
        for item in found["data"]:
            _strict(VectorStoreSearchResponse, item)
        content = await ok(raw.get(f"/vector_stores/{sid}/files/{file['id']}/content"))
        for item in content["data"]:
            _strict(FileContentResponse, item)
        _strict(
            VectorStoreFileDeleted, await ok(raw.delete(f"/vector_stores/{sid}/files/{file['id']}"))
        )
        _strict(VectorStoreDeleted, await ok(raw.delete(f"/vector_stores/{sid}")))
        _strict(FileDeleted, await ok(raw.delete(f"/files/{file['id']}")))


WEATHER_JSON: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        "strict": False,
    },
}


async def test_stopping_ends_open_streams_with_an_error_event(http_server: HttpServer) -> None:
    http_server.running.model.push(HangReply(60))
    async with http_server.raw() as raw:
        assistant = (await raw.post("/assistants", json={"model": "gpt-4o"})).json()
        thread = (
            await raw.post("/threads", json={"messages": [{"role": "user", "content": "x"}]})
        ).json()
        buffer = ""
        async with raw.stream(
            "POST",
            f"/threads/{thread['id']}/runs",
            json={"assistant_id": assistant["id"], "stream": True},
        ) as answer:
            chunks = answer.aiter_text()
            async for chunk in chunks:
                buffer += chunk
                if "thread.run.in_progress" in buffer:
                    break
            stopping = asyncio.ensure_future(http_server.running.server.stop(0.2))
            async for chunk in chunks:
                buffer += chunk
        await asyncio.wait_for(stopping, 20)
    frames = _frames(buffer)
    assert frames[-1] == ("done", "[DONE]")
    assert frames[-2][0] == "error"
    assert frames[-2][1]["error"]["type"] == "server_error"
    assert "shutting down" in frames[-2][1]["error"]["message"]
    try:
        async with httpx2.AsyncClient(base_url=http_server.base_url) as after:
            await after.get("/assistants")
        raise AssertionError("the face still answers after stop")
    except httpx2.HTTPError:
        pass
