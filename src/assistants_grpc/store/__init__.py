"""Persistence: tables, the database engine, migrations and the repositories."""
