"""Project scoping: the lookups that make another project's objects invisible.

Assistants and threads carry a project; messages, runs and steps live under a thread. So every
use case starts here: a top-level object is read only within the caller's project, and a
thread-scoped call first checks that the thread is the project's. Another project's id then gets
exactly the NOT_FOUND (same message) as an id that never existed.
"""

from __future__ import annotations

from sqlalchemy import Connection, RowMapping, Table

from assistants_grpc.services.errors import NotFoundError
from assistants_grpc.services.validation import plausible_id
from assistants_grpc.store import repository as repo


def _row_in_project(
    connection: Connection, table: Table, kind: str, project: str, object_id: str
) -> RowMapping:
    row = (
        repo.get_in_project(connection, table, project, object_id)
        if plausible_id(object_id)
        else None
    )
    if row is None:
        raise NotFoundError(kind, object_id)
    return row


def get_assistant_row(connection: Connection, project: str, assistant_id: str) -> RowMapping:
    return _row_in_project(connection, repo.ASSISTANTS, "assistant", project, assistant_id)


def get_thread_row(connection: Connection, project: str, thread_id: str) -> RowMapping:
    return _row_in_project(connection, repo.THREADS, "thread", project, thread_id)


def require_thread(connection: Connection, project: str, thread_id: str) -> None:
    """NOT_FOUND unless the project has this thread."""
    if not (plausible_id(thread_id) and repo.thread_exists(connection, thread_id, project=project)):
        raise NotFoundError("thread", thread_id)


__all__ = ["get_assistant_row", "get_thread_row", "require_thread"]
