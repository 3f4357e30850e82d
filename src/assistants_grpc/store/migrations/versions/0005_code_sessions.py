"""Code sessions: which replica holds a thread's code_interpreter kernel.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 11:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "code_sessions",
        sa.Column("thread_id", sa.String(length=64), nullable=False),
        sa.Column("replica", sa.String(length=128), nullable=False),
        sa.Column("session_id", sa.String(length=64), nullable=False),
        sa.Column("started_at", sa.Integer(), nullable=False),
        sa.Column("ended_reason", sa.String(), nullable=True),
        sa.PrimaryKeyConstraint("thread_id"),
    )


def downgrade() -> None:
    op.drop_table("code_sessions")
