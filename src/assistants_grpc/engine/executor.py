"""The engine's entry points for the scheduler: start a run (take its lease and move it to
`in_progress`, or end it when that is all there is left to do), load what its turn needs, and hand
it to the run loop (engine/run_loop.py), which executes turns until the run ends or waits for its
caller.

The pieces a run goes through, one module each:
- `accumulator`: folds the model's stream into parts, calls and pending deltas (pure);
- `turn_end`: decides how a turn ends (pure);
- `turn_writer`: writes the turn's rows and builds its events;
- `server_calls`: plans a tool round and executes its server-side calls (`ToolExecutor`s);
- `run_loop`: drives the turns, under the run's lease, with every write guarded;
- `transitions` / `store.run_states`: every status change, and every way a run ends.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, bindparam, select

from assistants_grpc.clock import Clock, SystemClock
from assistants_grpc.engine import transitions as tr
from assistants_grpc.engine.context import TurnContext, load_turn_context
from assistants_grpc.engine.control import Interrupt, RunControl
from assistants_grpc.engine.deps import Dependencies
from assistants_grpc.engine.model_request import read_limits
from assistants_grpc.engine.models import ModelRouter
from assistants_grpc.engine.prompt import (
    DEFAULT_SHORTEN_FRACTION,
    check_shorten_fraction,
    shorten_limit,
)
from assistants_grpc.engine.run_loop import RunLoop, TurnHooks, release_lease
from assistants_grpc.engine.server_tools import ToolRegistry
from assistants_grpc.engine.turn_end import INTERRUPT_ENDINGS
from assistants_grpc.events.bus import EventBus
from assistants_grpc.observability import logs
from assistants_grpc.store import repository as repo
from assistants_grpc.store.mapping import run_from_row
from assistants_grpc.store.run_states import CLAIMABLE, RunStatus

RunEvent = tr.RunEvent
_THREAD_PROJECT = select(repo.THREADS.c.project).where(repo.THREADS.c.id == bindparam("_thread_id"))
# A run's columns: its row as read, or the values its creating transaction just wrote.
RunRow = Mapping[Any, Any]


Started = tuple[RunRow, TurnContext]
"""A run moved to in_progress by this replica, with what its turn's prompt is built from."""


