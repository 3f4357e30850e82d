"""Alembic environment: runs the migrations on the connection `store.migrate` hands over."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

from assistants_grpc.store import tables  # noqa: F401 (registers the tables on the metadata)

target_metadata = SQLModel.metadata
connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=target_metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
