"""The database schema as SQLModel tables.

Scalars get real columns; nested structures (tools, content parts, step details, ...) are kept as
JSON in their OpenAI shape, so the stored data reads like the API and survives proto evolution.
Every table has an integer `pk` that orders rows by insertion: OpenAI ids are random, timestamps
are whole seconds, and list pages must neither skip nor repeat rows that share one second.
Statuses are stored as the OpenAI strings ("requires_action").

The schema itself is owned by the Alembic migrations in `migrations/versions`; a test checks the
migrations produce exactly these tables.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Index, LargeBinary, text
from sqlmodel import Field, SQLModel

from assistants_grpc.store.run_states import ACTIVE_SQL

# Where everything lives when no API key says otherwise (auth off, or rows written before 0002).
DEFAULT_PROJECT = "default"

# The rows that may name a File, so deleting one finds them without reading every message and
# thread: messages with attachments, threads with tool resources. JSON columns hold the JSON text
# ('[]', 'null' for None); PostgreSQL's json type has no comparison, so it compares the text.
_HAS_ATTACHMENTS: dict[str, Any] = {
    "sqlite_where": text("attachments <> '[]'"),
    "postgresql_where": text("CAST(attachments AS TEXT) <> '[]'"),
}
_HAS_TOOL_RESOURCES: dict[str, Any] = {
    "sqlite_where": text("tool_resources <> 'null'"),
    "postgresql_where": text("CAST(tool_resources AS TEXT) <> 'null'"),
}


def _json(*, nullable: bool = False) -> Any:
    return Field(default=None, sa_column=Column(JSON, nullable=nullable))


class AssistantRow(SQLModel, table=True):
    __tablename__ = "assistants"
    # Lists walk one project's rows in insertion order.
    __table_args__ = (Index("ix_assistants_project_pk", "project", "pk"),)

    pk: int | None = Field(default=None, primary_key=True)
    id: str = Field(unique=True, max_length=64)
    # The project of the API key that created it; nothing outside it ever sees the row.
    project: str = Field(
        default=DEFAULT_PROJECT,
        max_length=64,
        sa_column_kwargs={"server_default": DEFAULT_PROJECT},
    )
    created_at: int
    name: str | None = None
    description: str | None = None
    model: str
    instructions: str | None = None
    tools: list[dict[str, Any]] = _json()
    tool_resources: dict[str, Any] | None = _json(nullable=True)
    metadata_: dict[str, str] = Field(sa_column=Column("metadata", JSON, nullable=False))
    temperature: float | None = None
    top_p: float | None = None
    response_format: Any = _json(nullable=True)
    # Request-only (CONTRACT.md §3): kept for the assistant's runs, never shown.
    reasoning_effort: str | None = None


class ThreadRow(SQLModel, table=True):
    __tablename__ = "threads"
    __table_args__ = (
        Index("ix_threads_project_pk", "project", "pk"),
        Index("ix_threads_with_tool_resources", "project", **_HAS_TOOL_RESOURCES),
    )

    pk: int | None = Field(default=None, primary_key=True)
    id: str = Field(unique=True, max_length=64)
    # Messages, runs and steps live under a thread and so belong to its project.
    project: str = Field(
        default=DEFAULT_PROJECT,
        max_length=64,
        sa_column_kwargs={"server_default": DEFAULT_PROJECT},
    )
    created_at: int
    tool_resources: dict[str, Any] | None = _json(nullable=True)
    metadata_: dict[str, str] = Field(sa_column=Column("metadata", JSON, nullable=False))


class MessageRow(SQLModel, table=True):
    __tablename__ = "messages"
    __table_args__ = (
        Index("ix_messages_thread_pk", "thread_id", "pk"),
        Index("ix_messages_with_attachments", "thread_id", **_HAS_ATTACHMENTS),
    )

    pk: int | None = Field(default=None, primary_key=True)
    id: str = Field(unique=True, max_length=64)
    thread_id: str = Field(max_length=64)
    created_at: int
    status: str
    incomplete_reason: str | None = None
    completed_at: int | None = None
    incomplete_at: int | None = None
    role: str
    content: list[dict[str, Any]] = _json()
    assistant_id: str | None = None
    run_id: str | None = Field(default=None, index=True, max_length=64)
    attachments: list[dict[str, Any]] = _json()
    metadata_: dict[str, str] = Field(sa_column=Column("metadata", JSON, nullable=False))
    # Tokens of the text content, counted once at creation with `token_encoding`, so truncating a
    # long thread sums stored counts instead of re-encoding it.
    token_count: int = 0
    token_encoding: str = "o200k_base"


class RunRow(SQLModel, table=True):
    __tablename__ = "runs"
    __table_args__ = (
        Index("ix_runs_thread_pk", "thread_id", "pk"),
        # The thread lock lives in the schema: at most one active run per thread, enforced by the
        # database on SQLite and PostgreSQL alike, whatever the number of replicas.
        Index(
            "uq_runs_one_active_per_thread",
            "thread_id",
            unique=True,
            # Its predicate is the run state machine's active statuses (store/run_states.py).
            sqlite_where=text(ACTIVE_SQL),
            postgresql_where=text(ACTIVE_SQL),
        ),
        Index("ix_runs_status", "status"),
    )

    pk: int | None = Field(default=None, primary_key=True)
    id: str = Field(unique=True, max_length=64)
    thread_id: str = Field(max_length=64)
    assistant_id: str = Field(max_length=64)
    created_at: int
    status: str
    required_action: dict[str, Any] | None = _json(nullable=True)
    last_error: dict[str, Any] | None = _json(nullable=True)
    expires_at: int | None = None
    started_at: int | None = None
    cancelled_at: int | None = None
    failed_at: int | None = None
    completed_at: int | None = None
    incomplete_reason: str | None = None
    model: str
    instructions: str | None = None
    tools: list[dict[str, Any]] = _json()
    tool_resources: dict[str, Any] | None = _json(nullable=True)
    metadata_: dict[str, str] = Field(sa_column=Column("metadata", JSON, nullable=False))
    usage: dict[str, int] | None = _json(nullable=True)
    temperature: float | None = None
    top_p: float | None = None
    max_prompt_tokens: int | None = None
    max_completion_tokens: int | None = None
    truncation_strategy: dict[str, Any] | None = _json(nullable=True)
    tool_choice: Any = _json(nullable=True)
    parallel_tool_calls: bool = True
    response_format: Any = _json(nullable=True)
    reasoning_effort: str | None = None
    # The request's `include[]` (CONTRACT.md §6): what its steps show and its tools are told.
    include: list[str] | None = _json(nullable=True)
    # The last event sequence number written to the run's event log.
    last_sequence: int = 0
    # Execution bookkeeping: which worker holds the run and until when (a lease, renewed by a
    # heartbeat, so a dead worker's runs can be taken over).
    lease_owner: str | None = None
    lease_expires_at: float | None = None
    # The W3C `traceparent` of the call that created the run, when traces are on: its turns
    # (on any replica) are spans of that trace (observability/tracing.py).
    trace_context: str | None = Field(default=None, max_length=128)


class RunStepRow(SQLModel, table=True):
    __tablename__ = "run_steps"
    __table_args__ = (Index("ix_run_steps_run_pk", "run_id", "pk"),)

    pk: int | None = Field(default=None, primary_key=True)
    id: str = Field(unique=True, max_length=64)
    run_id: str = Field(max_length=64)
    thread_id: str = Field(index=True, max_length=64)
    assistant_id: str = Field(max_length=64)
    created_at: int
    type: str
    status: str
    step_details: dict[str, Any] = _json()
    last_error: dict[str, Any] | None = _json(nullable=True)
    expired_at: int | None = None
    cancelled_at: int | None = None
    failed_at: int | None = None
    completed_at: int | None = None
    metadata_: dict[str, str] = Field(sa_column=Column("metadata", JSON, nullable=False))
    usage: dict[str, int] | None = _json(nullable=True)


class RunEventRow(SQLModel, table=True):
    """One event of a run's ordered log: the serialized `RunEvent` under its sequence number."""

    __tablename__ = "run_events"

    run_id: str = Field(primary_key=True, max_length=64)
    sequence: int = Field(primary_key=True)
    thread_id: str = Field(index=True, max_length=64)
    event: str
    data: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class ApiKeyRow(SQLModel, table=True):
    """An API key, stored only as the sha256 of the key; the key itself is shown once."""

    __tablename__ = "api_keys"

    pk: int | None = Field(default=None, primary_key=True)
    id: str = Field(unique=True, max_length=64)
    # The first characters of the key (`sk-AbCd1234`), to recognise it in `keys list`.
    prefix: str = Field(index=True, max_length=32)
    key_hash: str = Field(unique=True, max_length=64)
    project: str = Field(max_length=64)
    created_at: int
    last_used_at: int | None = None
    revoked_at: int | None = None