class RunExecutor:
    """Executes runs: one per worker at a time, as many turns as the run needs.

    `tools` holds the executors of the built-in tools this server runs itself (an empty registry
    offers none to the model); `lease_clock` is the wall clock leases are compared with (shared
    by replicas, so injected separately from the expiry clock); `hooks` are test seams;
    `max_tool_rounds` caps the rounds of server-side calls a run may make.
    """

    def __init__(
        self,
        deps: Dependencies,
        router: ModelRouter,
        bus: EventBus,
        *,
        tools: ToolRegistry | None = None,
        lease_clock: Clock | None = None,
        hooks: TurnHooks | None = None,
        max_tool_rounds: int = 20,
        flush_interval: float = 0.025,
        shorten_fraction: float = DEFAULT_SHORTEN_FRACTION,
    ) -> None:
        self._deps = deps
        self._router = router
        self._bus = bus
        self._shorten_fraction = check_shorten_fraction(shorten_fraction)
        self._tools = tools if tools is not None else ToolRegistry()
        self.lease_clock: Clock = lease_clock if lease_clock is not None else SystemClock()
        self._loop = RunLoop(
            deps,
            router,
            bus,
            self._tools,
            self.lease_clock,
            self._load_context,
            flush_interval=flush_interval,
            max_tool_rounds=max_tool_rounds,
            hooks=hooks or TurnHooks(),
            shorten_fraction=self._shorten_fraction,
        )

    async def _write(self, run_id: str, work: Any) -> Any:
        return await self._loop.write(run_id, work)

    async def execute(self, run_id: str, control: RunControl) -> None:
        start, events = await self._deps.database.transaction(lambda c: self._start(c, control))
        if control.project is not None:
            # Read by _start: the lines from here on (its events' included) carry it.
            logs.bind(project=control.project)
        self._bus.publish(run_id, events)
        if start is not None:
            await self.continue_started(start, control)

    async def continue_started(self, start: Started, control: RunControl) -> None:
        """The rest of a run once it is in progress and its first turn's context loaded."""
        run_id = control.run_id
        run_row, context = start
        if control.reason == "deleted":
            return
        if control.reason == "handback":
            await self._deps.database.transaction(lambda c: release_lease(c, run_id, control.owner))
            return
        if control.reason is not None:
            await self._end(run_id, INTERRUPT_ENDINGS[control.reason], control.owner)
            return
        await self._loop.run(run_row, context, control)

    def _start(
        self, connection: Connection, control: RunControl
    ) -> tuple[Started | None, list[RunEvent]]:
        """Take the run's lease and move it to in_progress (or end it, if it is cancelling or
        was left half-written by a replica that died). Nothing, if another replica holds it."""
        run_id = control.run_id
        row = tr.load_run(connection, run_id, lock=True)
        if row is None or row["status"] not in CLAIMABLE:
            return None, []
        wall = self.lease_clock.now()
        if tr.held_elsewhere(row, control.owner, wall):
            return None, []
        lease = control.lease_values(wall)
        if control.project is None:
            # A run claimed here (created elsewhere, or orphaned): its project, for the logs.
            control.project = connection.execute(
                _THREAD_PROJECT, {"_thread_id": row["thread_id"]}
            ).scalar()
        status, now, owner = row["status"], self._deps.now(), control.owner
        if status != RunStatus.QUEUED:
            repo.update_by_id(connection, repo.RUNS, run_id, lease)
            row = {**row, **lease}  # type: ignore[assignment]
        if status == RunStatus.CANCELLING:
            return None, tr.finish_run(connection, row, tr.CANCELLED, now, owner=owner)
        if status == RunStatus.IN_PROGRESS and tr.open_steps(connection, run_id):
            # A worker died half-way through writing a step: what the model said next is lost.
            ending = tr.failed("server_error", "The run was interrupted by a server restart.")
            return None, tr.finish_run(connection, row, ending, now, owner=owner)
        events: list[RunEvent] = []
        if status == RunStatus.QUEUED:
            values: dict[str, Any] = {"started_at": now, **lease}
            started = {**row, **values, "status": RunStatus.IN_PROGRESS.value}
            run = run_from_row(started)
            events = tr.transition(
                connection, row, "start", [tr.event(RunStatus.IN_PROGRESS.event, run=run)], values
            )
            row = started  # type: ignore[assignment]
        return (row, self.load_context(connection, row)), events

    def load_context(self, connection: Connection, run_row: RunRow) -> TurnContext:
        """What the next turn of this run builds its prompt from."""
        budget, last_messages = read_limits(run_row, self._router.route(run_row["model"]))
        return load_turn_context(
            connection,
            run_row["thread_id"],
            run_row["id"],
            token_budget=budget,
            last_messages=last_messages,
            shorten_at=(
                shorten_limit(budget, self._shorten_fraction) if last_messages is None else None
            ),
            # The thread's project and resources, for the tools that execute here.
            with_thread=any(self._tools.for_type(t.get("type", "")) for t in run_row["tools"]),
        )

    async def _load_context(self, run_row: RunRow) -> TurnContext:
        return await self._deps.database.transaction(lambda c: self.load_context(c, run_row))

    async def _end(self, run_id: str, ending: tr.Ending, owner: str) -> None:
        wall = self.lease_clock.now()
        await self._write(
            run_id,
            lambda c: (None, tr.end_if_active(c, run_id, ending, self._deps.now(), owner, wall)),
        )


__all__ = ["Interrupt", "RunControl", "RunExecutor", "Started", "TurnHooks", "release_lease"]
