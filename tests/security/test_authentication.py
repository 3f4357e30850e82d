"""Who may call: every RPC refuses a call without a valid key, health and reflection stay open,
and the `--auth` modes behave as the README says."""

from __future__ import annotations

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from sqlalchemy import create_engine, text

from assistants_grpc.auth import admin
from assistants_grpc.auth.authenticator import INVALID, MALFORMED, MISSING
from assistants_grpc.clock import ManualClock
from assistants_grpc.contract.pb import assistant_pb2, assistant_pb2_grpc
from assistants_grpc.fake_model import FakeModelServer
from assistants_grpc.store.database import Database, normalize_url
from tests.conftest import start_server
from tests.security.conftest import Secured, make_objects
from tests.security.helpers import Ids, all_rpc_names, channel, every_rpc, expect_code

UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED
NOWHERE = Ids("asst_x", "thread_x", "msg_x", "run_x", "step_x")


def test_the_table_covers_every_rpc() -> None:
    assert set(every_rpc()) == all_rpc_names()


@pytest.mark.parametrize(
    ("case", "message"),
    [("no key", MISSING), ("revoked key", INVALID), ("unknown key", INVALID)],
)
async def test_every_rpc_refuses_a_call_without_a_valid_key(
    secured: Secured, case: str, message: str
) -> None:
    ids = await make_objects(secured.stubs(secured.keys.alpha))
    key = {
        "no key": None,
        "revoked key": secured.keys.revoked,
        "unknown key": "sk-" + "A" * 48,
    }[case]
    s = secured.stubs(key)
    for name, call in every_rpc().items():
        error = await expect_code(call(s, ids), UNAUTHENTICATED)
        assert error.details() == message, name
    # Nothing was written by any of them: alpha still sees exactly its own objects.
    alpha = secured.stubs(secured.keys.alpha)
    listed = await alpha.assistants.ListAssistants(assistant_pb2.ListAssistantsRequest())
    assert [a.id for a in listed.data] == [ids.assistant]


@pytest.mark.parametrize(
    "authorization",
    [
        "sk-" + "A" * 48,  # no scheme
        "Basic dXNlcjpwYXNz",
        "Bearer",
        "Bearer ",
        "Bearer sk-short",
        "Bearer not-a-key-at-all-but-long-enough",
        "Bearer sk-" + "A" * 48 + " extra",
    ],
)
async def test_malformed_authorization_is_unauthenticated(
    secured: Secured, authorization: str
) -> None:
    s = secured.stubs(authorization=authorization)
    for name, call in every_rpc().items():
        error = await expect_code(call(s, NOWHERE), UNAUTHENTICATED)
        assert error.details() == MALFORMED, name


async def test_health_and_reflection_need_no_key(secured: Secured) -> None:
    async with channel(secured.target) as open_channel:
        health = health_pb2_grpc.HealthStub(open_channel)
        answer = await health.Check(health_pb2.HealthCheckRequest(service=""))
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
        reflection = reflection_pb2_grpc.ServerReflectionStub(open_channel)
        replies = reflection.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")])
        )
        names = {s.name async for reply in replies for s in reply.list_services_response.service}
        assert "assistants.v1.RunService" in names


async def test_a_key_revoked_while_serving_stops_working_within_the_cache_time(
    secured: Secured,
) -> None:
    s = secured.stubs(secured.keys.alpha)
    await s.assistants.ListAssistants(assistant_pb2.ListAssistantsRequest())
    database = Database(secured.database_url)
    try:
        admin.revoke_key(database, secured.keys.alpha[:11], int(secured.clock.now()))
    finally:
        database.dispose()
    secured.clock.advance(2.5)  # past the 2 s lookup cache
    error = await expect_code(
        s.assistants.ListAssistants(assistant_pb2.ListAssistantsRequest()), UNAUTHENTICATED
    )
    assert error.details() == INVALID


async def test_last_used_is_written_at_most_once_a_minute(secured: Secured) -> None:
    s = secured.stubs(secured.keys.beta)
    engine = create_engine(normalize_url(secured.database_url))

    def last_used() -> int | None:
        with engine.connect() as connection:
            query = text("SELECT last_used_at FROM api_keys WHERE project = 'beta'")
            value: int | None = connection.execute(query).scalar()
            return value

    try:
        assert last_used() is None
        start = int(secured.clock.now())
        await s.assistants.ListAssistants(assistant_pb2.ListAssistantsRequest())
        assert last_used() == start
        secured.clock.advance(30)
        await s.assistants.ListAssistants(assistant_pb2.ListAssistantsRequest())
        assert last_used() == start
        secured.clock.advance(31)
        await s.assistants.ListAssistants(assistant_pb2.ListAssistantsRequest())
        assert last_used() == start + 61
    finally:
        engine.dispose()


async def test_auto_mode_asks_for_keys_once_the_first_one_exists(
    database_url: str, fake_model: FakeModelServer
) -> None:
    clock = ManualClock()
    server = await start_server(database_url, clock, fake_model)
    target = f"127.0.0.1:{server.port}"
    try:
        async with channel(target) as anonymous:
            stub = assistant_pb2_grpc.AssistantServiceStub(anonymous)
            made = await stub.CreateAssistant(assistant_pb2.CreateAssistantRequest(model="m"))
            database = Database(database_url)
            try:
                key, _ = admin.create_key(database, "team", int(clock.now()))
            finally:
                database.dispose()
            clock.advance(2.5)
            await expect_code(
                stub.ListAssistants(assistant_pb2.ListAssistantsRequest()), UNAUTHENTICATED
            )
        async with channel(target, key) as keyed:
            stub = assistant_pb2_grpc.AssistantServiceStub(keyed)
            # The key's project is not the default project the anonymous caller wrote to.
            listed = await stub.ListAssistants(assistant_pb2.ListAssistantsRequest())
            assert list(listed.data) == []
            await expect_code(
                stub.GetAssistant(assistant_pb2.GetAssistantRequest(assistant_id=made.id)),
                grpc.StatusCode.NOT_FOUND,
            )
    finally:
        await server.stop(0)


async def test_required_mode_without_any_key_refuses_everything(
    database_url: str, fake_model: FakeModelServer
) -> None:
    server = await start_server(database_url, ManualClock(), fake_model, auth="required")
    try:
        async with channel(f"127.0.0.1:{server.port}") as anonymous:
            stub = assistant_pb2_grpc.AssistantServiceStub(anonymous)
            error = await expect_code(
                stub.ListAssistants(assistant_pb2.ListAssistantsRequest()), UNAUTHENTICATED
            )
            assert error.details() == MISSING
    finally:
        await server.stop(0)


async def test_disabled_mode_ignores_keys(secured: Secured, fake_model: FakeModelServer) -> None:
    # A second server on the same database (which has keys) with authentication disabled.
    server = await start_server(secured.database_url, ManualClock(), fake_model, auth="disabled")
    try:
        for key in (None, secured.keys.revoked, "garbage"):
            async with channel(f"127.0.0.1:{server.port}", key) as any_channel:
                stub = assistant_pb2_grpc.AssistantServiceStub(any_channel)
                await stub.ListAssistants(assistant_pb2.ListAssistantsRequest())
    finally:
        await server.stop(0)
