"""Queries, as prebuilt SQLAlchemy Core statements over the SQLModel tables.

Every function takes the Connection of a transaction the caller opened (`Database.transaction`),
so a use case composes several of them atomically. Core rather than ORM sessions: on this kind of
machine a prebuilt Core statement costs about a third of an ORM round trip.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Connection,
    Insert,
    RowMapping,
    Select,
    Table,
    Update,
    bindparam,
    delete,
    func,
    insert,
    literal_column,
    select,
    update,
)

from assistants_grpc.store.pages import UnknownCursorError, fetch_page
from assistants_grpc.store.run_states import ACTIVE, RunStatus
from assistants_grpc.store.tables import (
    ApiKeyRow,
    AssistantRow,
    CodeSessionRow,
    FileContentRow,
    FilePartRow,
    FileRow,
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
API_KEYS: Table = ApiKeyRow.__table__  # type: ignore[attr-defined]
FILES: Table = FileRow.__table__  # type: ignore[attr-defined]
CODE_SESSIONS: Table = CodeSessionRow.__table__  # type: ignore[attr-defined]
FILE_CONTENTS: Table = FileContentRow.__table__  # type: ignore[attr-defined]
FILE_PARTS: Table = FilePartRow.__table__  # type: ignore[attr-defined]


# Statements are built once per table and executed with parameter dicts: building a statement
# (`.values(**row)`) and computing its cache key cost more than executing it.
_BY_ID: BindParameter[str] = bindparam("_id")


@functools.cache
def _select_by_id(table: Table) -> Select[Any]:
    return select(table).where(table.c.id == _BY_ID)


@functools.cache
def _update_by_id(table: Table) -> Update:
    return update(table).where(table.c.id == _BY_ID)


def get_by_id(connection: Connection, table: Table, object_id: str) -> RowMapping | None:
    return connection.execute(_select_by_id(table), {"_id": object_id}).mappings().first()


@functools.cache
def _insert(table: Table) -> Insert:
    return insert(table)


def insert_row(connection: Connection, table: Table, values: dict[str, Any]) -> None:
    connection.execute(_insert(table), values)


def insert_rows(connection: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        connection.execute(_insert(table), list(rows))


@functools.cache
def _select_by_ids(table: Table) -> Select[Any]:
    return select(table).where(table.c.id.in_(bindparam("_ids", expanding=True)))


def rows_by_ids(connection: Connection, table: Table, ids: Sequence[str]) -> list[RowMapping]:
    """The rows of `table` with these ids (any project), in no particular order: a batch
    writer's one look-up for a whole batch instead of one query per object."""
    if not ids:
        return []
    return list(connection.execute(_select_by_ids(table), {"_ids": list(ids)}).mappings())


def update_by_id(
    connection: Connection, table: Table, object_id: str, values: dict[str, Any]
) -> bool:
    result = connection.execute(_update_by_id(table), {"_id": object_id, **values})
    return result.rowcount > 0


def delete_by_id(connection: Connection, table: Table, object_id: str) -> bool:
    return connection.execute(delete(table).where(table.c.id == object_id)).rowcount > 0


# --- projects -------------------------------------------------------------------------------
# Assistants and threads carry their project; everything else lives under a thread. Every read
# by id of a top-level object goes through these, so another project's row is exactly as absent
# as a row that does not exist.


def in_project(table: Table, project: str) -> list[ColumnElement[bool]]:
    """The list scope of a project's assistants or threads."""
    return [table.c.project == project]


@functools.cache
def _select_in_project(table: Table) -> Select[Any]:
    return select(table).where(table.c.id == _BY_ID, table.c.project == bindparam("_project"))


def get_in_project(
    connection: Connection, table: Table, project: str, object_id: str
) -> RowMapping | None:
    parameters = {"_id": object_id, "_project": project}
    return connection.execute(_select_in_project(table), parameters).mappings().first()


# --- threads and their lock ---------------------------------------------------------------


def run_status_in(statuses: Iterable[RunStatus]) -> ColumnElement[bool]:
    """`runs.status IN (...)` with the statuses written into the SQL (in the table's order, so
    the statement is the same every time). `in_` of a plain list makes an expanding parameter,
    and SQLAlchemy re-renders the statement at every execution: on the thread lock, taken by
    every run and message, that cost more than the query."""
    wanted = set(statuses)
    return RUNS.c.status.in_(
        [literal_column(f"'{status.value}'") for status in RunStatus if status in wanted]
    )


_ACTIVE_RUN_OF_THREAD = (
    select(RUNS.c.id)
    .where(RUNS.c.thread_id == THREADS.c.id, run_status_in(ACTIVE))
    .limit(1)
    .scalar_subquery()
)
_LOCK_THREAD_FOR_WRITE = (
    select(THREADS.c.pk, _ACTIVE_RUN_OF_THREAD.label("active_run"))
    .where(THREADS.c.id == bindparam("thread_id"), THREADS.c.project == bindparam("project"))
    .with_for_update(of=THREADS)
)


