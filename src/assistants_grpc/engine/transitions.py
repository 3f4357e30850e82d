"""Every change of a run's status, and how a run ends, written once.

`transition` is the one guarded write of a status (the table of moves is
`store/run_states.py`): `UPDATE runs … WHERE id = :id AND status = :expected`, plus
`lease_owner = :owner` where a lease holds the run, in the statement that appends the move's
events to the run's log (`events.log.append`). A run found elsewhere raises RunMoved.

The worker (answer finished, model failed, token budget spent, cancel or expiry noticed while
streaming), the scheduler (cancel of a queued run, expiry of a run waiting for tool outputs) and
start-up recovery all end runs through `finish_run`, inside their own transaction. It closes the
open message and steps the way CONTRACT.md §7 and §9 describe, sets the run's terminal fields, and
appends the events in their order: message, step, run, then `done`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import BindParameter, Connection, RowMapping, bindparam, select

from assistants_grpc.contract.pb import common_pb2, message_pb2, run_pb2
from assistants_grpc.events import log
from assistants_grpc.observability import metrics
from assistants_grpc.store import repository as repo
from assistants_grpc.store.mapping import message_from_row, run_from_row, step_from_row
from assistants_grpc.store.run_states import (
    TERMINAL,
    RunMoved,
    RunStatus,
    move_between,
    target_of,
)

RunEvent = run_pb2.RunEvent
RunRow = Mapping[Any, Any]


@dataclass(frozen=True)
class Ending:
    """How a run ends. `status` is the run's terminal status; the rest depends on it."""

    status: RunStatus
    error_code: str | None = None
    error_message: str | None = None
    incomplete_reason: str | None = None  # the run's: max_completion_tokens | max_prompt_tokens
    message_reason: str | None = None  # the open message's incomplete reason, if not derived

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", RunStatus(self.status))


COMPLETED = Ending(RunStatus.COMPLETED)
CANCELLED = Ending(RunStatus.CANCELLED)
EXPIRED = Ending(RunStatus.EXPIRED)


def failed(code: str, message: str) -> Ending:
    return Ending(RunStatus.FAILED, error_code=code, error_message=message)


def incomplete(reason: str, message_reason: str = "max_tokens") -> Ending:
    return Ending(RunStatus.INCOMPLETE, incomplete_reason=reason, message_reason=message_reason)


# What an ending does to the open message and the open steps (step statuses are not run
# statuses: a step has no state machine of its own beyond in_progress and its end).
_MESSAGE_REASON = {
    RunStatus.CANCELLED: "run_cancelled",
    RunStatus.EXPIRED: "run_expired",
    RunStatus.FAILED: "run_failed",
}
_STEP_STATUS = {
    RunStatus.COMPLETED: ("completed", "completed_at"),
    RunStatus.INCOMPLETE: ("completed", "completed_at"),
    RunStatus.CANCELLED: ("cancelled", "cancelled_at"),
    RunStatus.EXPIRED: ("expired", "expired_at"),
    RunStatus.FAILED: ("failed", "failed_at"),
}
_RUN_TIME = {
    RunStatus.COMPLETED: "completed_at",
    RunStatus.CANCELLED: "cancelled_at",
    RunStatus.FAILED: "failed_at",
    RunStatus.EXPIRED: None,
    RunStatus.INCOMPLETE: None,
}


# Steps and messages are open while in this status (theirs, not the run's).
STEP_IN_PROGRESS = "in_progress"
MESSAGE_IN_PROGRESS = "in_progress"


def event(name: str, **payload: Any) -> RunEvent:
    return RunEvent(event=name, **payload)


# Built once (see repository): these run several times in every run.
_RUN_ID: BindParameter[str] = bindparam("_run_id")
_LOAD_RUN = select(repo.RUNS).where(repo.RUNS.c.id == _RUN_ID)
_LOCK_RUN = _LOAD_RUN.with_for_update()
_OPEN_STEPS = (
    select(repo.RUN_STEPS)
    .where(repo.RUN_STEPS.c.run_id == _RUN_ID, repo.RUN_STEPS.c.status == STEP_IN_PROGRESS)
    .order_by(repo.RUN_STEPS.c.pk)
)
_OPEN_MESSAGE = select(repo.MESSAGES).where(
    repo.MESSAGES.c.run_id == _RUN_ID, repo.MESSAGES.c.status == MESSAGE_IN_PROGRESS
)
_STEP_USAGES = select(repo.RUN_STEPS.c.usage).where(repo.RUN_STEPS.c.run_id == _RUN_ID)


