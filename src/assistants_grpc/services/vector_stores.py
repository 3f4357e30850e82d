"""Vector-store use cases: stores, their files and batches, their text, and search.

A store belongs to the project that made it; its files must be live Files of that project. A
file added to a store is ingested in the background by the ingestion worker (files/ingest.py);
here it is only written `in_progress` and the worker is woken. Statuses and counts are counted
from the file rows on every read (store/vector_stores.py), so they are right whatever happened
in between. Removing a file, cancelling a batch or deleting a store deletes the chunks in the
same transaction as the status change, and bumps the store's version (every replica's cached
vectors of it go stale).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from google.protobuf import struct_pb2
from sqlalchemy import Connection, RowMapping, update

from assistants_grpc.contract.openai_json import enum_name, enum_value, render_value, value_json
from assistants_grpc.contract.pb import common_pb2, vector_store_pb2
from assistants_grpc.files import filters as attribute_filters
from assistants_grpc.files.chunking import rebuild_text
from assistants_grpc.files.retrieval import Retriever, SearchQuery
from assistants_grpc.services import validation as check
from assistants_grpc.services.deps import Dependencies
from assistants_grpc.services.errors import FailedPreconditionError, NotFoundError
from assistants_grpc.services.listing import list_in
from assistants_grpc.store import files as file_queries
from assistants_grpc.store import repository as repo
from assistants_grpc.store import vector_stores as vs

V = vector_store_pb2

__all__ = [
    "THREAD_STORE_EXPIRY_DAYS",
    "VectorStoreService",
    "add_files",
    "attach_to_thread_store",
    "file_search_attachments",
    "make_resource_stores",
    "new_store_row",
    "store_from_row",
]

# A store made for a thread (create-form resources, attachments) expires 7 days after it was
# last active (CONTRACT.md §12).
THREAD_STORE_EXPIRY_DAYS: Final = 7

MAX_BATCH_FILES: Final = 2000
MAX_QUERIES: Final = 5
MAX_QUERY_CHARS: Final = 4096
MAX_EXPIRY_DAYS: Final = 365
DEFAULT_SEARCH_RESULTS: Final = 10
_RANKERS: Final = ("none", "auto", "default-2024-11-15", "default_2024_08_21")
MAX_ATTRIBUTES: Final = 16
MAX_ATTRIBUTE_KEY: Final = 64
MAX_ATTRIBUTE_VALUE: Final = 512

Attributes = Mapping[str, struct_pb2.Value]


# --- checks -------------------------------------------------------------------------------


def check_attributes(v: check.Violations, path: str, attributes: Attributes) -> None:
    if len(attributes) > MAX_ATTRIBUTES:
        v.add(path, f"at most {MAX_ATTRIBUTES} keys are allowed, got {len(attributes)}.")
    for key, value in attributes.items():
        if not key or len(key) > MAX_ATTRIBUTE_KEY:
            v.add(f"{path}.{key[:MAX_ATTRIBUTE_KEY]}", f"keys must be 1..{MAX_ATTRIBUTE_KEY} long.")
        kind = value.WhichOneof("kind")
        if kind == "string_value":
            if len(value.string_value) > MAX_ATTRIBUTE_VALUE:
                v.add(f"{path}.{key}", f"string longer than {MAX_ATTRIBUTE_VALUE} characters.")
        elif kind not in ("number_value", "bool_value"):
            v.add(f"{path}.{key}", "must be a string, a number or a boolean.")


def check_expires_after(
    v: check.Violations, path: str, policy: vector_store_pb2.VectorStoreExpiresAfter
) -> None:
    if policy.anchor != V.VECTOR_STORE_EXPIRY_ANCHOR_LAST_ACTIVE_AT:
        v.add(f"{path}.anchor", "must be last_active_at.")
    if not 1 <= policy.days <= MAX_EXPIRY_DAYS:
        v.add(f"{path}.days", f"must be 1..{MAX_EXPIRY_DAYS}.")


def _check_file_ids(v: check.Violations, path: str, file_ids: Sequence[str], limit: int) -> None:
    if len(file_ids) > limit:
        v.add(path, f"at most {limit} file ids, got {len(file_ids)}.")
    for i, file_id in enumerate(file_ids):
        if not file_id:
            v.add(f"{path}[{i}]", "required.")


def _attributes_json(attributes: Attributes) -> dict[str, Any]:
    return {key: value_json(value) for key, value in attributes.items()}


# --- rows ⇄ objects ---------------------------------------------------------------------------


def _counts(counts: Mapping[str, int]) -> vector_store_pb2.VectorStoreFileCounts:
    return V.VectorStoreFileCounts(
        in_progress=counts["in_progress"],
        completed=counts["completed"],
        failed=counts["failed"],
        cancelled=counts["cancelled"],
        total=counts["total"],
    )


def store_from_row(row: RowMapping, counts: Mapping[str, int]) -> vector_store_pb2.VectorStore:
    if row["expired_at"] is not None:
        status = V.VECTOR_STORE_STATUS_EXPIRED
    elif counts["in_progress"]:
        status = V.VECTOR_STORE_STATUS_IN_PROGRESS
    else:
        status = V.VECTOR_STORE_STATUS_COMPLETED
    store = V.VectorStore(
        id=row["id"],
        created_at=row["created_at"],
        name=row["name"],
        usage_bytes=counts["usage_bytes"],
        file_counts=_counts(counts),
        status=status,
        last_active_at=row["last_active_at"],
        metadata=row["metadata"],
    )
    if row["expires_after_days"] is not None:
        store.expires_after.CopyFrom(
            V.VectorStoreExpiresAfter(
                anchor=V.VECTOR_STORE_EXPIRY_ANCHOR_LAST_ACTIVE_AT, days=row["expires_after_days"]
            )
        )
        store.expires_at = row["expires_at"]
    return store


def file_from_row(row: RowMapping) -> vector_store_pb2.VectorStoreFile:
    item = V.VectorStoreFile(
        id=row["id"],
        usage_bytes=row["usage_bytes"],
        created_at=row["created_at"],
        vector_store_id=row["vector_store_id"],
        status=enum_value(V.VectorStoreFileStatus, row["status"]),
        chunking_strategy=V.VectorStoreFileChunkingStrategy(
            static=common_pb2.StaticChunkingStrategy(
                max_chunk_size_tokens=row["chunk_max_tokens"],
                chunk_overlap_tokens=row["chunk_overlap_tokens"],
            )
        ),
    )
    error = row["last_error"]
    if error is not None:
        item.last_error.code = enum_value(V.VectorStoreFileErrorCode, error["code"])
        item.last_error.message = error["message"]
    for key, value in (row["attributes"] or {}).items():
        holder = struct_pb2.Struct()
        holder.update({"v": value})
        item.attributes[key].CopyFrom(holder.fields["v"])
    return item


def batch_from_row(
    row: RowMapping, counts: Mapping[str, int]
) -> vector_store_pb2.VectorStoreFileBatch:
    if counts["in_progress"]:
        status = V.VECTOR_STORE_FILE_BATCH_STATUS_IN_PROGRESS
    elif row["cancelled_at"] is not None:
        status = V.VECTOR_STORE_FILE_BATCH_STATUS_CANCELLED
    elif counts["total"] and counts["failed"] == counts["total"]:
        status = V.VECTOR_STORE_FILE_BATCH_STATUS_FAILED
    else:
        status = V.VECTOR_STORE_FILE_BATCH_STATUS_COMPLETED
    return V.VectorStoreFileBatch(
        id=row["id"],
        created_at=row["created_at"],
        vector_store_id=row["vector_store_id"],
        status=status,
        file_counts=_counts(counts),
    )


def new_store_row(
    new_id: Callable[[str], str],
    project: str,
    now: int,
    *,
    name: str = "",
    metadata: Mapping[str, str] | None = None,
    description: str | None = None,
    expires_after_days: int | None = None,
    embedding_model: str | None = None,
) -> dict[str, Any]:
    return {
        "id": new_id("vector_store"),
        "project": project,
        "created_at": now,
        "name": name,
        "description": description,
        "metadata": dict(metadata or {}),
        "last_active_at": now,
        "expires_after_days": expires_after_days,
        "expires_at": now + expires_after_days * 86400 if expires_after_days else None,
        "expired_at": None,
        "embedding_model": embedding_model,
        "version": 0,
    }


def add_files(
    connection: Connection,
    project: str,
    store_id: str,
    files: Sequence[tuple[str, tuple[int, int], dict[str, Any]]],
    now: int,
    *,
    batch_id: str | None = None,
    field: str = "file_ids",
) -> None:
    """Put Files (id, (max tokens, overlap), attributes) into a store, `in_progress`: a new row,
    or the row the file already has there started over (its chunks deleted). NOT_FOUND for a
    File the project does not have (or that expired)."""
    changed = False
    for i, (file_id, (max_tokens, overlap), attributes) in enumerate(files):
        file_row = (
            file_queries.get_live_file(connection, file_id, now=now, project=project)
            if check.plausible_id(file_id)
            else None
        )
        if file_row is None:
            raise NotFoundError("file", file_id)
        values = {
            "status": "in_progress",
            "filename": file_row["filename"],
            "usage_bytes": 0,
            "last_error": None,
            "chunk_max_tokens": max_tokens,
            "chunk_overlap_tokens": overlap,
            "attributes": attributes,
            "batch_id": batch_id,
            "lease_owner": None,
            "lease_expires_at": None,
            "attempts": 0,
        }
        if vs.get_file(connection, store_id, file_id) is not None:
            changed = vs.delete_chunks(connection, store_id, file_id) > 0 or changed
            connection.execute(
                update(vs.VECTOR_STORE_FILES)
                .where(
                    vs.VECTOR_STORE_FILES.c.vector_store_id == store_id,
                    vs.VECTOR_STORE_FILES.c.id == file_id,
                )
                .values(created_at=now, **values)
            )
        else:
            repo.insert_row(
                connection,
                vs.VECTOR_STORE_FILES,
                {"id": file_id, "vector_store_id": store_id, "created_at": now, **values},
            )
        del i
    if changed:
        vs.bump_version(connection, store_id)
    vs.touch_stores(connection, [store_id], now)
    del field


class VectorStoreService:
    def __init__(self, deps: Dependencies, retriever: Retriever, wake: Callable[[], None]) -> None:
        self._deps = deps
        self._retriever = retriever
        self._wake = wake

    def _store_row(self, connection: Connection, project: str, store_id: str) -> RowMapping:
        row = vs.get_store(connection, project, store_id) if check.plausible_id(store_id) else None
        if row is None:
            raise NotFoundError("vector store", store_id)
        return row

    def _live_store_row(self, connection: Connection, project: str, store_id: str) -> RowMapping:
        row = self._store_row(connection, project, store_id)
        if row["expired_at"] is not None:
            raise FailedPreconditionError(f"Vector store {store_id} has expired.")
        return row

    def _store(self, connection: Connection, row: RowMapping) -> vector_store_pb2.VectorStore:
        counts = vs.file_counts(connection, "vector_store_id", [row["id"]])[row["id"]]
        return store_from_row(row, counts)

    # --- stores -------------------------------------------------------------------------------

    async def create(
        self, project: str, request: vector_store_pb2.CreateVectorStoreRequest
    ) -> vector_store_pb2.VectorStore:
        v = check.Violations()
        if request.HasField("name"):
            check.check_length(v, "name", request.name, check.MAX_NAME)
        if request.HasField("description"):
            check.check_length(v, "description", request.description, check.MAX_DESCRIPTION)
        _check_file_ids(v, "file_ids", request.file_ids, check.MAX_STORE_FILE_IDS)
        chunking = (check.AUTO_CHUNK_TOKENS, check.AUTO_CHUNK_OVERLAP)
        if request.HasField("chunking_strategy"):
            if not request.file_ids:
                v.add("chunking_strategy", "only allowed with file_ids.")
            chunking = check.check_chunking_strategy(
                v, "chunking_strategy", request.chunking_strategy
            )
        if request.HasField("expires_after"):
            check_expires_after(v, "expires_after", request.expires_after)
        check.check_metadata(v, "metadata", request.metadata)
        v.raise_if_any()
        now = self._deps.now()
        row = new_store_row(
            self._deps.new_id,
            project,
            now,
            name=request.name,
            metadata=request.metadata,
            description=request.description if request.HasField("description") else None,
            expires_after_days=(
                request.expires_after.days if request.HasField("expires_after") else None
            ),
            embedding_model=self._retriever.embedding_model,
        )

        def work(connection: Connection) -> vector_store_pb2.VectorStore:
            repo.insert_row(connection, vs.VECTOR_STORES, row)
            files: list[tuple[str, tuple[int, int], dict[str, Any]]] = [
                (file_id, chunking, {}) for file_id in dict.fromkeys(request.file_ids)
            ]
            add_files(connection, project, row["id"], files, now)
            return self._store(connection, vs.get_store(connection, project, row["id"]))  # type: ignore[arg-type]

        store = await self._deps.database.transaction(work)
        if request.file_ids:
            self._wake()
        return store

    async def get(self, project: str, store_id: str) -> vector_store_pb2.VectorStore:
        return await self._deps.database.transaction(
            lambda c: self._store(c, self._store_row(c, project, store_id))
        )

    async def list(
        self, project: str, request: vector_store_pb2.ListVectorStoresRequest
    ) -> vector_store_pb2.ListVectorStoresResponse:
        def work(connection: Connection) -> vector_store_pb2.ListVectorStoresResponse:
            # The page's rows first (their ids are the cursors), then every count in one query.
            rows: list[RowMapping] = []

            def keep(row: RowMapping) -> vector_store_pb2.VectorStore:
                rows.append(row)
                return V.VectorStore(id=row["id"])

            page = list_in(
                connection,
                request,
                vs.VECTOR_STORES,
                [vs.VECTOR_STORES.c.project == project],
                keep,
                V.ListVectorStoresResponse(),
            )
            counts = vs.file_counts(connection, "vector_store_id", [r["id"] for r in rows])
            del page.data[:]
            page.data.extend(store_from_row(r, counts[r["id"]]) for r in rows)
            return page

        return await self._deps.database.transaction(work)

    async def update(
        self, project: str, request: vector_store_pb2.UpdateVectorStoreRequest
    ) -> vector_store_pb2.VectorStore:
        v = check.Violations()
        check.check_required_id(v, "vector_store_id", request.vector_store_id)
        if request.HasField("name"):
            check.check_length(v, "name", request.name, check.MAX_NAME)
        if request.HasField("expires_after"):
            check_expires_after(v, "expires_after", request.expires_after)
        if request.HasField("metadata"):
            check.check_metadata(v, "metadata", request.metadata.values)
        v.raise_if_any()

        def work(connection: Connection) -> vector_store_pb2.VectorStore:
            row = self._store_row(connection, project, request.vector_store_id)
            values: dict[str, Any] = {}
            if request.HasField("name"):
                values["name"] = request.name
            if request.HasField("metadata"):
                values["metadata"] = dict(request.metadata.values)
            if request.HasField("expires_after") and row["expired_at"] is None:
                days = request.expires_after.days
                values["expires_after_days"] = days
                values["expires_at"] = row["last_active_at"] + days * 86400
            if values:
                repo.update_by_id(connection, vs.VECTOR_STORES, row["id"], values)
            return self._store(connection, self._store_row(connection, project, row["id"]))

        return await self._deps.database.transaction(work)

    async def delete(
        self, project: str, store_id: str
    ) -> vector_store_pb2.DeleteVectorStoreResponse:
        def work(connection: Connection) -> None:
            self._store_row(connection, project, store_id)
            vs.delete_store_cascade(connection, store_id)

        await self._deps.database.transaction(work)
        return V.DeleteVectorStoreResponse(id=store_id, deleted=True)

    # --- search -------------------------------------------------------------------------------

    async def search(
        self, project: str, request: vector_store_pb2.SearchVectorStoreRequest
    ) -> vector_store_pb2.SearchVectorStoreResponse:
        v = check.Violations()
        check.check_required_id(v, "vector_store_id", request.vector_store_id)
        queries = [q for q in request.query]
        if not queries or not any(q.strip() for q in queries):
            v.add("query", "required: at least one non-empty query.")
        if len(queries) > MAX_QUERIES:
            v.add("query", f"at most {MAX_QUERIES} queries.")
        for i, query in enumerate(queries):
            check.check_length(v, f"query[{i}]", query, MAX_QUERY_CHARS)
        limit = (
            request.max_num_results
            if request.HasField("max_num_results")
            else DEFAULT_SEARCH_RESULTS
        )
        if not 1 <= limit <= 50:
            v.add("max_num_results", "must be between 1 and 50.")
        threshold = 0.0
        if request.HasField("ranking_options"):
            options = request.ranking_options
            if options.HasField("ranker") and options.ranker not in _RANKERS:
                v.add("ranking_options.ranker", f"must be one of {', '.join(_RANKERS[:3])}.")
            if options.HasField("score_threshold"):
                threshold = options.score_threshold
                check.check_range(v, "ranking_options.score_threshold", threshold, 0, 1)
        filters = None
        if request.HasField("filters"):
            filters = render_value(request.filters)
            for field, problem in attribute_filters.check(_strip_nulls(filters)):
                v.add(field, problem)
            filters = _strip_nulls(filters)
        v.raise_if_any()
        hits = await self._retriever.search(
            SearchQuery(
                store_ids=[request.vector_store_id],
                queries=queries,
                max_results=limit,
                score_threshold=threshold,
                filters=filters,
                check=lambda c: self._live_store_row(c, project, request.vector_store_id),
            )
        )
        response = V.SearchVectorStoreResponse(search_query=queries)
        for hit in hits:
            result = response.data.add(file_id=hit.file_id, filename=hit.filename, score=hit.score)
            result.content.add(text=hit.text)
            for key, value in hit.attributes.items():
                holder = struct_pb2.Struct()
                holder.update({"v": value})
                result.attributes[key].CopyFrom(holder.fields["v"])
        return response

    # --- files --------------------------------------------------------------------------------

    def _file_row(
        self, connection: Connection, project: str, store_id: str, file_id: str
    ) -> RowMapping:
        self._store_row(connection, project, store_id)
        row = vs.get_file(connection, store_id, file_id) if check.plausible_id(file_id) else None
        if row is None:
            raise NotFoundError("file", file_id)
        return row

    async def create_file(
        self, project: str, request: vector_store_pb2.CreateVectorStoreFileRequest
    ) -> vector_store_pb2.VectorStoreFile:
        v = check.Violations()
        check.check_required_id(v, "vector_store_id", request.vector_store_id)
        check.check_required_id(v, "file_id", request.file_id)
        chunking = check.check_chunking_strategy(v, "chunking_strategy", request.chunking_strategy)
        check_attributes(v, "attributes", request.attributes)
        v.raise_if_any()
        now = self._deps.now()

        def work(connection: Connection) -> vector_store_pb2.VectorStoreFile:
            self._live_store_row(connection, project, request.vector_store_id)
            entry = (request.file_id, chunking, _attributes_json(request.attributes))
            add_files(connection, project, request.vector_store_id, [entry], now)
            return file_from_row(
                self._file_row(connection, project, request.vector_store_id, request.file_id)
            )

        item = await self._deps.database.transaction(work)
        self._wake()
        return item

    async def get_file(
        self, project: str, store_id: str, file_id: str
    ) -> vector_store_pb2.VectorStoreFile:
        return await self._deps.database.transaction(
            lambda c: file_from_row(self._file_row(c, project, store_id, file_id))
        )

    async def list_files(
        self,
        project: str,
        request: vector_store_pb2.ListVectorStoreFilesRequest
        | vector_store_pb2.ListVectorStoreFileBatchFilesRequest,
    ) -> vector_store_pb2.ListVectorStoreFilesResponse:
        v = check.Violations()
        check.check_required_id(v, "vector_store_id", request.vector_store_id)
        check.check_enum(v, "filter", request.filter, V.VectorStoreFileStatus, required=False)
        batch_id = getattr(request, "batch_id", None)
        if batch_id is not None:
            check.check_required_id(v, "batch_id", batch_id)
        v.raise_if_any()
        columns = vs.VECTOR_STORE_FILES.c
        scope = [columns.vector_store_id == request.vector_store_id]
        if request.filter:
            scope.append(columns.status == enum_name(V.VectorStoreFileStatus, request.filter))

        def work(connection: Connection) -> vector_store_pb2.ListVectorStoreFilesResponse:
            self._store_row(connection, project, request.vector_store_id)
            if batch_id is not None:
                self._batch_row(connection, request.vector_store_id, batch_id)
                scope.append(columns.batch_id == batch_id)
            return list_in(
                connection,
                request,
                vs.VECTOR_STORE_FILES,
                scope,
                file_from_row,
                V.ListVectorStoreFilesResponse(),
            )

        return await self._deps.database.transaction(work)

    async def update_file(
        self, project: str, request: vector_store_pb2.UpdateVectorStoreFileRequest
    ) -> vector_store_pb2.VectorStoreFile:
        v = check.Violations()
        check.check_required_id(v, "vector_store_id", request.vector_store_id)
        check.check_required_id(v, "file_id", request.file_id)
        check_attributes(v, "attributes", request.attributes)
        v.raise_if_any()

        def work(connection: Connection) -> vector_store_pb2.VectorStoreFile:
            row = self._file_row(connection, project, request.vector_store_id, request.file_id)
            connection.execute(
                update(vs.VECTOR_STORE_FILES)
                .where(vs.VECTOR_STORE_FILES.c.pk == row["pk"])
                .values(attributes=_attributes_json(request.attributes))
            )
            return file_from_row(
                self._file_row(connection, project, request.vector_store_id, request.file_id)
            )

        return await self._deps.database.transaction(work)

    async def delete_file(
        self, project: str, store_id: str, file_id: str
    ) -> vector_store_pb2.DeleteVectorStoreFileResponse:
        def work(connection: Connection) -> None:
            self._file_row(connection, project, store_id, file_id)
            vs.remove_file(connection, store_id, file_id)

        await self._deps.database.transaction(work)
        return V.DeleteVectorStoreFileResponse(id=file_id, deleted=True)

    async def file_content(
        self, project: str, store_id: str, file_id: str
    ) -> vector_store_pb2.GetVectorStoreFileContentResponse:
        def work(connection: Connection) -> str:
            self._file_row(connection, project, store_id, file_id)
            return rebuild_text(vs.chunk_spans(connection, store_id, file_id))

        text = await self._deps.database.transaction(work)
        response = V.GetVectorStoreFileContentResponse()
        if text:
            response.data.add(text=text)
        return response

    # --- batches ------------------------------------------------------------------------------

    def _batch_row(self, connection: Connection, store_id: str, batch_id: str) -> RowMapping:
        row = (
            repo.get_by_id(connection, vs.FILE_BATCHES, batch_id)
            if check.plausible_id(batch_id)
            else None
        )
        if row is None or row["vector_store_id"] != store_id:
            raise NotFoundError("file batch", batch_id)
        return row

    def _batch(
        self, connection: Connection, row: RowMapping
    ) -> vector_store_pb2.VectorStoreFileBatch:
        counts = vs.file_counts(connection, "batch_id", [row["id"]])[row["id"]]
        return batch_from_row(row, counts)

    async def create_batch(
        self, project: str, request: vector_store_pb2.CreateVectorStoreFileBatchRequest
    ) -> vector_store_pb2.VectorStoreFileBatch:
        v = check.Violations()
        check.check_required_id(v, "vector_store_id", request.vector_store_id)
        if request.file_ids and request.files:
            v.add("files", "file_ids and files are mutually exclusive.")
        if not request.file_ids and not request.files:
            v.add("file_ids", "required: file_ids or files.")
        _check_file_ids(v, "file_ids", request.file_ids, MAX_BATCH_FILES)
        if len(request.files) > MAX_BATCH_FILES:
            v.add("files", f"at most {MAX_BATCH_FILES} files.")
        shared = check.check_chunking_strategy(v, "chunking_strategy", request.chunking_strategy)
        check_attributes(v, "attributes", request.attributes)
        entries: dict[str, tuple[str, tuple[int, int], dict[str, Any]]] = {}
        for file_id in request.file_ids:
            entries[file_id] = (file_id, shared, _attributes_json(request.attributes))
        for i, entry in enumerate(request.files):
            path = f"files[{i}]"
            check.check_required_id(v, f"{path}.file_id", entry.file_id)
            chunking = check.check_chunking_strategy(
                v, f"{path}.chunking_strategy", entry.chunking_strategy
            )
            check_attributes(v, f"{path}.attributes", entry.attributes)
            entries[entry.file_id] = (entry.file_id, chunking, _attributes_json(entry.attributes))
        v.raise_if_any()
        now = self._deps.now()
        batch_id = self._deps.new_id("file_batch")
        batch: dict[str, Any] = {
            "id": batch_id,
            "vector_store_id": request.vector_store_id,
            "created_at": now,
            "cancelled_at": None,
        }

        def work(connection: Connection) -> vector_store_pb2.VectorStoreFileBatch:
            self._live_store_row(connection, project, request.vector_store_id)
            repo.insert_row(connection, vs.FILE_BATCHES, batch)
            add_files(
                connection,
                project,
                request.vector_store_id,
                list(entries.values()),
                now,
                batch_id=batch_id,
            )
            return self._batch(
                connection, self._batch_row(connection, request.vector_store_id, batch_id)
            )

        item = await self._deps.database.transaction(work)
        self._wake()
        return item

    async def get_batch(
        self, project: str, store_id: str, batch_id: str
    ) -> vector_store_pb2.VectorStoreFileBatch:
        def work(connection: Connection) -> vector_store_pb2.VectorStoreFileBatch:
            self._store_row(connection, project, store_id)
            return self._batch(connection, self._batch_row(connection, store_id, batch_id))

        return await self._deps.database.transaction(work)

    async def cancel_batch(
        self, project: str, store_id: str, batch_id: str
    ) -> vector_store_pb2.VectorStoreFileBatch:
        now = self._deps.now()

        def work(connection: Connection) -> vector_store_pb2.VectorStoreFileBatch:
            self._store_row(connection, project, store_id)
            row = self._batch_row(connection, store_id, batch_id)
            current = self._batch(connection, row)
            if current.status != V.VECTOR_STORE_FILE_BATCH_STATUS_IN_PROGRESS:
                status = enum_name(V.VectorStoreFileBatchStatus, current.status)
                raise FailedPreconditionError(f"Cannot cancel a batch with status '{status}'.")
            columns = vs.VECTOR_STORE_FILES.c
            pending = [
                r["id"]
                for r in connection.execute(
                    vs.VECTOR_STORE_FILES.select().where(
                        columns.batch_id == batch_id, columns.status == "in_progress"
                    )
                ).mappings()
            ]
            connection.execute(
                update(vs.VECTOR_STORE_FILES)
                .where(columns.batch_id == batch_id, columns.status == "in_progress")
                .values(status="cancelled", lease_owner=None, lease_expires_at=None)
            )
            for file_id in pending:
                vs.delete_chunks(connection, store_id, file_id)
            repo.update_by_id(connection, vs.FILE_BATCHES, batch_id, {"cancelled_at": now})
            return self._batch(connection, self._batch_row(connection, store_id, batch_id))

        return await self._deps.database.transaction(work)


def _strip_nulls(value: Any) -> Any:
    """A filter rendered from the proto has every key (null when unset); the checks and the
    evaluation read OpenAI's JSON, which has only the keys that apply."""
    if isinstance(value, dict):
        return {k: _strip_nulls(v) for k, v in value.items() if v is not None and v != []}
    if isinstance(value, list):
        return [_strip_nulls(v) for v in value]
    return value


