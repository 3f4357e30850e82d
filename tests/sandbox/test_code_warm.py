"""The warm pool (`--code-interpreter-warm`): kernels started ahead for new threads. A pool
kernel handed out must be indistinguishable from one started on demand; the pool refills in
the background, counts toward the cap on kernels, never evicts a session, and its kernels stop
with the manager and die with the server."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from assistants_grpc.clock import ManualClock
from assistants_grpc.config import Settings
from assistants_grpc.engine.server_tools import ToolCallRequest, ToolRunContext
from assistants_grpc.server import AssistantsServer, Overrides
from assistants_grpc.tools.code_interpreter.bwrap import BwrapSandbox, preload_arguments
from assistants_grpc.tools.code_interpreter.executor import CodeInterpreterExecutor
from assistants_grpc.tools.code_interpreter.files import MemoryFiles
from assistants_grpc.tools.code_interpreter.sessions import SessionManager, SessionSettings
from assistants_grpc.tools.code_interpreter.setup import code_interpreter_config
from tests.sandbox.conftest import Harness, make_harness, new_thread

pytestmark = pytest.mark.timeout(180)

CHECKOUT = Path(__file__).resolve().parents[2]

# What a kernel's first call sees of its own state: user variables, the execution count, the
# history, cwd, /mnt/data and /tmp.
LOOK = textwrap.dedent(
    """
    import json, os
    print(json.dumps({
        "user": sorted(k for k in globals() if not k.startswith("_") and k not in (
            "In", "Out", "get_ipython", "exit", "quit", "open", "json", "os")),
        "count": get_ipython().execution_count,
        "history": len(In),
        "cwd": os.getcwd(),
        "data": sorted(os.listdir("/mnt/data")),
        "tmp": sorted(n for n in os.listdir("/tmp") if n not in ("matplotlib",)),
    }))
    """
)


def _uids_running(base: int, count: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, StopIteration):
                status = Path(f"/proc/{entry}/status").read_text()
                line = next(li for li in status.splitlines() if li.startswith("Uid:"))
                if base <= int(line.split()[1]) < base + count and "State:\tZ" not in status:
                    found.append(int(entry))
    return found


def _look(h: Harness, result: object) -> dict[str, object]:
    return json.loads(h.logs(result))  # type: ignore[arg-type]


async def test_a_handed_out_kernel_is_clean_and_the_pool_refills() -> None:
    h = make_harness(settings=SessionSettings(warm=1), slots=3, uid_base=991000)
    try:
        h.sessions.start_pool()
        await h.sessions.wait_warm()
        assert h.sessions.warm == 1
        # A fresh kernel started on demand, for comparison: what a clean first call sees.
        fresh_harness = make_harness(slots=1, uid_base=991010)
        try:
            fresh_id = fresh_harness.files.add("default", "in.txt", b"input")
            started = await fresh_harness.run(new_thread(), LOOK, file_ids=[fresh_id])
            fresh = _look(fresh_harness, started)
        finally:
            await fresh_harness.sessions.close()
        assert fresh_harness.sessions.handed_out == 0

        first = new_thread()
        mine = h.files.add("default", "mine.txt", b"first thread's")
        dirty = await h.run(
            first,
            "secret = 41\nimport os\nopen('/mnt/data/left.txt', 'w').write('x')\n"
            "open('/tmp/left.txt', 'w').write('x')\nos.chdir('/tmp')\nprint(secret + 1)",
            file_ids=[mine],
        )
        assert h.logs(dirty) == "42"
        assert h.sessions.handed_out == 1
        await h.sessions.wait_warm()
        assert h.sessions.warm == 1, "the pool refills after a hand-out"

        await h.sessions.end_thread(first)
        await h.sessions.wait_warm()
        second = new_thread()
        theirs = h.files.add("default", "in.txt", b"input")
        seen = _look(h, await h.run(second, LOOK, file_ids=[theirs]))
        assert h.sessions.handed_out == 2
        assert seen["user"] == [], "no variable of the earlier session"
        assert seen["cwd"] == "/mnt/data"
        assert seen["data"] == [theirs]
        assert "left.txt" not in seen["tmp"]  # type: ignore[operator]
        # The same as a kernel started on demand (but for the file's id).
        assert {**seen, "data": None} == {**fresh, "data": None}
        assert fresh["data"] == [fresh_id]
        again = await h.run(second, f"print(open('/mnt/data/{theirs}').read())")
        assert h.logs(again) == "input"
    finally:
        await h.sessions.close()
    assert h.sessions.warm == 0
    deadline = time.monotonic() + 10
    while _uids_running(991000, 3) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _uids_running(991000, 3), "pool and session kernels stop with the manager"


async def test_the_pool_counts_toward_the_cap_and_never_evicts() -> None:
    h = make_harness(settings=SessionSettings(max_sessions=2, warm=1), slots=2, uid_base=991020)
    try:
        h.sessions.start_pool()
        await h.sessions.wait_warm()
        one, two, three = new_thread(), new_thread(), new_thread()
        await h.run(one, "a = 1")
        await h.sessions.wait_warm()
        assert (h.sessions.live, h.sessions.warm) == (1, 1)
        await h.run(two, "b = 2")
        await h.sessions.wait_warm()
        # Two sessions fill the cap: no pool kernel, and neither session was evicted for one.
        assert (h.sessions.live, h.sessions.warm) == (2, 0)
        assert h.logs(await h.run(one, "a")) == "1"
        assert h.sessions.handed_out == 2
        # A third thread: the pool is empty, so the least recently used idle session goes.
        assert h.logs(await h.run(three, "print(3)")) == "3"
        assert h.sessions.handed_out == 2
        assert h.sessions.session_of(two) is None and h.sessions.session_of(one) is not None
        await h.sessions.end_thread(three)
        await h.sessions.wait_warm()
        assert (h.sessions.live, h.sessions.warm) == (1, 1), "the freed room refills the pool"
    finally:
        await h.sessions.close()


async def test_a_burst_of_new_threads_gets_kernels_side_by_side() -> None:
    h = make_harness(settings=SessionSettings(warm=1), slots=5, uid_base=991100)
    try:
        h.sessions.start_pool()
        await h.sessions.wait_warm()
        threads = [new_thread() for _ in range(3)]
        results = await asyncio.gather(*(h.run(t, f"n = {i}\nn") for i, t in enumerate(threads)))
        assert [h.logs(r) for r in results] == ["0", "1", "2"]
        assert 1 <= h.sessions.handed_out <= 3 and h.sessions.live == 3
        uids = {_session_uid(h, t) for t in threads}
        assert len(uids) == 3, "each session in its own uid slot"
        await h.sessions.wait_warm()
        assert h.sessions.warm == 1
        assert [h.logs(await h.run(t, "n")) for t in threads] == ["0", "1", "2"]
    finally:
        await h.sessions.close()


def _session_uid(h: Harness, thread: str) -> int:
    session = h.sessions.session_of(thread)
    assert session is not None
    return int(session.kernel.description.split()[1].rstrip(","))


async def test_a_pool_kernel_that_died_is_not_handed_out_and_is_replaced() -> None:
    h = make_harness(settings=SessionSettings(warm=1), slots=3, uid_base=991030)
    try:
        h.sessions.start_pool()
        await h.sessions.wait_warm()
        (dead,) = h.sessions.warm_kernels()
        await dead.kill()  # as if it crashed
        thread = new_thread()
        assert h.logs(await h.run(thread, "print(7)")) == "7"
        assert h.sessions.handed_out == 0
        session = h.sessions.session_of(thread)
        assert session is not None and session.kernel is not dead
        await h.sessions.wait_warm()
        assert h.sessions.warm == 1
        (replacement,) = h.sessions.warm_kernels()
        await replacement.kill()
        await h.sessions.sweep()  # the sweep replaces a pool kernel that died
        await h.sessions.wait_warm()
        assert h.sessions.warm == 1 and h.sessions.warm_kernels()[0] is not replacement
    finally:
        await h.sessions.close()


async def test_warm_0_starts_nothing_ahead() -> None:
    h = make_harness(settings=SessionSettings(warm=0), slots=2, uid_base=991040)
    try:
        h.sessions.start_pool()
        assert h.sessions.warm == 0 and not _uids_running(991040, 2)
        thread = new_thread()
        assert h.logs(await h.run(thread, "x = 5\nx")) == "5"
        await h.sessions.wait_warm()
        assert (h.sessions.handed_out, h.sessions.warm, h.sessions.live) == (0, 0, 1)
        assert len({os.stat(f"/proc/{p}").st_uid for p in _uids_running(991040, 2)}) == 1
    finally:
        await h.sessions.close()


async def test_no_pool_until_it_is_started() -> None:
    """Before the server's sandbox check passed (or when it failed) hand-outs, ends and sweeps
    start no pool kernel."""
    h = make_harness(settings=SessionSettings(warm=1), slots=2, uid_base=991090)
    try:
        thread = new_thread()
        assert h.logs(await h.run(thread, "print(1)")) == "1"
        await h.sessions.end_thread(thread)
        await h.sessions.sweep()
        await h.sessions.wait_warm()
        assert (h.sessions.warm, h.sessions.handed_out) == (0, 0)
        assert not _uids_running(991090, 2)
    finally:
        await h.sessions.close()


def test_the_flag_reaches_the_sessions() -> None:
    assert Settings().code_interpreter_warm == 1
    assert code_interpreter_config(Settings(code_interpreter_warm=3)).sessions.warm == 3
    with pytest.raises(ValueError, match="--code-interpreter-warm"):
        Settings(code_interpreter_warm=-1)


def test_pool_kernels_die_with_the_server(tmp_path: Path) -> None:
    script = tmp_path / "server.py"
    script.write_text(
        textwrap.dedent(
            """
            import asyncio
            from assistants_grpc.clock import ManualClock
            from assistants_grpc.tools.code_interpreter.bwrap import BwrapSandbox
            from assistants_grpc.tools.code_interpreter.sessions import (
                SessionManager, SessionSettings)
            async def main():
                sessions = SessionManager(
                    BwrapSandbox(slots=2, uid_base=991050), ManualClock(), replica="r",
                    settings=SessionSettings(warm=2))
                sessions.start_pool()
                await sessions.wait_warm()
                print("warm", sessions.warm, flush=True)
                await asyncio.sleep(600)
            asyncio.run(main())
            """
        )
    )
    process = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, text=True, cwd=CHECKOUT
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "warm 2"
        assert _uids_running(991050, 2), "the pool's sandboxes should be running"
        process.kill()
        process.wait(10)
        deadline = time.monotonic() + 10
        while _uids_running(991050, 2) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _uids_running(991050, 2)
    finally:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        process.wait(10)
        if process.stdout is not None:
            process.stdout.close()


async def test_a_server_fills_its_pool_after_the_check_and_empties_it_at_stop(
    tmp_path: Path,
) -> None:
    server = AssistantsServer(
        Settings(
            port=0,
            http_port=0,
            database_url=f"sqlite:///{tmp_path / 'db.sqlite'}",
            code_interpreter="required",
            code_interpreter_warm=1,
            code_interpreter_sessions=3,
            code_interpreter_uid_base=991060,
        ),
        Overrides(clock=ManualClock()),
    )
    await server.start()
    try:
        assert server.code_interpreter is not None
        sessions = server.code_interpreter.sessions
        assert sessions is not None
        await sessions.wait_warm()
        assert sessions.warm == 1
        context = ToolRunContext("default", "run_x", "thread_x", "asst_x", "m", {}, {})

        async def emit(delta: object) -> None:
            pass

        result = await server.code_interpreter.executor.execute(
            ToolCallRequest("call_x", 0, '{"code": "6 * 7"}'), context, emit
        )
        assert result.details["outputs"] == [{"type": "logs", "logs": "42"}]
        assert sessions.handed_out == 1
    finally:
        await server.stop(0)
    deadline = time.monotonic() + 10
    while _uids_running(991060, 3) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _uids_running(991060, 3)


PRELOAD_LOOK = (
    "import sys\nprint(sorted(k for k in globals() if not k.startswith('_') and k not in "
    "('In', 'Out', 'get_ipython', 'exit', 'quit', 'open', 'sys')), "
    "'colorsys' in sys.modules, 'matplotlib.pyplot' in sys.modules)"
)


def _harness_with(preload: tuple[str, ...], uid_base: int) -> Harness:
    sandbox = BwrapSandbox(slots=2, uid_base=uid_base, preload=preload)
    sandbox.check()
    clock = ManualClock()
    sessions = SessionManager(sandbox, clock, replica="test", settings=SessionSettings(warm=1))
    files = MemoryFiles()
    return Harness(CodeInterpreterExecutor(sessions, files), sessions, files, clock)


async def test_preloaded_modules_are_imported_not_named_and_pyplot_still_shows() -> None:
    h = _harness_with(("colorsys", "matplotlib.pyplot"), 991070)
    try:
        h.sessions.start_pool()
        await h.sessions.wait_warm()
        thread = new_thread()
        assert h.logs(await h.run(thread, PRELOAD_LOOK)) == "[] True True"
        assert h.sessions.handed_out == 1
        shown = await h.run(thread, "import matplotlib.pyplot as plt\nplt.plot([1, 2])\nplt.show()")
        assert [o["type"] for o in shown.details["outputs"]] == ["image"]
    finally:
        await h.sessions.close()
    plain = _harness_with((), 991080)
    try:
        assert plain.logs(await plain.run(new_thread(), PRELOAD_LOOK)) == "[] False False"
    finally:
        await plain.sessions.close()


def test_preload_names_are_checked() -> None:
    with pytest.raises(ValueError, match="not a Python module name"):
        preload_arguments(["os; import shutil"])
    with pytest.raises(ValueError, match="--code-interpreter-preload"):
        Settings(code_interpreter_preload="numpy,os)")
    config = code_interpreter_config(Settings(code_interpreter_preload=" numpy, pandas ,"))
    assert config.preload == ("numpy", "pandas")