class FileRow(SQLModel, table=True):
    """A File: what the API shows of it, and the sha256 naming its content (`FileContentRow`)."""

    __tablename__ = "files"
    __table_args__ = (
        Index("ix_files_project_pk", "project", "pk"),
        # The sweep finds expired files without reading the others.
        Index("ix_files_expires_at", "expires_at"),
    )

    pk: int | None = Field(default=None, primary_key=True)
    id: str = Field(unique=True, max_length=64)
    project: str = Field(max_length=64)
    created_at: int
    filename: str = Field(max_length=255)
    # Big: --max-file-bytes may be set past 2 GiB, and a project's sum is taken over this.
    bytes: int = Field(sa_column=Column(BigInteger, nullable=False))
    # The OpenAI string ("assistants", "assistants_output", "vision", "user_data").
    purpose: str = Field(max_length=32)
    expires_at: int | None = None
    sha256: str = Field(max_length=64)


class FileContentRow(SQLModel, table=True):
    """One stored content, shared by every File whose bytes are identical: `refs` counts them,
    and the content goes when the last one does. The row is also the lock that serialises an
    upload of the same bytes with the deletion of their last File."""

    __tablename__ = "file_contents"

    sha256: str = Field(primary_key=True, max_length=64)
    bytes: int = Field(sa_column=Column(BigInteger, nullable=False))
    refs: int
    created_at: int


