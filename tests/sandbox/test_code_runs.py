"""code_interpreter inside runs, end to end through a real server with real sandboxed kernels:
the fake model scripts the `python` calls, the server executes them inside `in_progress`
(CONTRACT.md §12). A missing sandbox fails these tests (`required`), never a skip."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import subprocess
import sys
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import openai
import pytest
from openai import AsyncAssistantEventHandler
from typing_extensions import override

from assistants_grpc.contract.openai_json import render
from assistants_grpc.contract.pb import common_pb2, file_pb2, message_pb2, run_pb2, thread_pb2
from assistants_grpc.fake_model import FakeModelServer, TextReply, ToolCallsReply
from assistants_grpc.tools.code_interpreter.sessions import RESET_NOTE
from tests.conftest import RunningServer, serving, stubs_for
from tests.integration.event_checks import check_run_log
from tests.integration.files_helpers import download, upload
from tests.integration.helpers import expect_error, text_input
from tests.integration.runs_helpers import (
    collect,
    make_assistant,
    make_thread,
    names,
    start_hanging_run,
    wait_for_status,
)
from tests.integration.test_sdk_replay import replay
from tests.integration.test_server_tools import step_events
from tests.sandbox.test_code_containment import _processes_of as processes_of

pytestmark = pytest.mark.timeout(180)

R = run_pb2
F = file_pb2
M = message_pb2
T = thread_pb2
CODE = common_pb2.Tool(code_interpreter=common_pb2.CodeInterpreterTool())
UID_BASE = 990700

SYMPY = (
    "import sympy as sp\n"
    "x = sp.symbols('x')\n"
    "solution = sp.solve(sp.Eq(3*x + 11, 14), x)\n"
    'print("x =", solution[0], "\u2714 \U0001f600")\n'
    "solution"
)


@pytest.fixture
async def coding(database_url: str, fake_model: FakeModelServer) -> AsyncIterator[RunningServer]:
    """A server whose python tool runs in real sandboxes (`required`: no sandbox, no start)."""
    async with serving(
        database_url,
        fake_model,
        code_interpreter="required",
        code_interpreter_uid_base=UID_BASE,
        code_interpreter_sessions=4,
        code_interpreter_timeout=30.0,
        code_interpreter_memory=512 * 1024 * 1024,
        code_interpreter_processes=64,
    ) as server:
        yield server


def python_call(code: str, **options: Any) -> ToolCallsReply:
    return ToolCallsReply([("python", json.dumps({"code": code}))], **options)


async def run_events(stubs: Any, assistant_id: str, thread_id: str) -> list[R.RunEvent]:
    return await collect(
        stubs.runs.CreateRunStream(
            R.CreateRunRequest(thread_id=thread_id, assistant_id=assistant_id)
        )
    )


def call_deltas(events: list[R.RunEvent]) -> list[dict[str, Any]]:
    """The code_interpreter bodies of every step delta, in order (OpenAI JSON)."""
    out = []
    for event in events:
        if event.event == "thread.run.step.delta":
            for call in event.run_step_delta.delta.step_details.tool_calls.tool_calls:
                out.append(render(call))
    return out


async def test_the_code_shows_while_the_model_writes_it(coding: RunningServer) -> None:
    """The step's input grows as the model writes the code (issue 16 §1): the model holds its
    last fragment until the stream has shown part of the code, decoded."""
    stubs, model = coding.stubs, coding.model
    arguments = json.dumps({"code": SYMPY})
    hold = asyncio.Event()
    model.push(
        ToolCallsReply([("python", arguments)], fragments=len(arguments), hold=hold),
        TextReply("x = 1.", chunks=2),
    )
    assistant = await make_assistant(stubs, tools=[CODE])
    thread = await make_thread(stubs, "solve 3x + 11 = 14")
    stream = stubs.runs.CreateRunStream(
        R.CreateRunRequest(thread_id=thread.id, assistant_id=assistant.id)
    )
    events: list[R.RunEvent] = []
    shown = ""
    async with asyncio.timeout(60):
        async for event in stream:
            events.append(event)
            if event.event == "thread.run.step.delta" and not hold.is_set():
                for call in event.run_step_delta.delta.step_details.tool_calls.tool_calls:
                    shown += call.code_interpreter.input
                if shown:
                    # Decoded (no JSON escapes), and not all of it: the model has not finished.
                    assert SYMPY.startswith(shown) and shown != SYMPY
                    hold.set()
    assert hold.is_set()
    assert check_run_log(events) == ["queued", "in_progress", "completed"]
    deltas = call_deltas(events)
    assert "".join(d["code_interpreter"].get("input") or "" for d in deltas) == SYMPY
    outputs = [o for d in deltas for o in d["code_interpreter"].get("outputs") or []]
    assert outputs == [{"index": 0, "type": "logs", "logs": "x = 1 \u2714 \U0001f600\n[1]"}]


async def test_the_math_tutor_solves_3x_plus_11_is_14(coding: RunningServer) -> None:
    stubs, model = coding.stubs, coding.model
    arguments = json.dumps({"code": SYMPY})
    # One character per fragment: every escape (\n, \", \u2714) and the surrogate pair
    # \ud83d\ude00 is split across fragments at every point.
    model.push(
        ToolCallsReply([("python", arguments)], fragments=len(arguments)),
        TextReply("The solution is x = 1.", chunks=4),
    )
    assistant = await make_assistant(
        stubs,
        name="Math Tutor",
        instructions="You are a personal math tutor. Write and run code to answer math questions.",
        tools=[CODE],
    )
    thread = await make_thread(
        stubs, "I need to solve the equation `3x + 11 = 14`. Can you help me?"
    )
    events = await run_events(stubs, assistant.id, thread.id)

    assert "thread.run.requires_action" not in names(events)
    assert check_run_log(events) == ["queued", "in_progress", "completed"]
    assert names(events)[-2:] == ["thread.run.completed", "done"]

    # The input streamed as the model wrote it, decoded: the pieces add up to the code itself.
    deltas = call_deltas(events)
    assert deltas[0]["type"] == "code_interpreter" and deltas[0]["id"].startswith("call_")
    assert deltas[0]["code_interpreter"] == {"input": "", "outputs": []}
    inputs = [d["code_interpreter"].get("input") or "" for d in deltas]
    assert "".join(inputs) == SYMPY
    # json.dumps wrote \n, \" and \ud83d\ude00 as escapes: each came out whole.
    assert "\\ud83d" in arguments and all("\\" not in i for i in inputs)
    # The outputs: one logs entry with the answer.
    outputs = [o for d in deltas for o in d["code_interpreter"].get("outputs") or []]
    assert outputs == [{"index": 0, "type": "logs", "logs": "x = 1 \u2714 \U0001f600\n[1]"}]

    # The stored step says the same.
    step = next(
        e.run_step
        for e in reversed(events)
        if e.event == "thread.run.step.completed" and e.run_step.type == R.RUN_STEP_TYPE_TOOL_CALLS
    )
    # CONTRACT.md §9, §12: the tool step's events, all before the answer's step starts.
    order = step_events(events, step.id)
    assert order[:2] == ["thread.run.step.created", "thread.run.step.in_progress"]
    assert order[-1] == "thread.run.step.completed"
    assert set(order[2:-1]) == {"thread.run.step.delta"} and len(order) >= 5
    created = [e.run_step for e in events if e.event == "thread.run.step.created"]
    assert [s.type for s in created] == [
        R.RUN_STEP_TYPE_TOOL_CALLS,
        R.RUN_STEP_TYPE_MESSAGE_CREATION,
    ]
    (call,) = render(step)["step_details"]["tool_calls"]
    assert call["code_interpreter"] == {
        "input": SYMPY,
        "outputs": [{"type": "logs", "logs": "x = 1 \u2714 \U0001f600\n[1]"}],
    }

    # The next model turn got the output as the tool message.
    assert len(model.requests) == 2
    offered = [t["function"]["name"] for t in model.requests[0]["tools"]]
    assert offered == ["python"]
    prompt = model.requests[1]["messages"]
    (tool_message,) = [m for m in prompt if m["role"] == "tool"]
    assert "x = 1" in tool_message["content"] and "[1]" in tool_message["content"]
    assert tool_message["tool_call_id"] == call["id"]

    # The official SDK's accumulator rebuilds the step and the answer from the stream.
    message, rebuilt = replay(events)
    assert message["content"][0]["text"]["value"] == "The solution is x = 1."  # type: ignore[index]
    (again,) = rebuilt[step.id]["step_details"]["tool_calls"]  # type: ignore[index]
    assert again["code_interpreter"]["input"] == SYMPY
    assert [o["logs"] for o in again["code_interpreter"]["outputs"]] == [
        "x = 1 \u2714 \U0001f600\n[1]"
    ]


def tool_messages(request: dict[str, Any]) -> list[str]:
    return [m["content"] for m in request["messages"] if m["role"] == "tool"]


async def test_state_across_runs_of_a_thread_and_not_across_threads(
    coding: RunningServer,
) -> None:
    stubs, model = coding.stubs, coding.model
    assistant = await make_assistant(stubs, tools=[CODE])
    first, other = await make_thread(stubs, "one"), await make_thread(stubs, "two")
    model.push(python_call("secret = 41"), TextReply("Kept."))
    assert names(await run_events(stubs, assistant.id, first.id))[-2] == "thread.run.completed"
    model.push(python_call("secret + 1"), TextReply("42."))
    assert names(await run_events(stubs, assistant.id, first.id))[-2] == "thread.run.completed"
    assert tool_messages(model.requests[-1]) == ["Code ran without output.", "42"]
    model.push(python_call("secret"), TextReply("Not here."))
    events = await run_events(stubs, assistant.id, other.id)
    assert names(events)[-2] == "thread.run.completed"
    (isolated,) = tool_messages(model.requests[-1])
    assert "NameError: name 'secret' is not defined" in isolated
    sessions = coding.server.code_interpreter.sessions  # type: ignore[union-attr]
    assert sessions is not None
    one, two = sessions.session_of(first.id), sessions.session_of(other.id)
    assert one is not None and two is not None and one.kernel is not two.kernel


PLOT_AND_CSV = (
    "import matplotlib.pyplot as plt\n"
    "import pandas as pd\n"
    "plt.plot([1, 2, 3], [1, 4, 9])\n"
    "plt.title('squares')\n"
    "plt.show()\n"
    "pd.DataFrame({'n': [1, 2, 3], 'sq': [1, 4, 9]}).to_csv('/mnt/data/x.csv', index=False)\n"
    "print('written')"
)


async def test_a_plot_and_a_linked_csv_become_files_parts_and_annotations(
    coding: RunningServer,
) -> None:
    stubs, model = coding.stubs, coding.model
    answer = (
        "Here is the plot, and [the table](sandbox:/mnt/data/x.csv) as a CSV. "
        "There is no sandbox:/mnt/data/missing.csv though."
    )
    model.push(python_call(PLOT_AND_CSV), TextReply(answer, chunks=13))
    assistant = await make_assistant(stubs, tools=[CODE])
    thread = await make_thread(stubs, "plot the squares and give me the table")
    events = await run_events(stubs, assistant.id, thread.id)
    assert check_run_log(events) == ["queued", "in_progress", "completed"]

    # The step: the logs, then one image output whose File holds the PNG.
    step = next(
        e.run_step
        for e in events
        if e.event == "thread.run.step.completed" and e.run_step.type == R.RUN_STEP_TYPE_TOOL_CALLS
    )
    (call,) = render(step)["step_details"]["tool_calls"]
    logs, image = call["code_interpreter"]["outputs"]
    assert logs == {"type": "logs", "logs": "written"}
    assert image["type"] == "image"
    image_id = image["image"]["file_id"]
    image_file = await stubs.files.GetFile(F.GetFileRequest(file_id=image_id))
    assert image_file.purpose == F.FILE_PURPOSE_ASSISTANTS_OUTPUT
    png = await download(stubs, image_id)
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and image_file.bytes == len(png)

    # The CSV is a File too, downloadable, and the model was told how to link it.
    (tool_message,) = tool_messages(model.requests[1])
    assert "sandbox:/mnt/data/x.csv" in tool_message
    listed = await stubs.files.ListFiles(
        F.ListFilesRequest(purpose=F.FILE_PURPOSE_ASSISTANTS_OUTPUT)
    )
    (csv_file,) = [f for f in listed.data if f.filename == "x.csv"]
    assert await download(stubs, csv_file.id) == b"n,sq\n1,1\n2,4\n3,9\n"

    # The answer: the image part first, then the text, whose link to the CSV became a
    # file_path annotation with exact indices; the missing file's link stays plain text.
    final = next(e.message for e in events if e.event == "thread.message.completed")
    content = render(final)["content"]
    assert content[0]["type"] == "image_file"
    assert content[0]["image_file"]["file_id"] == image_id
    text = content[1]["text"]
    assert text["value"] == answer
    start = answer.index("sandbox:/mnt/data/x.csv")
    expected = {
        "type": "file_path",
        "text": "sandbox:/mnt/data/x.csv",
        "start_index": start,
        "end_index": start + len("sandbox:/mnt/data/x.csv"),
        "file_path": {"file_id": csv_file.id},
    }
    assert text["annotations"] == [expected]
    # Streamed as an annotation delta of the text part.
    streamed = [
        annotation
        for e in events
        if e.event == "thread.message.delta"
        for part in render(e.message_delta)["delta"].get("content") or []
        if part.get("type") == "text"
        for annotation in (part.get("text") or {}).get("annotations") or []
    ]
    assert [{k: v for k, v in a.items() if k != "index"} for a in streamed] == [expected]
    # The SDK rebuilds the same message from the stream.
    message, _ = replay(events)
    assert message["content"][0]["image_file"]["file_id"] == image_id  # type: ignore[index]
    assert message["content"][1]["text"]["value"] == answer  # type: ignore[index]
    (rebuilt,) = message["content"][1]["text"]["annotations"]  # type: ignore[index]
    assert rebuilt["file_path"]["file_id"] == csv_file.id
    assert (rebuilt["start_index"], rebuilt["end_index"]) == (
        expected["start_index"],
        expected["end_index"],
    )


async def test_resource_files_and_attachments_are_in_mnt_data(coding: RunningServer) -> None:
    stubs, model = coding.stubs, coding.model
    by_assistant = await upload(stubs, b"a,b\n1,2\n3,4\n", "numbers.csv")
    by_thread = await upload(stubs, b"thread notes", "notes.txt")
    attached = await upload(stubs, b"hello from an attachment", "hello.txt")
    assistant = await make_assistant(
        stubs,
        tools=[CODE],
        tool_resources=common_pb2.ToolResources(
            code_interpreter=common_pb2.CodeInterpreterResources(file_ids=[by_assistant.id])
        ),
    )
    message = text_input("read them")
    message.attachments.append(
        M.Attachment(
            file_id=attached.id,
            tools=[M.AttachmentTool(type=common_pb2.TOOL_TYPE_CODE_INTERPRETER)],
        )
    )
    thread = await stubs.threads.CreateThread(
        T.CreateThreadRequest(
            messages=[message],
            tool_resources=common_pb2.ToolResources(
                code_interpreter=common_pb2.CodeInterpreterResources(file_ids=[by_thread.id])
            ),
        )
    )
    code = (
        "import pandas as pd\n"
        f"print(pd.read_csv('/mnt/data/{by_assistant.id}')['b'].sum())\n"
        f"print(open('/mnt/data/{by_thread.id}').read())\n"
        f"print(open('/mnt/data/{attached.id}').read())"
    )
    model.push(python_call(code), TextReply("Read."))
    events = await run_events(stubs, assistant.id, thread.id)
    assert names(events)[-2] == "thread.run.completed"
    (output,) = tool_messages(model.requests[1])
    assert output.endswith("6\nthread notes\nhello from an attachment")
    # The model was told what is there: id, original name, size.
    for file, size in ((by_assistant, 12), (by_thread, 12), (attached, 24)):
        assert f"/mnt/data/{file.id} (uploaded as {file.filename!r}, {size} bytes)" in output
    # Inputs are not outputs.
    listed = await stubs.files.ListFiles(
        F.ListFilesRequest(purpose=F.FILE_PURPOSE_ASSISTANTS_OUTPUT)
    )
    assert list(listed.data) == []

    # A file attached in a later message is there for the thread's next run, and the model is
    # told of it alone (the others were listed already and are still there).
    later = await upload(stubs, b"later", "later.txt")
    await stubs.messages.CreateMessage(
        M.CreateMessageRequest(
            thread_id=thread.id,
            role=M.MESSAGE_ROLE_USER,
            content=[M.MessageContentInput(text="one more")],
            attachments=[
                M.Attachment(
                    file_id=later.id,
                    tools=[M.AttachmentTool(type=common_pb2.TOOL_TYPE_CODE_INTERPRETER)],
                )
            ],
        )
    )
    model.push(
        python_call(
            f"import os\nprint(open('/mnt/data/{later.id}').read(), len(os.listdir('/mnt/data')))"
        ),
        TextReply("Read again."),
    )
    await run_events(stubs, assistant.id, thread.id)
    output = tool_messages(model.requests[-1])[-1]
    assert output == (
        f"Files available in /mnt/data:\n- /mnt/data/{later.id} (uploaded as 'later.txt', "
        "5 bytes)\n\nlater 4"
    )


async def test_cancel_during_a_long_execution(coding: RunningServer) -> None:
    stubs, model = coding.stubs, coding.model
    assistant = await make_assistant(stubs, tools=[CODE])
    thread = await make_thread(stubs, "loop")
    model.push(python_call("kept = 'yes'"), TextReply("Warm."))
    await run_events(stubs, assistant.id, thread.id)  # the kernel is started and warm
    sessions = coding.server.code_interpreter.sessions  # type: ignore[union-attr]
    assert sessions is not None
    session = sessions.session_of(thread.id)
    assert session is not None

    model.push(python_call("while True:\n    pass"))
    stream = stubs.runs.CreateRunStream(
        R.CreateRunRequest(thread_id=thread.id, assistant_id=assistant.id)
    )
    events: list[R.RunEvent] = []
    cancelled = asyncio.Event()
    loop = asyncio.get_running_loop()
    cancelled_at = 0.0

    async def read() -> None:
        nonlocal cancelled_at
        async for event in stream:
            events.append(event)
            if event.event == "thread.run.cancelled":
                cancelled_at = loop.time()
                cancelled.set()

    reader = asyncio.ensure_future(read())
    async with asyncio.timeout(60):
        while not session.lock.locked():  # the call is in the session: the loop runs
            await asyncio.sleep(0.01)
    run_id = events[0].run.id
    asked = loop.time()
    await stubs.runs.CancelRun(R.CancelRunRequest(thread_id=thread.id, run_id=run_id))
    await asyncio.wait_for(cancelled.wait(), 30)
    gap = cancelled_at - asked
    print(f"cancel during execution: run cancelled {gap * 1000:.0f} ms after CancelRun")
    await asyncio.wait_for(reader, 30)
    assert check_run_log(events)[-2:] == ["cancelling", "cancelled"]
    assert gap < 1.0, f"cancelled {gap:.2f} s after CancelRun"
    # The loop was interrupted, not the kernel killed: the thread's state is still there.
    model.push(python_call("kept"), TextReply("Still."))
    await run_events(stubs, assistant.id, thread.id)
    assert tool_messages(model.requests[-1])[-1] == "'yes'"
    assert sessions.session_of(thread.id) is session


async def test_delete_thread_ends_its_session(coding: RunningServer) -> None:
    stubs, model = coding.stubs, coding.model
    assistant = await make_assistant(stubs, tools=[CODE])
    thread = await make_thread(stubs, "x")
    model.push(python_call("y = 5"), TextReply("Set."))
    await run_events(stubs, assistant.id, thread.id)
    sessions = coding.server.code_interpreter.sessions  # type: ignore[union-attr]
    assert sessions is not None
    session = sessions.session_of(thread.id)
    assert session is not None
    await stubs.threads.DeleteThread(T.DeleteThreadRequest(thread_id=thread.id))
    assert sessions.session_of(thread.id) is None
    assert session.kernel.exited.done()


async def test_with_the_tool_off_the_call_says_so_and_the_run_completes(
    database_url: str, fake_model: FakeModelServer
) -> None:
    async with serving(database_url, fake_model, code_interpreter="off") as server:
        stubs, model = server.stubs, server.model
        model.push(python_call("1 + 1"), TextReply("I cannot run code here."))
        assistant = await make_assistant(stubs, tools=[CODE])
        thread = await make_thread(stubs, "compute")
        events = await run_events(stubs, assistant.id, thread.id)
        assert check_run_log(events) == ["queued", "in_progress", "completed"]
        (output,) = tool_messages(model.requests[1])
        assert output == (
            "The python tool is not available on this server (turned off with "
            "--code-interpreter off); the code did not run. Answer without it."
        )
        step = next(
            e.run_step
            for e in events
            if e.event == "thread.run.step.completed"
            and e.run_step.type == R.RUN_STEP_TYPE_TOOL_CALLS
        )
        (call,) = render(step)["step_details"]["tool_calls"]
        assert call["code_interpreter"] == {"input": "1 + 1", "outputs": []}


SERVING = re.compile(r"serving on ([\d.]+):(\d+)")


async def test_a_server_killed_while_code_runs_leaves_no_sandbox_process(
    tmp_path: Path, fake_model: FakeModelServer
) -> None:
    """A `serve` process SIGKILLed during an execution (the code forked a child too): every
    process of its sandbox ends with it (--die-with-parent, the server-death watch); the server
    started next takes the run over and fails it, never running the code again."""
    fake_model.reset()
    uid_base = UID_BASE + 80
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "assistants_grpc",
            "serve",
            "--port",
            "0",
            "--database-url",
            f"sqlite:///{tmp_path / 'db.sqlite'}",
            "--code-interpreter",
            "required",
            "--code-interpreter-uid-base",
            str(uid_base),
            "--code-interpreter-sessions",
            "2",
        ],
        env={
            **os.environ,
            "ASSISTANTS_LOG_LEVEL": "INFO",
            "OPENAI_BASE_URL": fake_model.base_url,
            "OPENAI_API_KEY": "test-key",
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    port: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    loop = asyncio.get_running_loop()

    def drain() -> None:  # reads the server's log to its end, so it never blocks on a pipe
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            if (match := SERVING.search(line)) and not port.done():
                loop.call_soon_threadsafe(port.set_result, int(match.group(2)))

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    uids = [uid_base, uid_base + 1]

    def sandboxed() -> list[int]:
        return [pid for uid in uids for pid in processes_of(uid)]

    try:
        try:
            target = f"127.0.0.1:{await asyncio.wait_for(port, 60)}"
        except TimeoutError:
            raise AssertionError("the server did not start:\n" + "".join(lines)) from None
        code = "import os, time\nif os.fork() == 0:\n    time.sleep(600)\ntime.sleep(600)"
        fake_model.push(python_call(code))
        async with grpc.aio.insecure_channel(target) as channel:
            stubs = stubs_for(channel)
            assistant = await make_assistant(stubs, tools=[CODE])
            thread = await make_thread(stubs, "sleep")
            run = await stubs.runs.CreateRun(
                R.CreateRunRequest(thread_id=thread.id, assistant_id=assistant.id)
            )
            # The kernel runs the code: bwrap, the sandbox's init, the kernel, its child.
            async with asyncio.timeout(60):
                while len(sandboxed()) < 4:
                    await asyncio.sleep(0.05)
        process.kill()
        await asyncio.to_thread(process.wait, 10)
        async with asyncio.timeout(10):
            while sandboxed():
                await asyncio.sleep(0.05)
        # The next server takes the run over and fails it: the code is never run again.
        asked = len(fake_model.requests)
        async with serving(
            f"sqlite:///{tmp_path / 'db.sqlite'}",
            fake_model,
            reset_model=False,
            code_interpreter="required",
            code_interpreter_uid_base=uid_base + 2,
            code_interpreter_sessions=2,
        ) as after:
            ended = await wait_for_status(
                after.stubs, thread.id, run.id, R.RUN_STATUS_FAILED, timeout=30
            )
            assert ended.last_error.message == "The run was interrupted by a server restart."
            sessions = after.server.code_interpreter.sessions  # type: ignore[union-attr]
            assert sessions is not None and sessions.live == 0
            assert len(fake_model.requests) == asked
    finally:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await asyncio.to_thread(process.wait, 10)
        reader.join(10)
        if process.stdout is not None:
            process.stdout.close()  # else its FileIO is finalised open: an unraisable warning


async def test_a_thread_run_on_another_replica_gets_a_fresh_kernel_and_the_note(
    database_url: str, fake_model: FakeModelServer
) -> None:
    """Two replicas on one database: the thread's second run lands on replica two while its
    session lives on replica one (whose only worker is busy): a fresh kernel there, the reset
    note in the tool output; replica one stops its kernel at its next sweep."""
    if database_url.startswith("sqlite"):
        pytest.skip("replicas share a PostgreSQL database (SQLite serves one process)")
    limits: dict[str, Any] = {
        "code_interpreter": "required",
        "code_interpreter_sessions": 2,
        "max_concurrent_runs": 1,
    }
    async with serving(
        database_url, fake_model, code_interpreter_uid_base=UID_BASE + 40, **limits
    ) as one:
        stubs, model = one.stubs, one.model
        assistant = await make_assistant(stubs, tools=[CODE])
        thread = await make_thread(stubs, "remember")
        model.push(python_call("x = 1"), TextReply("Kept."))
        await run_events(stubs, assistant.id, thread.id)
        sessions_one = one.server.code_interpreter.sessions  # type: ignore[union-attr]
        assert sessions_one is not None
        held = sessions_one.session_of(thread.id)
        assert held is not None
        busy_thread, busy_run = await start_hanging_run(stubs, model)  # one's only worker
        async with serving(
            database_url,
            fake_model,
            reset_model=False,
            code_interpreter_uid_base=UID_BASE + 50,
            **limits,
        ) as two:
            model.push(python_call("x"), TextReply("Lost."))
            events = await run_events(two.stubs, assistant.id, thread.id)
            assert names(events)[-2] == "thread.run.completed"
            output = tool_messages(model.requests[-1])[-1]
            assert output.startswith(RESET_NOTE) and "another server" in output
            assert "NameError: name 'x' is not defined" in output
            sessions_two = two.server.code_interpreter.sessions  # type: ignore[union-attr]
            assert sessions_two is not None and sessions_two.session_of(thread.id) is not None
            # One notices the thread is not its any more.
            assert await sessions_one.sweep() == 1
            assert sessions_one.session_of(thread.id) is None and held.kernel.exited.done()
            await stubs.runs.CancelRun(R.CancelRunRequest(thread_id=busy_thread, run_id=busy_run))
            await wait_for_status(stubs, busy_thread, busy_run, R.RUN_STATUS_CANCELLED)


async def test_without_a_sandbox_the_call_says_why_and_the_run_completes(
    database_url: str, fake_model: FakeModelServer, tmp_path: Path
) -> None:
    """`auto` on a host without bubblewrap: the server serves, and a run that calls the tool
    gets a clear tool output at once (not a hang, not a failed run)."""
    async with serving(
        database_url,
        fake_model,
        code_interpreter="auto",
        code_interpreter_bwrap=str(tmp_path / "no-such-bwrap"),
    ) as server:
        stubs, model = server.stubs, server.model
        model.push(python_call("1 + 1"), TextReply("No code today."))
        assistant = await make_assistant(stubs, tools=[CODE])
        thread = await make_thread(stubs, "compute")
        events = await run_events(stubs, assistant.id, thread.id)
        assert check_run_log(events) == ["queued", "in_progress", "completed"]
        (output,) = tool_messages(model.requests[1])
        assert output.startswith("The python tool is not available on this server (")
        assert "bubblewrap not found" in output and output.endswith("Answer without it.")


class CodeRecorder(AsyncAssistantEventHandler):
    """What the SDK's event handler sees of a code_interpreter call and the answer."""

    def __init__(self) -> None:
        super().__init__()
        self.inputs: list[str] = []
        self.logs: list[str] = []
        self.done_calls: list[Any] = []
        self.text = ""

    @override
    async def on_tool_call_delta(self, delta: Any, snapshot: Any) -> None:
        if delta.type == "code_interpreter" and delta.code_interpreter is not None:
            if delta.code_interpreter.input:
                self.inputs.append(delta.code_interpreter.input)
            for output in delta.code_interpreter.outputs or []:
                if output.type == "logs":
                    self.logs.append(output.logs or "")

    @override
    async def on_tool_call_done(self, tool_call: Any) -> None:
        self.done_calls.append(tool_call)

    @override
    async def on_text_delta(self, delta: Any, snapshot: Any) -> None:
        self.text += delta.value or ""


