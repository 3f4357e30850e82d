"""The real `file_search` tool inside runs, end to end: a real server (its own FileSearchExecutor,
retriever and ingestion) and the scripted fake model. Three documents (pdf, docx, md) on the
assistant's store, a question only one answers: the call is executed by the server, recorded in
the tool_calls step, the answer's marker becomes a `file_citation` (streamed and stored), the
SDK's accumulator rebuilds it all; a mixed turn; expired stores; the wait for a thread's files;
tool_choice and max_num_results (CONTRACT.md §9, §12)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from sqlalchemy import create_engine, update

from assistants_grpc.contract.openai_json import render
from assistants_grpc.contract.pb import assistant_pb2, common_pb2, run_pb2, thread_pb2
from assistants_grpc.contract.pb import vector_store_pb2 as V
from assistants_grpc.engine.run_loop import TurnHooks
from assistants_grpc.fake_model import FakeModelServer, TextReply, ToolCallsReply
from assistants_grpc.store import vector_stores as vs
from assistants_grpc.store.database import normalize_url
from assistants_grpc.store.mapping import INCLUDE_FILE_SEARCH_CONTENT
from tests.conftest import RunningServer, serving
from tests.integration.documents import docx, pdf
from tests.integration.event_checks import check_run_log
from tests.integration.helpers import text_input
from tests.integration.runs_helpers import (
    WEATHER,
    collect,
    make_assistant,
    make_thread,
    names,
    thread_messages,
    wait_for_status,
)
from tests.integration.test_sdk_replay import replay
from tests.integration.vector_helpers import make_file, stores, wait_ingested

R = run_pb2
SEARCH = common_pb2.Tool(file_search=common_pb2.FileSearchSettings())

KIWI = [
    "The kiwi is a flightless bird native to New Zealand.",
    "Kiwis lay the largest egg relative to body size of any bird.",
]
VOLCANO = [
    "Mount Etna in Sicily is one of the most active volcanoes in the world.",
    "Its eruptions produce lava flows and ash clouds.",
]
TEA = "# Brewing green tea\n\nSteep green tea at 80 degrees Celsius for two minutes.\n"
QUESTION = "Which bird cannot fly?"


async def documents(running: RunningServer) -> dict[str, str]:
    """The three files, by name."""
    return {
        "volcano.pdf": await make_file(running, "volcano.pdf", pdf(VOLCANO)),
        "kiwi.docx": await make_file(running, "kiwi.docx", docx(KIWI)),
        "tea.md": await make_file(running, "tea.md", TEA.encode()),
    }


async def store_of(running: RunningServer, file_ids: list[str], **fields: Any) -> str:
    created = await stores(running).CreateVectorStore(
        V.CreateVectorStoreRequest(name="docs", file_ids=file_ids, **fields)
    )
    done = await wait_ingested(running, created.id)
    assert done.file_counts.completed == len(file_ids), done
    return created.id


def resources(store_id: str) -> common_pb2.ToolResources:
    return common_pb2.ToolResources(
        file_search=common_pb2.FileSearchResources(vector_store_ids=[store_id])
    )


async def searching_assistant(
    running: RunningServer, store_id: str, *tools: common_pb2.Tool, **fields: Any
) -> assistant_pb2.Assistant:
    return await make_assistant(
        running.stubs, tools=[SEARCH, *tools], tool_resources=resources(store_id), **fields
    )


def search_call(*queries: str) -> tuple[str, str]:
    return ("file_search", json.dumps({"queries": list(queries)}))


def tool_messages(request: dict[str, Any]) -> list[str]:
    return [m["content"] for m in request["messages"] if m["role"] == "tool"]


def completed_steps(events: list[R.RunEvent]) -> list[R.RunStep]:
    return [e.run_step for e in events if e.event == "thread.run.step.completed"]


def squeezed(event_names: list[str]) -> list[str]:
    """The names with each run of repeated deltas written once, as `name+`."""
    out: list[str] = []
    for name in event_names:
        if name.endswith(".delta") and out and out[-1] in (name, name + "+"):
            out[-1] = name + "+"
        else:
            out.append(name + "+" if name.endswith(".delta") else name)
    return out


def annotation_deltas(events: list[R.RunEvent]) -> list[dict[str, Any]]:
    """Every annotation carried by the stream's message deltas, in order (OpenAI JSON)."""
    found = []
    for event in events:
        if event.event == "thread.message.delta":
            for part in render(event.message_delta)["delta"].get("content") or ():
                found += (part.get("text") or {}).get("annotations") or ()
    return found


async def streamed_run(
    running: RunningServer, assistant_id: str, *texts: str, **fields: Any
) -> list[R.RunEvent]:
    thread = await make_thread(running.stubs, *texts)
    return await collect(
        running.stubs.runs.CreateRunStream(
            R.CreateRunRequest(thread_id=thread.id, assistant_id=assistant_id, **fields)
        )
    )


# --- the end-to-end test ---------------------------------------------------------------


@pytest.mark.parametrize("with_content", [False, True], ids=["include-off", "include-on"])
async def test_three_documents_a_question_only_one_answers_and_a_citation(
    running: RunningServer, with_content: bool
) -> None:
    stubs, model = running.stubs, running.model
    files = await documents(running)
    store_id = await store_of(running, list(files.values()))
    kiwi = files["kiwi.docx"]
    answer = "The kiwi cannot fly 【0:0†kiwi.docx】, and it lays a huge egg."
    # 9 pieces, the marker cut across three of them; paced just above the service's flush
    # interval so that pieces tend to become deltas of their own (the marker is held back).
    model.push(
        ToolCallsReply([search_call(QUESTION, "flightless bird")], fragments=4),
        TextReply(answer, chunks=9, chunk_delay=0.03),
    )
    assistant = await searching_assistant(running, store_id)
    include = [INCLUDE_FILE_SEARCH_CONTENT] if with_content else []
    events = await streamed_run(running, assistant.id, QUESTION, include=include)
    run = events[0].run

    # The server searched inside in_progress: the caller never saw requires_action. Event for
    # event CONTRACT.md §9's order: the tool step whole, then the message step whole.
    assert check_run_log(events) == ["queued", "in_progress", "completed"]
    assert "thread.run.requires_action" not in names(events)
    assert squeezed(names(events)) == [
        "thread.run.created",
        "thread.run.queued",
        "thread.run.in_progress",
        "thread.run.step.created",
        "thread.run.step.in_progress",
        "thread.run.step.delta+",
        "thread.run.step.completed",
        "thread.run.step.created",
        "thread.run.step.in_progress",
        "thread.message.created",
        "thread.message.in_progress",
        "thread.message.delta+",
        "thread.message.completed",
        "thread.run.step.completed",
        "thread.run.completed",
        "done",
    ]
    offered = model.requests[-2]
    assert [t["function"]["name"] for t in offered["tools"]] == ["file_search"]

    # The step: one file_search call; its first result is the kiwi file.
    tool_step, message_step = completed_steps(events)
    assert tool_step.type == R.RUN_STEP_TYPE_TOOL_CALLS
    assert message_step.type == R.RUN_STEP_TYPE_MESSAGE_CREATION
    (call,) = render(tool_step)["step_details"]["tool_calls"]
    assert call["type"] == "file_search" and call["id"].startswith("call_")
    body = call["file_search"]
    assert body["ranking_options"] == {"ranker": "auto", "score_threshold": 0.0}
    first = body["results"][0]
    assert first["file_id"] == kiwi and first["file_name"] == "kiwi.docx"
    assert 0 < first["score"] <= 1
    assert all(0 < r["score"] <= first["score"] for r in body["results"])
    if with_content:
        assert first["content"] == [{"type": "text", "text": "\n".join(KIWI)}]
    else:
        assert all("content" not in r for r in body["results"])

    # Deltas of a file_search call carry `file_search: {}` (CONTRACT.md §9).
    call_deltas = [
        render(e.run_step_delta)["delta"]["step_details"]["tool_calls"]
        for e in events
        if e.event == "thread.run.step.delta" and e.run_step_delta.id == tool_step.id
    ]
    assert call_deltas and call_deltas[0][0]["file_search"] == {}
    assert call_deltas[0][0]["id"] == call["id"]

    # The model got one tool message with the passages under their markers.
    (output,) = tool_messages(model.requests[-1])
    assert "【0:0†kiwi.docx】\n" + "\n".join(KIWI) in output

    # The answer: the marker stays in the text, with a file_citation over exactly its span.
    final = next(e.message for e in events if e.event == "thread.message.completed")
    text = render(final)["content"][0]["text"]
    assert text["value"] == answer
    (citation,) = text["annotations"]
    marker = "【0:0†kiwi.docx】"
    assert citation["type"] == "file_citation" and citation["text"] == marker
    assert text["value"][citation["start_index"] : citation["end_index"]] == marker
    assert citation["file_citation"] == {"file_id": kiwi}
    # Streamed as one whole annotation delta entry; held text never leaks a half marker.
    assert annotation_deltas(events) == [{"index": 0, **citation}]
    for event in events:
        if event.event == "thread.message.delta":
            value = render(event.message_delta)["delta"]["content"][0]["text"].get("value", "")
            assert value.count("【") == value.count("】"), value
    # Stored with the message.
    (stored,) = await thread_messages(stubs, run.thread_id, run_id=run.id)
    assert render(stored)["content"] == render(final)["content"]

    # The official SDK's accumulator rebuilds the message and the step from the stream.
    message, rebuilt = replay(events)
    rebuilt_text = message["content"][0]["text"]  # type: ignore[index]
    assert rebuilt_text["value"] == answer
    assert [{k: v for k, v in a.items() if k != "index"} for a in rebuilt_text["annotations"]] == [
        citation
    ]
    (again,) = rebuilt[tool_step.id]["step_details"]["tool_calls"]  # type: ignore[index]
    assert again["id"] == call["id"] and again["type"] == "file_search"

    # GetRunStep / ListRunSteps show the content when they ask, whatever the run asked.
    for asked, shown in (([], False), ([INCLUDE_FILE_SEARCH_CONTENT], True)):
        got = await stubs.runs.GetRunStep(
            R.GetRunStepRequest(
                thread_id=run.thread_id, run_id=run.id, step_id=tool_step.id, include=asked
            )
        )
        page = await stubs.runs.ListRunSteps(
            R.ListRunStepsRequest(thread_id=run.thread_id, run_id=run.id, include=asked)
        )
        listed = next(s for s in page.data if s.id == tool_step.id)
        for step in (got, listed):
            (result_call,) = render(step)["step_details"]["tool_calls"]
            results = result_call["file_search"]["results"]
            assert results[0]["file_id"] == kiwi
            assert all(("content" in r) == shown for r in results)