class FilePartRow(SQLModel, table=True):
    """A bounded part of a content kept in the database (PostgreSQL, where every replica must
    serve every file): part `seq` of the content named by `sha256`, 1 MiB each but the last."""

    __tablename__ = "file_parts"

    sha256: str = Field(primary_key=True, max_length=64)
    seq: int = Field(primary_key=True)
    data: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class CodeSessionRow(SQLModel, table=True):
    """Which replica holds a thread's code_interpreter session (kernels are local to one). A
    replica that gets a call for the thread while another holds it starts a kernel of its own
    and takes the row over; the old holder stops its kernel when it sees the row is not its."""

    __tablename__ = "code_sessions"

    thread_id: str = Field(primary_key=True, max_length=64)
    replica: str = Field(max_length=128)
    session_id: str = Field(max_length=64)
    started_at: int
    # Why the session ended (idle, max age, evicted...), for the next call's reset note; None
    # while it lives.
    ended_reason: str | None = None


class VectorStoreRow(SQLModel, table=True):
    """A vector store. Its status and file counts are not stored: they are counted from its
    files when read, so no path can leave them wrong."""

    __tablename__ = "vector_stores"
    __table_args__ = (
        Index("ix_vector_stores_project_pk", "project", "pk"),
        # The expiry sweep looks for stores past their expires_at.
        Index("ix_vector_stores_expires_at", "expires_at"),
    )

    pk: int | None = Field(default=None, primary_key=True)
    id: str = Field(unique=True, max_length=64)
    project: str = Field(default=DEFAULT_PROJECT, max_length=64)
    created_at: int
    name: str = ""
    # Accepted on create, kept, never shown (OpenAI's object has no description).
    description: str | None = None
    metadata_: dict[str, str] = Field(sa_column=Column("metadata", JSON, nullable=False))
    last_active_at: int
    expires_after_days: int | None = None
    # last_active_at + days, kept in step with both; the sweep expires the store past it.
    expires_at: int | None = None
    expired_at: int | None = None
    # The embedding model its chunks were embedded with; None: a lexical-only store (made
    # while no embedding endpoint was configured), which stays lexical.
    embedding_model: str | None = None
    # Bumped by every change of the store's chunks, so each replica's cache of the store's
    # vectors knows when it is stale.
    version: int = 0


