"""The per-run event log in the database: sequence numbers 1, 2, 3 … with no gaps.

Sequences are allocated by bumping `runs.last_sequence` inside the caller's transaction. That row
update locks the run until commit (PostgreSQL row lock; SQLite's single writer), so two writers
of one run (the worker streaming it, a cancel arriving) get disjoint, ordered ranges and commit in
sequence order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import BindParameter, Connection, bindparam, insert, select, update

from assistants_grpc.contract.pb import run_pb2
from assistants_grpc.store.repository import RUN_EVENTS, RUNS
from assistants_grpc.store.run_states import TERMINAL, LeaseLostError, RunMoved, RunStatus

RunEvent = run_pb2.RunEvent

TERMINAL_RUN_EVENTS = frozenset(status.event for status in TERMINAL)


# Built once: building a statement and its cache key costs more than executing it. The run's
# other columns (`run_values`) are passed as execution parameters, which SQLAlchemy adds to SET.
_RUN_ID: BindParameter[str] = bindparam("_run_id")
_BUMP = update(RUNS).where(RUNS.c.id == _RUN_ID)
_BUMP_VALUES = {"last_sequence": RUNS.c.last_sequence + bindparam("_count")}
_OWNED = RUNS.c.lease_owner == bindparam("_owner")
_EXPECTED = RUNS.c.status == bindparam("_expected")
# One prebuilt statement per guard: (owner given, expected status given).
_GUARDED = {
    (False, False): _BUMP,
    (True, False): _BUMP.where(_OWNED),
    (False, True): _BUMP.where(_EXPECTED),
    (True, True): _BUMP.where(_OWNED, _EXPECTED),
}
_ALLOCATE = {
    guard: statement.values(_BUMP_VALUES).returning(RUNS.c.last_sequence)
    for guard, statement in _GUARDED.items()
}
_FOUND = select(RUNS.c.status, RUNS.c.lease_owner).where(RUNS.c.id == _RUN_ID)
_INSERT_EVENTS = insert(RUN_EVENTS)
_READ_AFTER = (
    select(RUN_EVENTS.c.data)
    .where(RUN_EVENTS.c.run_id == _RUN_ID, RUN_EVENTS.c.sequence > bindparam("_after"))
    .order_by(RUN_EVENTS.c.sequence)
    .limit(bindparam("_limit"))
)
_READ_ONE = select(RUN_EVENTS.c.data).where(
    RUN_EVENTS.c.run_id == _RUN_ID, RUN_EVENTS.c.sequence == bindparam("_sequence")
)


def append(
    connection: Connection,
    run_id: str,
    thread_id: str,
    events: Sequence[RunEvent],
    run_values: Mapping[str, Any] | None = None,
    *,
    owner: str | None = None,
    expected: RunStatus | str | None = None,
) -> list[RunEvent]:
    """Number `events` (in place) after the run's last sequence and write them to the log.

    `run_values` are other columns of the run to set in the same statement: a state change and
    its events are one write. The statement is guarded: with `owner`, it writes only while that
    replica holds the run's lease; with `expected`, only while the run is in that status. A
    guard that does not hold raises RunMoved (LeaseLostError when the lease is another's),
    saying where the run was found; the caller's transaction must then roll back.
    """
    guard = (owner is not None, expected is not None)
    parameters: dict[str, Any] = {"_run_id": run_id, **(run_values or {})}
    if owner is not None:
        parameters["_owner"] = owner
    if expected is not None:
        parameters["_expected"] = str(expected)
    if not events:
        if run_values and connection.execute(_GUARDED[guard], parameters).rowcount == 0:
            raise _moved(connection, run_id, owner, expected)
        return []
    count = len(events)
    parameters["_count"] = count
    last = connection.execute(_ALLOCATE[guard], parameters).scalar_one_or_none()
    if last is None:
        raise _moved(connection, run_id, owner, expected)
    return _insert(connection, run_id, thread_id, events, first=last - count + 1)


def _moved(
    connection: Connection, run_id: str, owner: str | None, expected: RunStatus | str | None
) -> RunMoved:
    """Where a guarded write found the run (read in the writer's transaction, only then)."""
    row = connection.execute(_FOUND, {"_run_id": run_id}).first()
    found, found_owner = (None, None) if row is None else (row.status, row.lease_owner)
    kind = LeaseLostError if owner is not None and found_owner != owner else RunMoved
    return kind(
        run_id,
        expected=None if expected is None else str(expected),
        found=found,
        owner=owner,
        found_owner=found_owner,
    )


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
    connection.execute(_INSERT_EVENTS, rows)
    return list(events)


def read_after(connection: Connection, run_id: str, after: int, limit: int) -> list[RunEvent]:
    """The first `limit` logged events of a run with a sequence above `after`, in order. A long
    run is read a page at a time (the bus loops), so replaying it never holds the whole log in
    one result."""
    parameters = {"_run_id": run_id, "_after": after, "_limit": limit}
    rows = connection.execute(_READ_AFTER, parameters).scalars()
    return [RunEvent.FromString(data) for data in rows]


def read_one(connection: Connection, run_id: str, sequence: int) -> RunEvent | None:
    data = connection.execute(_READ_ONE, {"_run_id": run_id, "_sequence": sequence}).scalar()
    return None if data is None else RunEvent.FromString(data)


__all__ = [
    "TERMINAL_RUN_EVENTS",
    "LeaseLostError",
    "RunEvent",
    "RunMoved",
    "append",
    "read_after",
    "read_one",
    "start",
]
