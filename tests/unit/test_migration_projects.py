"""Migration 0002: rows written before projects existed belong to the default project."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from assistants_grpc.store import migrate
from assistants_grpc.store.database import Database


def test_existing_rows_join_the_default_project(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'old.db'}")
    try:
        migrate.upgrade(database, "0001")
        with database.engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO assistants (id, created_at, model, tools, metadata) "
                    "VALUES ('asst_old', 1, 'gpt-4o', '[]', '{}')"
                )
            )
            connection.execute(
                text(
                    "INSERT INTO threads (id, created_at, metadata) VALUES ('thread_old', 1, '{}')"
                )
            )
        migrate.upgrade(database)
        with database.engine.connect() as connection:
            for table in ("assistants", "threads"):
                rows = connection.execute(text(f"SELECT project FROM {table}")).scalars().all()
                assert rows == ["default"]
            assert connection.execute(text("SELECT count(*) FROM api_keys")).scalar() == 0
    finally:
        database.dispose()
