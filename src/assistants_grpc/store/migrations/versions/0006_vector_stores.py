"""Vector stores, their files (each an ingestion job), file batches and chunks, with the lexical
index of the dialect: an FTS5 table kept in step by triggers on SQLite, a generated tsvector
column with a GIN index on PostgreSQL.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# Literals, not imports: a migration is history and must not change when the code does.
_FTS = "vector_store_chunks_fts"

# External content: the FTS5 table indexes vector_store_chunks.text (and the store id, so a
# query names its store and FTS5 intersects the two) without a second copy of the text.
# porter: "searching" finds "search"; remove_diacritics 2: "café" finds "cafe".
_SQLITE_UP = (
    f"CREATE VIRTUAL TABLE {_FTS} USING fts5(vector_store_id, text, content='vector_store_chunks',"
    " content_rowid='pk', tokenize='porter unicode61 remove_diacritics 2')",
    f"CREATE TRIGGER {_FTS}_insert AFTER INSERT ON vector_store_chunks BEGIN"
    f" INSERT INTO {_FTS}(rowid, vector_store_id, text)"
    " VALUES (new.pk, new.vector_store_id, new.text); END",
    f"CREATE TRIGGER {_FTS}_delete AFTER DELETE ON vector_store_chunks BEGIN"
    f" INSERT INTO {_FTS}({_FTS}, rowid, vector_store_id, text)"
    " VALUES ('delete', old.pk, old.vector_store_id, old.text); END",
    f"CREATE TRIGGER {_FTS}_update AFTER UPDATE OF vector_store_id, text ON vector_store_chunks"
    f" BEGIN INSERT INTO {_FTS}({_FTS}, rowid, vector_store_id, text)"
    " VALUES ('delete', old.pk, old.vector_store_id, old.text);"
    f" INSERT INTO {_FTS}(rowid, vector_store_id, text)"
    " VALUES (new.pk, new.vector_store_id, new.text); END",
)
_SQLITE_DOWN = (
    f"DROP TRIGGER IF EXISTS {_FTS}_update",
    f"DROP TRIGGER IF EXISTS {_FTS}_delete",
    f"DROP TRIGGER IF EXISTS {_FTS}_insert",
    f"DROP TABLE IF EXISTS {_FTS}",
)
_POSTGRES_UP = (
    "ALTER TABLE vector_store_chunks ADD COLUMN tsv tsvector"
    " GENERATED ALWAYS AS (to_tsvector('english', text)) STORED",
    "CREATE INDEX vector_store_chunks_fts_gin ON vector_store_chunks USING gin (tsv)",
)
_POSTGRES_DOWN = (
    "DROP INDEX IF EXISTS vector_store_chunks_fts_gin",
    "ALTER TABLE vector_store_chunks DROP COLUMN IF EXISTS tsv",
)


def upgrade() -> None:
    op.create_table(
        "vector_stores",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("project", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("description", sa.String(), nullable=True),
        sa.Column("metadata", sa.JSON(), nullable=False),
        sa.Column("last_active_at", sa.Integer(), nullable=False),
        sa.Column("expires_after_days", sa.Integer(), nullable=True),
        sa.Column("expires_at", sa.Integer(), nullable=True),
        sa.Column("expired_at", sa.Integer(), nullable=True),
        sa.Column("embedding_model", sa.String(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("pk"),
        sa.UniqueConstraint("id"),
    )
    with op.batch_alter_table("vector_stores", schema=None) as batch_op:
        batch_op.create_index("ix_vector_stores_project_pk", ["project", "pk"], unique=False)
        batch_op.create_index("ix_vector_stores_expires_at", ["expires_at"], unique=False)

    op.create_table(
        "vector_store_files",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("vector_store_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.Integer(), nullable=False),
        sa.Column("filename", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("usage_bytes", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.JSON(), nullable=True),
        sa.Column("chunk_max_tokens", sa.Integer(), nullable=False),
        sa.Column("chunk_overlap_tokens", sa.Integer(), nullable=False),
        sa.Column("attributes", sa.JSON(), nullable=False),
        sa.Column("batch_id", sa.String(length=64), nullable=True),
        sa.Column("lease_owner", sa.String(), nullable=True),
        sa.Column("lease_expires_at", sa.Float(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("pk"),
    )
    with op.batch_alter_table("vector_store_files", schema=None) as batch_op:
        batch_op.create_index(
            "uq_vector_store_files_store_file", ["vector_store_id", "id"], unique=True
        )
        batch_op.create_index(
            "ix_vector_store_files_store_pk", ["vector_store_id", "pk"], unique=False
        )
        batch_op.create_index("ix_vector_store_files_status", ["status"], unique=False)
        batch_op.create_index("ix_vector_store_files_file", ["id"], unique=False)
        batch_op.create_index("ix_vector_store_files_batch", ["batch_id"], unique=False)

    op.create_table(
        "vector_store_file_batches",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("vector_store_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.Integer(), nullable=False),
        sa.Column("cancelled_at", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("pk"),
        sa.UniqueConstraint("id"),
    )
    with op.batch_alter_table("vector_store_file_batches", schema=None) as batch_op:
        batch_op.create_index(
            "ix_vector_store_file_batches_store", ["vector_store_id"], unique=False
        )

    op.create_table(
        "vector_store_chunks",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("vector_store_id", sa.String(length=64), nullable=False),
        sa.Column("file_id", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("text", sa.String(), nullable=False),
        sa.Column("char_start", sa.Integer(), nullable=False),
        sa.Column("char_end", sa.Integer(), nullable=False),
        sa.Column("token_start", sa.Integer(), nullable=False),
        sa.Column("token_end", sa.Integer(), nullable=False),
        sa.Column("embedding", sa.LargeBinary(), nullable=True),
        sa.PrimaryKeyConstraint("pk"),
    )
    with op.batch_alter_table("vector_store_chunks", schema=None) as batch_op:
        batch_op.create_index(
            "uq_vector_store_chunks_file_seq", ["vector_store_id", "file_id", "seq"], unique=True
        )

    dialect = op.get_bind().dialect.name
    statements = {"sqlite": _SQLITE_UP, "postgresql": _POSTGRES_UP}.get(dialect, ())
    for statement in statements:
        op.execute(statement)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for statement in {"sqlite": _SQLITE_DOWN, "postgresql": _POSTGRES_DOWN}.get(dialect, ()):
        op.execute(statement)
    op.drop_table("vector_store_chunks")
    op.drop_table("vector_store_file_batches")
    op.drop_table("vector_store_files")
    op.drop_table("vector_stores")
