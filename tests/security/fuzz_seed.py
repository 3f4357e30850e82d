"""What the fuzz starts from: objects of every kind in three projects, the pool of ids the
fuzz's id fields are drawn from, and one valid request per RPC for it to mutate."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import grpc

from assistants_grpc.auth import admin
from assistants_grpc.contract.pb import (
    assistant_pb2,
    assistant_pb2_grpc,
    common_pb2,
    file_pb2,
    file_pb2_grpc,
    message_pb2,
    message_pb2_grpc,
    run_pb2,
    run_pb2_grpc,
    thread_pb2,
    thread_pb2_grpc,
    vector_store_pb2,
)
from assistants_grpc.store import migrate
from assistants_grpc.store.database import Database

PROJECTS = ("alpha", "beta", "gamma")


def make_keys(url: str) -> dict[str, str]:
    """A key of each project, and a revoked one."""
    database = Database(url)
    try:
        migrate.upgrade(database)
        made = {p: admin.create_key(database, p, 0) for p in (*PROJECTS, "revoked")}
        admin.revoke_key(database, made["revoked"][1].id, 0)
    finally:
        database.dispose()
    return {project: key for project, (key, _) in made.items()}


class Stubs:
    """Blocking stubs and the metadata of one key."""

    def __init__(self, channel: grpc.Channel, key: str) -> None:
        self.metadata = [("authorization", f"Bearer {key}")]
        self.assistants = assistant_pb2_grpc.AssistantServiceStub(channel)
        self.threads = thread_pb2_grpc.ThreadServiceStub(channel)
        self.messages = message_pb2_grpc.MessageServiceStub(channel)
        self.runs = run_pb2_grpc.RunServiceStub(channel)
        self.files = file_pb2_grpc.FileServiceStub(channel)


@dataclass
class Thread:
    id: str
    run: str
    steps: list[str]
    messages: list[str]
    calls: list[str]  # the tool calls a paused run waits for


@dataclass
class Project:
    assistant: str
    done: Thread  # its run completed
    paused: list[Thread] = field(default_factory=list)  # runs waiting for tool outputs
    files: list[str] = field(default_factory=list)

    def ids(self) -> list[str]:
        found = [self.assistant, *self.files]
        for thread in (self.done, *self.paused):
            found += [thread.id, thread.run, *thread.steps, *thread.messages, *thread.calls]
        return found


WEATHER = common_pb2.Tool(function=common_pb2.FunctionDefinition(name="get_weather"))


def _user(text: str) -> message_pb2.MessageInput:
    return message_pb2.MessageInput(
        role=message_pb2.MESSAGE_ROLE_USER, content=[message_pb2.MessageContentInput(text=text)]
    )


def _thread_with_run(s: Stubs, assistant: str, text: str) -> Thread:
    md = s.metadata
    thread = s.threads.CreateThread(
        thread_pb2.CreateThreadRequest(messages=[_user(text)]), metadata=md
    )
    run = s.runs.CreateRun(
        run_pb2.CreateRunRequest(thread_id=thread.id, assistant_id=assistant), metadata=md
    )
    run = _settled(s, thread.id, run.id)
    steps = s.runs.ListRunSteps(
        run_pb2.ListRunStepsRequest(thread_id=thread.id, run_id=run.id), metadata=md
    )
    listed = s.messages.ListMessages(
        message_pb2.ListMessagesRequest(thread_id=thread.id), metadata=md
    )
    return Thread(
        thread.id,
        run.id,
        [step.id for step in steps.data],
        [m.id for m in listed.data],
        [c.id for c in run.required_action.submit_tool_outputs.tool_calls],
    )


def _settled(s: Stubs, thread_id: str, run_id: str) -> run_pb2.Run:
    """The run once it completed or waits for tool outputs."""
    deadline = time.monotonic() + 30
    settled = (run_pb2.RUN_STATUS_COMPLETED, run_pb2.RUN_STATUS_REQUIRES_ACTION)
    while True:
        run = s.runs.GetRun(
            run_pb2.GetRunRequest(thread_id=thread_id, run_id=run_id), metadata=s.metadata
        )
        if run.status in settled:
            return run
        assert time.monotonic() < deadline, f"seed run stayed {run.status}"
        time.sleep(0.02)


def _upload(s: Stubs, data: bytes, filename: str) -> str:
    metadata = file_pb2.UploadFileMetadata(
        filename=filename, purpose=file_pb2.FILE_PURPOSE_ASSISTANTS
    )
    requests = [
        file_pb2.UploadFileRequest(metadata=metadata),
        file_pb2.UploadFileRequest(chunk=data),
    ]
    return str(s.files.UploadFile(iter(requests), metadata=s.metadata).id)


def seed(channel: grpc.Channel, keys: dict[str, str]) -> dict[str, Project]:
    projects = {}
    for name in PROJECTS:
        s = Stubs(channel, keys[name])
        assistant = s.assistants.CreateAssistant(
            assistant_pb2.CreateAssistantRequest(model="gpt-4o", tools=[WEATHER]),
            metadata=s.metadata,
        ).id
        done = _thread_with_run(s, assistant, "hello")
        paused = [_thread_with_run(s, assistant, "/tool get_weather {}") for _ in range(2)]
        files = [_upload(s, f"{name} {i}".encode(), f"{name}-{i}.txt") for i in range(3)]
        projects[name] = Project(assistant, done, paused, files)
    return projects


def id_pool(projects: dict[str, Project]) -> list[str]:
    """Every seeded id of every project, the same random parts under other prefixes, and ids
    that were never made."""
    ids = [i for project in projects.values() for i in project.ids()]
    prefixes = ("asst_", "thread_", "msg_", "run_", "step_", "call_", "file-")
    lookalikes = [p + ids[0].split("_", 1)[1] for p in prefixes]
    return [*ids, *lookalikes, "asst_" + "0" * 24, "x" * 64, "x" * 65]


def templates(p: Project) -> dict[str, Any]:
    """A valid request of project `p` for every RPC, by method name."""
    A, T, M, R, F = assistant_pb2, thread_pb2, message_pb2, run_pb2, file_pb2
    done, paused, cancel = p.done, p.paused[0], p.paused[1]
    parameters = common_pb2.Tool(function=common_pb2.FunctionDefinition(name="lookup"))
    parameters.function.parameters.update(
        {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}
    )
    on_done = {"thread_id": done.id, "run_id": done.run}
    return {
        "CreateAssistant": A.CreateAssistantRequest(
            model="gpt-4o",
            name="n",
            instructions="be brief",
            tools=[parameters],
            metadata={"k": "v"},
            temperature=1,
        ),
        "GetAssistant": A.GetAssistantRequest(assistant_id=p.assistant),
        "ListAssistants": A.ListAssistantsRequest(limit=5),
        "UpdateAssistant": A.UpdateAssistantRequest(assistant_id=p.assistant, name="renamed"),
        "DeleteAssistant": A.DeleteAssistantRequest(assistant_id=p.assistant),
        "CreateThread": T.CreateThreadRequest(messages=[_user("hi")], metadata={"k": "v"}),
        "GetThread": T.GetThreadRequest(thread_id=done.id),
        "ListThreads": T.ListThreadsRequest(limit=5),
        "UpdateThread": T.UpdateThreadRequest(
            thread_id=done.id, metadata=common_pb2.Metadata(values={"k": "v"})
        ),
        "DeleteThread": T.DeleteThreadRequest(thread_id=done.id),
        "CreateMessage": M.CreateMessageRequest(
            thread_id=done.id,
            role=M.MESSAGE_ROLE_USER,
            content=[M.MessageContentInput(text="more")],
        ),
        "GetMessage": M.GetMessageRequest(thread_id=done.id, message_id=done.messages[0]),
        "ListMessages": M.ListMessagesRequest(thread_id=done.id, limit=5),
        "UpdateMessage": M.UpdateMessageRequest(
            thread_id=done.id,
            message_id=done.messages[0],
            metadata=common_pb2.Metadata(values={"k": "v"}),
        ),
        "DeleteMessage": M.DeleteMessageRequest(thread_id=done.id, message_id=done.messages[0]),
        "CreateRun": R.CreateRunRequest(thread_id=done.id, assistant_id=p.assistant),
        "CreateRunStream": R.CreateRunRequest(thread_id=done.id, assistant_id=p.assistant),
        "CreateThreadAndRun": R.CreateThreadAndRunRequest(
            assistant_id=p.assistant, thread=R.ThreadInput(messages=[_user("hi")])
        ),
        "CreateThreadAndRunStream": R.CreateThreadAndRunRequest(
            assistant_id=p.assistant, thread=R.ThreadInput(messages=[_user("hi")])
        ),
        "GetRun": R.GetRunRequest(**on_done),
        "ListRuns": R.ListRunsRequest(thread_id=done.id, limit=5),
        "UpdateRun": R.UpdateRunRequest(**on_done, metadata=common_pb2.Metadata(values={"k": "v"})),
        "CancelRun": R.CancelRunRequest(thread_id=cancel.id, run_id=cancel.run),
        "SubmitToolOutputs": R.SubmitToolOutputsRequest(
            thread_id=paused.id,
            run_id=paused.run,
            tool_outputs=[R.ToolOutput(tool_call_id=c, output="sunny") for c in paused.calls],
        ),
        "SubmitToolOutputsStream": R.SubmitToolOutputsRequest(
            thread_id=paused.id,
            run_id=paused.run,
            tool_outputs=[R.ToolOutput(tool_call_id=c, output="sunny") for c in paused.calls],
        ),
        "WatchRun": R.WatchRunRequest(**on_done),
        "GetRunStep": R.GetRunStepRequest(**on_done, step_id=done.steps[0]),
        "ListRunSteps": R.ListRunStepsRequest(**on_done, limit=5),
        # UploadFile: the first message of a stream; the fuzz sends chunks after it.
        "UploadFile": F.UploadFileRequest(
            metadata=F.UploadFileMetadata(
                filename="fuzz.txt",
                purpose=F.FILE_PURPOSE_ASSISTANTS,
                expires_after=F.FileExpiresAfter(anchor="created_at", seconds=3600),
            )
        ),
        "GetFile": F.GetFileRequest(file_id=p.files[0]),
        "ListFiles": F.ListFilesRequest(limit=5, purpose=F.FILE_PURPOSE_ASSISTANTS),
        "DeleteFile": F.DeleteFileRequest(file_id=p.files[1]),
        "GetFileContent": F.GetFileContentRequest(file_id=p.files[2]),
        **_vector_store_templates(),
    }


def _vector_store_templates() -> dict[str, Any]:
    """Requests of the vector-store RPCs (on a store id nobody has: the fuzz checks the
    validation and the lookups, never INTERNAL)."""
    V = vector_store_pb2
    store, file, batch = "vs_" + "Q" * 24, "file-" + "Q" * 24, "vsfb_" + "Q" * 24
    on_file = {"vector_store_id": store, "file_id": file}
    on_batch = {"vector_store_id": store, "batch_id": batch}
    search = V.SearchVectorStoreRequest(vector_store_id=store, query=["what's NEAR -x?"])
    search.filters.type = V.ATTRIBUTE_FILTER_TYPE_EQ
    search.filters.key = "k"
    search.filters.value.string_value = "v"
    return {
        "CreateVectorStore": V.CreateVectorStoreRequest(name="n", metadata={"k": "v"}),
        "GetVectorStore": V.GetVectorStoreRequest(vector_store_id=store),
        "ListVectorStores": V.ListVectorStoresRequest(limit=5),
        "UpdateVectorStore": V.UpdateVectorStoreRequest(vector_store_id=store, name="x"),
        "DeleteVectorStore": V.DeleteVectorStoreRequest(vector_store_id=store),
        "SearchVectorStore": search,
        "CreateVectorStoreFile": V.CreateVectorStoreFileRequest(**on_file),
        "GetVectorStoreFile": V.GetVectorStoreFileRequest(**on_file),
        "ListVectorStoreFiles": V.ListVectorStoreFilesRequest(vector_store_id=store, limit=5),
        "UpdateVectorStoreFile": V.UpdateVectorStoreFileRequest(**on_file),
        "DeleteVectorStoreFile": V.DeleteVectorStoreFileRequest(**on_file),
        "GetVectorStoreFileContent": V.GetVectorStoreFileContentRequest(**on_file),
        "CreateVectorStoreFileBatch": V.CreateVectorStoreFileBatchRequest(
            vector_store_id=store, file_ids=[file]
        ),
        "GetVectorStoreFileBatch": V.GetVectorStoreFileBatchRequest(**on_batch),
        "CancelVectorStoreFileBatch": V.CancelVectorStoreFileBatchRequest(**on_batch),
        "ListVectorStoreFileBatchFiles": V.ListVectorStoreFileBatchFilesRequest(**on_batch),
    }


__all__ = ["PROJECTS", "Project", "Stubs", "id_pool", "make_keys", "seed", "templates"]
