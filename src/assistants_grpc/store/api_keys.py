"""Queries of the `api_keys` table. Keys are found by the sha256 of the key, never by the key."""

from __future__ import annotations

from sqlalchemy import Connection, RowMapping, insert, or_, select, update

from assistants_grpc.store.repository import API_KEYS


def insert_key(
    connection: Connection,
    *,
    key_id: str,
    prefix: str,
    key_hash: str,
    project: str,
    created_at: int,
) -> None:
    connection.execute(
        insert(API_KEYS).values(
            id=key_id, prefix=prefix, key_hash=key_hash, project=project, created_at=created_at
        )
    )


def find_by_hash(connection: Connection, key_hash: str) -> RowMapping | None:
    query = select(API_KEYS).where(API_KEYS.c.key_hash == key_hash)
    return connection.execute(query).mappings().first()


def any_active(connection: Connection) -> bool:
    """Whether at least one key is not revoked: what switches `--auth auto` on."""
    query = select(API_KEYS.c.pk).where(API_KEYS.c.revoked_at.is_(None)).limit(1)
    return connection.execute(query).first() is not None


def list_keys(connection: Connection, *, include_revoked: bool) -> list[RowMapping]:
    query = select(API_KEYS).order_by(API_KEYS.c.pk)
    if not include_revoked:
        query = query.where(API_KEYS.c.revoked_at.is_(None))
    return list(connection.execute(query).mappings())


def find_by_id_or_prefix(connection: Connection, reference: str) -> list[RowMapping]:
    """Keys whose id is `reference` or whose prefix starts with it (several: ambiguous)."""
    escaped = reference.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    query = select(API_KEYS).where(
        or_(API_KEYS.c.id == reference, API_KEYS.c.prefix.like(escaped + "%", escape="\\"))
    )
    return list(connection.execute(query).mappings())


def revoke(connection: Connection, key_id: str, now: int) -> bool:
    """Revoke the key; False if it was already revoked (the first revocation time stays)."""
    query = (
        update(API_KEYS)
        .where(API_KEYS.c.id == key_id, API_KEYS.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return connection.execute(query).rowcount > 0


def touch(connection: Connection, key_id: str, now: int) -> None:
    connection.execute(update(API_KEYS).where(API_KEYS.c.id == key_id).values(last_used_at=now))


__all__ = [
    "any_active",
    "find_by_hash",
    "find_by_id_or_prefix",
    "insert_key",
    "list_keys",
    "revoke",
    "touch",
]
