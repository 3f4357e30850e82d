"""`assistants-grpc runs ls [--active] [--thread T] | show RUN_ID`: the runs as the database has
them, for an operator without a client (README "Runs").

`ls` is one line per run, newest first: its status, the replica holding its lease and until when,
when it expires, its last error. `show` is one run in full, with its steps. Both only read: the
database is never migrated or written here, and no message text is shown (ids, statuses, errors,
usage).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from assistants_grpc.store import repository as repo
from assistants_grpc.store.database import Database
from assistants_grpc.store.run_states import ACTIVE

DEFAULT_LIMIT = 50


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    runs = commands.add_parser("runs", help="list and show runs as the database has them")
    actions = runs.add_subparsers(dest="runs_command", required=True)
    listing = actions.add_parser("ls", help="runs, newest first: status, lease, expiry, error")
    listing.add_argument("--active", action="store_true", help="only runs not ended yet")
    listing.add_argument("--thread", metavar="THREAD_ID", help="only the runs of this thread")
    listing.add_argument(
        "--limit",
        type=int,
        default=DEFAULT_LIMIT,
        help=f"at most this many (default {DEFAULT_LIMIT})",
    )
    show = actions.add_parser("show", help="one run in full, with its steps")
    show.add_argument("run_id", metavar="RUN_ID")
    for action in (listing, show):
        action.add_argument("--database-url", help="SQLAlchemy URL (ASSISTANTS_DATABASE_URL)")
        action.add_argument("--log-level")


def run(args: argparse.Namespace, database_url: str, *, now: float | None = None) -> int:
    """The command's exit status: 0, 1 for a run that does not exist or an unreadable
    database, 2 for a bad argument."""
    now = time.time() if now is None else now
    database = Database(database_url)
    try:
        if args.runs_command == "ls":
            if args.limit < 1:
                print("assistants-grpc: --limit must be at least 1", file=sys.stderr)
                return 2
            rows = database.transaction_sync(
                lambda c: list(c.execute(_listing(args.active, args.thread, args.limit)).mappings())
            )
            _print_runs(rows, now)
            return 0
        found = database.transaction_sync(lambda c: _one(c, args.run_id))
        if found is None:
            print(f"assistants-grpc: no run {args.run_id!r}", file=sys.stderr)
            return 1
        _print_run(*found, now=now)
        return 0
    except SQLAlchemyError as error:
        orig = getattr(error, "orig", None)
        reason = str(orig) if orig is not None else str(error)
        print(
            f"assistants-grpc: cannot read the runs ({reason.splitlines()[0]}); "
            "is the database migrated (`assistants-grpc migrate`)?",
            file=sys.stderr,
        )
        return 1
    finally:
        database.dispose()


_COLUMNS = (
    repo.RUNS.c.id,
    repo.RUNS.c.thread_id,
    repo.RUNS.c.status,
    repo.RUNS.c.model,
    repo.RUNS.c.created_at,
    repo.RUNS.c.expires_at,
    repo.RUNS.c.lease_owner,
    repo.RUNS.c.lease_expires_at,
    repo.RUNS.c.last_error,
)


def _listing(active: bool, thread_id: str | None, limit: int) -> Any:
    query = select(*_COLUMNS).order_by(repo.RUNS.c.pk.desc()).limit(limit)
    if active:
        query = query.where(repo.run_status_in(ACTIVE))
    if thread_id is not None:
        query = query.where(repo.RUNS.c.thread_id == thread_id)
    return query


def _one(connection: Any, run_id: str) -> tuple[Mapping[Any, Any], str | None, list[Any]] | None:
    run = connection.execute(select(repo.RUNS).where(repo.RUNS.c.id == run_id)).mappings().first()
    if run is None:
        return None
    project = connection.execute(
        select(repo.THREADS.c.project).where(repo.THREADS.c.id == run["thread_id"])
    ).scalar()
    steps = list(
        connection.execute(
            select(repo.RUN_STEPS)
            .where(repo.RUN_STEPS.c.run_id == run_id)
            .order_by(repo.RUN_STEPS.c.pk)
        ).mappings()
    )
    return run, project, steps


def _print_runs(rows: Sequence[Mapping[Any, Any]], now: float) -> None:
    header = ["ID", "THREAD", "STATUS", "MODEL", "CREATED", "OWNER", "LEASE", "EXPIRES", "ERROR"]
    table = [header]
    for row in rows:
        table.append(
            [
                row["id"],
                row["thread_id"],
                row["status"],
                row["model"],
                _when(row["created_at"]),
                row["lease_owner"] or "-",
                _lease(row["lease_expires_at"], now),
                _when(row["expires_at"], "-"),
                _error(row["last_error"]),
            ]
        )
    _print_table(table)
    if len(rows) == 0:
        print("(no runs)")


def _print_run(
    run: Mapping[Any, Any], project: str | None, steps: Sequence[Mapping[Any, Any]], *, now: float
) -> None:
    usage = run["usage"]
    fields = [
        ("id", run["id"]),
        ("thread", run["thread_id"]),
        ("project", project or "-"),
        ("assistant", run["assistant_id"]),
        ("model", run["model"]),
        ("status", run["status"]),
        ("created", _when(run["created_at"])),
        ("started", _when(run["started_at"], "-")),
        ("completed", _when(run["completed_at"], "-")),
        ("failed", _when(run["failed_at"], "-")),
        ("cancelled", _when(run["cancelled_at"], "-")),
        ("expires", _when(run["expires_at"], "-")),
        ("owner", run["lease_owner"] or "-"),
        ("lease", _lease(run["lease_expires_at"], now)),
        ("incomplete", run["incomplete_reason"] or "-"),
        ("last error", _error(run["last_error"], full=True)),
        ("usage", _usage(usage)),
        ("events", str(run["last_sequence"])),
    ]
    width = max(len(name) for name, _ in fields)
    for name, value in fields:
        print(f"{name.ljust(width)}  {value}")
    print()
    table = [["STEP", "TYPE", "STATUS", "CREATED", "USAGE", "ERROR"]]
    for step in steps:
        table.append(
            [
                step["id"],
                step["type"],
                step["status"],
                _when(step["created_at"]),
                _usage(step["usage"]),
                _error(step["last_error"]),
            ]
        )
    _print_table(table)
    if not steps:
        print("(no steps)")


def _print_table(rows: list[list[str]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def _when(seconds: float | None, missing: str = "never") -> str:
    if seconds is None:
        return missing
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _lease(until: float | None, now: float) -> str:
    """When the lease runs out, from `now` (a lapsed one is taken over by the next claim)."""
    if until is None:
        return "-"
    left = until - now
    if left >= 0:
        return f"{left:.1f}s left"
    return f"lapsed {-left:.1f}s ago"


def _error(error: Mapping[str, Any] | None, *, full: bool = False) -> str:
    if not error:
        return "-"
    code = str(error.get("code") or "error")
    if not full:
        return code
    return f"{code}: {error.get('message') or ''}".rstrip(": ")


def _usage(usage: Mapping[str, int] | None) -> str:
    if not usage:
        return "-"
    return (
        f"{usage.get('prompt_tokens', 0)} in, {usage.get('completion_tokens', 0)} out, "
        f"{usage.get('total_tokens', 0)} total"
    )


__all__ = ["add_parser", "run"]
