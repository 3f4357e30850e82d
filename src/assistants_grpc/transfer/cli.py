"""`assistants-grpc import PATH… | export OUT`: objects in OpenAI's JSON, ids kept.

Both take `--database-url` (or ASSISTANTS_DATABASE_URL) like the `keys` commands and apply
pending migrations first, and the Files settings of `serve` (`--data-dir`, and for `import`
the size limit, the quota and `--embedding-model`, or their ASSISTANTS_* variables): Files'
bytes go where the server reads them, within the same limits. Problems and progress go to
stderr, the summary to stdout. `import` exits 0 when every object was imported, already there
or left out on purpose (a note says which), 1 when some were refused (the rest is imported all
the same; fix the input and run it again), 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Final

from assistants_grpc.auth.keys import check_project_name
from assistants_grpc.clock import SystemClock
from assistants_grpc.config import Settings
from assistants_grpc.files.storage import FileStorage
from assistants_grpc.ids import random_id
from assistants_grpc.store import migrate
from assistants_grpc.store.database import Database
from assistants_grpc.store.tables import DEFAULT_PROJECT
from assistants_grpc.transfer.exporting import export
from assistants_grpc.transfer.importing import ImportOptions, import_files
from assistants_grpc.transfer.kinds import KINDS
from assistants_grpc.transfer.progress import Progress

__all__ = ["SHARED_SETTINGS", "add_parsers", "run"]

# The settings of `serve` these commands take too (flags, or ASSISTANTS_* variables).
SHARED_SETTINGS: Final = ("data_dir", "max_file_bytes", "max_project_file_bytes", "embedding_model")


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
    imports.add_argument(
        "--files-dir",
        type=Path,
        help="where Files' bytes are, as DIR/<file id> (default: beside each dump, in "
        "DUMP.files/, files/ or the dump's own folder)",
    )
    imports.add_argument("--max-file-bytes", type=int, help="largest File (as serve's)")
    imports.add_argument(
        "--max-project-file-bytes", type=int, help="bytes of Files per project (as serve's)"
    )
    imports.add_argument(
        "--embedding-model", help="what new vector stores embed with (serve's; default: lexical)"
    )
    exports = commands.add_parser(
        "export",
        help="export a project's objects as OpenAI JSON Lines (what import reads)",
        description="Write the project's Files, vector stores, assistants and threads, with "
        "their files, messages, runs and steps, one OpenAI JSON object per line (gzipped if "
        "OUT ends in .gz, stdout if -), and the Files' bytes in OUT.files/<file id>.",
    )
    exports.add_argument("out", metavar="OUT", help="the file to write, or - for stdout")
    exports.add_argument(
        "--files-dir", type=Path, help="where Files' bytes go (default: OUT.files; none for -)"
    )
    exports.add_argument(
        "--thread",
        dest="threads",
        metavar="ID",
        nargs="+",
        action="extend",
        help="only these threads (and the assistants, vector stores and Files they use)",
    )
    for parser in (imports, exports):
        parser.add_argument(
            "--project", default=DEFAULT_PROJECT, help=f"the project (default {DEFAULT_PROJECT})"
        )
        parser.add_argument("--database-url", help="SQLAlchemy URL (ASSISTANTS_DATABASE_URL)")
        parser.add_argument(
            "--data-dir",
            help="serve's data directory: Files' bytes with SQLite (ASSISTANTS_DATA_DIR)",
        )
        parser.add_argument("--log-level")
        parser.add_argument(
            "--progress-seconds",
            type=float,
            default=5.0,
            help="seconds between progress lines when stderr is not a terminal (default 5)",
        )


def run(args: argparse.Namespace, settings: Settings) -> int:
    try:
        check_project_name(args.project)
        if args.command == "import" and args.batch_size < 1:
            raise ValueError("--batch-size must be at least 1")
    except ValueError as error:
        print(f"assistants-grpc: {error}", file=sys.stderr)
        return 2
    progress = Progress(interval=args.progress_seconds)
    database = Database(settings.database_url)
    try:
        migrate.upgrade(database)
        # The server's file storage, without starting it (its start-up clean-up is the
        # server's to do): the import and export only add and read contents.
        storage = FileStorage.for_database(
            database,
            SystemClock(),
            random_id,
            data_dir=Path(settings.data_dir) if settings.data_dir else None,
            max_file_bytes=settings.max_file_bytes,
            max_project_file_bytes=settings.max_project_file_bytes or None,
        )
        if args.command == "import":
            return _import(args, database, storage, settings, progress)
        return _export(args, database, storage, progress)
    finally:
        database.dispose()


def _import(
    args: argparse.Namespace,
    database: Database,
    storage: FileStorage,
    settings: Settings,
    progress: Progress,
) -> int:
    options = ImportOptions(
        project=args.project,
        replace=args.replace,
        batch_size=args.batch_size,
        staging_dir=args.staging_dir,
        files_dir=args.files_dir,
        embedding_model=settings.embedding_model,
    )
    began = time.monotonic()
    summary = import_files(database, args.paths, options, progress, storage=storage)
    print(summary.table([kind.object for kind in KINDS]))
    seconds = time.monotonic() - began
    refused = summary.total("refused")
    skipped = summary.total("skipped")
    print(
        f"{summary.total('imported'):,} imported, {summary.total('unchanged'):,} unchanged, "
        f"{summary.total('replaced'):,} replaced, {refused:,} refused"
        + (f", {skipped:,} skipped" if skipped else "")
        + f" into project {args.project!r} in {seconds:.1f} s",
        file=sys.stderr,
    )
    return 0 if summary.ok else 1


def _export(
    args: argparse.Namespace, database: Database, storage: FileStorage, progress: Progress
) -> int:
    result = export(
        database,
        args.out,
        args.project,
        progress,
        args.threads,
        storage=storage,
        files_dir=args.files_dir,
    )
    for thread_id in result.missing:
        progress.problem(f"{thread_id}: no such thread in project {args.project!r}")
    for file_id in result.unreadable:
        progress.problem(f"{file_id}: its bytes are missing from the file storage; not written")
    total = sum(result.counts.values())
    details = ", ".join(f"{n:,} {kind}" for kind, n in result.counts.items())
    print(f"exported {total:,} objects ({details}) to {args.out}", file=sys.stderr)
    files = result.counts["file"]
    if files and result.files_dir is None:
        print(
            f"the bytes of {files:,} Files are not written (OUT is stdout): --files-dir DIR "
            "writes them as DIR/<file id>",
            file=sys.stderr,
        )
    elif files:
        print(f"the bytes of {files:,} Files are in {result.files_dir}", file=sys.stderr)
    return 1 if result.missing or result.unreadable else 0
