"""The queries of Files and their contents, prebuilt like the rest (`store/repository.py`).

A File is *live* until its `expires_at`: from then on every read treats it as absent, before
the sweep deletes it, so expiry does not wait on the sweep's timing. A content (`file_contents`)
is counted by the Files that share it; the row is also what serialises the upload of some bytes
with the deletion of the last File holding them (an UPDATE of it locks it on PostgreSQL).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Connection,
    RowMapping,
    String,
    TextClause,
    bindparam,
    cast,
    delete,
    func,
    insert,
    or_,
    select,
    text,
    update,
)

from assistants_grpc.store.repository import (
    ASSISTANTS,
    FILE_CONTENTS,
    FILE_PARTS,
    FILES,
    MESSAGES,
    THREADS,
)

_NOW: BindParameter[int] = bindparam("now")


def live(now: Any = _NOW) -> ColumnElement[bool]:
    """Files not expired at `now` (a bound parameter by default)."""
    return or_(FILES.c.expires_at.is_(None), FILES.c.expires_at > now)


_LIVE_FILE = select(FILES).where(FILES.c.id == bindparam("id"), live())
_LIVE_FILE_IN_PROJECT = _LIVE_FILE.where(FILES.c.project == bindparam("project"))
_PROJECT_USAGE = select(func.coalesce(func.sum(FILES.c.bytes), 0)).where(
    FILES.c.project == bindparam("project"), live()
)


def get_live_file(
    connection: Connection, file_id: str, *, now: int, project: str | None = None
) -> RowMapping | None:
    """The File's row if it exists and has not expired (and is `project`'s, when given)."""
    if project is None:
        return connection.execute(_LIVE_FILE, {"id": file_id, "now": now}).mappings().first()
    parameters = {"id": file_id, "now": now, "project": project}
    return connection.execute(_LIVE_FILE_IN_PROJECT, parameters).mappings().first()


def project_usage(connection: Connection, project: str, *, now: int) -> int:
    """The bytes of the project's live Files (what its quota counts)."""
    return int(connection.execute(_PROJECT_USAGE, {"project": project, "now": now}).scalar_one())


def lock_project_files(connection: Connection, project: str) -> None:
    """Serialise the project's quota checks until the transaction ends. On PostgreSQL an
    advisory lock (there is no project row to lock); SQLite has one writer already."""
    if connection.dialect.name != "postgresql":
        return
    digest = hashlib.sha256(f"assistants-grpc files {project}".encode()).digest()
    key = int.from_bytes(digest[:8], "big", signed=True)
    connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


_EXPIRED = (
    select(FILES.c.id, FILES.c.project)
    .where(FILES.c.expires_at.is_not(None), FILES.c.expires_at <= _NOW)
    .order_by(FILES.c.expires_at)
    .limit(bindparam("limit"))
)


def expired_files(connection: Connection, *, now: int, limit: int) -> list[tuple[str, str]]:
    """(id, project) of Files expired at `now`, the oldest first, at most `limit`."""
    rows = connection.execute(_EXPIRED, {"now": now, "limit": limit})
    return [(row.id, row.project) for row in rows]


# --- contents -----------------------------------------------------------------------------

_SHA: BindParameter[str] = bindparam("_sha256")
_ADD_REF = (
    update(FILE_CONTENTS)
    .where(FILE_CONTENTS.c.sha256 == _SHA)
    .values(refs=FILE_CONTENTS.c.refs + 1)
)
_DROP_REF = (
    update(FILE_CONTENTS)
    .where(FILE_CONTENTS.c.sha256 == _SHA)
    .values(refs=FILE_CONTENTS.c.refs - 1)
)
_REFS = select(FILE_CONTENTS.c.refs).where(FILE_CONTENTS.c.sha256 == _SHA)
_DELETE_CONTENT = delete(FILE_CONTENTS).where(FILE_CONTENTS.c.sha256 == _SHA)
_INSERT_CONTENT = insert(FILE_CONTENTS)


def add_content_ref(connection: Connection, sha256: str, size: int, *, now: int) -> bool:
    """Count one more File of this content; True when the content is new (its row was made
    here, so its bytes must be stored in this transaction)."""
    if connection.execute(_ADD_REF, {"_sha256": sha256}).rowcount > 0:
        return False
    connection.execute(
        _INSERT_CONTENT, {"sha256": sha256, "bytes": size, "refs": 1, "created_at": now}
    )
    return True


