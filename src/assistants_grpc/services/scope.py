"""Project scoping: the lookups that make another project's objects invisible.

Assistants and threads carry a project; messages, runs and steps live under a thread. So every
use case starts here: a top-level object is read only within the caller's project, and a
thread-scoped call first checks that the thread is the project's. Another project's id then gets
exactly the NOT_FOUND (same message) as an id that never existed.
"""

from __future__ import annotations

from sqlalchemy import Connection, RowMapping

from assistants_grpc.services.errors import NotFoundError
from assistants_grpc.services.validation import plausible_id
from assistants_grpc.store import repository as repo


def get_assistant_row(connection: Connection, project: str, assistant_id: str) -> RowMapping:
    row = (
        repo.get_in_project(connection, repo.ASSISTANTS, project, assistant_id)
        if plausible_id(assistant_id)
        else None
    )
    if row is None:
        raise NotFoundError("assistant", assistant_id)
    return row


def get_thread_row(connection: Connection, project: str, thread_id: str) -> RowMapping:
    row = (
        repo.get_in_project(connection, repo.THREADS, project, thread_id)
        if plausible_id(thread_id)
        else None
    )
    if row is None:
        raise NotFoundError("thread", thread_id)
    return row


def require_thread(connection: Connection, project: str, thread_id: str) -> None:
    """NOT_FOUND unless the project has this thread."""
    if not (plausible_id(thread_id) and repo.thread_exists(connection, thread_id, project=project)):
        raise NotFoundError("thread", thread_id)


__all__ = ["get_assistant_row", "get_thread_row", "require_thread"]