def load_run(connection: Connection, run_id: str, *, lock: bool = False) -> RowMapping | None:
    query = _LOCK_RUN if lock else _LOAD_RUN
    return connection.execute(query, {"_run_id": run_id}).mappings().first()


def held_elsewhere(row: RunRow, owner: str, wall_clock: float) -> bool:
    """Whether another replica holds a live lease on the run (so it, not `owner`, acts on it).
    `wall_clock` is the lease clock's now: leases are wall-clock times shared by replicas."""
    holder, until = row["lease_owner"], row["lease_expires_at"]
    return holder not in (None, owner) and until is not None and until > wall_clock


def transition(
    connection: Connection,
    run_row: RunRow,
    moves: str | Sequence[str],
    events: Sequence[RunEvent],
    values: Mapping[str, Any] | None = None,
    *,
    owner: str | None = None,
) -> list[RunEvent]:
    """Move the run, as read in `run_row`, by `moves` (one name, or a chain made in one write),
    writing `values` and appending `events` in one statement.

    The UPDATE names the status the run was read in and, with `owner`, the lease holder: a run
    another writer moved meanwhile raises RunMoved (LeaseLostError for a lease now another's),
    and the caller's transaction rolls back. A move the table does not allow from the status read
    raises RunMoved before anything is written. Returns the numbered events, to publish after
    the commit."""
    expected = RunStatus(run_row["status"])
    try:
        target = target_of(expected, (moves,) if isinstance(moves, str) else moves)
    except ValueError:
        raise RunMoved(
            run_row["id"], expected=None, found=expected, owner=owner, found_owner=owner
        ) from None
    written = log.append(
        connection,
        run_row["id"],
        run_row["thread_id"],
        events,
        {**(values or {}), "status": target.value},
        owner=owner,
        expected=expected,
    )
    if target in TERMINAL and (recorded := metrics.active()) is not None:
        # Counted once the guarded write went through (a rollback after it is the rare miss).
        recorded.runs_finished.labels(target.value).inc()
    return written


def end_if_active(
    connection: Connection,
    run_id: str,
    ending: Ending,
    now: int,
    owner: str,
    wall_clock: float,
) -> list[RunEvent]:
    """End the run if it is still active and no other replica holds it; else nothing. A
    cancelling run ends cancelled whatever `ending` says (a committed cancel wins), and a run
    from whose status the table has no move to `ending` is left as it is."""
    row = load_run(connection, run_id, lock=True)
    if row is None or row["status"] in TERMINAL:
        return []
    if held_elsewhere(row, owner, wall_clock):
        return []  # executing elsewhere: that replica ends it
    if row["status"] == RunStatus.CANCELLING and ending.status != RunStatus.EXPIRED:
        ending = CANCELLED
    if move_between(row["status"], ending.status) is None:
        return []
    return finish_run(connection, row, ending, now)


def open_steps(connection: Connection, run_id: str) -> list[RowMapping]:
    return list(connection.execute(_OPEN_STEPS, {"_run_id": run_id}).mappings())


def open_message(connection: Connection, run_id: str) -> RowMapping | None:
    return connection.execute(_OPEN_MESSAGE, {"_run_id": run_id}).mappings().first()


def step_usage_total(connection: Connection, run_id: str) -> common_pb2.Usage | None:
    """The run's usage: the sum of its steps' usage (CONTRACT.md §11.12)."""
    usages = connection.execute(_STEP_USAGES, {"_run_id": run_id}).scalars()
    total: common_pb2.Usage | None = None
    for usage in usages:
        if usage is None:
            continue
        total = total or common_pb2.Usage()
        total.prompt_tokens += usage["prompt_tokens"]
        total.completion_tokens += usage["completion_tokens"]
        total.total_tokens += usage["total_tokens"]
    return total


