"""Projects and API keys: assistants and threads get a `project`, keys live hashed in `api_keys`.

Rows written before this revision belong to the default project, which is where a server without
keys keeps everything, so an existing deployment reads exactly what it read before.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 06:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# The literal, not an import: a migration is history and must not change when the code does.
_DEFAULT_PROJECT = "default"


def upgrade() -> None:
    for table in ("assistants", "threads"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(
                sa.Column(
                    "project",
                    sa.String(length=64),
                    nullable=False,
                    server_default=_DEFAULT_PROJECT,
                )
            )
            batch_op.create_index(f"ix_{table}_project_pk", ["project", "pk"], unique=False)

    op.create_table(
        "api_keys",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("prefix", sa.String(length=32), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("project", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.Integer(), nullable=False),
        sa.Column("last_used_at", sa.Integer(), nullable=True),
        sa.Column("revoked_at", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("pk"),
        sa.UniqueConstraint("id"),
        sa.UniqueConstraint("key_hash"),
    )
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_api_keys_prefix"), ["prefix"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_keys_prefix"))
    op.drop_table("api_keys")
    for table in ("threads", "assistants"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(f"ix_{table}_project_pk")
            batch_op.drop_column("project")
