"""Projects: a key never sees, lists, watches, changes or runs anything of another project.
Another project's id is NOT_FOUND word for word as an id that never existed."""

from __future__ import annotations

import grpc
from grpc_status import rpc_status

from assistants_grpc.contract.pb import (
    assistant_pb2,
    common_pb2,
    file_pb2,
    message_pb2,
    run_pb2,
    thread_pb2,
)
from tests.security.conftest import Secured, make_objects
from tests.security.helpers import Ids, every_rpc, expect_code

NOT_FOUND = grpc.StatusCode.NOT_FOUND
# RPCs that create in the caller's own project; everything else names an existing object.
CREATES_OWN = {
    "AssistantService/CreateAssistant",
    "ThreadService/CreateThread",
    "VectorStoreService/CreateVectorStore",
    "FileService/UploadFile",
}
LISTS_OWN = {
    "AssistantService/ListAssistants",
    "ThreadService/ListThreads",
    "VectorStoreService/ListVectorStores",
    "FileService/ListFiles",
}


def _kind_of_missing(name: str, ids: Ids) -> tuple[str, str]:
    """Which object the NOT_FOUND names: the top-level one the call starts from."""
    if name.startswith("AssistantService/") or name.startswith("RunService/CreateThreadAndRun"):
        return "assistant", ids.assistant
    if name.startswith("VectorStoreService/"):
        return "vector store", ids.vector_store
    if name.startswith("FileService/"):
        return "file", ids.file
    return "thread", ids.thread


async def test_another_projects_ids_are_not_found_by_every_rpc(secured: Secured) -> None:
    alpha = secured.stubs(secured.keys.alpha)
    beta = secured.stubs(secured.keys.beta)
    ids = await make_objects(alpha)
    for name, call in every_rpc().items():
        if name in CREATES_OWN or name in LISTS_OWN:
            continue
        error = await expect_code(call(beta, ids), NOT_FOUND)
        kind, object_id = _kind_of_missing(name, ids)
        assert error.details() == f"No {kind} found with id '{object_id}'.", name

    # Listing shows nothing of alpha, and alpha's objects are untouched.
    assert (
        list((await beta.assistants.ListAssistants(assistant_pb2.ListAssistantsRequest())).data)
        == []
    )
    assert list((await beta.threads.ListThreads(thread_pb2.ListThreadsRequest())).data) == []
    assert list((await beta.files.ListFiles(file_pb2.ListFilesRequest())).data) == []
    assert (
        b"".join(
            [
                c.data
                async for c in alpha.files.GetFileContent(
                    file_pb2.GetFileContentRequest(file_id=ids.file)
                )
            ]
        )
        == b"a file of the project"
    )
    assistant = await alpha.assistants.GetAssistant(
        assistant_pb2.GetAssistantRequest(assistant_id=ids.assistant)
    )
    assert not assistant.HasField("name")
    runs = await alpha.runs.ListRuns(run_pb2.ListRunsRequest(thread_id=ids.thread))
    assert [r.id for r in runs.data] == [ids.run]
    messages = await alpha.messages.ListMessages(
        message_pb2.ListMessagesRequest(thread_id=ids.thread)
    )
    assert ids.message in [m.id for m in messages.data]


async def test_the_not_found_is_the_same_as_for_an_id_that_never_existed(
    secured: Secured,
) -> None:
    alpha = secured.stubs(secured.keys.alpha)
    beta = secured.stubs(secured.keys.beta)
    ids = await make_objects(alpha)
    never = Ids(
        "asst_" + "Z" * 24,
        "thread_" + "Z" * 24,
        "msg_" + "Z" * 24,
        "run_" + "Z" * 24,
        "step_x",
        "file-" + "Z" * 24,
    )
    for name, call in every_rpc().items():
        if name in CREATES_OWN or name in LISTS_OWN:
            continue
        theirs = await expect_code(call(beta, ids), NOT_FOUND)
        missing = await expect_code(call(beta, never), NOT_FOUND)
        their_kind, their_id = _kind_of_missing(name, ids)
        kind, missing_id = _kind_of_missing(name, never)
        assert kind == their_kind
        assert theirs.details() == missing.details().replace(missing_id, their_id), name
        # The rich details (ErrorInfo) are identical too.
        assert _details(theirs) == _details(missing), name


def _details(error: grpc.aio.AioRpcError) -> list[bytes]:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    return [detail.SerializeToString() for detail in status.details]


async def test_a_run_may_only_use_an_assistant_of_its_own_project(secured: Secured) -> None:
    alpha = secured.stubs(secured.keys.alpha)
    beta = secured.stubs(secured.keys.beta)
    alpha_assistant = await alpha.assistants.CreateAssistant(
        assistant_pb2.CreateAssistantRequest(model="gpt-4o")
    )
    beta_thread = await beta.threads.CreateThread(thread_pb2.CreateThreadRequest())
    error = await expect_code(
        beta.runs.CreateRun(
            run_pb2.CreateRunRequest(thread_id=beta_thread.id, assistant_id=alpha_assistant.id)
        ),
        NOT_FOUND,
    )
    assert error.details() == f"No assistant found with id '{alpha_assistant.id}'."
    await expect_code(
        beta.runs.CreateThreadAndRun(
            run_pb2.CreateThreadAndRunRequest(assistant_id=alpha_assistant.id)
        ),
        NOT_FOUND,
    )
    # Nothing was written: beta still has its one thread, and it has no run.
    threads = await beta.threads.ListThreads(thread_pb2.ListThreadsRequest())
    assert [t.id for t in threads.data] == [beta_thread.id]
    runs = await beta.runs.ListRuns(run_pb2.ListRunsRequest(thread_id=beta_thread.id))
    assert list(runs.data) == []


async def test_each_project_lists_only_its_own(secured: Secured) -> None:
    alpha = secured.stubs(secured.keys.alpha)
    beta = secured.stubs(secured.keys.beta)
    mine = [
        (await alpha.assistants.CreateAssistant(assistant_pb2.CreateAssistantRequest(model="a"))).id
        for _ in range(3)
    ]
    theirs = [
        (await beta.assistants.CreateAssistant(assistant_pb2.CreateAssistantRequest(model="b"))).id
        for _ in range(2)
    ]
    asc = assistant_pb2.ListAssistantsRequest(order=common_pb2.LIST_ORDER_ASC)
    assert [a.id for a in (await alpha.assistants.ListAssistants(asc)).data] == mine
    assert [a.id for a in (await beta.assistants.ListAssistants(asc)).data] == theirs
    # Another project's id is no cursor of this list either.
    await expect_code(
        alpha.assistants.ListAssistants(assistant_pb2.ListAssistantsRequest(after=theirs[0])),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
