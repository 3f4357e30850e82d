"""Requests no client library would send get a clear answer, never UNKNOWN or INTERNAL."""

from __future__ import annotations

import grpc

from assistants_grpc.contract.pb import assistant_pb2, run_pb2, thread_pb2
from tests.integration.helpers import violated_fields
from tests.security.conftest import Secured, make_objects
from tests.security.helpers import channel, expect_code

GET_ASSISTANT = "/assistants.v1.AssistantService/GetAssistant"
CREATE_ASSISTANT = "/assistants.v1.AssistantService/CreateAssistant"


def _raw(open_channel: grpc.aio.Channel, method: str) -> grpc.aio.UnaryUnaryMultiCallable:
    return open_channel.unary_unary(method)  # bytes in, bytes out


async def test_a_request_that_does_not_parse_is_invalid_argument(secured: Secured) -> None:
    bad_utf8 = b"\x0a\x02\xff\xfe"  # field 1 (assistant_id), invalid UTF-8
    corrupt = b"\x0a\xff\xff\xff\xff\x0f"
    async with channel(secured.target, secured.keys.alpha) as keyed:
        for payload in (bad_utf8, corrupt):
            error = await expect_code(
                _raw(keyed, GET_ASSISTANT)(payload), grpc.StatusCode.INVALID_ARGUMENT
            )
            assert violated_fields(error) == ["request"]
        nested = assistant_pb2.CreateAssistantRequest(model="m")
        node = nested.response_format.json_schema.schema
        for _ in range(60):  # past protobuf's recursion limit when the server parses it
            node = node.fields["a"].struct_value
        node.fields["leaf"].bool_value = True
        await expect_code(
            _raw(keyed, CREATE_ASSISTANT)(nested.SerializeToString()),
            grpc.StatusCode.INVALID_ARGUMENT,
        )
    # Without a key the caller learns nothing, not even that the request was malformed.
    async with channel(secured.target) as anonymous:
        await expect_code(_raw(anonymous, GET_ASSISTANT)(bad_utf8), grpc.StatusCode.UNAUTHENTICATED)


async def test_ids_that_cannot_be_ids_are_not_found(secured: Secured) -> None:
    s = secured.stubs(secured.keys.alpha)
    ids = await make_objects(s)
    for hostile in ("\x00", "thread_\x00", "x" * 100_000, "' OR 1=1 --", "%", "../../etc"):
        error = await expect_code(
            s.threads.GetThread(thread_pb2.GetThreadRequest(thread_id=hostile)),
            grpc.StatusCode.NOT_FOUND,
        )
        assert len(error.details() or "") <= 400  # the echo is clipped
        await expect_code(
            s.runs.GetRun(run_pb2.GetRunRequest(thread_id=ids.thread, run_id=hostile)),
            grpc.StatusCode.NOT_FOUND,
        )
        await expect_code(
            s.threads.ListThreads(thread_pb2.ListThreadsRequest(after=hostile)),
            grpc.StatusCode.INVALID_ARGUMENT,
        )
    error = await expect_code(
        s.assistants.CreateAssistant(assistant_pb2.CreateAssistantRequest(model="m\x00")),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert violated_fields(error) == ["model"]


async def test_sequence_numbers_past_32_bits_are_invalid(secured: Secured) -> None:
    s = secured.stubs(secured.keys.alpha)
    ids = await make_objects(s)
    watch = run_pb2.WatchRunRequest(thread_id=ids.thread, run_id=ids.run, after_sequence=2**31)
    error = await expect_code(_drain(s.runs.WatchRun(watch)), grpc.StatusCode.INVALID_ARGUMENT)
    assert violated_fields(error) == ["after_sequence"]


async def _drain(stream: object) -> None:
    async for _ in stream:  # type: ignore[attr-defined]
        pass
