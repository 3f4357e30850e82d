"""A run stream broken mid-run (the connection reset, the server restarted) resumes with
WatchRun from the last event seen: the caller sees the run's whole event log, each event once.

The client talks to the server through a TCP proxy: a restarted server gets a new port, and the
proxy points the same target at it, as a load balancer or a fixed port would."""

from __future__ import annotations

import asyncio

import grpc
from assistants_grpc_client import AsyncClient, Client
from assistants_grpc_client.v1 import run_pb2, run_pb2_grpc

from assistants_grpc.fake_model import HangReply, TextReply
from assistants_grpc.server import AssistantsServer
from tests.client.conftest import in_thread
from tests.client.proxy import TcpProxy
from tests.conftest import RunningServer, start_server

R = run_pb2
TERMINAL = {
    "thread.run.completed",
    "thread.run.failed",
    "thread.run.cancelled",
    "thread.run.expired",
    "thread.run.incomplete",
}


async def event_log(target: str, thread_id: str, run_id: str) -> list[R.RunEvent]:
    """The run's whole log, read straight from the server with the generated stub."""
    async with grpc.aio.insecure_channel(target) as channel:
        stub = run_pb2_grpc.RunServiceStub(channel)
        request = R.WatchRunRequest(thread_id=thread_id, run_id=run_id)
        return [event async for event in stub.WatchRun(request)]


def assert_exactly_once(seen: list[R.RunEvent], log: list[R.RunEvent]) -> None:
    assert [e.sequence for e in seen] == list(range(1, len(seen) + 1))
    assert seen == log
    assert seen[-1].event == "done" and seen[-2].event in TERMINAL


async def restart(running: RunningServer, proxy: TcpProxy) -> AssistantsServer:
    """Stop the server while the model hangs on the run, start another on the same database."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    # `in_progress` is logged before the model is called: wait until the hang is under way, or
    # the restarted server would be the one to get it.
    while running.model.pending > 1 and loop.time() < deadline:
        await asyncio.sleep(0.01)
    await running.server.stop(0)
    server = await start_server(running.database_url, running.clock, running.model)
    proxy.retarget(server.port)
    return server


async def setup(client: AsyncClient) -> tuple[str, str]:
    assistant = await client.assistants.create(model="gpt-4o")
    thread = await client.threads.create(messages=[{"role": "user", "content": "hi"}])
    return assistant.id, thread.id


async def test_connection_reset_mid_stream(running: RunningServer, proxy: TcpProxy) -> None:
    running.model.push(TextReply("one two three four five six", chunks=6, chunk_delay=0.05))
    async with AsyncClient(proxy.target) as client:
        assistant_id, thread_id = await setup(client)
        seen = []
        async for event in client.runs.stream(thread_id, assistant_id):
            seen.append(event)
            if len(seen) == 1 or (event.event == "thread.message.delta" and len(seen) < 10):
                proxy.drop()  # twice: right after the run exists, and mid-message
    assert_exactly_once(seen, await event_log(running.target, thread_id, seen[0].run.id))
    assert seen[-2].event == "thread.run.completed"
    assert proxy.connections >= 3  # the first, and one after each reset


async def test_server_restart_mid_run(running: RunningServer, proxy: TcpProxy) -> None:
    # The model hangs, so the run is in progress when the server stops; the restarted server
    # recovers or fails it, and either way its log ends with a terminal event and `done`.
    running.model.push(HangReply(30), TextReply("after the restart"))
    restarted: AssistantsServer | None = None
    try:
        async with AsyncClient(proxy.target) as client:
            assistant_id, thread_id = await setup(client)
            seen = []
            async for event in client.runs.stream(thread_id, assistant_id):
                seen.append(event)
                if event.event == "thread.run.in_progress" and restarted is None:
                    restarted = await restart(running, proxy)
            assert restarted is not None
            log = await event_log(f"127.0.0.1:{restarted.port}", thread_id, seen[0].run.id)
            assert_exactly_once(seen, log)
            assert proxy.connections >= 2
            # The thread takes new runs again.
            running.model.push(TextReply("again"))
            again = client.runs.stream(thread_id, assistant_id)
            assert (await again.final_run()).status == R.RUN_STATUS_COMPLETED
    finally:
        if restarted is not None:
            await restarted.stop(0)


async def test_server_restart_under_the_blocking_client(
    running: RunningServer, proxy: TcpProxy
) -> None:
    running.model.push(HangReply(30), TextReply("after the restart"))
    loop = asyncio.get_running_loop()
    in_progress = asyncio.Event()

    def flow() -> list[R.RunEvent]:
        with Client(proxy.target) as client:
            assistant = client.assistants.create(model="gpt-4o")
            thread = client.threads.create(messages=[{"role": "user", "content": "hi"}])
            seen = []
            for event in client.runs.stream(thread.id, assistant.id):
                seen.append(event)
                if event.event == "thread.run.in_progress":
                    loop.call_soon_threadsafe(in_progress.set)
            return seen

    reading = asyncio.ensure_future(in_thread(flow))
    waiting = asyncio.ensure_future(in_progress.wait())
    await asyncio.wait({reading, waiting}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
    waiting.cancel()
    assert in_progress.is_set(), reading.result()  # re-raises what went wrong in the thread
    restarted = await restart(running, proxy)
    try:
        seen = await asyncio.wait_for(reading, 30)
        log = await event_log(f"127.0.0.1:{restarted.port}", seen[0].run.thread_id, seen[0].run.id)
    finally:
        await restarted.stop(0)
    assert_exactly_once(seen, log)
    assert proxy.connections >= 2
