"""Errors arrive as exceptions with the code, the message and the BadRequest field violations;
reads are retried on UNAVAILABLE, writes are not; the API key travels as metadata."""

from __future__ import annotations

import grpc
import pytest
from assistants_grpc_client import (
    AssistantsError,
    AsyncClient,
    Client,
    ErrorInfo,
    FailedPreconditionError,
    FieldViolation,
    InvalidArgumentError,
    NotFoundError,
    UnavailableError,
)
from assistants_grpc_client._status import parse_status
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from assistants_grpc.fake_model import HangReply
from tests.client.conftest import in_thread
from tests.client.scripted import ScriptedServer
from tests.conftest import RunningServer


async def test_status_codes_become_exception_classes(
    running: RunningServer, client: Client
) -> None:
    running.model.push(HangReply(30))

    def flow() -> None:
        with pytest.raises(NotFoundError) as missing:
            client.assistants.retrieve("asst_missing")
        assert missing.value.code == grpc.StatusCode.NOT_FOUND
        assert missing.value.message == "No assistant found with id 'asst_missing'."
        assert isinstance(missing.value, AssistantsError)
        assert missing.value.error_info is not None
        assert missing.value.error_info.domain == "assistants-grpc"

        with pytest.raises(InvalidArgumentError) as invalid:
            client.assistants.create(model="gpt-4o", temperature=3, name="n" * 300)
        fields = {v.field for v in invalid.value.field_violations}
        assert fields == {"temperature", "name"}
        assert "INVALID_ARGUMENT" in str(invalid.value)

        assistant = client.assistants.create(model="gpt-4o")
        thread = client.threads.create()
        run = client.runs.create(thread.id, assistant.id)
        with pytest.raises(FailedPreconditionError, match="is active"):
            client.messages.create(thread.id, role="user", content="not now")
        client.runs.cancel(run.id, thread_id=thread.id)

    await in_thread(flow)


async def test_async_errors(aclient: AsyncClient) -> None:
    with pytest.raises(NotFoundError):
        await aclient.threads.retrieve("thread_missing")
    with pytest.raises(InvalidArgumentError) as invalid:
        await aclient.assistants.list(limit=101)
    assert [v.field for v in invalid.value.field_violations] == ["limit"]


def test_bad_inputs_fail_before_any_call() -> None:
    with Client("127.0.0.1:1") as client:
        with pytest.raises(TypeError, match="unexpected keyword"):
            client.assistants.create(model="m", colour="red")  # type: ignore[call-arg]
        with pytest.raises(ValueError, match="unknown role"):
            client.messages.create("thread_1", role="system", content="x")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="unknown tool type"):
            client.assistants.create(model="m", tools=[{"type": "web_search"}])


async def test_reads_retry_on_unavailable_and_writes_do_not() -> None:
    async with ScriptedServer() as server:
        script = server.script
        async with AsyncClient(server.target, api_key="sk-test", max_retries=2) as client:
            script.unavailable = 2
            assistant = await client.assistants.retrieve("asst_1")
            assert assistant.id == "asst_1"
            assert script.names() == ["GetAssistant"] * 3

            script.calls.clear()
            script.unavailable = 3
            with pytest.raises(UnavailableError):
                await client.assistants.retrieve("asst_1")
            assert script.names() == ["GetAssistant"] * 3

            script.calls.clear()
            script.unavailable = 1
            assert (await client.assistants.list()).data == []
            assert script.names() == ["ListAssistants"] * 2

            script.calls.clear()
            script.unavailable = 1
            with pytest.raises(UnavailableError):
                await client.assistants.create(model="m")
            assert script.names() == ["CreateAssistant"]

            assert all(meta.get("authorization") == "Bearer sk-test" for _, meta in script.calls)

        def blocking() -> None:
            with Client(server.target, api_key="sk-sync", max_retries=1) as sync:
                script.calls.clear()
                script.unavailable = 1
                assert sync.assistants.retrieve("asst_2").id == "asst_2"
                script.unavailable = 1
                with pytest.raises(UnavailableError):
                    sync.assistants.create(model="m")
            assert script.names() == ["GetAssistant", "GetAssistant", "CreateAssistant"]
            assert {meta.get("authorization") for _, meta in script.calls} == {"Bearer sk-sync"}

        await in_thread(blocking)

        async with AsyncClient(server.target) as anonymous:
            script.calls.clear()
            await anonymous.assistants.retrieve("asst_1")
            assert "authorization" not in script.calls[0][1]


def _packed(message: object) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)  # type: ignore[arg-type]
    return packed


def test_rich_status_is_read_without_googleapis_protos() -> None:
    status = status_pb2.Status(
        code=code_pb2.INVALID_ARGUMENT,
        message="Invalid 'limit'.",
        details=[
            _packed(error_details_pb2.RetryInfo()),  # a detail the client does not read
            _packed(
                error_details_pb2.BadRequest(
                    field_violations=[
                        error_details_pb2.BadRequest.FieldViolation(
                            field="limit", description="too big", reason="MAX"
                        )
                    ]
                )
            ),
            _packed(
                error_details_pb2.ErrorInfo(
                    reason="INVALIDARGUMENT", domain="assistants-grpc", metadata={"k": "v"}
                )
            ),
        ],
    )
    parsed = parse_status(status.SerializeToString())
    assert parsed is not None
    assert parsed.message == "Invalid 'limit'."
    assert parsed.field_violations == (FieldViolation("limit", "too big", "MAX"),)
    assert parsed.error_info == ErrorInfo("INVALIDARGUMENT", "assistants-grpc", {"k": "v"})
    assert parse_status(b"\xff\xff not a status") is None
