"""Thread use cases. A thread is created with its first messages in one transaction and deleted
with everything under it; whoever streams one of its runs at that moment is told (NOT_FOUND)
rather than left waiting for events that will never come. A thread belongs to the project it
was created in; every use case takes the caller's project first and sees only that project's
threads."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from sqlalchemy import Connection, bindparam, select

from assistants_grpc.contract.pb import message_pb2, thread_pb2
from assistants_grpc.events.bus import EventBus
from assistants_grpc.services import validation as check
from assistants_grpc.services.deps import Dependencies
from assistants_grpc.services.errors import NotFoundError
from assistants_grpc.services.listing import list_in
from assistants_grpc.services.messages import (
    check_message_inputs,
    insert_messages,
    new_messages,
)
from assistants_grpc.services.scope import get_thread_row
from assistants_grpc.services.vector_stores import (
    THREAD_STORE_EXPIRY_DAYS,
    attach_to_thread_store,
    file_search_attachments,
    make_resource_stores,
)
from assistants_grpc.store import repository as repo
from assistants_grpc.store.mapping import thread_from_row, thread_values

_RUNS_OF_THREAD = select(repo.RUNS.c.id).where(repo.RUNS.c.thread_id == bindparam("thread_id"))


class TurnStopper(Protocol):
    """What deleting a thread needs from the engine's scheduler."""

    def on_deleted(self, run_id: str) -> None:
        """The run went with its thread: stop its turn if it executes here."""
        ...


ThreadDeletedHook = Callable[[str], Awaitable[None]]
"""Called with a deleted thread's id after the commit (the code_interpreter ends its session)."""


class ThreadService:
    def __init__(self, deps: Dependencies, bus: EventBus, scheduler: TurnStopper) -> None:
        self._deps = deps
        self._bus = bus
        self._scheduler = scheduler
        # Owners of per-thread state outside the database add theirs here (wiring).
        self.on_deleted: list[ThreadDeletedHook] = []

    def validate_create(
        self, v: check.Violations, request: thread_pb2.CreateThreadRequest | None, prefix: str
    ) -> None:
        """The rules of a new thread; `prefix` places its fields ("thread." inside a run)."""
        if request is None:
            return
        check_message_inputs(v, f"{prefix}messages", request.messages, self._deps.limits)
        if request.HasField("tool_resources"):
            check.check_tool_resources(
                v, f"{prefix}tool_resources", request.tool_resources, create_form=True
            )
        check.check_metadata(v, f"{prefix}metadata", request.metadata)

    def _thread(self, request: thread_pb2.CreateThreadRequest) -> thread_pb2.Thread:
        thread = thread_pb2.Thread(
            id=self._deps.new_id("thread"), created_at=self._deps.now(), metadata=request.metadata
        )
        if request.HasField("tool_resources"):
            thread.tool_resources.CopyFrom(request.tool_resources)
        return thread

    async def new_thread(
        self, request: thread_pb2.CreateThreadRequest
    ) -> tuple[thread_pb2.Thread, list[message_pb2.Message], list[int]]:
        """The new thread and its messages (with token counts), ready to insert."""
        thread = self._thread(request)
        counted = await new_messages(self._deps, thread.id, request.messages, thread.created_at)
        return thread, [m for m, _ in counted], [n for _, n in counted]

    def insert(
        self,
        connection: Connection,
        project: str,
        thread: thread_pb2.Thread,
        messages: list[message_pb2.Message],
        counts: list[int],
    ) -> None:
        """Insert the thread and its messages; the create form's vector_stores, and the files of
        messages attached for file_search, become the thread's store (expiring 7 days after its
        last use), named in its tool_resources."""
        deps = self._deps
        queued = thread.HasField("tool_resources") and make_resource_stores(
            connection,
            deps,
            project,
            thread.tool_resources,
            expires_after_days=THREAD_STORE_EXPIRY_DAYS,
        )
        attached = [f for m in messages for f in file_search_attachments(m.attachments)]
        if attached:
            attach_to_thread_store(connection, deps, project, thread.tool_resources, attached)
            queued = True
        repo.insert_row(connection, repo.THREADS, thread_values(thread) | {"project": project})
        insert_messages(connection, messages, counts)
        if queued:
            deps.wake_ingestion()

    async def create(
        self, project: str, request: thread_pb2.CreateThreadRequest
    ) -> thread_pb2.Thread:
        v = check.Violations()
        self.validate_create(v, request, "")
        v.raise_if_any()
        thread, messages, counts = await self.new_thread(request)
        await self._deps.database.transaction(
            lambda c: self.insert(c, project, thread, messages, counts)
        )
        return thread

    async def get(self, project: str, thread_id: str) -> thread_pb2.Thread:
        row = await self._deps.database.transaction(lambda c: get_thread_row(c, project, thread_id))
        return thread_from_row(row)

    async def list(
        self, project: str, request: thread_pb2.ListThreadsRequest
    ) -> thread_pb2.ListThreadsResponse:
        return await self._deps.database.transaction(
            lambda c: list_in(
                c,
                request,
                repo.THREADS,
                repo.in_project(repo.THREADS, project),
                thread_from_row,
                thread_pb2.ListThreadsResponse(),
            )
        )

    async def update(
        self, project: str, request: thread_pb2.UpdateThreadRequest
    ) -> thread_pb2.Thread:
        v = check.Violations()
        check.check_required_id(v, "thread_id", request.thread_id)
        if request.HasField("tool_resources"):
            check.check_tool_resources(
                v, "tool_resources", request.tool_resources, create_form=False
            )
        if request.HasField("metadata"):
            check.check_metadata(v, "metadata", request.metadata.values)
        v.raise_if_any()

        def work(connection: Connection) -> thread_pb2.Thread:
            thread = thread_from_row(get_thread_row(connection, project, request.thread_id))
            if request.HasField("tool_resources"):
                thread.tool_resources.CopyFrom(request.tool_resources)
            if request.HasField("metadata"):
                thread.metadata.clear()
                thread.metadata.update(request.metadata.values)
            repo.update_by_id(connection, repo.THREADS, thread.id, thread_values(thread))
            return thread

        return await self._deps.database.transaction(work)

    async def delete(self, project: str, thread_id: str) -> thread_pb2.DeleteThreadResponse:
        def work(connection: Connection) -> list[str] | None:
            """The ids of the deleted thread's runs; None if the project has no such thread."""
            # The thread's lock first: a run created meanwhile either is in the list or waits
            # and then finds no thread.
            exists, _ = repo.lock_thread_for_write(connection, thread_id, project=project)
            if not exists:
                return None
            run_ids = list(connection.execute(_RUNS_OF_THREAD, {"thread_id": thread_id}).scalars())
            repo.delete_thread_cascade(connection, thread_id)
            return run_ids

        run_ids = (
            await self._deps.database.transaction(work) if check.plausible_id(thread_id) else None
        )
        if run_ids is None:
            raise NotFoundError("thread", thread_id)
        # After the commit: whoever streams one of these runs ends now (NOT_FOUND), here and on
        # the other replicas, and a turn executing one stops (its model stream closes now).
        for run_id in run_ids:
            self._bus.forget(run_id)
            self._scheduler.on_deleted(run_id)
        for hook in self.on_deleted:
            await hook(thread_id)
        return thread_pb2.DeleteThreadResponse(id=thread_id, deleted=True)


__all__ = ["ThreadDeletedHook", "ThreadService", "TurnStopper"]
