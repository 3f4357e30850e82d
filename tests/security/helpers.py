"""What the security tests share: channels that send a key, and a table of every RPC."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc

from assistants_grpc.contract.pb import (
    assistant_pb2,
    file_pb2,
    message_pb2,
    run_pb2,
    thread_pb2,
    vector_store_pb2,
    vector_store_pb2_grpc,
)
from assistants_grpc.server import SERVICE_NAMES
from tests.conftest import Stubs, stubs_for
from tests.integration.files_helpers import download, upload
from tests.integration.helpers import text_input


def _with_metadata(details: Any, value: str) -> Any:
    metadata = [*(details.metadata or ()), ("authorization", value)]
    return grpc.aio.ClientCallDetails(
        details.method, details.timeout, metadata, details.credentials, details.wait_for_ready
    )


# Two classes: grpc.aio files an interceptor under the first kind it is an instance of, so one
# class implementing both would never see the streaming calls.
class _UnaryBearer(grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    def __init__(self, value: str) -> None:
        self._value = value

    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(_with_metadata(details, self._value), request)


class _StreamBearer(grpc.aio.UnaryStreamClientInterceptor):  # type: ignore[misc]
    def __init__(self, value: str) -> None:
        self._value = value

    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(_with_metadata(details, self._value), request)


class _UploadBearer(grpc.aio.StreamUnaryClientInterceptor):  # type: ignore[misc]
    def __init__(self, value: str) -> None:
        self._value = value

    async def intercept_stream_unary(
        self, continuation: Any, details: Any, request_iterator: Any
    ) -> Any:
        return await continuation(_with_metadata(details, self._value), request_iterator)


def channel(
    target: str,
    key: str | None = None,
    *,
    authorization: str | None = None,
    credentials: grpc.ChannelCredentials | None = None,
) -> grpc.aio.Channel:
    """A channel to `target` whose calls carry `key` (or a raw authorization value)."""
    value = authorization if authorization is not None else (f"Bearer {key}" if key else None)
    interceptors = (
        [_UnaryBearer(value), _StreamBearer(value), _UploadBearer(value)]
        if value is not None
        else None
    )
    if credentials is not None:
        return grpc.aio.secure_channel(target, credentials, interceptors=interceptors)
    return grpc.aio.insecure_channel(target, interceptors=interceptors)


def stubs(target: str, key: str | None = None, **options: Any) -> Stubs:
    return stubs_for(channel(target, key, **options))


@dataclass(frozen=True)
class Ids:
    """Existing objects of one project: one of each kind, with a finished run."""

    assistant: str
    thread: str
    message: str
    run: str
    step: str
    file: str = "file-" + "x" * 24
    vector_store: str = "vs_" + "Y" * 24
    batch: str = "vsfb_" + "Y" * 24


Call = Callable[[Stubs, Ids], Awaitable[Any]]


async def _drain(stream: Any) -> list[Any]:
    return [item async for item in stream]


def every_rpc() -> dict[str, Call]:
    """Every RPC of the services, called on the given ids (the request is well formed)."""
    A, T, M, R, F = assistant_pb2, thread_pb2, message_pb2, run_pb2, file_pb2
    return {
        "AssistantService/CreateAssistant": lambda s, i: s.assistants.CreateAssistant(
            A.CreateAssistantRequest(model="gpt-4o")
        ),
        "AssistantService/GetAssistant": lambda s, i: s.assistants.GetAssistant(
            A.GetAssistantRequest(assistant_id=i.assistant)
        ),
        "AssistantService/ListAssistants": lambda s, i: s.assistants.ListAssistants(
            A.ListAssistantsRequest()
        ),
        "AssistantService/UpdateAssistant": lambda s, i: s.assistants.UpdateAssistant(
            A.UpdateAssistantRequest(assistant_id=i.assistant, name="changed")
        ),
        "AssistantService/DeleteAssistant": lambda s, i: s.assistants.DeleteAssistant(
            A.DeleteAssistantRequest(assistant_id=i.assistant)
        ),
        "ThreadService/CreateThread": lambda s, i: s.threads.CreateThread(T.CreateThreadRequest()),
        "ThreadService/GetThread": lambda s, i: s.threads.GetThread(
            T.GetThreadRequest(thread_id=i.thread)
        ),
        "ThreadService/ListThreads": lambda s, i: s.threads.ListThreads(T.ListThreadsRequest()),
        "ThreadService/UpdateThread": lambda s, i: s.threads.UpdateThread(
            T.UpdateThreadRequest(thread_id=i.thread)
        ),
        "ThreadService/DeleteThread": lambda s, i: s.threads.DeleteThread(
            T.DeleteThreadRequest(thread_id=i.thread)
        ),
        "MessageService/CreateMessage": lambda s, i: s.messages.CreateMessage(
            M.CreateMessageRequest(
                thread_id=i.thread,
                role=M.MESSAGE_ROLE_USER,
                content=[M.MessageContentInput(text="hi")],
            )
        ),
        "MessageService/GetMessage": lambda s, i: s.messages.GetMessage(
            M.GetMessageRequest(thread_id=i.thread, message_id=i.message)
        ),
        "MessageService/ListMessages": lambda s, i: s.messages.ListMessages(
            M.ListMessagesRequest(thread_id=i.thread)
        ),
        "MessageService/UpdateMessage": lambda s, i: s.messages.UpdateMessage(
            M.UpdateMessageRequest(thread_id=i.thread, message_id=i.message)
        ),
        "MessageService/DeleteMessage": lambda s, i: s.messages.DeleteMessage(
            M.DeleteMessageRequest(thread_id=i.thread, message_id=i.message)
        ),
        "RunService/CreateRun": lambda s, i: s.runs.CreateRun(
            R.CreateRunRequest(thread_id=i.thread, assistant_id=i.assistant)
        ),
        "RunService/CreateRunStream": lambda s, i: _drain(
            s.runs.CreateRunStream(R.CreateRunRequest(thread_id=i.thread, assistant_id=i.assistant))
        ),
        "RunService/CreateThreadAndRun": lambda s, i: s.runs.CreateThreadAndRun(
            R.CreateThreadAndRunRequest(
                assistant_id=i.assistant,
                thread=R.ThreadInput(messages=[text_input("hi")]),
            )
        ),
        "RunService/CreateThreadAndRunStream": lambda s, i: _drain(
            s.runs.CreateThreadAndRunStream(R.CreateThreadAndRunRequest(assistant_id=i.assistant))
        ),
        "RunService/GetRun": lambda s, i: s.runs.GetRun(
            R.GetRunRequest(thread_id=i.thread, run_id=i.run)
        ),
        "RunService/ListRuns": lambda s, i: s.runs.ListRuns(R.ListRunsRequest(thread_id=i.thread)),
        "RunService/UpdateRun": lambda s, i: s.runs.UpdateRun(
            R.UpdateRunRequest(thread_id=i.thread, run_id=i.run)
        ),
        "RunService/CancelRun": lambda s, i: s.runs.CancelRun(
            R.CancelRunRequest(thread_id=i.thread, run_id=i.run)
        ),
        "RunService/SubmitToolOutputs": lambda s, i: s.runs.SubmitToolOutputs(
            R.SubmitToolOutputsRequest(thread_id=i.thread, run_id=i.run)
        ),
        "RunService/SubmitToolOutputsStream": lambda s, i: _drain(
            s.runs.SubmitToolOutputsStream(
                R.SubmitToolOutputsRequest(thread_id=i.thread, run_id=i.run)
            )
        ),
        "RunService/WatchRun": lambda s, i: _drain(
            s.runs.WatchRun(R.WatchRunRequest(thread_id=i.thread, run_id=i.run))
        ),
        "RunService/GetRunStep": lambda s, i: s.runs.GetRunStep(
            R.GetRunStepRequest(thread_id=i.thread, run_id=i.run, step_id=i.step)
        ),
        "RunService/ListRunSteps": lambda s, i: s.runs.ListRunSteps(
            R.ListRunStepsRequest(thread_id=i.thread, run_id=i.run)
        ),
        "FileService/UploadFile": lambda s, i: upload(s, b"uploaded", "u.txt"),
        "FileService/GetFile": lambda s, i: s.files.GetFile(F.GetFileRequest(file_id=i.file)),
        "FileService/ListFiles": lambda s, i: s.files.ListFiles(F.ListFilesRequest()),
        "FileService/DeleteFile": lambda s, i: s.files.DeleteFile(
            F.DeleteFileRequest(file_id=i.file)
        ),
        "FileService/GetFileContent": lambda s, i: download(s, i.file),
        **_vector_store_rpcs(),
    }


def _vector_store_rpcs() -> dict[str, Call]:
    V = vector_store_pb2

    def stub(s: Stubs) -> Any:
        return vector_store_pb2_grpc.VectorStoreServiceStub(s.channel)

    def on_file(i: Ids) -> dict[str, str]:
        return {"vector_store_id": i.vector_store, "file_id": i.file}

    def on_batch(i: Ids) -> dict[str, str]:
        return {"vector_store_id": i.vector_store, "batch_id": i.batch}

    return {
        "VectorStoreService/CreateVectorStore": lambda s, i: stub(s).CreateVectorStore(
            V.CreateVectorStoreRequest(name="n")
        ),
        "VectorStoreService/GetVectorStore": lambda s, i: stub(s).GetVectorStore(
            V.GetVectorStoreRequest(vector_store_id=i.vector_store)
        ),
        "VectorStoreService/ListVectorStores": lambda s, i: stub(s).ListVectorStores(
            V.ListVectorStoresRequest()
        ),
        "VectorStoreService/UpdateVectorStore": lambda s, i: stub(s).UpdateVectorStore(
            V.UpdateVectorStoreRequest(vector_store_id=i.vector_store, name="x")
        ),
        "VectorStoreService/DeleteVectorStore": lambda s, i: stub(s).DeleteVectorStore(
            V.DeleteVectorStoreRequest(vector_store_id=i.vector_store)
        ),
        "VectorStoreService/SearchVectorStore": lambda s, i: stub(s).SearchVectorStore(
            V.SearchVectorStoreRequest(vector_store_id=i.vector_store, query=["q"])
        ),
        "VectorStoreService/CreateVectorStoreFile": lambda s, i: stub(s).CreateVectorStoreFile(
            V.CreateVectorStoreFileRequest(**on_file(i))
        ),
        "VectorStoreService/GetVectorStoreFile": lambda s, i: stub(s).GetVectorStoreFile(
            V.GetVectorStoreFileRequest(**on_file(i))
        ),
        "VectorStoreService/ListVectorStoreFiles": lambda s, i: stub(s).ListVectorStoreFiles(
            V.ListVectorStoreFilesRequest(vector_store_id=i.vector_store)
        ),
        "VectorStoreService/UpdateVectorStoreFile": lambda s, i: stub(s).UpdateVectorStoreFile(
            V.UpdateVectorStoreFileRequest(**on_file(i))
        ),
        "VectorStoreService/DeleteVectorStoreFile": lambda s, i: stub(s).DeleteVectorStoreFile(
            V.DeleteVectorStoreFileRequest(**on_file(i))
        ),
        "VectorStoreService/GetVectorStoreFileContent": lambda s, i: stub(
            s
        ).GetVectorStoreFileContent(V.GetVectorStoreFileContentRequest(**on_file(i))),
        "VectorStoreService/CreateVectorStoreFileBatch": lambda s, i: stub(
            s
        ).CreateVectorStoreFileBatch(
            V.CreateVectorStoreFileBatchRequest(vector_store_id=i.vector_store, file_ids=[i.file])
        ),
        "VectorStoreService/GetVectorStoreFileBatch": lambda s, i: stub(s).GetVectorStoreFileBatch(
            V.GetVectorStoreFileBatchRequest(**on_batch(i))
        ),
        "VectorStoreService/CancelVectorStoreFileBatch": lambda s, i: stub(
            s
        ).CancelVectorStoreFileBatch(V.CancelVectorStoreFileBatchRequest(**on_batch(i))),
        "VectorStoreService/ListVectorStoreFileBatchFiles": lambda s, i: stub(
            s
        ).ListVectorStoreFileBatchFiles(V.ListVectorStoreFileBatchFilesRequest(**on_batch(i))),
    }


def all_rpc_names() -> set[str]:
    """`Service/Method` of every RPC the contract defines, from the descriptors."""
    from google.protobuf import descriptor_pool

    pool = descriptor_pool.Default()
    names = set()
    for full_name in SERVICE_NAMES:
        service = pool.FindServiceByName(full_name)
        names |= {f"{service.name}/{method.name}" for method in service.methods}
    return names


async def expect_code(call: Awaitable[Any], code: grpc.StatusCode) -> grpc.aio.AioRpcError:
    try:
        await call
    except grpc.aio.AioRpcError as error:
        assert error.code() == code, f"{error.code()}: {error.details()}"
        return error
    raise AssertionError(f"expected {code}, the call succeeded")
