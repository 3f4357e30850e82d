"""`assistants-grpc export [--thread ID…] OUT`: a project's objects as OpenAI JSON Lines.

One object per line, rendered by `contract.openai_json.render` exactly as the API shows it, so
the file is what the SDK's `model_dump_json()` would have written and `import` reads it back
to the same objects. Order: the assistants, then the threads a page at a time, each page
followed by its threads' messages, runs and steps, everything in insertion order.

It streams: rows are fetched a thousand at a time and written as they come, so a project larger
than memory exports. It reads one state of the database: rows written after the export began
(`pk` above the highest one seen at the start) are left out, so a server writing meanwhile
cannot produce a step whose run is not in the file; on PostgreSQL the whole export is also one
REPEATABLE READ snapshot.

With `--thread`, only those threads (with their messages, runs and steps) and the assistants
their runs and messages name: the file then imports on its own into an empty database, and the
threads can be continued there with the same assistants.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import os
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Final

from sqlalchemy import ColumnElement, Connection, func, select, union

from assistants_grpc.contract.openai_json import render
from assistants_grpc.store import repository as repo
from assistants_grpc.store.database import Database
from assistants_grpc.transfer.kinds import KINDS, Kind
from assistants_grpc.transfer.progress import Progress

__all__ = ["ExportResult", "export"]

_PAGE: Final = 200
_CHILDREN: Final[tuple[Kind, ...]] = tuple(k for k in KINDS if k.under_thread)
_ASSISTANT: Final = next(k for k in KINDS if k.object == "assistant")
_THREAD: Final = next(k for k in KINDS if k.object == "thread")


@dataclass
class ExportResult:
    counts: dict[str, int] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)  # --thread ids not in the project


def export(
    database: Database,
    out: str,
    project: str,
    progress: Progress,
    thread_ids: Sequence[str] | None = None,
) -> ExportResult:
    result = ExportResult({kind.object: 0 for kind in KINDS})
    with _output(out) as stream, database.engine.connect() as connection:
        if database.is_postgresql:
            connection = connection.execution_options(isolation_level="REPEATABLE READ")
        with connection.begin():
            marks = {kind.object: repo.max_pk(connection, kind.table) for kind in KINDS}
            _Export(connection, stream, project, marks, result, progress).run(thread_ids)
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
    ) -> None:
        self._c = connection
        self._stream = stream
        self._project = project
        self._marks = marks
        self._result = result
        self._progress = progress
        self._done = 0
        self._assistant_ids: set[str] = set()

    def _seen(self, kind: Kind) -> ColumnElement[bool]:
        return kind.table.c.pk <= self._marks[kind.object]

    def run(self, thread_ids: Sequence[str] | None) -> None:
        threads = _THREAD.table
        if thread_ids is None:
            in_project = [threads.c.project == self._project, self._seen(_THREAD)]
            assistants = [_ASSISTANT.table.c.project == self._project, self._seen(_ASSISTANT)]
            self._progress.phase("exporting", self._count_all(in_project), "objects")
            self._write(_ASSISTANT, repo.stream_rows(self._c, _ASSISTANT.table, assistants))
            for page in self._thread_pages(in_project):
                self._write_threads(page)
            return
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

    def _thread_pages(self, conditions: list[ColumnElement[bool]]) -> Iterator[list[Any]]:
        threads = _THREAD.table
        last = 0
        while True:
            query = (
                select(threads)
                .where(*conditions, threads.c.pk > last)
                .order_by(threads.c.pk)
                .limit(_PAGE)
            )
            page = list(self._c.execute(query).mappings())
            if not page:
                return
            yield page
            last = page[-1]["pk"]

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
        write = self._stream.write
        n = 0
        for row in rows:
            write(json.dumps(render(kind.from_row(row)), ensure_ascii=False, separators=(",", ":")))
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