# --- a mixed turn, markers over rounds ---------------------------------------------------------


async def test_a_mixed_turn_searches_then_waits_and_markers_number_over_rounds(
    running: RunningServer,
) -> None:
    stubs, model = running.stubs, running.model
    files = await documents(running)
    store_id = await store_of(running, list(files.values()))
    answer = (
        "The kiwi cannot fly【0:0†kiwi.docx】【1:0†tea.md】; steep tea at 80 °C 【1:0†tea.md】 "
        "and ignore 【7:3†nope.txt】 or 【0:0 unfinished."
    )
    model.push(
        # The function first: the search is the step's second call (index 1).
        ToolCallsReply([("get_weather", '{"city": "Rome"}'), search_call(QUESTION)], fragments=3),
        ToolCallsReply([search_call("green tea temperature")], fragments=2),
        TextReply(answer, chunks=23),
    )
    assistant = await searching_assistant(running, store_id, WEATHER)
    thread = await make_thread(stubs, QUESTION)
    events = await collect(
        stubs.runs.CreateRunStream(
            R.CreateRunRequest(thread_id=thread.id, assistant_id=assistant.id)
        )
    )
    # The server's call ran first; the run then waits for the function only.
    assert names(events)[-2:] == ["thread.run.requires_action", "done"]
    check_run_log(events, whole=False)
    run = events[-2].run
    required = run.required_action.submit_tool_outputs.tool_calls
    assert [c.function.name for c in required] == ["get_weather"]
    (step,) = (
        await stubs.runs.ListRunSteps(R.ListRunStepsRequest(thread_id=thread.id, run_id=run.id))
    ).data
    weather, search = render(step)["step_details"]["tool_calls"]
    assert weather["type"] == "function" and weather["function"]["output"] is None
    assert search["type"] == "file_search"
    assert search["file_search"]["results"][0]["file_id"] == files["kiwi.docx"]

    more = await collect(
        stubs.runs.SubmitToolOutputsStream(
            R.SubmitToolOutputsRequest(
                thread_id=thread.id,
                run_id=run.id,
                tool_outputs=[R.ToolOutput(tool_call_id=required[0].id, output="sunny")],
            )
        )
    )
    assert names(more)[-2:] == ["thread.run.completed", "done"]
    # The first search's passages are call 0 (whatever its index in its step), the second's 1.
    first_round, second_round = model.requests[-2:]
    outputs = tool_messages(first_round)
    assert "sunny" in outputs and any("【0:0†kiwi.docx】" in o for o in outputs)
    assert any("【1:0†tea.md】" in o for o in tool_messages(second_round))

    final = next(e.message for e in more if e.event == "thread.message.completed")
    text = render(final)["content"][0]["text"]
    assert text["value"] == answer  # every marker stays in the text, known or not
    spans = [
        (a["text"], a["file_citation"]["file_id"], text["value"][a["start_index"] : a["end_index"]])
        for a in text["annotations"]
    ]
    assert spans == [
        ("【0:0†kiwi.docx】", files["kiwi.docx"], "【0:0†kiwi.docx】"),
        ("【1:0†tea.md】", files["tea.md"], "【1:0†tea.md】"),
        ("【1:0†tea.md】", files["tea.md"], "【1:0†tea.md】"),
    ]
    assert [{k: v for k, v in a.items() if k != "index"} for a in annotation_deltas(more)] == (
        text["annotations"]
    )
    message, _ = replay(more)
    assert message["content"][0]["text"]["value"] == answer  # type: ignore[index]
    assert len(message["content"][0]["text"]["annotations"]) == 3  # type: ignore[index]