def finish_run(
    connection: Connection,
    run_row: RunRow,
    ending: Ending,
    now: int,
    *,
    step_usage: common_pb2.Usage | None = None,
    run_usage: common_pb2.Usage | None = None,
    leading: Sequence[RunEvent] = (),
    owner: str | None = None,
) -> list[RunEvent]:
    """End an active run: close its message and steps, set its fields, append the events.

    `run_row` is the run as the caller read it: the write is guarded on its status (and on
    `owner`'s lease, when given), so a run moved meanwhile raises RunMoved and nothing is kept.
    `step_usage` is the usage of the model call that produced the open steps, when known;
    `run_usage` the run's total when the caller already knows it (else the steps are summed);
    `leading` events the caller wrote in the same transaction, appended first.
    Returns the appended events (with sequence numbers) for the caller to publish after commit.
    """
    run_id = run_row["id"]
    move = move_between(run_row["status"], ending.status)
    if move is None:
        raise RunMoved(
            run_id, expected=None, found=run_row["status"], owner=owner, found_owner=owner
        )
    events: list[RunEvent] = []

    message_row = open_message(connection, run_id)
    if message_row is not None:
        message = message_from_row(message_row)
        if ending.status == RunStatus.COMPLETED and ending.message_reason is None:
            message.status = message_pb2.MESSAGE_STATUS_COMPLETED
            message.completed_at = now
            values: dict[str, Any] = {"status": "completed", "completed_at": now}
            name = "thread.message.completed"
        else:
            reason = ending.message_reason or _MESSAGE_REASON[ending.status]
            message.status = message_pb2.MESSAGE_STATUS_INCOMPLETE
            message.incomplete_at = now
            message.incomplete_details.reason = message_pb2.MessageIncompleteReason.Value(
                "MESSAGE_INCOMPLETE_REASON_" + reason.upper()
            )
            values = {"status": "incomplete", "incomplete_at": now, "incomplete_reason": reason}
            name = "thread.message.incomplete"
        repo.update_by_id(connection, repo.MESSAGES, message.id, values)
        events.append(event(name, message=message))

    step_status, step_time = _STEP_STATUS[ending.status]
    steps = open_steps(connection, run_id)
    for index, step_row in enumerate(steps):
        step_values: dict[str, Any] = {"status": step_status, step_time: now}
        if ending.status == RunStatus.FAILED:
            step_values["last_error"] = {
                "code": "rate_limit_exceeded"
                if ending.error_code == "rate_limit_exceeded"
                else "server_error",
                "message": ending.error_message,
            }
        # The call's usage belongs to the last step it produced.
        if step_usage is not None and index == len(steps) - 1:
            step_values["usage"] = usage_json(step_usage)
        elif step_row["usage"] is None and step_status == "completed":
            step_values["usage"] = usage_json(common_pb2.Usage())
        repo.update_by_id(connection, repo.RUN_STEPS, step_row["id"], step_values)
        step = step_from_row({**step_row, **step_values})
        events.append(event(f"thread.run.step.{step_status}", run_step=step))

    run_values: dict[str, Any] = {
        "expires_at": None,
        "required_action": None,
        "lease_owner": None,
        "lease_expires_at": None,
    }
    time_field = _RUN_TIME[ending.status]
    if time_field is not None:
        run_values[time_field] = now
    if ending.status == RunStatus.FAILED:
        run_values["last_error"] = {"code": ending.error_code, "message": ending.error_message}
    if ending.incomplete_reason is not None:
        run_values["incomplete_reason"] = ending.incomplete_reason
    usage = run_usage if run_usage is not None else step_usage_total(connection, run_id)
    if usage is not None:
        run_values["usage"] = usage_json(usage)
    run = run_from_row({**run_row, **run_values, "status": ending.status.value})
    events.append(event(ending.status.event, run=run))
    events.append(event("done"))
    return transition(connection, run_row, move.name, [*leading, *events], run_values, owner=owner)


def usage_json(usage: common_pb2.Usage) -> dict[str, int]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }


__all__ = [
    "CANCELLED",
    "COMPLETED",
    "EXPIRED",
    "Ending",
    "end_if_active",
    "event",
    "failed",
    "finish_run",
    "held_elsewhere",
    "incomplete",
    "load_run",
    "open_message",
    "open_steps",
    "step_usage_total",
    "transition",
    "usage_json",
]
