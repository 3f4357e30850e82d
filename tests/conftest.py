"""Shared fixtures: a real server on 127.0.0.1:0 over a fresh database, and stubs to call it.

Every storage-touching test runs on SQLite, and also on PostgreSQL when
ASSISTANTS_TEST_DATABASE_URL names one (`.ci/run` points it at the local server).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from sqlalchemy import create_engine, text

from assistants_grpc.clock import ManualClock
from assistants_grpc.config import Settings
from assistants_grpc.contract.pb import (
    assistant_pb2_grpc,
    file_pb2_grpc,
    message_pb2_grpc,
    run_pb2_grpc,
    thread_pb2_grpc,
)
from assistants_grpc.fake_model import FakeModelServer
from assistants_grpc.server import AssistantsServer, Overrides
from assistants_grpc.store.database import normalize_url

POSTGRES_URL = os.environ.get("ASSISTANTS_TEST_DATABASE_URL")
# `serve` processes the tests start (and Settings.load) serve no HTTP face unless a test asks:
# the default port 8080 would be shared by every test process on the machine.
os.environ.setdefault("ASSISTANTS_HTTP_PORT", "0")
# Nor Prometheus metrics (default port 9464), for the same reason.
os.environ.setdefault("ASSISTANTS_METRICS_PORT", "0")


def reset_postgres(url: str) -> None:
    """Empty the test database: drop and recreate its public schema."""
    engine = create_engine(normalize_url(url))
    with engine.begin() as connection:
        connection.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database of each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'assistants.db'}"
        return
    if not POSTGRES_URL:
        pytest.skip("PostgreSQL tests need ASSISTANTS_TEST_DATABASE_URL (set by .ci/run)")
    reset_postgres(POSTGRES_URL)
    yield POSTGRES_URL


@dataclass
class Stubs:
    channel: grpc.aio.Channel
    assistants: assistant_pb2_grpc.AssistantServiceStub
    threads: thread_pb2_grpc.ThreadServiceStub
    messages: message_pb2_grpc.MessageServiceStub
    runs: run_pb2_grpc.RunServiceStub
    files: file_pb2_grpc.FileServiceStub


def stubs_for(channel: grpc.aio.Channel) -> Stubs:
    return Stubs(
        channel=channel,
        assistants=assistant_pb2_grpc.AssistantServiceStub(channel),
        threads=thread_pb2_grpc.ThreadServiceStub(channel),
        messages=message_pb2_grpc.MessageServiceStub(channel),
        runs=run_pb2_grpc.RunServiceStub(channel),
        files=file_pb2_grpc.FileServiceStub(channel),
    )


@pytest.fixture(scope="session")
async def fake_model() -> AsyncIterator[FakeModelServer]:
    """One scripted OpenAI-compatible model server for the whole session."""
    async with FakeModelServer() as server:
        yield server


@dataclass
class RunningServer:
    server: AssistantsServer
    stubs: Stubs
    clock: ManualClock
    database_url: str
    model: FakeModelServer

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.server.port}"


async def start_server(
    database_url: str,
    clock: ManualClock,
    model: FakeModelServer,
    *,
    overrides: Mapping[str, Any] | None = None,
    http: bool = False,
    metrics: bool = False,
    **settings: object,
) -> AssistantsServer:
    """A started server; `overrides` are more Overrides fields (tool_registry, lease_clock,
    turn_hooks)."""
    # The python tool off: these servers' runs do not call it, and each server would start a
    # kernel to check its sandbox (tests/sandbox/ exercises it, and the server test below).
    # http_port 0: no HTTP listener unless a test asks for one (`serving(..., http=True)`).
    defaults: dict[str, object] = {
        "port": 0,
        "http_port": 0,
        "metrics_port": 0,
        "model_max_retries": 1,
        "shutdown_grace": 1.0,
        "code_interpreter": "off",
    }
    server = AssistantsServer(
        Settings(  # type: ignore[arg-type]
            host="127.0.0.1", database_url=database_url, **(defaults | settings)
        ),
        Overrides(
            clock=clock,
            model_env={"OPENAI_BASE_URL": model.base_url, "OPENAI_API_KEY": "test-key"},
            **(overrides or {}),
        ),
        http=http or None,
        metrics=metrics or None,
    )
    await server.start()
    return server


@contextlib.asynccontextmanager
async def serving(
    database_url: str,
    fake_model: FakeModelServer,
    *,
    overrides: Mapping[str, Any] | None = None,
    reset_model: bool = True,
    http: bool = False,
    metrics: bool = False,
    **settings: object,
) -> AsyncIterator[RunningServer]:
    """A server with `settings` over the database, its stubs, and a reset fake model; with
    `http`, its HTTP face too, on a free port (`server.http_port`); with `metrics`, `/metrics`
    on a free port (`server.metrics_port`)."""
    if reset_model:
        fake_model.reset()
    clock = ManualClock()
    server = await start_server(
        database_url, clock, fake_model, overrides=overrides, http=http, metrics=metrics, **settings
    )
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
    try:
        yield RunningServer(server, stubs_for(channel), clock, database_url, fake_model)
    finally:
        await channel.close()
        await server.stop(0)


@pytest.fixture
async def running(database_url: str, fake_model: FakeModelServer) -> AsyncIterator[RunningServer]:
    async with serving(database_url, fake_model) as server:
        yield server


@pytest.fixture
def stubs(running: RunningServer) -> Stubs:
    return running.stubs
