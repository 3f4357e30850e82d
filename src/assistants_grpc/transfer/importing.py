"""`assistants-grpc import PATH…`: read every file into the staging file, then write.

Reading first and writing second is what lets objects come in any order and any number of
files: a message read before its thread waits in staging, not in memory, and whether its
thread exists is asked only once every file has been read (then a missing parent is reported,
not stored). See `staging` for the write order, `writing` for the transactions and `contents`
for the bytes of Files.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from assistants_grpc.clock import SystemClock
from assistants_grpc.engine.tokens import TokenCounter
from assistants_grpc.files.storage import FileStorage
from assistants_grpc.ids import random_id
from assistants_grpc.store.database import Database
from assistants_grpc.transfer.checking import Checked, Skipped, check_value
from assistants_grpc.transfer.contents import Contents
from assistants_grpc.transfer.kinds import KINDS, POSITION
from assistants_grpc.transfer.progress import Progress
from assistants_grpc.transfer.reading import ReadError, read_records
from assistants_grpc.transfer.report import UNREADABLE, Problem, Summary
from assistants_grpc.transfer.staging import Staging
from assistants_grpc.transfer.writing import Writer

__all__ = ["ImportOptions", "import_files"]


@dataclass(frozen=True)
class ImportOptions:
    project: str = "default"
    replace: bool = False
    batch_size: int = 500
    staging_dir: Path | None = None
    # The one place Files' bytes are (`DIR/<id>`); None: beside each dump (transfer/contents).
    files_dir: Path | None = None
    # What new vector stores embed with: the server's --embedding-model (None: lexical).
    embedding_model: str | None = None


def import_files(
    database: Database,
    paths: Sequence[Path],
    options: ImportOptions,
    progress: Progress,
    *,
    counter: TokenCounter | None = None,
    now: int | None = None,
    storage: FileStorage | None = None,
) -> Summary:
    """Import every object of `paths` into `options.project`; the summary says what became of
    each. The database's schema must be current (the CLI migrates first). `storage` is where
    Files' bytes go, with its limits (default: the database's, as a server with default
    settings would have it)."""
    summary = Summary(lambda problem: progress.problem(str(problem)))
    now = int(time.time()) if now is None else now
    sources = [str(path) for path in paths]
    if storage is None:
        storage = FileStorage.for_database(database, SystemClock(), random_id)
    staging = Staging(options.staging_dir)
    contents = Contents(
        database, storage, files_dir=options.files_dir, scratch_parent=staging.directory
    )
    try:
        _stage(paths, sources, staging, summary, progress, now)
        for duplicate in staging.finish():
            first = f"{sources[duplicate.first_source]}:{duplicate.first_line}"
            summary.refuse(
                KINDS[duplicate.kind].object,
                Problem(
                    sources[duplicate.source],
                    duplicate.line,
                    "id",
                    f"{duplicate.id} was already read at {first}; the first one is imported",
                ),
            )
        total = staging.count
        progress.phase("writing", total, "objects")
        writer = Writer(
            database,
            staging,
            summary,
            paths,
            contents,
            project=options.project,
            replace=options.replace,
            counter=counter or TokenCounter(),
            now=now,
            embedding_model=options.embedding_model,
            batch_size=options.batch_size,
            on_commit=lambda done: progress.advance(done, _counts(summary)),
        )
        try:
            writer.write_all()
        finally:
            progress.end_phase()
    finally:
        contents.close()
        staging.close()
    return summary


def _counts(summary: Summary) -> str:
    return ", ".join(f"{summary.total(o):,} {o}" for o in ("imported", "unchanged", "refused"))


def _stage(
    paths: Sequence[Path],
    sources: Sequence[str],
    staging: Staging,
    summary: Summary,
    progress: Progress,
    now: int,
) -> None:
    sizes = []
    for path in paths:
        try:
            sizes.append(path.stat().st_size)
        except OSError:
            sizes.append(0)
    progress.phase("reading", sum(sizes), "bytes")
    before = 0
    for source, path in enumerate(paths):
        read = [0]
        try:
            for record in read_records(path, read):
                progress.advance(before + read[0], f"{staging.count:,} objects")
                if record.error is not None:
                    summary.refuse(
                        UNREADABLE, Problem(sources[source], record.line, "", record.error)
                    )
                    continue
                checked = check_value(record.value, may_hold_nul=record.may_hold_nul)
                if isinstance(checked, Skipped):
                    note = Problem(sources[source], record.line, "", checked.reason)
                    summary.skip(checked.kind, note)
                    continue
                if not isinstance(checked, Checked):
                    summary.count(checked.kind or UNREADABLE, "refused")
                    for field, reason in checked.reasons:
                        summary.report(Problem(sources[source], record.line, field, reason))
                    continue
                kind, obj = checked.kind, checked.obj
                group = getattr(obj, kind.group_field) if kind.group_field else ""
                staging.add(
                    POSITION[kind.object],
                    kind.key(obj),
                    group,
                    obj.created_at,  # type: ignore[attr-defined]
                    source,
                    record.line,
                    kind.ends_at(obj, now),
                    kind.weight(obj),
                    obj.SerializeToString(),
                )
        except ReadError as error:
            summary.refuse(
                UNREADABLE,
                Problem(
                    sources[source],
                    error.line,
                    "",
                    f"{error.reason}; the rest of the file is skipped",
                ),
            )
        except OSError as error:
            summary.refuse(
                UNREADABLE, Problem(sources[source], None, "", error.strerror or str(error))
            )
        before += sizes[source]
    progress.advance(before, f"{staging.count:,} objects")
    progress.end_phase()
