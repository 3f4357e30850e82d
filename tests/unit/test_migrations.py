"""The Alembic migrations build exactly the schema the SQLModel tables describe, and applying
them twice is harmless."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel

from assistants_grpc.store import migrate, tables  # noqa: F401 (registers the tables)
from assistants_grpc.store.database import Database


def test_migrations_match_the_tables(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'm.db'}")
    try:
        migrate.upgrade(database)
        migrate.upgrade(database)
        with database.engine.connect() as connection:
            diff = compare_metadata(MigrationContext.configure(connection), SQLModel.metadata)
        assert diff == []
        assert migrate.current_revision(database) is not None
    finally:
        database.dispose()