# --- the create-form helpers --------------------------------------------------------------


def make_resource_stores(
    connection: Connection,
    deps: Dependencies,
    project: str,
    resources: common_pb2.ToolResources,
    *,
    expires_after_days: int | None,
) -> bool:
    """`tool_resources.file_search.vector_stores` (the create form, at most one, checked):
    make the store with its files, and leave `resources` in the object form, naming it in
    `vector_store_ids`. True if files were queued for ingestion."""
    if not resources.HasField("file_search") or not resources.file_search.vector_stores:
        return False
    now = deps.now()
    queued = False
    ids = []
    for spec in resources.file_search.vector_stores:
        row = new_store_row(
            deps.new_id,
            project,
            now,
            metadata=spec.metadata,
            expires_after_days=expires_after_days,
            embedding_model=deps.embedding_model,
        )
        repo.insert_row(connection, vs.VECTOR_STORES, row)
        v = check.Violations()
        chunking = check.check_chunking_strategy(v, "chunking_strategy", spec.chunking_strategy)
        files: list[tuple[str, tuple[int, int], dict[str, Any]]] = [
            (file_id, chunking, {}) for file_id in dict.fromkeys(spec.file_ids)
        ]
        add_files(connection, project, row["id"], files, now)
        queued = queued or bool(files)
        ids.append(row["id"])
    del resources.file_search.vector_stores[:]
    resources.file_search.vector_store_ids.extend(ids)
    return queued


