"""The python tool through its executor, against real sandboxed kernels."""

from __future__ import annotations

import asyncio
import csv
import io

import pytest

from assistants_grpc.tools.code_interpreter.kernel import PNG_MAGIC
from assistants_grpc.tools.code_interpreter.sessions import RESET_NOTE, SessionSettings
from tests.sandbox.conftest import Harness, make_harness, new_thread

pytestmark = pytest.mark.timeout(120)


async def test_sympy_solves_the_seed_example(harness: Harness) -> None:
    result = await harness.run(
        new_thread(),
        "import sympy as sp\nx = sp.symbols('x')\nsolution = sp.solve(3*x + 11 - 14, x)\n"
        "print('x =', solution[0])\nsolution",
    )
    assert harness.logs(result) == "x = 1\n[1]"
    assert result.details["input"].startswith("import sympy")
    assert "x = 1" in result.output


async def test_logs_in_order_stdout_stderr_value_traceback(harness: Harness) -> None:
    result = await harness.run(
        new_thread(),
        "import sys\nprint('out')\nprint('err', file=sys.stderr)\n1/0",
    )
    logs = harness.logs(result)
    assert logs.startswith("out\nerr\nTraceback (most recent call last):")
    assert logs.endswith("ZeroDivisionError: division by zero")
    assert "\x1b[" not in logs
    value = await harness.run(new_thread(), "print('a')\n6 * 7")
    assert harness.logs(value) == "a\n42"


async def test_state_persists_within_a_thread_and_not_across_threads(harness: Harness) -> None:
    first, second = new_thread(), new_thread()
    await harness.run(first, "secret = 41")
    assert harness.logs(await harness.run(first, "secret + 1")) == "42"
    other = harness.logs(await harness.run(second, "secret"))
    assert "NameError" in other


async def test_a_plot_becomes_an_image_file_and_part(harness: Harness) -> None:
    result = await harness.run(
        new_thread(),
        "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3], [1, 4, 9])\nplt.title('squares')\n"
        "plt.show()",
    )
    images = [o for o in result.details["outputs"] if o["type"] == "image"]
    assert len(images) == 1
    file_id = images[0]["image"]["file_id"]
    _, _, data, purpose = harness.files.files[file_id]
    assert data.startswith(PNG_MAGIC) and purpose == "assistants_output"
    assert list(result.message_parts) == [
        {"type": "image_file", "image_file": {"file_id": file_id}}
    ]
    assert file_id in result.files
    assert result.final_delta is not None
    assert [o["index"] for o in result.final_delta["outputs"]] == list(
        range(len(result.details["outputs"]))
    )


async def test_a_written_csv_becomes_a_file_and_its_link_an_annotation(harness: Harness) -> None:
    thread = new_thread()
    result = await harness.run(
        thread,
        "import pandas as pd\n"
        "pd.DataFrame({'n': [1, 2, 3]}).to_csv('/mnt/data/x.csv', index=False)",
    )
    assert len(result.files) == 1
    file_id = result.files[0]
    _, name, data, purpose = harness.files.files[file_id]
    assert (name, purpose) == ("x.csv", "assistants_output")
    assert list(csv.reader(io.StringIO(data.decode()))) == [["n"], ["1"], ["2"], ["3"]]
    assert "sandbox:/mnt/data/x.csv" in result.output

    from assistants_grpc.engine.server_tools import ToolRunContext

    context = ToolRunContext("default", "run", thread, "asst", "m", {}, {})
    annotator = harness.executor.annotator(context)
    assert annotator is not None
    answer = "Here it is: [the data](sandbox:/mnt/data/x.csv). Not sandbox:/mnt/data/nope.csv."
    sent, annotations = "", []
    for i in range(0, len(answer), 5):  # streamed in pieces that split the links
        text, found = annotator.feed(answer[i : i + 5])
        sent += text
        annotations += found
    text, found = annotator.finish()
    sent += text
    annotations += found
    assert sent == answer
    start = answer.index("sandbox:/mnt/data/x.csv")
    assert annotations == [
        {
            "type": "file_path",
            "text": "sandbox:/mnt/data/x.csv",
            "start_index": start,
            "end_index": start + len("sandbox:/mnt/data/x.csv"),
            "file_path": {"file_id": file_id},
        }
    ]


async def test_an_input_file_is_read_from_mnt_data(harness: Harness) -> None:
    file_id = harness.files.add("default", "numbers.csv", b"a,b\n1,2\n3,4\n")
    other_project = harness.files.add("other", "secret.txt", b"no")
    result = await harness.run(
        new_thread(),
        f"import pandas as pd\nprint(pd.read_csv('/mnt/data/{file_id}')['b'].sum())",
        file_ids=[file_id, other_project],
    )
    assert harness.logs(result) == "6"
    assert f"/mnt/data/{file_id} (uploaded as 'numbers.csv', 12 bytes)" in result.output
    assert other_project not in result.output
    assert result.files == ()  # the input is not an output