def drop_content_ref(connection: Connection, sha256: str) -> bool:
    """Count one File fewer; True when it was the last one (the row is gone, so its bytes
    must go too)."""
    connection.execute(_DROP_REF, {"_sha256": sha256})
    refs = connection.execute(_REFS, {"_sha256": sha256}).scalar()
    if refs is None or refs > 0:
        return False
    connection.execute(_DELETE_CONTENT, {"_sha256": sha256})
    return True


def content_exists(connection: Connection, sha256: str) -> bool:
    return connection.execute(_REFS, {"_sha256": sha256}).first() is not None


_ALL_CONTENTS = select(FILE_CONTENTS.c.sha256)


def content_names(connection: Connection) -> set[str]:
    return set(connection.execute(_ALL_CONTENTS).scalars())


_INSERT_PART = insert(FILE_PARTS)
_PART = select(FILE_PARTS.c.data).where(
    FILE_PARTS.c.sha256 == _SHA, FILE_PARTS.c.seq == bindparam("_seq")
)
_DELETE_PARTS = delete(FILE_PARTS).where(FILE_PARTS.c.sha256 == _SHA)


def insert_part(connection: Connection, sha256: str, seq: int, data: bytes) -> None:
    connection.execute(_INSERT_PART, {"sha256": sha256, "seq": seq, "data": data})


def read_part(connection: Connection, sha256: str, seq: int) -> bytes | None:
    data = connection.execute(_PART, {"_sha256": sha256, "_seq": seq}).scalar()
    return None if data is None else bytes(data)


def delete_parts(connection: Connection, sha256: str) -> None:
    connection.execute(_DELETE_PARTS, {"_sha256": sha256})


# --- the rows that may name a File ----------------------------------------------------------
# JSON is searched as its text: a File id is letters, digits and one '-', nothing LIKE treats
# specially, and quoted it matches only a whole id. The conditions repeat the partial indexes'
# predicates (tables.py) word for word, so the databases use those indexes.


def _literal(connection: Connection, sqlite: str, postgresql: str) -> TextClause:
    return text(postgresql if connection.dialect.name == "postgresql" else sqlite)


def _naming(column: Any, file_id: str) -> ColumnElement[bool]:
    return cast(column, String).like(f'%"{file_id}"%')


def assistants_naming(connection: Connection, project: str, file_id: str) -> Sequence[RowMapping]:
    """The project's assistants whose tool resources may name the file: (id, tool_resources)."""
    query = select(ASSISTANTS.c.id, ASSISTANTS.c.tool_resources).where(
        ASSISTANTS.c.project == project, _naming(ASSISTANTS.c.tool_resources, file_id)
    )
    return connection.execute(query).mappings().all()


def threads_naming(connection: Connection, project: str, file_id: str) -> Sequence[RowMapping]:
    """The project's threads whose tool resources may name the file: (id, tool_resources)."""
    has_resources = _literal(
        connection,
        "threads.tool_resources <> 'null'",
        "CAST(threads.tool_resources AS TEXT) <> 'null'",
    )
    query = select(THREADS.c.id, THREADS.c.tool_resources).where(
        THREADS.c.project == project, has_resources, _naming(THREADS.c.tool_resources, file_id)
    )
    return connection.execute(query).mappings().all()


def messages_naming(connection: Connection, project: str, file_id: str) -> Sequence[RowMapping]:
    """The messages of the project's threads whose attachments may name the file:
    (id, attachments)."""
    has_attachments = _literal(
        connection,
        "messages.attachments <> '[]'",
        "CAST(messages.attachments AS TEXT) <> '[]'",
    )
    query = select(MESSAGES.c.id, MESSAGES.c.attachments).where(
        has_attachments,
        MESSAGES.c.thread_id.in_(select(THREADS.c.id).where(THREADS.c.project == project)),
        _naming(MESSAGES.c.attachments, file_id),
    )
    return connection.execute(query).mappings().all()


__all__ = [
    "add_content_ref",
    "assistants_naming",
    "content_exists",
    "content_names",
    "delete_parts",
    "drop_content_ref",
    "expired_files",
    "get_live_file",
    "insert_part",
    "live",
    "lock_project_files",
    "messages_naming",
    "project_usage",
    "read_part",
    "threads_naming",
]