def lock_thread_for_write(
    connection: Connection, thread_id: str, *, project: str
) -> tuple[bool, str | None]:
    """Lock the project's thread row until the transaction ends (FOR UPDATE on PostgreSQL;
    SQLite's single writer already serialises), so "no active run, then write" is one atomic
    step, and read its active run in the same statement: whether the thread exists, and the id
    of the run holding it, if any."""
    row = connection.execute(
        _LOCK_THREAD_FOR_WRITE, {"thread_id": thread_id, "project": project}
    ).first()
    return (False, None) if row is None else (True, row.active_run)


_LOCK_THREADS_FOR_WRITE = (
    select(THREADS.c.id, THREADS.c.project, _ACTIVE_RUN_OF_THREAD.label("active_run"))
    .where(THREADS.c.id.in_(bindparam("_ids", expanding=True)))
    .order_by(THREADS.c.id)
    .with_for_update(of=THREADS)
)


def lock_threads_for_write(
    connection: Connection, thread_ids: Sequence[str]
) -> dict[str, tuple[str, str | None]]:
    """`lock_thread_for_write` for many threads of any project at once (in id order, so two
    such writers never wait on each other in a circle): each found thread's project and the id
    of the run holding it, if any."""
    if not thread_ids:
        return {}
    rows = connection.execute(_LOCK_THREADS_FOR_WRITE, {"_ids": sorted(set(thread_ids))})
    return {row.id: (row.project, row.active_run) for row in rows}


def active_run_id(connection: Connection, thread_id: str) -> str | None:
    query = select(RUNS.c.id).where(RUNS.c.thread_id == thread_id, run_status_in(ACTIVE))
    return connection.execute(query).scalar()


def delete_thread_cascade(connection: Connection, thread_id: str) -> None:
    """The thread and everything under it: messages, runs, steps and event logs. The caller has
    found the thread in its project, under the thread's lock (`lock_thread_for_write`)."""
    for table in (RUN_EVENTS, RUN_STEPS, RUNS, MESSAGES):
        connection.execute(delete(table).where(table.c.thread_id == thread_id))
    delete_by_id(connection, THREADS, thread_id)


def delete_run_events(connection: Connection, run_id: str) -> None:
    """A run's whole event log (a run written over by an import gets a new one)."""
    connection.execute(delete(RUN_EVENTS).where(RUN_EVENTS.c.run_id == run_id))


# --- reading everything (export) ---------------------------------------------------------


def stream_rows(
    connection: Connection,
    table: Table,
    conditions: Sequence[ColumnElement[bool]],
    *,
    batch: int = 1000,
) -> Iterator[RowMapping]:
    """The rows matching `conditions` in insertion order, fetched `batch` at a time (a
    server-side cursor on PostgreSQL), so a table larger than memory can be walked."""
    query = select(table).where(*conditions).order_by(table.c.pk)
    result = connection.execution_options(yield_per=batch).execute(query)
    yield from result.mappings()


def max_pk(connection: Connection, table: Table) -> int:
    """The highest `pk` so far (0 when empty): rows above it were written after this look."""
    return int(connection.execute(select(func.coalesce(func.max(table.c.pk), 0))).scalar_one())


# --- messages -----------------------------------------------------------------------------


def get_message(connection: Connection, thread_id: str, message_id: str) -> RowMapping | None:
    query = select(MESSAGES).where(MESSAGES.c.id == message_id, MESSAGES.c.thread_id == thread_id)
    return connection.execute(query).mappings().first()


def thread_exists(connection: Connection, thread_id: str, *, project: str) -> bool:
    """Whether `project` has this thread: the check every thread-scoped call starts with."""
    query = select(THREADS.c.pk).where(THREADS.c.id == thread_id, THREADS.c.project == project)
    return connection.execute(query).first() is not None


__all__ = [
    "API_KEYS",
    "ASSISTANTS",
    "CODE_SESSIONS",
    "FILES",
    "FILE_CONTENTS",
    "FILE_PARTS",
    "MESSAGES",
    "RUNS",
    "RUN_EVENTS",
    "RUN_STEPS",
    "THREADS",
    "UnknownCursorError",
    "active_run_id",
    "delete_by_id",
    "delete_run_events",
    "delete_thread_cascade",
    "fetch_page",
    "get_by_id",
    "get_in_project",
    "get_message",
    "in_project",
    "insert_row",
    "insert_rows",
    "lock_thread_for_write",
    "lock_threads_for_write",
    "max_pk",
    "rows_by_ids",
    "run_status_in",
    "stream_rows",
    "thread_exists",
    "update_by_id",
]