# --- expired stores, the wait for a thread's files ---------------------------------------------


async def test_a_run_on_a_thread_whose_store_expired_fails_with_a_clear_error(
    running: RunningServer,
) -> None:
    stubs, model = running.stubs, running.model
    tea = await make_file(running, "tea.md", TEA.encode())
    spec = common_pb2.ToolResources(
        file_search=common_pb2.FileSearchResources(
            vector_stores=[common_pb2.VectorStoreSpec(file_ids=[tea])]
        )
    )
    thread = await stubs.threads.CreateThread(
        thread_pb2.CreateThreadRequest(messages=[text_input("tea?")], tool_resources=spec)
    )
    [store_id] = thread.tool_resources.file_search.vector_store_ids
    await wait_ingested(running, store_id)
    worker = running.server.ingestion
    assert worker is not None
    running.clock.advance(8 * 86400)  # a thread's store expires 7 days after its last use
    await worker.expire_now()
    store = await stores(running).GetVectorStore(V.GetVectorStoreRequest(vector_store_id=store_id))
    assert store.status == V.VECTOR_STORE_STATUS_EXPIRED

    asked = len(model.requests)
    assistant = await make_assistant(stubs, tools=[SEARCH])
    events = await collect(
        stubs.runs.CreateRunStream(
            R.CreateRunRequest(thread_id=thread.id, assistant_id=assistant.id)
        )
    )
    # It fails before the model is asked, whether or not it would have searched.
    assert check_run_log(events) == ["queued", "in_progress", "failed"]
    assert names(events)[-3:] == ["thread.run.in_progress", "thread.run.failed", "done"]
    failed = events[-2].run
    error = render(failed)["last_error"]
    assert error["code"] == "server_error"
    assert store_id in error["message"] and "expired" in error["message"]
    run = await stubs.runs.GetRun(R.GetRunRequest(thread_id=thread.id, run_id=failed.id))
    assert render(run)["last_error"] == error
    assert len(model.requests) == asked


async def test_a_store_that_expires_during_the_run_fails_its_search(
    database_url: str, fake_model: FakeModelServer
) -> None:
    store_ids: list[str] = []
    servers: list[RunningServer] = []

    async def expire_the_store(_run_id: str) -> None:
        # After the model's first turn (its file_search call), before the call is executed.
        if not store_ids:
            return
        running = servers[0]

        def expire() -> None:
            engine = create_engine(normalize_url(database_url))
            try:
                with engine.begin() as connection:
                    connection.execute(
                        update(vs.VECTOR_STORES)
                        .where(vs.VECTOR_STORES.c.id == store_ids.pop())
                        .values(expires_at=int(running.clock.now()) - 1)
                    )
            finally:
                engine.dispose()

        await asyncio.to_thread(expire)
        assert running.server.ingestion is not None
        await running.server.ingestion.expire_now()

    hooks = TurnHooks(model_finished=expire_the_store)
    async with serving(database_url, fake_model, overrides={"turn_hooks": hooks}) as running:
        servers.append(running)
        model = running.model
        files = await documents(running)
        store_id = await store_of(running, [files["kiwi.docx"]])
        model.push(ToolCallsReply([search_call(QUESTION)]), TextReply("never asked"))
        assistant = await searching_assistant(running, store_id)
        store_ids.append(store_id)
        events = await streamed_run(running, assistant.id, QUESTION)
        assert check_run_log(events) == ["queued", "in_progress", "failed"]
        assert names(events)[-3:] == ["thread.run.step.failed", "thread.run.failed", "done"]
        error = render(events[-2].run)["last_error"]
        assert error["code"] == "server_error" and store_id in error["message"]
        step = next(e.run_step for e in events if e.event == "thread.run.step.failed")
        assert render(step)["last_error"] == error
        assert len(model.requests) == 1  # the model is not asked again


