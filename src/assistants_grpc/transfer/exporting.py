"""`assistants-grpc export [--thread ID…] OUT`: a project's objects as OpenAI JSON Lines.

One object per line, rendered by `contract.openai_json.render` exactly as the API shows it, so
the file is what the SDK's `model_dump_json()` would have written and `import` reads it back
to the same objects. Order: the Files, the vector stores a page at a time, each page followed
by their files, the assistants, then the threads a page at a time, each page followed by its
threads' messages, runs and steps, everything in insertion order.

The bytes of each File go to `OUT.files/<id>` (or `--files-dir DIR`), where `import OUT` looks
for them, each streamed in parts of 1 MiB through a temporary file renamed into place. Written
to stdout (`-`), the bytes go nowhere unless `--files-dir` says where (the result says so).

It streams: rows are fetched a thousand at a time and written as they come, so a project larger
than memory exports. It reads one state of the database: rows written after the export began
(`pk` above the highest one seen at the start) are left out, so a server writing meanwhile
cannot produce a step whose run is not in the file; on PostgreSQL the whole export is also one
REPEATABLE READ snapshot.

With `--thread`, only those threads (with their messages, runs and steps), the assistants
their runs and messages name, and the vector stores (with their files) and Files these threads
and assistants name (tool resources, attachments, image parts, annotations, tool outputs): the
file then imports on its own into an empty database, and the threads can be continued there
with the same assistants, stores and Files.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Final

from sqlalchemy import ColumnElement, Connection, Table, func, select, union

from assistants_grpc.clock import SystemClock
from assistants_grpc.contract.openai_json import render
from assistants_grpc.files.storage import FileStorage
from assistants_grpc.ids import random_id
from assistants_grpc.store import files as file_queries
from assistants_grpc.store import repository as repo
from assistants_grpc.store.database import Database
from assistants_grpc.transfer.contents import FILES_SUFFIX, write_content
from assistants_grpc.transfer.kinds import BY_OBJECT, KINDS, Kind
from assistants_grpc.transfer.progress import Progress

__all__ = ["ExportResult", "export"]

_PAGE: Final = 200
_CHILDREN: Final[tuple[Kind, ...]] = tuple(k for k in KINDS if k.under_thread)
_ASSISTANT: Final = BY_OBJECT["assistant"]
_THREAD: Final = BY_OBJECT["thread"]
_FILE: Final = BY_OBJECT["file"]
_STORE: Final = BY_OBJECT["vector_store"]
_STORE_FILE: Final = BY_OBJECT["vector_store.file"]
# JSON keys whose values name Files or vector stores, wherever they are in an object.
_NAMING_FILES: Final = frozenset({"file_id", "file_ids"})
_NAMING_STORES: Final = frozenset({"vector_store_ids"})


@dataclass
class ExportResult:
    counts: dict[str, int] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)  # --thread ids not in the project
    # Where the Files' bytes were written; None when they were not (OUT is stdout).
    files_dir: Path | None = None
    unreadable: list[str] = field(default_factory=list)  # Files whose bytes could not be read


def export(
    database: Database,
    out: str,
    project: str,
    progress: Progress,
    thread_ids: Sequence[str] | None = None,
    *,
    storage: FileStorage | None = None,
    files_dir: Path | None = None,
    now: int | None = None,
) -> ExportResult:
    """Export the project (or `thread_ids` and what they name) to `out`; Files' bytes to
    `files_dir` (default `OUT.files`). `storage` is where they are read from (default: the
    database's, as a server with default settings has it); Files expired at `now` are left out,
    as the API shows them no more."""
    if storage is None:
        storage = FileStorage.for_database(database, SystemClock(), random_id)
    if files_dir is None and out != "-":
        files_dir = Path(out).with_name(Path(out).name + FILES_SUFFIX)
    result = ExportResult({kind.object: 0 for kind in KINDS}, files_dir=files_dir)
    with _output(out) as stream, database.engine.connect() as connection:
        if database.is_postgresql:
            connection = connection.execution_options(isolation_level="REPEATABLE READ")
        with connection.begin():
            marks = {kind.object: repo.max_pk(connection, kind.table) for kind in KINDS}
            _Export(
                connection,
                stream,
                project,
                marks,
                result,
                progress,
                storage,
                int(time.time()) if now is None else now,
            ).run(thread_ids)
    progress.end_phase()
    return result


class _Export:
    def __init__(
        self,
        connection: Connection,
        stream: IO[str],
        project: str,
        marks: dict[str, int],
        result: ExportResult,
        progress: Progress,
        storage: FileStorage,
        now: int,
    ) -> None:
        self._c = connection
        self._stream = stream
        self._project = project
        self._marks = marks
        self._result = result
        self._progress = progress
        self._storage = storage
        self._now = now
        self._done = 0
        self._assistant_ids: set[str] = set()
        # With --thread: the Files and stores the exported objects name (None: all of them).
        self._named: tuple[set[str], set[str]] | None = None

    def _seen(self, kind: Kind) -> ColumnElement[bool]:
        return kind.table.c.pk <= self._marks[kind.object]

    def run(self, thread_ids: Sequence[str] | None) -> None:
        threads = _THREAD.table
        if thread_ids is None:
            in_project = [threads.c.project == self._project, self._seen(_THREAD)]
            assistants = [_ASSISTANT.table.c.project == self._project, self._seen(_ASSISTANT)]
            self._progress.phase("exporting", self._count_all(in_project), "objects")
            self._write_files([])
            self._write_stores([])
            self._write(_ASSISTANT, repo.stream_rows(self._c, _ASSISTANT.table, assistants))
            for page in self._pages(threads, in_project):
                self._write_threads(page)
            return
        self._named = (set(), set())
        wanted = list(dict.fromkeys(thread_ids))
        found: set[str] = set()
        for start in range(0, len(wanted), _PAGE):
            chunk = wanted[start : start + _PAGE]
            rows = repo.stream_rows(
                self._c,
                threads,
                [threads.c.id.in_(chunk), threads.c.project == self._project, self._seen(_THREAD)],
            )
            found.update(row["id"] for row in rows)
        self._result.missing = [t for t in wanted if t not in found]
        ids = [t for t in wanted if t in found]
        self._progress.phase("exporting", self._count_threads(ids), "objects")
        self._write_assistants_of(ids)
        for start in range(0, len(ids), _PAGE):
            chunk = ids[start : start + _PAGE]
            # The threads in the order asked for, each once.
            by_id = {
                row["id"]: row
                for row in repo.stream_rows(self._c, threads, [threads.c.id.in_(chunk)])
            }
            self._write_threads([by_id[t] for t in chunk])
        file_ids, store_ids = self._named
        # The stores first: their files name more Files.
        self._write_stores(self._in_order(_STORE.table, store_ids))
        self._write_files(self._in_order(_FILE.table, file_ids))

    def _in_order(self, table: Table, ids: set[str]) -> list[str]:
        """These ids in the order their rows were written (an import keeps that order)."""
        wanted = sorted(ids)
        found: list[tuple[int, str]] = []
        for start in range(0, len(wanted), _PAGE):
            query = select(table.c.pk, table.c.id).where(
                table.c.id.in_(wanted[start : start + _PAGE])
            )
            found += [(row[0], row[1]) for row in self._c.execute(query)]
        return [object_id for _pk, object_id in sorted(found)]

    def _pages(self, table: Table, conditions: list[ColumnElement[bool]]) -> Iterator[list[Any]]:
        """The rows a page at a time, in insertion order: lists, so that other queries can run
        on the connection between pages (PostgreSQL streams from a server-side cursor)."""
        last = 0
        while True:
            query = (
                select(table)
                .where(*conditions, table.c.pk > last)
                .order_by(table.c.pk)
                .limit(_PAGE)
            )
            page = list(self._c.execute(query).mappings())
            if not page:
                return
            yield page
            last = page[-1]["pk"]

    def _in(self, table: Table, ids: list[str]) -> Iterator[list[ColumnElement[bool]]]:
        """Conditions for `ids` a page at a time, or one for all rows when `ids` is empty
        and the export is of everything."""
        if self._named is None:
            yield []
            return
        for start in range(0, len(ids), _PAGE):
            yield [table.c.id.in_(ids[start : start + _PAGE])]

    def _write_stores(self, ids: list[str]) -> None:
        """The project's vector stores (all, or these), each page followed by their files;
        the Files those name join the Files to export."""
        table = _STORE.table
        for selected in self._in(table, ids):
            conditions = [*selected, table.c.project == self._project, self._seen(_STORE)]
            for page in self._pages(table, conditions):
                self._write_rendered(_STORE, _STORE.render_rows(self._c, page))
                files = _STORE_FILE.table
                in_stores = [files.c.vector_store_id.in_([row["id"] for row in page])]
                rows = list(repo.stream_rows(self._c, files, [*in_stores, self._seen(_STORE_FILE)]))
                if self._named is not None:
                    self._named[0].update(row["id"] for row in rows)
                self._write(_STORE_FILE, rows)

    def _write_files(self, ids: list[str]) -> None:
        """The project's live Files (all, or these), each with its bytes."""
        table = _FILE.table
        for selected in self._in(table, ids):
            conditions = [
                *selected,
                table.c.project == self._project,
                file_queries.live(self._now),
                self._seen(_FILE),
            ]
            for page in self._pages(table, conditions):
                self._write(_FILE, page)
                for row in page:
                    self._write_bytes(row)

    def _write_bytes(self, row: Any) -> None:
        directory = self._result.files_dir
        if directory is None:
            return
        directory.mkdir(parents=True, exist_ok=True)
        parts = self._storage.content.read_sync(self._c, row["sha256"], row["bytes"])
        try:
            write_content(directory / row["id"], parts)
        except FileNotFoundError:
            self._result.unreadable.append(row["id"])

    def _write_threads(self, page: Sequence[Any]) -> None:
        self._write(_THREAD, page)
        ids = [row["id"] for row in page]
        for kind in _CHILDREN:
            conditions = [kind.table.c.thread_id.in_(ids), self._seen(kind)]
            self._write(kind, repo.stream_rows(self._c, kind.table, conditions))

    def _write_assistants_of(self, thread_ids: list[str]) -> None:
        """The project's assistants that the threads' runs and messages name, each once."""
        table = _ASSISTANT.table
        for start in range(0, len(thread_ids), _PAGE):
            chunk = thread_ids[start : start + _PAGE]
            named = union(
                select(repo.RUNS.c.assistant_id).where(repo.RUNS.c.thread_id.in_(chunk)),
                select(repo.MESSAGES.c.assistant_id).where(
                    repo.MESSAGES.c.thread_id.in_(chunk), repo.MESSAGES.c.assistant_id.is_not(None)
                ),
            )
            ids = [value for value in self._c.execute(named).scalars() if value]
            ids = [a for a in ids if a not in self._assistant_ids]
            self._assistant_ids.update(ids)
            for inner in range(0, len(ids), _PAGE):
                conditions = [
                    table.c.id.in_(ids[inner : inner + _PAGE]),
                    table.c.project == self._project,
                    self._seen(_ASSISTANT),
                ]
                self._write(_ASSISTANT, repo.stream_rows(self._c, table, conditions))

    def _write(self, kind: Kind, rows: Iterator[Any] | Sequence[Any]) -> None:
        self._write_rendered(kind, (render(kind.from_row(row)) for row in rows))

    def _write_rendered(self, kind: Kind, objects: Iterator[dict[str, Any]]) -> None:
        write = self._stream.write
        named = self._named
        n = 0
        for obj in objects:
            if named is not None:
                _gather(obj, named[0], named[1])
            write(json.dumps(obj, ensure_ascii=False, separators=(",", ":")))
            write("\n")
            n += 1
            if n % 500 == 0:
                self._progress.advance(self._done + n)
        self._done += n
        self._result.counts[kind.object] += n
        self._progress.advance(self._done)

    # -- totals for the progress bar ---------------------------------------------------------

    def _count(self, kind: Kind, conditions: list[ColumnElement[bool]]) -> int:
        query = select(func.count()).select_from(kind.table).where(*conditions, self._seen(kind))
        return int(self._c.execute(query).scalar_one())

    def _count_all(self, in_project: list[ColumnElement[bool]]) -> int:
        threads = select(_THREAD.table.c.id).where(*in_project)
        total = self._count(_ASSISTANT, [_ASSISTANT.table.c.project == self._project])
        files = _FILE.table
        total += self._count(
            _FILE, [files.c.project == self._project, file_queries.live(self._now)]
        )
        stores = select(_STORE.table.c.id).where(_STORE.table.c.project == self._project)
        total += self._count(_STORE, [_STORE.table.c.project == self._project])
        total += self._count(_STORE_FILE, [_STORE_FILE.table.c.vector_store_id.in_(stores)])
        total += self._count(_THREAD, in_project)
        for kind in _CHILDREN:
            total += self._count(kind, [kind.table.c.thread_id.in_(threads)])
        return total

    def _count_threads(self, ids: list[str]) -> int | None:
        if len(ids) > _PAGE:
            return None  # not worth a query per page just for the bar
        total = len(ids)
        for kind in _CHILDREN:
            total += self._count(kind, [kind.table.c.thread_id.in_(ids)])
        return total


def _gather(value: Any, file_ids: set[str], store_ids: set[str]) -> None:
    """Add the ids of Files and vector stores an object's JSON names, at any depth."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key in _NAMING_FILES or key in _NAMING_STORES:
                ids = file_ids if key in _NAMING_FILES else store_ids
                if isinstance(item, str):
                    ids.add(item)
                elif isinstance(item, list):
                    ids.update(i for i in item if isinstance(i, str))
            elif isinstance(item, dict | list):
                _gather(item, file_ids, store_ids)
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, dict | list):
                _gather(item, file_ids, store_ids)


@contextlib.contextmanager
def _output(out: str) -> Iterator[IO[str]]:
    """The file to write: `-` is stdout; a path is written beside itself and renamed into
    place when complete, so a failed export never leaves a truncated file under its name."""
    if out == "-":
        yield sys.stdout
        sys.stdout.flush()
        return
    target = Path(out)
    fd, partial = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as raw:
            binary: IO[bytes] = raw
            if target.suffix == ".gz":
                binary = gzip.GzipFile(fileobj=raw, mode="wb", mtime=0)  # type: ignore[assignment]
            with io.TextIOWrapper(binary, encoding="utf-8", newline="\n") as text:
                yield text
        os.replace(partial, target)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise
