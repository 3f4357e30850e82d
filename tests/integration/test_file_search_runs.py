"""The real `file_search` tool inside runs, end to end: a real server (its own FileSearchExecutor,
retriever and ingestion) and the scripted fake model. Three documents (pdf, docx, md) on the
assistant's store, a question only one answers: the call is executed by the server, recorded in
the tool_calls step, the answer's marker becomes a `file_citation` (streamed and stored), the
SDK's accumulator rebuilds it all; a mixed turn; expired stores; the wait for a thread's files;
tool_choice and max_num_results (CONTRACT.md §9, §12)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from assistants_grpc.contract.openai_json import render
from assistants_grpc.contract.pb import assistant_pb2, common_pb2, run_pb2
from assistants_grpc.contract.pb import vector_store_pb2 as V
from assistants_grpc.fake_model import TextReply, ToolCallsReply
from assistants_grpc.store.mapping import INCLUDE_FILE_SEARCH_CONTENT
from tests.conftest import RunningServer
from tests.integration.documents import docx, pdf
from tests.integration.event_checks import check_run_log
from tests.integration.runs_helpers import (
    WEATHER,
    collect,
    make_assistant,
    make_thread,
    names,
    thread_messages,
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
    # 9 pieces: the marker is cut across several of them.
    model.push(
        ToolCallsReply([search_call(QUESTION, "flightless bird")], fragments=4),
        TextReply(answer, chunks=9),
    )
    assistant = await searching_assistant(running, store_id)
    include = [INCLUDE_FILE_SEARCH_CONTENT] if with_content else []
    events = await streamed_run(running, assistant.id, QUESTION, include=include)
    run = events[0].run

    # The server searched inside in_progress: the caller never saw requires_action.
    assert check_run_log(events) == ["queued", "in_progress", "completed"]
    assert "thread.run.requires_action" not in names(events)
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
            assert value.count("【") == value.count("】")
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
