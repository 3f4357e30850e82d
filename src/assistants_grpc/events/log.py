"""The per-run event log in the database: sequence numbers 1, 2, 3 … with no gaps.

Sequences are allocated by bumping `runs.last_sequence` inside the caller's transaction. That row
update locks the run until commit (PostgreSQL row lock; SQLite's single writer), so two writers
of one run (the worker streaming it, a cancel arriving) get disjoint, ordered ranges and commit in
sequence order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, select, update

from assistants_grpc.contract.pb import run_pb2
from assistants_grpc.store.repository import RUN_EVENTS, RUNS

RunEvent = run_pb2.RunEvent

TERMINAL_RUN_EVENTS = frozenset(
    {
        "thread.run.completed",
        "thread.run.incomplete",
        "thread.run.failed",
        "thread.run.cancelled",
        "thread.run.expired",
    }
)


class LeaseLostError(RuntimeError):
    """The run's lease is no longer the writer's: another replica took the run over."""

    def __init__(self, run_id: str) -> None:
        super().__init__(f"lost the lease of run {run_id}")
        self.run_id = run_id


def append(
    connection: Connection,
    run_id: str,
    thread_id: str,
    events: Sequence[RunEvent],
    run_values: Mapping[str, Any] | None = None,
    *,
    owner: str | None = None,
) -> list[RunEvent]:
    """Number `events` (in place) after the run's last sequence and write them to the log.

    `run_values` are other columns of the run to set in the same statement: a state change and
    its events are usually one write. With `owner`, the write happens only while that replica
    still holds the run's lease (checked in the same statement); otherwise LeaseLostError.
    """
    if not events:
        if run_values:
            connection.execute(update(RUNS).where(RUNS.c.id == run_id).values(**run_values))
        return []
    count = len(events)
    query = update(RUNS).where(RUNS.c.id == run_id)
    if owner is not None:
        query = query.where(RUNS.c.lease_owner == owner)
    last = connection.execute(
        query.values(last_sequence=RUNS.c.last_sequence + count, **(run_values or {})).returning(
            RUNS.c.last_sequence
        )
    ).scalar_one_or_none()
    if last is None:
        raise LeaseLostError(run_id)
    return _insert(connection, run_id, thread_id, events, first=last - count + 1)


def start(
    connection: Connection, run_id: str, thread_id: str, events: Sequence[RunEvent]
) -> list[RunEvent]:
    """The first events of a run inserted in this transaction with `last_sequence` already
    set to `len(events)`."""
    return _insert(connection, run_id, thread_id, events, first=1)


def _insert(
    connection: Connection, run_id: str, thread_id: str, events: Sequence[RunEvent], first: int
) -> list[RunEvent]:
    rows = []
    for offset, event in enumerate(events):
        event.sequence = first + offset
        rows.append(
            {
                "run_id": run_id,
                "sequence": event.sequence,
                "thread_id": thread_id,
                "event": event.event,
                "data": event.SerializeToString(),
            }
        )
    connection.execute(RUN_EVENTS.insert(), rows)
    return list(events)


def read_after(connection: Connection, run_id: str, after: int) -> list[RunEvent]:
    """The logged events of a run with a sequence above `after`, in order."""
    query = (
        select(RUN_EVENTS.c.data)
        .where(RUN_EVENTS.c.run_id == run_id, RUN_EVENTS.c.sequence > after)
        .order_by(RUN_EVENTS.c.sequence)
    )
    return [RunEvent.FromString(data) for data in connection.execute(query).scalars()]


def read_one(connection: Connection, run_id: str, sequence: int) -> RunEvent | None:
    query = select(RUN_EVENTS.c.data).where(
        RUN_EVENTS.c.run_id == run_id, RUN_EVENTS.c.sequence == sequence
    )
    data = connection.execute(query).scalar()
    return None if data is None else RunEvent.FromString(data)


__all__ = [
    "TERMINAL_RUN_EVENTS",
    "LeaseLostError",
    "RunEvent",
    "append",
    "read_after",
    "read_one",
    "start",
]
