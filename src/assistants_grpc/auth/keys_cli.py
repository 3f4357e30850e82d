"""`assistants-grpc keys create | list | revoke`: API keys, managed against the database.

`create` prints the new key alone on stdout (so `KEY=$(assistants-grpc keys create --project
p)` works) and what it is on stderr; the key is shown this once and only its hash is stored.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime

from assistants_grpc.auth import admin
from assistants_grpc.store import migrate
from assistants_grpc.store.database import Database


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    keys = commands.add_parser("keys", help="create, list and revoke API keys")
    actions = keys.add_subparsers(dest="keys_command", required=True)
    create = actions.add_parser("create", help="make a key for a project and print it once")
    create.add_argument("--project", required=True, help="the project the key acts in")
    listing = actions.add_parser("list", help="list keys: prefix, project, created, last used")
    listing.add_argument("--all", action="store_true", help="include revoked keys")
    revoke = actions.add_parser("revoke", help="revoke a key; calls with it fail from then on")
    revoke.add_argument("reference", metavar="PREFIX_OR_ID", help="key id, prefix or the key")
    for action in (create, listing, revoke):
        action.add_argument("--database-url", help="SQLAlchemy URL (ASSISTANTS_DATABASE_URL)")
        action.add_argument("--log-level")


def run(args: argparse.Namespace, database_url: str) -> int:
    database = Database(database_url)
    try:
        # Idempotent; lets the first key be made before the server ever ran on this database.
        migrate.upgrade(database)
        now = int(time.time())
        if args.keys_command == "create":
            try:
                key, info = admin.create_key(database, args.project, now)
            except ValueError as error:
                print(f"assistants-grpc: {error}", file=sys.stderr)
                return 2
            print(key)
            print(
                f"created {info.id} ({info.prefix}...) for project {info.project!r}; "
                "the key is shown only this once",
                file=sys.stderr,
            )
            return 0
        if args.keys_command == "list":
            _print_table(admin.list_keys(database, include_revoked=args.all), args.all)
            return 0
        try:
            info = admin.revoke_key(database, args.reference, now)
        except LookupError as error:
            print(f"assistants-grpc: {error.args[0]}", file=sys.stderr)
            return 1
        print(f"revoked {info.id} ({info.prefix}...) of project {info.project!r}")
        return 0
    finally:
        database.dispose()


def _print_table(keys: list[admin.KeyInfo], with_revoked: bool) -> None:
    header = ["ID", "PREFIX", "PROJECT", "CREATED", "LAST USED"]
    if with_revoked:
        header.append("REVOKED")
    rows = [header]
    for key in keys:
        row = [key.id, key.prefix, key.project, _when(key.created_at), _when(key.last_used_at)]
        if with_revoked:
            row.append(_when(key.revoked_at, "-"))
        rows.append(row)
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )


def _when(seconds: int | None, missing: str = "never") -> str:
    if seconds is None:
        return missing
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


__all__ = ["add_parser", "run"]
