"""Assistants keep their reasoning_effort: request-only, never shown, the default of their runs.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 07:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("assistants", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reasoning_effort", sa.String(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("assistants", schema=None) as batch_op:
        batch_op.drop_column("reasoning_effort")
