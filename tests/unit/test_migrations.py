"""The Alembic migrations build exactly the schema the SQLModel tables describe, and applying
them twice is harmless. The lexical index is dialect-specific (FTS5 on SQLite, a tsvector column
on PostgreSQL) and made by the migration alone: the comparison leaves it out, and a test checks
it is there."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlmodel import SQLModel

from assistants_grpc.store import migrate, tables  # noqa: F401 (registers the tables)
from assistants_grpc.store.database import Database
from assistants_grpc.store.tables import LEXICAL_COLUMN, LEXICAL_INDEX


def _not_lexical_index(name: str | None, kind: str, parent: dict[str, Any]) -> bool:
    if kind in ("table", "index") and name is not None and name.startswith(LEXICAL_INDEX):
        return False
    return not (kind == "column" and name == LEXICAL_COLUMN)


def test_migrations_match_the_tables(database_url: str) -> None:
    database = Database(database_url)
    try:
        migrate.upgrade(database)
        migrate.upgrade(database)
        with database.engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"include_name": _not_lexical_index}
            )
            diff = compare_metadata(context, SQLModel.metadata)
        assert diff == []
        assert migrate.current_revision(database) is not None
    finally:
        database.dispose()


def test_the_lexical_index_is_the_dialects(database_url: str) -> None:
    database = Database(database_url)
    try:
        migrate.upgrade(database)
        with database.engine.connect() as connection:
            if database.is_sqlite:
                found = connection.execute(
                    text("SELECT name FROM sqlite_master WHERE name = :n"), {"n": LEXICAL_INDEX}
                ).scalar()
                assert found == LEXICAL_INDEX
            else:
                columns = {
                    c["name"] for c in inspect(connection).get_columns("vector_store_chunks")
                }
                assert LEXICAL_COLUMN in columns
    finally:
        database.dispose()


def test_downgrade_removes_the_lexical_index(database_url: str) -> None:
    database = Database(database_url)
    try:
        migrate.upgrade(database)
        from alembic import command

        with database.engine.begin() as connection:
            command.downgrade(migrate._config(connection), "0004")
        with database.engine.connect() as connection:
            names = set(inspect(connection).get_table_names())
        assert not {n for n in names if n.startswith(("vector_store", LEXICAL_INDEX))}
    finally:
        database.dispose()
