"""Run use cases: create (the thread lock and the first events in one transaction), read, list,
update, cancel, submit tool outputs, watch, and the run steps.

The streaming use cases (`create_stream`, `create_thread_and_run_stream`,
`submit_tool_outputs_stream`, `watch`) are awaited for their checks and writes, which raise
before anything is streamed, and return the run's events: a segment's (up to the `done` after
`requires_action` or the end) or the whole run's. A stream whose thread is deleted meanwhile
ends with NOT_FOUND ("was deleted"). Every face streams from these same calls.

Runs live under a thread, so every use case takes the caller's project first and checks the
thread belongs to it; a run may only use an assistant of the same project. Creating a run only
writes it `queued` and hands it to the scheduler; the engine executes it (by id: it never needs
to know projects). Every state change writes its events to the run's log in the same
transaction, and they are published once it commits.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, Protocol

from sqlalchemy import Connection, RowMapping, select
from sqlalchemy.exc import IntegrityError

from assistants_grpc.contract.pb import run_pb2, thread_pb2
from assistants_grpc.engine import transitions as tr
from assistants_grpc.events import log
from assistants_grpc.events.bus import EventBus, RunDeletedError, Until
from assistants_grpc.observability import tracing
from assistants_grpc.services import validation as check
from assistants_grpc.services.assistants import reasoning_effort
from assistants_grpc.services.deps import Dependencies
from assistants_grpc.services.errors import (
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
)
from assistants_grpc.services.listing import list_in
from assistants_grpc.services.messages import (
    ensure_no_active_run,
    insert_messages,
    new_messages,
)
from assistants_grpc.services.run_config import (
    INCLUDE_FILE_SEARCH_CONTENT,
    RunRequest,
    check_run_request,
    effective_run,
)
from assistants_grpc.services.scope import get_assistant_row, require_thread
from assistants_grpc.services.threads import ThreadService
from assistants_grpc.store import repository as repo
from assistants_grpc.store.mapping import (
    assistant_from_row,
    json_or_none,
    run_from_row,
    run_values,
    step_from_row,
)
from assistants_grpc.store.run_states import RunMoved, RunStatus, can_move

RunEvent = run_pb2.RunEvent
MAX_SEQUENCE = 2**31 - 1
# What a transaction that queues a run returns: its answer to the caller and, when a worker was
# kept for the run, what that worker starts from; then the events to publish.
Queued = tuple[tuple[Any, Any], list[RunEvent]]


class StartSlot(Protocol):
    """A worker kept for a run being queued (the engine's Reservation): the queuing
    transaction starts the run, and the worker continues it once that commits."""

    def lease_values(self) -> dict[str, Any]: ...
    def load(self, connection: Connection, run_row: Mapping[str, Any]) -> Any: ...
    def hand_over(self, started: Any) -> None: ...
    def release(self) -> None: ...


class Scheduler(Protocol):
    """What the run use cases need from the engine's scheduler."""

    def enqueue(self, run_id: str) -> None: ...
    def cancel(self, run_id: str) -> None: ...
    def reserve(self, run_id: str) -> StartSlot | None: ...


class RunService:
    def __init__(
        self,
        deps: Dependencies,
        threads: ThreadService,
        scheduler: Scheduler,
        bus: EventBus,
        *,
        expires_in: int,
    ) -> None:
        self._deps = deps
        self._threads = threads
        self._scheduler = scheduler
        self._bus = bus
        self._expires_in = expires_in

    async def _commit(self, run_id: str, work: Any) -> Any:
        """One transaction returning `(result, events)`; publishes the events after commit."""
        result, events = await self._deps.database.transaction(work)
        self._bus.publish(run_id, events)
        return result

    # --- create ---------------------------------------------------------------------------

    async def create(self, project: str, request: run_pb2.CreateRunRequest) -> run_pb2.Run:
        v = check.Violations()
        check_run_request(v, request, self._deps.limits)
        v.raise_if_any()
        now = self._deps.now()
        additional = await new_messages(
            self._deps, request.thread_id, request.additional_messages, now
        )
        run_id = self._deps.new_id("run")

        def work(connection: Connection, slot: StartSlot | None) -> Queued:
            ensure_no_active_run(connection, project, request.thread_id, starting_run=True)
            run, stored = self._new_run(
                connection, project, request, run_id, request.thread_id, now
            )
            if additional:
                insert_messages(connection, [m for m, _ in additional], [n for _, n in additional])
            return self._insert_run(connection, run, [], slot, stored)

        return await self._commit_new_run(run_id, request.thread_id, work)

    async def _commit_new_run(
        self,
        run_id: str,
        thread_id: str,
        work: Callable[[Connection, StartSlot | None], Queued],
    ) -> run_pb2.Run:
        """Commit a new run and hand it to the engine: started already, when a worker was free,
        else queued. The check for an active run is made under the thread's lock; the partial
        unique index on active runs is the last word if anything slips past it."""
        try:
            run: run_pb2.Run = await self._queue_run(run_id, work)
        except IntegrityError:
            active = await self._deps.database.transaction(
                lambda c: repo.active_run_id(c, thread_id)
            )
            raise FailedPreconditionError(
                f"Thread {thread_id} already has an active run {active}."
            ) from None
        return run

    async def _queue_run(
        self, run_id: str, work: Callable[[Connection, StartSlot | None], Queued]
    ) -> Any:
        """Run the transaction that queues a run, `work`, with a worker kept for the run when
        one is free; once it commits, publish its events and give the run to that worker (or
        queue it for the next free one). Returns what `work` returns first.

        The hand-over happens even if the caller goes away meanwhile: on PostgreSQL the
        transaction runs on a thread and commits anyway, and a run started for a kept worker
        that never got it would hold its thread until it expired."""
        slot = self._scheduler.reserve(run_id)

        def settle(done: asyncio.Future[Queued]) -> None:
            if done.cancelled() or done.exception() is not None:
                if slot is not None:
                    slot.release()
                return
            (_, started), events = done.result()
            self._bus.publish(run_id, events)
            if slot is not None:
                slot.hand_over(started)
            else:
                self._scheduler.enqueue(run_id)

        def write(connection: Connection) -> Queued:
            return work(connection, slot)

        if tracing.tracer() is not None:
            # The run stores the calling span's context, and PostgreSQL transactions run on a
            # thread, which the current span does not follow by itself.
            context = contextvars.copy_context()

            def write(connection: Connection) -> Queued:
                return context.run(work, connection, slot)

        queued = await self._deps.database.transaction(write, settle=settle)
        (result, _), _ = queued
        return result

    async def create_thread_and_run(
        self, project: str, request: run_pb2.CreateThreadAndRunRequest
    ) -> run_pb2.Run:
        v = check.Violations()
        check_run_request(v, request, self._deps.limits)
        thread_request = thread_pb2.CreateThreadRequest(
            messages=request.thread.messages,
            metadata=request.thread.metadata,
        )
        if request.thread.HasField("tool_resources"):
            thread_request.tool_resources.CopyFrom(request.thread.tool_resources)
        self._threads.validate_create(v, thread_request, "thread.")
        v.raise_if_any()
        thread, messages, counts = await self._threads.new_thread(thread_request)
        run_id = self._deps.new_id("run")

        def work(connection: Connection, slot: StartSlot | None) -> Queued:
            # The assistant first: a run of another project's assistant writes nothing at all.
            run, stored = self._new_run(
                connection, project, request, run_id, thread.id, thread.created_at
            )
            self._threads.insert(connection, project, thread, messages, counts)
            first = [tr.event("thread.created", thread=thread)]
            return self._insert_run(connection, run, first, slot, stored)

        return await self._commit_new_run(run_id, thread.id, work)

    def _new_run(
        self,
        connection: Connection,
        project: str,
        request: RunRequest,
        run_id: str,
        thread_id: str,
        now: int,
    ) -> tuple[run_pb2.Run, dict[str, Any]]:
        """The queued run, and what the run stores without showing it (the Run object has no
        such fields): the reasoning effort its model calls carry (the request's, else the
        assistant's, CONTRACT.md §3), its tools' resources (the request's override, else the
        assistant's, frozen like the rest of the run's configuration; the thread's are added at
        each turn), and the request's `include[]`."""
        row = get_assistant_row(connection, project, request.assistant_id)
        run = effective_run(
            assistant_from_row(row),
            request,
            run_id=run_id,
            thread_id=thread_id,
            now=now,
            expires_in=self._expires_in,
        )
        effort = (
            reasoning_effort(request)
            if request.HasField("reasoning_effort")
            else row["reasoning_effort"]
        )
        resources = row["tool_resources"]
        include: list[str] = []
        if isinstance(request, run_pb2.CreateThreadAndRunRequest):
            if request.HasField("tool_resources"):
                resources = json_or_none(request, "tool_resources")
        else:
            include = list(request.include)
        return run, {"reasoning_effort": effort, "tool_resources": resources, "include": include}

    def _insert_run(
        self,
        connection: Connection,
        run: run_pb2.Run,
        first: list[RunEvent],
        slot: StartSlot | None,
        stored: dict[str, Any],
    ) -> Queued:
        """Write the queued run with its first events; with a worker kept for it, write it
        already started too (`in_progress` right after `queued`, CONTRACT.md §9). The caller
        is answered with the run as created: queued."""
        events = [
            *first,
            tr.event("thread.run.created", run=run),
            tr.event("thread.run.queued", run=run),
        ]
        values = run_values(run) | stored
        if slot is not None:  # "create", then "start", in the one INSERT
            values |= {"status": RunStatus.IN_PROGRESS.value, "started_at": run.created_at}
            values |= slot.lease_values()
            events.append(_in_progress(run, started_at=run.created_at))
        # The run is written with its log already started: no second write of the row.
        values["last_sequence"] = len(events)
        if (traceparent := tracing.current_traceparent()) is not None:
            values["trace_context"] = traceparent
        repo.insert_row(connection, repo.RUNS, values)
        events = log.start(connection, run.id, run.thread_id, events)
        started = slot.load(connection, values) if slot is not None else None
        return (run, started), events

    # --- read -----------------------------------------------------------------------------

    async def get(self, project: str, thread_id: str, run_id: str) -> run_pb2.Run:
        row = await self._deps.database.transaction(
            lambda c: _run_row(c, project, thread_id, run_id)
        )
        return run_from_row(row)

    async def list(
        self, project: str, request: run_pb2.ListRunsRequest
    ) -> run_pb2.ListRunsResponse:
        def work(connection: Connection) -> run_pb2.ListRunsResponse:
            require_thread(connection, project, request.thread_id)
            return list_in(
                connection,
                request,
                repo.RUNS,
                [repo.RUNS.c.thread_id == request.thread_id],
                run_from_row,
                run_pb2.ListRunsResponse(),
            )

        return await self._deps.database.transaction(work)

    async def update(self, project: str, request: run_pb2.UpdateRunRequest) -> run_pb2.Run:
        v = check.Violations()
        if request.HasField("metadata"):
            check.check_metadata(v, "metadata", request.metadata.values)
        v.raise_if_any()

        def work(connection: Connection) -> run_pb2.Run:
            row = _run_row(connection, project, request.thread_id, request.run_id)
            if not request.HasField("metadata"):
                return run_from_row(row)
            metadata = dict(request.metadata.values)
            repo.update_by_id(connection, repo.RUNS, request.run_id, {"metadata": metadata})
            return run_from_row({**row, "metadata": metadata})

        return await self._deps.database.transaction(work)

    async def get_step(self, project: str, request: run_pb2.GetRunStepRequest) -> run_pb2.RunStep:
        def work(connection: Connection) -> run_pb2.RunStep:
            _run_row(connection, project, request.thread_id, request.run_id)
            if not check.plausible_id(request.step_id):
                raise NotFoundError("run step", request.step_id)
            row = (
                connection.execute(
                    select(repo.RUN_STEPS).where(
                        repo.RUN_STEPS.c.id == request.step_id,
                        repo.RUN_STEPS.c.run_id == request.run_id,
                    )
                )
                .mappings()
                .first()
            )
            if row is None:
                raise NotFoundError("run step", request.step_id)
            return step_from_row(row, include_result_content=_includes_content(request))

        return await self._deps.database.transaction(work)

    async def list_steps(
        self, project: str, request: run_pb2.ListRunStepsRequest
    ) -> run_pb2.ListRunStepsResponse:
        def work(connection: Connection) -> run_pb2.ListRunStepsResponse:
            _run_row(connection, project, request.thread_id, request.run_id)
            return list_in(
                connection,
                request,
                repo.RUN_STEPS,
                [repo.RUN_STEPS.c.run_id == request.run_id],
                functools.partial(step_from_row, include_result_content=_includes_content(request)),
                run_pb2.ListRunStepsResponse(),
            )

        return await self._deps.database.transaction(work)

    # --- cancel and tool outputs -------------------------------------------------------------

    async def cancel(self, project: str, thread_id: str, run_id: str) -> run_pb2.Run:
        """Move the run to `cancelling`; the worker executing it (here or on another replica)
        then ends it `cancelled`. A run that ended first (even by a hair: the guarded write
        decides) is refused (store/run_states.py)."""

        def refused(status: str) -> FailedPreconditionError:
            return FailedPreconditionError(f"Cannot cancel run with status '{status}'.")

        def work(connection: Connection) -> tuple[run_pb2.Run, list[RunEvent]]:
            row = _run_row(connection, project, thread_id, run_id)
            if not can_move(row["status"], "cancel"):
                raise refused(row["status"])
            run = run_from_row({**row, "status": RunStatus.CANCELLING.value})
            events = [tr.event(RunStatus.CANCELLING.event, run=run)]
            try:
                return run, tr.transition(connection, row, "cancel", events)
            except RunMoved as moved:
                raise refused(moved.found or "deleted") from None

        run: run_pb2.Run = await self._commit(run_id, work)
        self._scheduler.cancel(run_id)
        return run

    async def submit_tool_outputs(
        self, project: str, request: run_pb2.SubmitToolOutputsRequest
    ) -> run_pb2.Run:
        """Accept the complete set of outputs; returns the queued run."""
        run, _ = await self._submit_tool_outputs(project, request)
        return run

    async def _submit_tool_outputs(
        self, project: str, request: run_pb2.SubmitToolOutputsRequest
    ) -> tuple[run_pb2.Run, int]:
        """Accept the complete set of outputs; returns the queued run and the sequence number
        the continuation's stream starts after."""
        v = check.Violations()
        check.check_tool_outputs(v, "tool_outputs", request.tool_outputs, self._deps.limits)
        v.raise_if_any()

        def refused(status: str) -> FailedPreconditionError:
            return FailedPreconditionError(f'Runs in status "{status}" do not accept tool outputs.')

        def work(connection: Connection, slot: StartSlot | None) -> Queued:
            row = _run_row(connection, project, request.thread_id, request.run_id)
            if not can_move(row["status"], "resume"):
                raise refused(row["status"])
            expected = [
                c["id"] for c in row["required_action"]["submit_tool_outputs"]["tool_calls"]
            ]
            given = [o.tool_call_id for o in request.tool_outputs]
            if sorted(expected) != sorted(given):
                raise InvalidArgumentError.single(
                    "tool_outputs", f"Expected tool outputs for call_ids {expected}, got {given}"
                )
            outputs = {o.tool_call_id: o.output for o in request.tool_outputs}
            step_row = _waiting_tool_step(connection, request.run_id)
            now = self._deps.now()
            # The stored details are updated in place: server-side calls of the same step keep
            # what the model gets back from them (mapping.MODEL_VIEW).
            details = _with_outputs(step_row["step_details"], outputs)
            done = {"status": "completed", "completed_at": now, "step_details": details}
            repo.update_by_id(connection, repo.RUN_STEPS, step_row["id"], done)
            step = step_from_row(
                {**step_row, **done},
                include_result_content=INCLUDE_FILE_SEARCH_CONTENT in (row["include"] or ()),
            )
            values: dict[str, Any] = {"required_action": None}
            run = run_from_row({**row, **values, "status": RunStatus.QUEUED.value})
            events = [
                tr.event("thread.run.step.completed", run_step=step),
                tr.event(RunStatus.QUEUED.event, run=run),
            ]
            moves = ["resume"]
            if slot is not None:  # a worker is free: the continuation starts right here
                values |= slot.lease_values()
                moves.append("start")
                events.append(_in_progress(run))
            try:
                events = tr.transition(connection, row, moves, events, values)
            except RunMoved as moved:
                raise refused(moved.found or "deleted") from None
            status = RunStatus.IN_PROGRESS if slot is not None else RunStatus.QUEUED
            started_row = {**row, **values, "status": status.value}
            started = slot.load(connection, started_row) if slot is not None else None
            return ((run, events[0].sequence - 1), started), events

        result: tuple[run_pb2.Run, int] = await self._queue_run(request.run_id, work)
        return result

    # --- streams ------------------------------------------------------------------------------

    async def create_stream(
        self, project: str, request: run_pb2.CreateRunRequest
    ) -> AsyncIterator[RunEvent]:
        """`create`, then the new run's events up to the end of its first segment."""
        run = await self.create(project, request)
        return self._follow(run.thread_id, run.id, 0, "segment")

    async def create_thread_and_run_stream(
        self, project: str, request: run_pb2.CreateThreadAndRunRequest
    ) -> AsyncIterator[RunEvent]:
        """`create_thread_and_run`, then the events from `thread.created` on, to the end of
        the run's first segment."""
        run = await self.create_thread_and_run(project, request)
        return self._follow(run.thread_id, run.id, 0, "segment")

    async def submit_tool_outputs_stream(
        self, project: str, request: run_pb2.SubmitToolOutputsRequest
    ) -> AsyncIterator[RunEvent]:
        """`submit_tool_outputs`, then the continuation's events (from the tool step's
        completion on) to the end of its segment."""
        run, after = await self._submit_tool_outputs(project, request)
        return self._follow(run.thread_id, run.id, after, "segment")

    async def watch(
        self, project: str, request: run_pb2.WatchRunRequest
    ) -> AsyncIterator[RunEvent]:
        """The run's events after `after_sequence`, to the final `done` after its end."""
        # Sequence numbers are 32-bit in the event log: a larger one names no event, and would
        # overflow PostgreSQL's integer before it could say so.
        if not 0 <= request.after_sequence <= MAX_SEQUENCE:
            raise InvalidArgumentError.single(
                "after_sequence", f"must be between 0 and {MAX_SEQUENCE}."
            )
        await self.get(project, request.thread_id, request.run_id)
        return self._follow(request.thread_id, request.run_id, request.after_sequence, "run")

    async def _follow(
        self, thread_id: str, run_id: str, after: int, until: Until
    ) -> AsyncIterator[RunEvent]:
        """A run's events from the bus. Deleting the thread ends the stream with NOT_FOUND, the
        answer any later call about the run gets, rather than a clean end that would read as a
        finished stream."""
        try:
            async for event in self._bus.subscribe(run_id, after, until):
                yield event
        except RunDeletedError:
            raise NotFoundError("thread", thread_id, deleted=True) from None


def _in_progress(run: run_pb2.Run, *, started_at: int | None = None) -> RunEvent:
    """`thread.run.in_progress` for a run just queued (`run`, its queued snapshot) that the
    same transaction starts; `started_at` the first time it starts."""
    started = run_pb2.Run()
    started.CopyFrom(run)
    started.status = run_pb2.RUN_STATUS_IN_PROGRESS
    if started_at is not None:
        started.started_at = started_at
    return tr.event("thread.run.in_progress", run=started)


def _run_row(
    connection: Connection, project: str, thread_id: str, run_id: str, *, lock: bool = False
) -> RowMapping:
    """The run, if it is under this thread of the caller's project; NOT_FOUND otherwise."""
    require_thread(connection, project, thread_id)
    row = tr.load_run(connection, run_id, lock=lock) if check.plausible_id(run_id) else None
    if row is None or row["thread_id"] != thread_id:
        raise NotFoundError("run", run_id)
    return row


def _with_outputs(details: dict[str, Any], outputs: Mapping[str, str]) -> dict[str, Any]:
    """A tool_calls step's stored details with the submitted outputs of its function calls."""
    calls = []
    for call in details["tool_calls"]:
        if call.get("type") == "function" and call["id"] in outputs:
            call = {**call, "function": {**call["function"], "output": outputs[call["id"]]}}
        calls.append(call)
    return {**details, "tool_calls": calls}


def _waiting_tool_step(connection: Connection, run_id: str) -> RowMapping:
    row = (
        connection.execute(
            select(repo.RUN_STEPS)
            .where(
                repo.RUN_STEPS.c.run_id == run_id,
                repo.RUN_STEPS.c.type == "tool_calls",
                repo.RUN_STEPS.c.status == tr.STEP_IN_PROGRESS,
            )
            .order_by(repo.RUN_STEPS.c.pk.desc())
        )
        .mappings()
        .first()
    )
    if row is None:  # requires_action always has its step; a broken invariant, not bad input
        raise RuntimeError(f"run {run_id} requires action but has no open tool_calls step")
    return row


__all__ = ["RunService", "Scheduler"]


def _includes_content(request: run_pb2.GetRunStepRequest | run_pb2.ListRunStepsRequest) -> bool:
    """Whether the request asks for the text of file_search results (CONTRACT.md §11.15)."""
    return INCLUDE_FILE_SEARCH_CONTENT in request.include
