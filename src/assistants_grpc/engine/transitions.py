"""How a run ends, written once for every path that ends one.

The worker (answer finished, model failed, token budget spent, cancel or expiry noticed while
streaming), the scheduler (cancel of a queued run, expiry of a run waiting for tool outputs) and
start-up recovery all end runs through `finish_run`, inside their own transaction. It closes the
open message and steps the way CONTRACT.md §7 and §9 describe, sets the run's terminal fields, and
appends the events in their order: message, step, run, then `done`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import BindParameter, Connection, RowMapping, bindparam, select

from assistants_grpc.contract.pb import common_pb2, message_pb2, run_pb2
from assistants_grpc.events import log
from assistants_grpc.store import repository as repo
from assistants_grpc.store.mapping import message_from_row, run_from_row, step_from_row

RunEvent = run_pb2.RunEvent

TERMINAL_STATUSES = frozenset({"completed", "incomplete", "failed", "cancelled", "expired"})


@dataclass(frozen=True)
class Ending:
    """How a run ends. `status` is the run's terminal status; the rest depends on it."""

    status: str
    error_code: str | None = None
    error_message: str | None = None
    incomplete_reason: str | None = None  # the run's: max_completion_tokens | max_prompt_tokens
    message_reason: str | None = None  # the open message's incomplete reason, if not derived


COMPLETED = Ending("completed")
CANCELLED = Ending("cancelled")
EXPIRED = Ending("expired")


def failed(code: str, message: str) -> Ending:
    return Ending("failed", error_code=code, error_message=message)


def incomplete(reason: str, message_reason: str = "max_tokens") -> Ending:
    return Ending("incomplete", incomplete_reason=reason, message_reason=message_reason)


# What an ending does to the open message and the open steps.
_MESSAGE_REASON = {"cancelled": "run_cancelled", "expired": "run_expired", "failed": "run_failed"}
_STEP_STATUS = {
    "completed": ("completed", "completed_at"),
    "incomplete": ("completed", "completed_at"),
    "cancelled": ("cancelled", "cancelled_at"),
    "expired": ("expired", "expired_at"),
    "failed": ("failed", "failed_at"),
}
_RUN_TIME = {
    "completed": "completed_at",
    "cancelled": "cancelled_at",
    "failed": "failed_at",
    "expired": None,
    "incomplete": None,
}


def event(name: str, **payload: Any) -> RunEvent:
    return RunEvent(event=name, **payload)


# Built once (see repository): these run several times in every run.
_RUN_ID: BindParameter[str] = bindparam("_run_id")
_LOAD_RUN = select(repo.RUNS).where(repo.RUNS.c.id == _RUN_ID)
_LOCK_RUN = _LOAD_RUN.with_for_update()
_OPEN_STEPS = (
    select(repo.RUN_STEPS)
    .where(repo.RUN_STEPS.c.run_id == _RUN_ID, repo.RUN_STEPS.c.status == "in_progress")
    .order_by(repo.RUN_STEPS.c.pk)
)
_OPEN_MESSAGE = select(repo.MESSAGES).where(
    repo.MESSAGES.c.run_id == _RUN_ID, repo.MESSAGES.c.status == "in_progress"
)
_STEP_USAGES = select(repo.RUN_STEPS.c.usage).where(repo.RUN_STEPS.c.run_id == _RUN_ID)


def load_run(connection: Connection, run_id: str, *, lock: bool = False) -> RowMapping | None:
    query = _LOCK_RUN if lock else _LOAD_RUN
    return connection.execute(query, {"_run_id": run_id}).mappings().first()


def held_elsewhere(row: RowMapping, owner: str, wall_clock: float) -> bool:
    """Whether another replica holds a live lease on the run (so it, not `owner`, acts on it)."""
    holder, until = row["lease_owner"], row["lease_expires_at"]
    return holder not in (None, owner) and until is not None and until > wall_clock


def end_if_active(
    connection: Connection, run_id: str, ending: Ending, now: int, owner: str
) -> list[RunEvent]:
    """End the run if it is still active and no other replica holds it; else nothing."""
    row = load_run(connection, run_id, lock=True)
    if row is None or row["status"] in TERMINAL_STATUSES:
        return []
    if held_elsewhere(row, owner, time.time()):
        return []  # executing elsewhere: that replica ends it
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
    run_row: RowMapping,
    ending: Ending,
    now: int,
    *,
    step_usage: common_pb2.Usage | None = None,
    run_usage: common_pb2.Usage | None = None,
    leading: Sequence[RunEvent] = (),
) -> list[RunEvent]:
    """End an active run: close its message and steps, set its fields, append the events.

    `step_usage` is the usage of the model call that produced the open steps, when known;
    `run_usage` the run's total when the caller already knows it (else the steps are summed);
    `leading` events the caller wrote in the same transaction, appended first.
    Returns the appended events (with sequence numbers) for the caller to publish after commit.
    """
    run_id, thread_id = run_row["id"], run_row["thread_id"]
    events: list[RunEvent] = []

    message_row = open_message(connection, run_id)
    if message_row is not None:
        message = message_from_row(message_row)
        if ending.status == "completed" and ending.message_reason is None:
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
        if ending.status == "failed":
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
        "status": ending.status,
        "expires_at": None,
        "required_action": None,
        "lease_owner": None,
        "lease_expires_at": None,
    }
    time_field = _RUN_TIME[ending.status]
    if time_field is not None:
        run_values[time_field] = now
    if ending.status == "failed":
        run_values["last_error"] = {"code": ending.error_code, "message": ending.error_message}
    if ending.incomplete_reason is not None:
        run_values["incomplete_reason"] = ending.incomplete_reason
    usage = run_usage if run_usage is not None else step_usage_total(connection, run_id)
    if usage is not None:
        run_values["usage"] = usage_json(usage)
    run = run_from_row({**run_row, **run_values})
    events.append(event(f"thread.run.{ending.status}", run=run))
    events.append(event("done"))
    return log.append(connection, run_id, thread_id, [*leading, *events], run_values)


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
    "TERMINAL_STATUSES",
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
    "usage_json",
]
