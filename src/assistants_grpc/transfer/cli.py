"""`assistants-grpc import PATH… | export OUT`: objects in OpenAI's JSON, ids kept.

Both take `--database-url` (or ASSISTANTS_DATABASE_URL) like the `keys` commands and apply
pending migrations first. Problems and progress go to stderr, the summary to stdout. `import`
exits 0 when every object was imported or already there, 1 when some were refused (the rest
is imported all the same; fix the input and run it again), 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from assistants_grpc.auth.keys import check_project_name
from assistants_grpc.store import migrate
from assistants_grpc.store.database import Database
from assistants_grpc.store.tables import DEFAULT_PROJECT
from assistants_grpc.transfer.exporting import export
from assistants_grpc.transfer.importing import ImportOptions, import_files
from assistants_grpc.transfer.kinds import KINDS
from assistants_grpc.transfer.progress import Progress

__all__ = ["add_parsers", "run"]


def add_parsers(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    kinds = ", ".join(kind.object for kind in KINDS)
    imports = commands.add_parser(
        "import",
        help="import objects dumped from the OpenAI API (JSON Lines or JSON), ids kept",
        description=f"Import {kinds} objects as the OpenAI API returned them (JSON Lines, a "
        "JSON array, a list page or one object; .gz too), keeping their ids. Importing the "
        "same objects again changes nothing.",
    )
    imports.add_argument("paths", metavar="PATH", nargs="+", type=Path, help="files to read")
    imports.add_argument(
        "--replace", action="store_true", help="write over stored objects that differ"
    )
    imports.add_argument(
        "--batch-size", type=int, default=500, help="objects per transaction (default 500)"
    )
    imports.add_argument(
        "--staging-dir", type=Path, help="where the temporary staging file goes (default: TMPDIR)"
    )
    exports = commands.add_parser(
        "export",
        help="export a project's objects as OpenAI JSON Lines (what import reads)",
        description="Write the project's assistants and threads, with their messages, runs "
        "and steps, one OpenAI JSON object per line (gzipped if OUT ends in .gz, stdout if -).",
    )
    exports.add_argument("out", metavar="OUT", help="the file to write, or - for stdout")
    exports.add_argument(
        "--thread",
        dest="threads",
        metavar="ID",
        nargs="+",
        action="extend",
        help="only these threads (and the assistants they use)",
    )
    for parser in (imports, exports):
        parser.add_argument(
            "--project", default=DEFAULT_PROJECT, help=f"the project (default {DEFAULT_PROJECT})"
        )
        parser.add_argument("--database-url", help="SQLAlchemy URL (ASSISTANTS_DATABASE_URL)")
        parser.add_argument("--log-level")
        parser.add_argument(
            "--progress-seconds",
            type=float,
            default=5.0,
            help="seconds between progress lines when stderr is not a terminal (default 5)",
        )


def run(args: argparse.Namespace, database_url: str) -> int:
    try:
        check_project_name(args.project)
        if args.command == "import" and args.batch_size < 1:
            raise ValueError("--batch-size must be at least 1")
    except ValueError as error:
        print(f"assistants-grpc: {error}", file=sys.stderr)
        return 2
    progress = Progress(interval=args.progress_seconds)
    database = Database(database_url)
    try:
        migrate.upgrade(database)
        if args.command == "import":
            return _import(args, database, progress)
        return _export(args, database, progress)
    finally:
        database.dispose()


def _import(args: argparse.Namespace, database: Database, progress: Progress) -> int:
    options = ImportOptions(
        project=args.project,
        replace=args.replace,
        batch_size=args.batch_size,
        staging_dir=args.staging_dir,
    )
    began = time.monotonic()
    summary = import_files(database, args.paths, options, progress)
    print(summary.table([kind.object for kind in KINDS]))
    seconds = time.monotonic() - began
    refused = summary.total("refused")
    print(
        f"{summary.total('imported'):,} imported, {summary.total('unchanged'):,} unchanged, "
        f"{summary.total('replaced'):,} replaced, {refused:,} refused "
        f"into project {args.project!r} in {seconds:.1f} s",
        file=sys.stderr,
    )
    return 0 if summary.ok else 1


def _export(args: argparse.Namespace, database: Database, progress: Progress) -> int:
    result = export(database, args.out, args.project, progress, args.threads)
    for thread_id in result.missing:
        progress.problem(f"{thread_id}: no such thread in project {args.project!r}")
    total = sum(result.counts.values())
    details = ", ".join(f"{n:,} {kind}" for kind, n in result.counts.items())
    print(f"exported {total:,} objects ({details}) to {args.out}", file=sys.stderr)
    return 1 if result.missing else 0