@pytest.mark.filterwarnings("ignore:deprecated$:DeprecationWarning")  # every beta.* call
@pytest.mark.filterwarnings(
    "ignore:The Assistants API is deprecated in favor of the Responses API:DeprecationWarning"
)
async def test_the_math_tutor_through_the_sdk_over_http(
    database_url: str, fake_model: FakeModelServer
) -> None:
    """The seed example as an OpenAI SDK user writes it, over the HTTP face (SSE), with the
    SDK's own streaming helper and event handler."""
    async with serving(
        database_url,
        fake_model,
        http=True,
        auth="disabled",
        code_interpreter="required",
        code_interpreter_uid_base=UID_BASE + 60,
        code_interpreter_sessions=2,
    ) as running:
        arguments = json.dumps({"code": SYMPY})
        running.model.push(
            ToolCallsReply([("python", arguments)], fragments=len(arguments)),
            TextReply("The solution is x = 1.", chunks=4),
        )
        base_url = f"http://127.0.0.1:{running.server.http_port}/v1"
        async with openai.AsyncOpenAI(base_url=base_url, api_key="sk-none") as client:
            assistant = await client.beta.assistants.create(
                name="Math Tutor",
                instructions="You are a personal math tutor. Write and run code to answer "
                "math questions.",
                tools=[{"type": "code_interpreter"}],
                model="gpt-4o",
            )
            thread = await client.beta.threads.create(
                messages=[{"role": "user", "content": "Solve 3x + 11 = 14."}]
            )
            handler = CodeRecorder()
            async with client.beta.threads.runs.stream(
                thread_id=thread.id, assistant_id=assistant.id, event_handler=handler
            ) as stream:
                await stream.until_done()
                run = stream.current_run
            assert run is not None and run.status == "completed"
            assert "".join(handler.inputs) == SYMPY
            assert handler.logs == ["x = 1 \u2714 \U0001f600\n[1]"]
            # The SDK calls on_tool_call_done again at every later step's and the run's end.
            done = handler.done_calls[0]
            assert {c.id for c in handler.done_calls} == {done.id}
            assert done.code_interpreter.input == SYMPY
            assert [o.logs for o in done.code_interpreter.outputs] == [
                "x = 1 \u2714 \U0001f600\n[1]"
            ]
            assert handler.text == "The solution is x = 1."
            steps = [
                s async for s in client.beta.threads.runs.steps.list(run.id, thread_id=thread.id)
            ]
            (stored,) = [s for s in steps if s.step_details.type == "tool_calls"]
            (kept,) = stored.step_details.tool_calls  # type: ignore[union-attr]
            # (The SDK's accumulated copy keeps the deltas' `index` keys; the stored one has none.)
            assert kept.id == done.id and kept.code_interpreter.input == SYMPY
            assert [o.logs for o in kept.code_interpreter.outputs] == [
                o.logs for o in done.code_interpreter.outputs
            ]


