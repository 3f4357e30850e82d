"""Files: `files` (what the API shows), `file_contents` (one row per distinct content, counted
by the Files that share it) and `file_parts` (the content itself, in 1 MiB parts, where it lives
in the database: PostgreSQL). Two partial indexes find the messages and threads that may name a
File, so deleting one does not read every message.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# The literals, not imports: a migration is history and must not change when the code does.
_HAS_ATTACHMENTS = {
    "sqlite_where": sa.text("attachments <> '[]'"),
    "postgresql_where": sa.text("CAST(attachments AS TEXT) <> '[]'"),
}
_HAS_TOOL_RESOURCES = {
    "sqlite_where": sa.text("tool_resources <> 'null'"),
    "postgresql_where": sa.text("CAST(tool_resources AS TEXT) <> 'null'"),
}


def upgrade() -> None:
    op.create_table(
        "files",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("project", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.Integer(), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("purpose", sa.String(length=32), nullable=False),
        sa.Column("expires_at", sa.Integer(), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("pk"),
        sa.UniqueConstraint("id"),
    )
    with op.batch_alter_table("files", schema=None) as batch_op:
        batch_op.create_index("ix_files_project_pk", ["project", "pk"], unique=False)
        batch_op.create_index("ix_files_expires_at", ["expires_at"], unique=False)
    op.create_table(
        "file_contents",
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("refs", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("sha256"),
    )
    op.create_table(
        "file_parts",
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("sha256", "seq"),
    )
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.create_index(
            "ix_messages_with_attachments", ["thread_id"], unique=False, **_HAS_ATTACHMENTS
        )
    with op.batch_alter_table("threads", schema=None) as batch_op:
        batch_op.create_index(
            "ix_threads_with_tool_resources", ["project"], unique=False, **_HAS_TOOL_RESOURCES
        )


def downgrade() -> None:
    with op.batch_alter_table("threads", schema=None) as batch_op:
        batch_op.drop_index("ix_threads_with_tool_resources", **_HAS_TOOL_RESOURCES)
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index("ix_messages_with_attachments", **_HAS_ATTACHMENTS)
    op.drop_table("file_parts")
    op.drop_table("file_contents")
    with op.batch_alter_table("files", schema=None) as batch_op:
        batch_op.drop_index("ix_files_expires_at")
        batch_op.drop_index("ix_files_project_pk")
    op.drop_table("files")