async def test_attachments_are_there_too(harness: Harness) -> None:
    thread = new_thread()
    file_id = harness.files.add("default", "notes.txt", b"hello from an attachment")
    harness.files.attachments[thread] = [file_id]
    result = await harness.run(thread, f"print(open('/mnt/data/{file_id}').read())")
    assert harness.logs(result) == "hello from an attachment"


async def test_output_is_capped_with_a_note(harness: Harness) -> None:
    result = await harness.run(new_thread(), "print('x' * 200_000)")
    logs = harness.logs(result)
    assert logs.startswith("x" * 1000)
    assert "more characters of output were cut" in logs
    assert len(logs) < 70_000


async def test_idle_and_max_age_end_the_session_with_a_reset_note() -> None:
    h = make_harness(
        settings=SessionSettings(idle_seconds=60, max_age_seconds=300), slots=2, uid_base=990200
    )
    try:
        thread = new_thread()
        await h.run(thread, "v = 1")
        h.clock.advance(61)
        result = await h.run(thread, "print(v)")
        assert result.output.startswith(RESET_NOTE)
        assert "idle for more than 1 minute" in result.output
        assert "NameError" in h.logs(result)
        # Kept in use, it still ends at its maximum age.
        for _ in range(5):
            h.clock.advance(59)
            assert not (await h.run(thread, "v = 2")).output.startswith(RESET_NOTE)
        h.clock.advance(10)
        aged = await h.run(thread, "1")
        assert (
            aged.output.startswith(RESET_NOTE) and "maximum session age of 5 minutes" in aged.output
        )
        # The sweep ends expired sessions without a call.
        h.clock.advance(61)
        assert await h.sessions.sweep() == 1
        assert h.sessions.live == 0
    finally:
        await h.sessions.close()


async def test_lru_eviction_and_busy() -> None:
    h = make_harness(settings=SessionSettings(max_sessions=2), slots=2, uid_base=990210)
    try:
        a, b, c = new_thread(), new_thread(), new_thread()
        await h.run(a, "x = 'a'")
        await h.run(b, "x = 'b'")
        await h.run(a, "x")  # b is now the least recently used
        await h.run(c, "x = 'c'")
        assert h.sessions.session_of(b) is None and h.sessions.session_of(a) is not None
        evicted = await h.run(b, "x")
        assert evicted.output.startswith(RESET_NOTE) and "least recently used" in evicted.output
        # Both sessions executing: a third thread is told it is busy, at once.
        slow = [asyncio.ensure_future(h.run(t, "import time; time.sleep(3)")) for t in (a, b)]
        await asyncio.sleep(1.0)
        busy = await asyncio.wait_for(h.run(c, "1"), 2)
        assert busy.output.startswith("Code execution is busy")
        await asyncio.gather(*slow)
    finally:
        await h.sessions.close()


async def test_delete_thread_ends_its_session(harness: Harness) -> None:
    thread = new_thread()
    await harness.run(thread, "y = 5")
    session = harness.sessions.session_of(thread)
    assert session is not None
    await harness.sessions.end_thread(thread)
    assert session.kernel.exited.done()
    result = await harness.run(thread, "y")
    assert "NameError" in harness.logs(result)
    assert not result.output.startswith(RESET_NOTE)  # a deleted thread has no history


async def test_malformed_arguments_and_an_unavailable_tool(harness: Harness) -> None:
    from assistants_grpc.engine.server_tools import ToolCallRequest, ToolRunContext
    from assistants_grpc.tools.code_interpreter.executor import CodeInterpreterExecutor

    context = ToolRunContext("default", "run", new_thread(), "asst", "m", {}, {})

    async def emit(delta: object) -> None:
        pass

    cut = await harness.executor.execute(
        ToolCallRequest("call_x", 0, '{"code": "pri'), context, emit
    )
    assert "cut off" in cut.output and cut.details == {"input": "pri", "outputs": []}
    off = CodeInterpreterExecutor(
        None, harness.files, unavailable="turned off with --code-interpreter off"
    )
    result = await asyncio.wait_for(
        off.execute(ToolCallRequest("call_y", 0, '{"code": "1"}'), context, emit), 1
    )
    assert "not available" in result.output and "--code-interpreter off" in result.output


async def test_a_call_cancelled_as_it_starts_is_interrupted_and_the_next_waits(
    harness: Harness,
) -> None:
    # Cancelled at once, the first SIGINT may reach the kernel before the code runs (an idle
    # kernel ignores it): the stopper interrupts again, so the loop stops and the state stays;
    # the thread's next call waits for that rather than run in a kernel still busy or killed.
    thread = new_thread()
    await harness.run(thread, "kept = 'here'")
    session = harness.sessions.session_of(thread)
    assert session is not None
    for _ in range(3):
        call = asyncio.ensure_future(harness.run(thread, "while True:\n    pass"))
        while not session.client._lock.locked():  # the execute request is on its way
            await asyncio.sleep(0)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        result = await asyncio.wait_for(harness.run(thread, "kept"), 30)
        assert harness.logs(result) == "'here'"
        assert harness.sessions.session_of(thread) is session
