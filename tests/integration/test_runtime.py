"""One runtime, two faces: a second face serves the same services beside the first, with one
health state, one shutdown, and per-key limits that count across the faces."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from assistants_grpc.api.face import GrpcFace
from assistants_grpc.clock import ManualClock
from assistants_grpc.config import Settings
from assistants_grpc.contract.pb import run_pb2
from assistants_grpc.fake_model import FakeModelServer
from assistants_grpc.runtime import Overrides, Runtime
from assistants_grpc.server import AssistantsServer
from tests.conftest import Stubs
from tests.integration.runs_helpers import WEATHER, collect, make_assistant, make_thread
from tests.security.conftest import make_keys
from tests.security.helpers import expect_code, stubs

R = run_pb2
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


async def _open_stream(s: Stubs, watch: R.WatchRunRequest) -> object:
    """A WatchRun holding the key's slot, once the slot of a stream that just ended is free
    (the server frees it as the stream's handler returns, a moment after its last event)."""
    for _ in range(200):
        stream = s.runs.WatchRun(watch)
        try:
            first = await stream.read()
        except grpc.aio.AioRpcError as refused:
            assert refused.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            await asyncio.sleep(0.02)
            continue
        assert first.sequence == 1 and first.event == "thread.run.created"
        return stream
    raise AssertionError("the slot of the ended stream was never freed")


async def _health(s: Stubs) -> int:
    check = health_pb2_grpc.HealthStub(s.channel).Check
    reply = await check(health_pb2.HealthCheckRequest(service="assistants.v1.RunService"))
    return int(reply.status)


async def test_two_faces_serve_one_runtime(database_url: str, fake_model: FakeModelServer) -> None:
    fake_model.reset()
    clock = ManualClock()
    keys = make_keys(database_url, int(clock.now()))
    settings = Settings(
        host="127.0.0.1",
        port=0,
        http_port=0,
        metrics_port=0,
        database_url=database_url,
        max_streams_per_key=1,
        model_max_retries=1,
        shutdown_grace=1.0,
    )
    runtime = Runtime(
        settings,
        Overrides(
            clock=clock,
            model_env={"OPENAI_BASE_URL": fake_model.base_url, "OPENAI_API_KEY": "test-key"},
        ),
    )
    await runtime.start()
    face = GrpcFace(
        runtime.services,
        runtime.guard,
        host="127.0.0.1",
        port=0,
        max_request_bytes=settings.max_request_bytes,
    )
    await runtime.serve(face)
    # The second face: the gRPC server attached to the runtime that is serving already.
    second_face = AssistantsServer(settings, runtime=runtime)
    await second_face.start()
    first = stubs(f"127.0.0.1:{face.port}", keys.alpha)
    second = stubs(f"127.0.0.1:{second_face.port}", keys.alpha)
    try:
        # A run created through one face streams through the other: the same services.
        assistant = await make_assistant(first, tools=[WEATHER])
        thread = await make_thread(first, "/tool get_weather {}")
        paused = await collect(
            first.runs.CreateRunStream(
                R.CreateRunRequest(thread_id=thread.id, assistant_id=assistant.id)
            )
        )
        run = paused[-2].run
        assert run.status == R.RUN_STATUS_REQUIRES_ACTION
        watch = R.WatchRunRequest(thread_id=thread.id, run_id=run.id)
        replayed: Any = await _open_stream(second, watch)
        replayed.cancel()

        # One Guard: the key's one stream slot, taken on the first face, is taken on both.
        open_stream: Any = await _open_stream(first, watch)
        error = await expect_code(
            collect(second.runs.WatchRun(watch)), grpc.StatusCode.RESOURCE_EXHAUSTED
        )
        assert "Too many open streams" in (error.details() or "")

        # One health state, whichever face is asked.
        assert [await _health(s) for s in (first, second)] == [SERVING, SERVING]
        await runtime.set_serving(False)
        assert [await _health(s) for s in (first, second)] == [NOT_SERVING, NOT_SERVING]
        await runtime.set_serving(True)
        assert [await _health(s) for s in (first, second)] == [SERVING, SERVING]

        # One shutdown: both faces stop (the open stream ends), then the database goes.
        await second_face.stop(0)
        assert runtime.database is None and not runtime.started
        with pytest.raises(grpc.aio.AioRpcError) as ended:
            await collect(open_stream)  # what was sent before the stop, then the end
        assert ended.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED)
    finally:
        for s in (first, second):
            await s.channel.close()
        await runtime.stop(0)