async def thread_with_a_file_in_progress(running: RunningServer) -> tuple[str, str, str]:
    """A thread whose store holds a file not ingested yet (the worker is stopped): its id, the
    store's and the file's."""
    worker = running.server.ingestion
    assert worker is not None
    await worker.stop()
    tea = await make_file(running, "tea.md", TEA.encode())
    spec = common_pb2.ToolResources(
        file_search=common_pb2.FileSearchResources(
            vector_stores=[common_pb2.VectorStoreSpec(file_ids=[tea])]
        )
    )
    thread = await running.stubs.threads.CreateThread(
        thread_pb2.CreateThreadRequest(messages=[text_input("tea?")], tool_resources=spec)
    )
    [store_id] = thread.tool_resources.file_search.vector_store_ids
    store = await stores(running).GetVectorStore(V.GetVectorStoreRequest(vector_store_id=store_id))
    assert store.file_counts.in_progress == 1
    return thread.id, store_id, tea


async def test_a_search_waits_for_the_threads_files_in_progress(
    database_url: str, fake_model: FakeModelServer
) -> None:
    async with serving(database_url, fake_model, overrides={"file_search_wait": 60.0}) as running:
        stubs, model = running.stubs, running.model
        thread_id, store_id, tea = await thread_with_a_file_in_progress(running)
        model.push(ToolCallsReply([search_call("green tea temperature")]), TextReply("80 °C"))
        assistant = await make_assistant(stubs, tools=[SEARCH])
        run = await stubs.runs.CreateRun(
            R.CreateRunRequest(thread_id=thread_id, assistant_id=assistant.id)
        )
        async with asyncio.timeout(30):
            while not model.requests:  # the model's first turn: the call comes next
                await asyncio.sleep(0.01)
        # The file is ingested only now: a search that did not wait would find nothing.
        worker = running.server.ingestion
        assert worker is not None
        await worker.start()
        done = await wait_for_status(
            stubs, thread_id, run.id, R.RUN_STATUS_COMPLETED, R.RUN_STATUS_FAILED, timeout=60
        )
        assert done.status == R.RUN_STATUS_COMPLETED, render(done)["last_error"]
        steps = await stubs.runs.ListRunSteps(
            R.ListRunStepsRequest(
                thread_id=thread_id, run_id=run.id, order=common_pb2.LIST_ORDER_ASC
            )
        )
        (call,) = render(steps.data[0])["step_details"]["tool_calls"]
        assert [r["file_id"] for r in call["file_search"]["results"]] == [tea]
        assert "【0:0†tea.md】" in tool_messages(model.requests[-1])[0]
        store = await wait_ingested(running, store_id)
        assert store.file_counts.completed == 1


async def test_the_wait_for_the_threads_files_is_bounded(
    database_url: str, fake_model: FakeModelServer
) -> None:
    # A short wait (60 s in production): the search goes on without the file, finding nothing.
    async with serving(database_url, fake_model, overrides={"file_search_wait": 0.2}) as running:
        stubs, model = running.stubs, running.model
        thread_id, _, _ = await thread_with_a_file_in_progress(running)
        model.push(ToolCallsReply([search_call("green tea temperature")]), TextReply("unsure"))
        assistant = await make_assistant(stubs, tools=[SEARCH])
        events = await collect(
            stubs.runs.CreateRunStream(
                R.CreateRunRequest(thread_id=thread_id, assistant_id=assistant.id)
            )
        )
        assert names(events)[-2:] == ["thread.run.completed", "done"]
        (call,) = render(completed_steps(events)[0])["step_details"]["tool_calls"]
        assert call["file_search"]["results"] == []
        (output,) = tool_messages(model.requests[-1])
        assert output.startswith("file_search found no passages")


# --- tool_choice, max_num_results --------------------------------------------------------------


async def many_chunks(running: RunningServer) -> str:
    """A store whose one file is 30+ chunks that all match a green-tea question."""
    text = "\n".join(
        f"Note {i}: green tea leaves steeped for flavour, variety {i} of the garden."
        for i in range(200)
    )
    file_id = await make_file(running, "notes.md", text.encode())
    small = common_pb2.ChunkingStrategy(
        static=common_pb2.StaticChunkingStrategy(max_chunk_size_tokens=100, chunk_overlap_tokens=0)
    )
    return await store_of(running, [file_id], chunking_strategy=small)