class VectorStoreFileRow(SQLModel, table=True):
    """A File in a vector store, and the ingestion job that makes its chunks: an in_progress
    row is claimed with a lease (owner, expiry), like a run."""

    __tablename__ = "vector_store_files"
    __table_args__ = (
        # A vector-store file's id is its File's id: one row per file and store.
        Index("uq_vector_store_files_store_file", "vector_store_id", "id", unique=True),
        Index("ix_vector_store_files_store_pk", "vector_store_id", "pk"),
        Index("ix_vector_store_files_status", "status"),
        Index("ix_vector_store_files_file", "id"),
        Index("ix_vector_store_files_batch", "batch_id"),
    )

    pk: int | None = Field(default=None, primary_key=True)
    id: str = Field(max_length=64)
    vector_store_id: str = Field(max_length=64)
    created_at: int
    # The File's name when it was added, shown with search results.
    filename: str = ""
    status: str
    usage_bytes: int = 0
    last_error: dict[str, Any] | None = _json(nullable=True)
    chunk_max_tokens: int
    chunk_overlap_tokens: int
    attributes: dict[str, Any] = _json()
    batch_id: str | None = Field(default=None, max_length=64)
    lease_owner: str | None = None
    lease_expires_at: float | None = None
    # Claims so far: a file that keeps killing its ingester fails instead of looping.
    attempts: int = 0


class VectorStoreFileBatchRow(SQLModel, table=True):
    """A batch of files; its status and counts are counted from its files."""

    __tablename__ = "vector_store_file_batches"
    __table_args__ = (Index("ix_vector_store_file_batches_store", "vector_store_id"),)

    pk: int | None = Field(default=None, primary_key=True)
    id: str = Field(unique=True, max_length=64)
    vector_store_id: str = Field(max_length=64)
    created_at: int
    cancelled_at: int | None = None


class VectorStoreChunkRow(SQLModel, table=True):
    """One chunk of a file's extracted text, with where it lies in that text (characters and
    tokens) and its embedding (float32, normalised) when the store has an embedding model.

    The lexical index is per dialect and lives beside the table (LEXICAL_INDEX): an FTS5 table
    over `text` (external content, kept in step by triggers) on SQLite, a generated `tsv`
    column with a GIN index on PostgreSQL."""

    __tablename__ = "vector_store_chunks"
    # One chunk per position of a file: a replica that took a file over can never add its
    # chunks twice.
    __table_args__ = (
        Index("uq_vector_store_chunks_file_seq", "vector_store_id", "file_id", "seq", unique=True),
    )

    pk: int | None = Field(default=None, primary_key=True)
    vector_store_id: str = Field(max_length=64)
    file_id: str = Field(max_length=64)
    seq: int
    text: str
    char_start: int
    char_end: int
    token_start: int
    token_end: int
    embedding: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))


# Dialect-specific objects of the lexical index, made by migration 0005, not by these tables:
# SQLite's FTS5 table (and the shadow tables FTS5 makes, which share its name as a prefix),
# PostgreSQL's generated `tsv` column of vector_store_chunks and its GIN index (named with the
# same prefix).
LEXICAL_INDEX = "vector_store_chunks_fts"
LEXICAL_COLUMN = "tsv"


__all__ = [
    "DEFAULT_PROJECT",
    "LEXICAL_COLUMN",
    "LEXICAL_INDEX",
    "ApiKeyRow",
    "AssistantRow",
    "CodeSessionRow",
    "FileContentRow",
    "FilePartRow",
    "FileRow",
    "MessageRow",
    "RunEventRow",
    "RunRow",
    "RunStepRow",
    "ThreadRow",
    "VectorStoreChunkRow",
    "VectorStoreFileBatchRow",
    "VectorStoreFileRow",
    "VectorStoreRow",
]
