"""PostgreSQL's full-text index holds the store id beside the tsvector (issue 13): a search's
bitmap then holds its own store's matching chunks only, not every store's, so the heap pages
read (the cost of a search, ~2-3 µs a matching row) are its store's alone, and no second bitmap
(the store's 100,000 entries of uq_vector_store_chunks_file_seq, ~15 ms) is AND-ed with it. A
varchar in a GIN index needs btree_gin, a contrib extension shipped with PostgreSQL itself and
trusted (a database owner may create it). A no-op on SQLite, whose FTS5 table already holds
the store id.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 09:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

# Literals, not imports: a migration is history and must not change when the code does.
_UP = (
    "CREATE EXTENSION IF NOT EXISTS btree_gin",
    "CREATE INDEX vector_store_chunks_fts_store_gin ON vector_store_chunks"
    " USING gin (vector_store_id, tsv)",
    "DROP INDEX IF EXISTS vector_store_chunks_fts_gin",
)
# The extension stays: other objects may have come to use it since.
_DOWN = (
    "CREATE INDEX IF NOT EXISTS vector_store_chunks_fts_gin ON vector_store_chunks USING gin (tsv)",
    "DROP INDEX IF EXISTS vector_store_chunks_fts_store_gin",
)


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for statement in _UP:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for statement in _DOWN:
            op.execute(statement)
