"""`vector_store` (top level) and `vector_store.file` (under its store, naming its File).

OpenAI's dumps have no chunks, and a store here is only searchable through chunks this server
made (its extraction, its chunking, its embedding model), so the files of an imported store are
indexed again: each `vector_store.file` whose status was `completed` or `in_progress` is written
`in_progress`, which makes it a job for the server's ingestion worker (files/ingest.py). A
server running beside the import picks them up at its next poll; one started later picks them
up when it starts. Files that were `failed` or `cancelled` keep that status and their
`last_error`: nothing ingests them.

A store's `status`, `file_counts` and `usage_bytes` are not imported: they are counted from its
files whenever a store is read (store/vector_stores.py), so they say what this server holds. A
store's files ingested, `status` and `file_counts` read as in the dump again; `usage_bytes` is
what the chunks take here. Ingesting counts as activity (as adding files does), so a store's
`last_active_at`, and the `expires_at` of a store with a policy, move to the end of its
ingestion when that is later.

A store that was `expired` in the dump, or whose `expires_at` has passed, is imported expired:
its files are not ingested (expiry deletes a store's chunks), those `in_progress` are written
`cancelled`. New stores embed with the server's embedding model (`--embedding-model`, as the
server's new stores do); without one they are searched lexically. A chunking strategy of type
`other` (files added before strategies existed) is chunked as `auto` (800/400) and shown so.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Final

from sqlalchemy import Connection, RowMapping, update

from assistants_grpc.contract.openai_json import enum_name, render, value_json
from assistants_grpc.contract.pb import common_pb2, vector_store_pb2
from assistants_grpc.services import validation as check
from assistants_grpc.services.vector_stores import (
    check_attributes,
    check_expires_after,
    file_from_row,
    store_from_row,
)
from assistants_grpc.store import repository as repo
from assistants_grpc.store import vector_stores as vs
from assistants_grpc.transfer.kinds._base import Context, Kind, Parent

V = vector_store_pb2

__all__ = ["VectorStoreFileKind", "VectorStoreKind", "start_over"]

_DAY: Final = 86400
# What a store's derived fields read before counting (only to compare stored and imported).
_NO_FILES: Final = dict.fromkeys(("in_progress", "completed", "failed", "cancelled", "total"), 0)
_DERIVED: Final = ("status", "file_counts", "usage_bytes")
# Statuses an imported file is (re)ingested from, and the one that says "ingested or to be".
_INGESTED: Final = frozenset({"in_progress", "completed"})


def start_over(connection: Connection, store_id: str, file_id: str) -> None:
    """Make a store's file a new ingestion job (its chunks deleted), as adding it again does."""
    columns = vs.VECTOR_STORE_FILES.c
    connection.execute(
        update(vs.VECTOR_STORE_FILES)
        .where(columns.vector_store_id == store_id, columns.id == file_id)
        .values(
            status="in_progress",
            usage_bytes=0,
            last_error=None,
            lease_owner=None,
            lease_expires_at=None,
            attempts=0,
        )
    )
    if vs.delete_chunks(connection, store_id, file_id):
        vs.bump_version(connection, store_id)


class VectorStoreKind(Kind):
    object = "vector_store"
    message_type = V.VectorStore
    table = vs.VECTOR_STORES
    top_level = True

    def check(self, obj: vector_store_pb2.VectorStore, v: check.Violations) -> None:
        super().check(obj, v)
        check.check_length(v, "name", obj.name, check.MAX_NAME)
        if obj.HasField("expires_after"):
            check_expires_after(v, "expires_after", obj.expires_after)

    def values(self, obj: vector_store_pb2.VectorStore, context: Context) -> dict[str, Any]:
        days = obj.expires_after.days if obj.HasField("expires_after") else None
        last_active = obj.last_active_at if obj.HasField("last_active_at") else obj.created_at
        if obj.HasField("expires_at"):
            expires_at: int | None = obj.expires_at
        else:
            expires_at = last_active + days * _DAY if days else None
        expired_at = None
        if obj.status == V.VECTOR_STORE_STATUS_EXPIRED or (
            expires_at is not None and expires_at <= context.now
        ):
            expired_at = expires_at if expires_at is not None else last_active
        return {
            "id": obj.id,
            "project": context.project,
            "created_at": obj.created_at,
            "name": obj.name,
            "description": None,
            "metadata": dict(obj.metadata),
            "last_active_at": last_active,
            "expires_after_days": days,
            "expires_at": expires_at,
            "expired_at": expired_at,
            "embedding_model": context.embedding_model,
            "version": 0,
        }

    def from_row(self, row: Mapping[str, Any]) -> vector_store_pb2.VectorStore:
        return store_from_row(row, {**_NO_FILES, "usage_bytes": 0})  # type: ignore[arg-type]

    def same(self, row: Mapping[Any, Any], values: dict[str, Any]) -> bool:
        # What is counted from the files (and whether it has expired by now) is not compared:
        # a rerun after the server ingested or expired it changes nothing.
        stored, imported = render(self.from_row(row)), render(self.from_row(values))
        for key in _DERIVED:
            del stored[key], imported[key]
        return stored == imported

    def overwrite(self, connection: Connection, row: RowMapping, values: dict[str, Any]) -> None:
        # Its chunks were embedded with its model, and expiry deleted an expired one's.
        kept = {k: v for k, v in values.items() if k not in ("embedding_model", "version")}
        if row["expired_at"] is not None:
            kept["expired_at"] = row["expired_at"]
        repo.update_by_id(connection, self.table, row["id"], kept)

    def render_rows(
        self, connection: Connection, rows: Sequence[Mapping[str, Any]]
    ) -> Iterator[dict[str, Any]]:
        counts = vs.file_counts(connection, "vector_store_id", [row["id"] for row in rows])
        for row in rows:
            yield render(store_from_row(row, counts[row["id"]]))  # type: ignore[arg-type]