async def test_deleting_the_thread_while_its_code_runs(
    coding: RunningServer, caplog: pytest.LogCaptureFixture
) -> None:
    """DeleteThread during an execution: the kernel stops at once, the run's stream ends with
    NOT_FOUND, no warning nor trace is logged, and the next thread's code runs."""
    stubs, model = coding.stubs, coding.model
    assistant = await make_assistant(stubs, tools=[CODE])
    thread = await make_thread(stubs, "spin")
    model.push(python_call("while True:\n    pass"))
    stream = stubs.runs.CreateRunStream(
        R.CreateRunRequest(thread_id=thread.id, assistant_id=assistant.id)
    )
    reader = asyncio.ensure_future(collect(stream))
    sessions = coding.server.code_interpreter.sessions  # type: ignore[union-attr]
    assert sessions is not None
    async with asyncio.timeout(60):
        while (session := sessions.session_of(thread.id)) is None or not session.lock.locked():
            await asyncio.sleep(0.01)
    with caplog.at_level(logging.WARNING):
        await stubs.threads.DeleteThread(T.DeleteThreadRequest(thread_id=thread.id))
        assert session.kernel.exited.done()
        error = await expect_error(asyncio.wait_for(reader, 30), grpc.StatusCode.NOT_FOUND)
        assert error.details() == f"The thread '{thread.id}' was deleted."
        model.push(python_call("print('next')"), TextReply("Fine."))
        other = await make_thread(stubs, "again")
        events = await run_events(stubs, assistant.id, other.id)
        assert names(events)[-2] == "thread.run.completed"
        assert tool_messages(model.requests[-1]) == ["next"]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]
