"""A server with API keys for two projects, on each database backend, and objects to aim at."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from assistants_grpc.auth import admin
from assistants_grpc.clock import ManualClock
from assistants_grpc.contract.pb import (
    assistant_pb2,
    message_pb2,
    run_pb2,
    vector_store_pb2,
    vector_store_pb2_grpc,
)
from assistants_grpc.fake_model import FakeModelServer
from assistants_grpc.server import AssistantsServer
from assistants_grpc.store import migrate
from assistants_grpc.store.database import Database
from tests.conftest import Stubs, start_server
from tests.integration.files_helpers import upload
from tests.integration.runs_helpers import TERMINAL, collect, make_thread, wait_for_status
from tests.security.helpers import Ids, stubs


@dataclass
class Keys:
    alpha: str  # project "alpha"
    beta: str  # project "beta"
    revoked: str  # was project "alpha"'s


def make_keys(database_url: str, now: int) -> Keys:
    database = Database(database_url)
    try:
        migrate.upgrade(database)
        alpha, _ = admin.create_key(database, "alpha", now)
        beta, _ = admin.create_key(database, "beta", now)
        revoked, info = admin.create_key(database, "alpha", now)
        admin.revoke_key(database, info.id, now)
    finally:
        database.dispose()
    return Keys(alpha, beta, revoked)


@dataclass
class Secured:
    server: AssistantsServer
    clock: ManualClock
    keys: Keys
    database_url: str
    opened: list[Stubs] = field(default_factory=list)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.server.port}"

    def stubs(self, key: str | None = None, **options: object) -> Stubs:
        made = stubs(self.target, key, **options)
        self.opened.append(made)
        return made


@pytest.fixture
async def secured(database_url: str, fake_model: FakeModelServer) -> AsyncIterator[Secured]:
    """A server whose database holds keys of projects alpha and beta (so `auto` requires them)."""
    fake_model.reset()
    clock = ManualClock()
    keys = make_keys(database_url, int(clock.now()))
    server = await start_server(database_url, clock, fake_model)
    secured = Secured(server, clock, keys, database_url)
    try:
        yield secured
    finally:
        for opened in secured.opened:
            await opened.channel.close()
        await server.stop(0)


async def make_objects(s: Stubs) -> Ids:
    """One of each kind in the stubs' project, the run finished so it has a step, and a file."""
    assistant = await s.assistants.CreateAssistant(
        assistant_pb2.CreateAssistantRequest(model="gpt-4o")
    )
    thread = await make_thread(s, "hello")
    events = await collect(
        s.runs.CreateRunStream(
            run_pb2.CreateRunRequest(thread_id=thread.id, assistant_id=assistant.id)
        )
    )
    run_id = next(e.run.id for e in events if e.event == "thread.run.created")
    await wait_for_status(s, thread.id, run_id, *TERMINAL)
    steps = await s.runs.ListRunSteps(
        run_pb2.ListRunStepsRequest(thread_id=thread.id, run_id=run_id)
    )
    messages = await s.messages.ListMessages(message_pb2.ListMessagesRequest(thread_id=thread.id))
    file = await upload(s, b"a file of the project", "mine.txt")
    store = await vector_store_pb2_grpc.VectorStoreServiceStub(s.channel).CreateVectorStore(
        vector_store_pb2.CreateVectorStoreRequest()
    )
    return Ids(
        assistant.id, thread.id, messages.data[0].id, run_id, steps.data[0].id, file.id, store.id
    )
