"""Key management for the `assistants-grpc keys` commands: create, list, revoke.

These run in the CLI process against the database directly; a running server notices within
its cache time (`--auth-cache-seconds`).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, RowMapping

from assistants_grpc.auth import keys
from assistants_grpc.store import api_keys
from assistants_grpc.store.database import Database


class KeyNotFoundError(LookupError):
    pass


class AmbiguousKeyError(LookupError):
    pass


@dataclass(frozen=True)
class KeyInfo:
    id: str
    prefix: str
    project: str
    created_at: int
    last_used_at: int | None
    revoked_at: int | None

    @classmethod
    def from_row(cls, row: RowMapping) -> KeyInfo:
        return cls(
            id=row["id"],
            prefix=row["prefix"],
            project=row["project"],
            created_at=row["created_at"],
            last_used_at=row["last_used_at"],
            revoked_at=row["revoked_at"],
        )


def create_key(database: Database, project: str, now: int) -> tuple[str, KeyInfo]:
    """A new key of `project`: the key itself (shown once, never stored) and its record."""
    keys.check_project_name(project)
    key = keys.new_key()
    info = KeyInfo(keys.new_key_id(), keys.display_prefix(key), project, now, None, None)
    database.transaction_sync(
        lambda c: api_keys.insert_key(
            c,
            key_id=info.id,
            prefix=info.prefix,
            key_hash=keys.hash_key(key),
            project=project,
            created_at=now,
        )
    )
    return key, info


def list_keys(database: Database, *, include_revoked: bool = False) -> list[KeyInfo]:
    rows = database.transaction_sync(
        lambda c: api_keys.list_keys(c, include_revoked=include_revoked)
    )
    return [KeyInfo.from_row(row) for row in rows]


def revoke_key(database: Database, reference: str, now: int) -> KeyInfo:
    """Revoke the key named by its id, its prefix (or the start of it), or the key itself."""

    def work(connection: Connection) -> KeyInfo:
        if keys.looks_like_key(reference) and len(reference) > keys.PREFIX_LENGTH:
            row = api_keys.find_by_hash(connection, keys.hash_key(reference))
            rows = [row] if row is not None else []
        else:
            rows = api_keys.find_by_id_or_prefix(connection, reference)
        if not rows:
            raise KeyNotFoundError(f"no API key matches {reference!r}")
        if len(rows) > 1:
            names = ", ".join(f"{r['id']} ({r['prefix']})" for r in rows)
            raise AmbiguousKeyError(f"{reference!r} matches several keys: {names}; use an id")
        api_keys.revoke(connection, rows[0]["id"], now)
        info = KeyInfo.from_row(rows[0])
        return info if info.revoked_at is not None else _revoked(info, now)

    return database.transaction_sync(work)


def _revoked(info: KeyInfo, now: int) -> KeyInfo:
    return KeyInfo(
        info.id, info.prefix, info.project, info.created_at, info.last_used_at, revoked_at=now
    )


__all__ = [
    "AmbiguousKeyError",
    "KeyInfo",
    "KeyNotFoundError",
    "create_key",
    "list_keys",
    "revoke_key",
]