@pytest.mark.parametrize(
    ("model_name", "settings", "expected"),
    [
        ("gpt-4o", common_pb2.FileSearchSettings(), 20),
        ("gpt-3.5-turbo", common_pb2.FileSearchSettings(), 5),
        ("gpt-4o", common_pb2.FileSearchSettings(max_num_results=3), 3),
        ("gpt-3.5-turbo", common_pb2.FileSearchSettings(max_num_results=7), 7),
    ],
    ids=["default-20", "gpt-3.5-5", "set-3", "gpt-3.5-set-7"],
)
async def test_max_num_results_and_its_defaults(
    running: RunningServer, model_name: str, settings: common_pb2.FileSearchSettings, expected: int
) -> None:
    stubs, model = running.stubs, running.model
    store_id = await many_chunks(running)
    model.push(ToolCallsReply([search_call("green tea leaves")]), TextReply("many notes"))
    assistant = await make_assistant(
        stubs,
        model=model_name,
        tools=[common_pb2.Tool(file_search=settings)],
        tool_resources=resources(store_id),
    )
    events = await streamed_run(running, assistant.id, "tell me about green tea")
    assert names(events)[-2:] == ["thread.run.completed", "done"]
    (call,) = render(completed_steps(events)[0])["step_details"]["tool_calls"]
    assert len(call["file_search"]["results"]) == expected
    (output,) = tool_messages(model.requests[-1])
    assert f"【0:{expected - 1}†notes.md】" in output and f"【0:{expected}†" not in output


async def test_tool_choice_file_search_forces_the_search_on_the_first_turn(
    running: RunningServer,
) -> None:
    model = running.model
    files = await documents(running)
    store_id = await store_of(running, list(files.values()))
    model.push(ToolCallsReply([search_call(QUESTION)]), TextReply("The kiwi【0:0†kiwi.docx】."))
    assistant = await searching_assistant(running, store_id, WEATHER)
    forced = common_pb2.ToolChoice(
        named=common_pb2.NamedToolChoice(type=common_pb2.TOOL_TYPE_FILE_SEARCH)
    )
    events = await streamed_run(running, assistant.id, QUESTION, tool_choice=forced)
    assert names(events)[-2:] == ["thread.run.completed", "done"]
    first, after = model.requests[-2:]
    assert first["tool_choice"] == {"type": "function", "function": {"name": "file_search"}}
    assert "tool_choice" not in after  # forced once: the answer may follow the search
    assert render(events[-2].run)["tool_choice"]["type"] == "file_search"
    final = next(e.message for e in events if e.event == "thread.message.completed")
    (citation,) = render(final)["content"][0]["text"]["annotations"]
    assert citation["file_citation"]["file_id"] == files["kiwi.docx"]


async def test_the_assistants_and_the_threads_stores_are_both_searched(
    running: RunningServer,
) -> None:
    stubs, model = running.stubs, running.model
    files = await documents(running)
    assistant_store = await store_of(running, [files["kiwi.docx"]])
    thread_store = await store_of(running, [files["tea.md"]])
    model.push(
        ToolCallsReply([search_call("green tea temperature", "flightless bird")]),
        TextReply("Tea【0:0†tea.md】, kiwi【0:1†kiwi.docx】."),
    )
    assistant = await searching_assistant(running, assistant_store)
    thread = await stubs.threads.CreateThread(
        thread_pb2.CreateThreadRequest(
            messages=[text_input("tea and birds?")], tool_resources=resources(thread_store)
        )
    )
    events = await collect(
        stubs.runs.CreateRunStream(
            R.CreateRunRequest(thread_id=thread.id, assistant_id=assistant.id)
        )
    )
    assert names(events)[-2:] == ["thread.run.completed", "done"]
    (call,) = render(completed_steps(events)[0])["step_details"]["tool_calls"]
    found = [r["file_id"] for r in call["file_search"]["results"]]
    assert sorted(found[:2]) == sorted([files["tea.md"], files["kiwi.docx"]])
    final = next(e.message for e in events if e.event == "thread.message.completed")
    cited = [
        a["file_citation"]["file_id"] for a in render(final)["content"][0]["text"]["annotations"]
    ]
    assert cited == found[:2]