class VectorStoreFileKind(Kind):
    object = "vector_store.file"
    message_type = V.VectorStoreFile
    table = vs.VECTOR_STORE_FILES
    parent = Parent("vector_store", "vector_store_id")
    group_field = "vector_store_id"
    required = ("id", "created_at", "vector_store_id", "status")
    id_fields = ("id", "vector_store_id")
    needs = (("id", "file"),)

    def check(self, obj: vector_store_pb2.VectorStoreFile, v: check.Violations) -> None:
        if obj.status == V.VECTOR_STORE_FILE_STATUS_UNSPECIFIED:
            v.add("status", "required.")
        check_attributes(v, "attributes", obj.attributes)
        if obj.chunking_strategy.HasField("static"):
            strategy = common_pb2.ChunkingStrategy(static=obj.chunking_strategy.static)
            check.check_chunking_strategy(v, "chunking_strategy", strategy)

    # A vector-store file's id is its File's: unique only within its store.
    def key(self, obj: vector_store_pb2.VectorStoreFile) -> str:
        return f"{obj.vector_store_id}/{obj.id}"

    def row_key(self, row: Mapping[Any, Any]) -> str:
        return f"{row['vector_store_id']}/{row['id']}"

    def existing(
        self, connection: Connection, objects: Sequence[vector_store_pb2.VectorStoreFile]
    ) -> dict[str, RowMapping]:
        wanted = {self.key(o) for o in objects}
        found = super().existing(connection, objects)  # the File's rows in any store
        return {key: row for key, row in found.items() if key in wanted}

    def values(self, obj: vector_store_pb2.VectorStoreFile, context: Context) -> dict[str, Any]:
        store = context.looked_up("vector_store", obj.vector_store_id)
        file = context.looked_up("file", obj.id)
        assert store is not None and file is not None  # checked before (parent, needs)
        status = enum_name(V.VectorStoreFileStatus, obj.status) or ""
        usage = obj.usage_bytes
        if store["expired_at"] is not None:
            status = "cancelled" if status == "in_progress" else status
        elif status in _INGESTED:
            status, usage = "in_progress", 0
        if obj.chunking_strategy.HasField("static"):
            static = obj.chunking_strategy.static
            chunking = (static.max_chunk_size_tokens, static.chunk_overlap_tokens)
        else:
            chunking = (check.AUTO_CHUNK_TOKENS, check.AUTO_CHUNK_OVERLAP)
        error = None
        if obj.HasField("last_error"):
            code = enum_name(V.VectorStoreFileErrorCode, obj.last_error.code)
            error = {"code": code, "message": obj.last_error.message}
        return {
            "id": obj.id,
            "vector_store_id": obj.vector_store_id,
            "created_at": obj.created_at,
            "filename": file["filename"],
            "status": status,
            "usage_bytes": usage,
            "last_error": error,
            "chunk_max_tokens": chunking[0],
            "chunk_overlap_tokens": chunking[1],
            "attributes": {key: value_json(value) for key, value in obj.attributes.items()},
            "batch_id": None,
            "lease_owner": None,
            "lease_expires_at": None,
            "attempts": 0,
        }

    def from_row(self, row: Mapping[str, Any]) -> vector_store_pb2.VectorStoreFile:
        return file_from_row(row)  # type: ignore[arg-type]

    def same(self, row: Mapping[Any, Any], values: dict[str, Any]) -> bool:
        return _comparable(render(self.from_row(row))) == _comparable(render(self.from_row(values)))

    def overwrite(self, connection: Connection, row: RowMapping, values: dict[str, Any]) -> None:
        columns = vs.VECTOR_STORE_FILES.c
        connection.execute(
            update(vs.VECTOR_STORE_FILES).where(columns.pk == row["pk"]).values(**values)
        )
        # Its chunks were made from what it was: ingested again, or none for a failed one.
        if vs.delete_chunks(connection, row["vector_store_id"], row["id"]):
            vs.bump_version(connection, row["vector_store_id"])


def _comparable(rendered: dict[str, Any]) -> dict[str, Any]:
    """A file to be ingested and the same file ingested since (or under way) are the same."""
    if rendered["status"] in _INGESTED:
        return rendered | {"status": "ingested", "usage_bytes": None}
    return rendered
