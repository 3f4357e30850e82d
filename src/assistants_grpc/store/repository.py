"""Queries, as prebuilt SQLAlchemy Core statements over the SQLModel tables.

Every function takes the Connection of a transaction the caller opened (`Database.transaction`),
so a use case composes several of them atomically. Core rather than ORM sessions: on this kind of
machine a prebuilt Core statement costs about a third of an ORM round trip.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, RowMapping, Table, delete, insert, select, update

from assistants_grpc.store.pages import UnknownCursorError, fetch_page
from assistants_grpc.store.tables import (
    ACTIVE_RUN_STATUSES,
    AssistantRow,
    MessageRow,
    RunEventRow,
    RunRow,
    RunStepRow,
    ThreadRow,
)

ASSISTANTS: Table = AssistantRow.__table__  # type: ignore[attr-defined]
THREADS: Table = ThreadRow.__table__  # type: ignore[attr-defined]
MESSAGES: Table = MessageRow.__table__  # type: ignore[attr-defined]
RUNS: Table = RunRow.__table__  # type: ignore[attr-defined]
RUN_STEPS: Table = RunStepRow.__table__  # type: ignore[attr-defined]
RUN_EVENTS: Table = RunEventRow.__table__  # type: ignore[attr-defined]


def get_by_id(connection: Connection, table: Table, object_id: str) -> RowMapping | None:
    return connection.execute(select(table).where(table.c.id == object_id)).mappings().first()


def insert_row(connection: Connection, table: Table, values: dict[str, Any]) -> None:
    connection.execute(insert(table).values(**values))


def insert_rows(connection: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        connection.execute(insert(table), list(rows))


def update_by_id(
    connection: Connection, table: Table, object_id: str, values: dict[str, Any]
) -> bool:
    result = connection.execute(update(table).where(table.c.id == object_id).values(**values))
    return result.rowcount > 0


def delete_by_id(connection: Connection, table: Table, object_id: str) -> bool:
    return connection.execute(delete(table).where(table.c.id == object_id)).rowcount > 0


# --- threads and their lock ---------------------------------------------------------------


def lock_thread(connection: Connection, thread_id: str) -> RowMapping | None:
    """The thread row, locked until the transaction ends (FOR UPDATE on PostgreSQL; SQLite's
    single writer already serialises), so "no active run, then write" is one atomic step."""
    query = select(THREADS).where(THREADS.c.id == thread_id).with_for_update()
    return connection.execute(query).mappings().first()


def active_run_id(connection: Connection, thread_id: str) -> str | None:
    query = select(RUNS.c.id).where(
        RUNS.c.thread_id == thread_id, RUNS.c.status.in_(ACTIVE_RUN_STATUSES)
    )
    return connection.execute(query).scalar()


def delete_thread_cascade(connection: Connection, thread_id: str) -> bool:
    """The thread and everything under it: messages, runs, their steps and event logs."""
    for table in (RUN_EVENTS, RUN_STEPS, RUNS, MESSAGES):
        connection.execute(delete(table).where(table.c.thread_id == thread_id))
    return delete_by_id(connection, THREADS, thread_id)


# --- messages -----------------------------------------------------------------------------


def get_message(connection: Connection, thread_id: str, message_id: str) -> RowMapping | None:
    query = select(MESSAGES).where(MESSAGES.c.id == message_id, MESSAGES.c.thread_id == thread_id)
    return connection.execute(query).mappings().first()


def thread_exists(connection: Connection, thread_id: str) -> bool:
    return (
        connection.execute(select(THREADS.c.pk).where(THREADS.c.id == thread_id)).first()
        is not None
    )


__all__ = [
    "ASSISTANTS",
    "MESSAGES",
    "RUNS",
    "RUN_EVENTS",
    "RUN_STEPS",
    "THREADS",
    "UnknownCursorError",
    "active_run_id",
    "delete_by_id",
    "delete_thread_cascade",
    "fetch_page",
    "get_by_id",
    "get_message",
    "insert_row",
    "insert_rows",
    "lock_thread",
    "thread_exists",
    "update_by_id",
]