def file_search_attachments(attachments: Sequence[Any]) -> list[str]:
    """The files of message attachments that name the file_search tool."""
    return [
        a.file_id
        for a in attachments
        if any(t.type == common_pb2.TOOL_TYPE_FILE_SEARCH for t in a.tools)
    ]


def attach_to_thread_store(
    connection: Connection,
    deps: Dependencies,
    project: str,
    resources: common_pb2.ToolResources,
    file_ids: Sequence[str],
) -> bool:
    """Message attachments with the file_search tool: their files join the thread's vector
    store, made (expiring 7 days after last use) and named in `resources` if the thread has
    none. True if `resources` changed (the caller stores them)."""
    if not file_ids:
        return False
    changed = False
    search = resources.file_search
    if search.vector_store_ids:
        store_id = search.vector_store_ids[0]
        if vs.get_store(connection, project, store_id) is None:
            raise NotFoundError("vector store", store_id)
    else:
        row = new_store_row(
            deps.new_id,
            project,
            deps.now(),
            expires_after_days=THREAD_STORE_EXPIRY_DAYS,
            embedding_model=deps.embedding_model,
        )
        repo.insert_row(connection, vs.VECTOR_STORES, row)
        store_id = row["id"]
        resources.file_search.vector_store_ids.append(store_id)
        changed = True
    chunking = (check.AUTO_CHUNK_TOKENS, check.AUTO_CHUNK_OVERLAP)
    add_files(
        connection,
        project,
        store_id,
        [(file_id, chunking, {}) for file_id in dict.fromkeys(file_ids)],
        deps.now(),
    )
    return changed
