"""Writing staged objects into the database, a bounded batch per transaction.

A batch is at most `batch_size` objects and `batch_bytes` of them, committed as one
transaction, and counted only once committed: a crash or a failure loses at most the batch in
flight, never what was already reported, and a rerun of the same command skips what is there
(`unchanged`) and writes the rest. Per batch, each type costs a handful of statements whatever
its size: one look-up of the ids already stored, one of the parents (the threads locked as
`lock_thread_for_write` locks one, so a run cannot start on a thread while it is written to),
one `executemany` insert.

An object already stored is compared with what the import would store (both rendered as OpenAI
JSON through the same mapping, `Kind.same`): equal is `unchanged`; different is refused, or
written over with `--replace`. An id stored in another project, or under another parent, is
refused either way, and so is an object naming another project's (its parent, a File it needs,
an assistant or a File it refers to).

Files bring their bytes from beside the dump: they are copied in before the transaction of
their batch (`Kind.fetch`, transfer/contents.py) and count in the batch's size, so a batch holds
`batch_bytes` of content at most (or one larger File).

A batch the database rejects as a whole (a constraint no check here foresaw) is retried one
object per transaction, so only the objects at fault are refused, each with its line.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from google.protobuf.message import Message
from sqlalchemy import Connection, RowMapping
from sqlalchemy.exc import DataError, IntegrityError

from assistants_grpc.contract.pb import message_pb2
from assistants_grpc.engine.tokens import TokenCounter
from assistants_grpc.services.messages import content_tokens
from assistants_grpc.store import repository as repo
from assistants_grpc.store.database import Database
from assistants_grpc.transfer.contents import Contents
from assistants_grpc.transfer.kinds import BY_OBJECT, KINDS, POSITION, Kind, Refused
from assistants_grpc.transfer.kinds.runs import deadline
from assistants_grpc.transfer.report import Problem, Summary
from assistants_grpc.transfer.staging import Staged, Staging

__all__ = ["CRASH_AFTER_ENV", "Writer"]

# Test hook: kill this process (SIGKILL, as a crash would) once this many objects have been
# written inside transactions, mid-batch. Only the crash test sets it.
CRASH_AFTER_ENV: Final = "ASSISTANTS_IMPORT_CRASH_AFTER"

_RUN: Final = POSITION["thread.run"]


@dataclass(frozen=True, slots=True)
class _Outcome:
    kind: str
    outcome: str  # imported | unchanged | replaced | refused
    problem: Problem | None = None


class _Context:
    """`kinds.Context` for one import."""

    def __init__(
        self,
        project: str,
        counter: TokenCounter,
        staging: Staging,
        now: int,
        contents: Contents,
        embedding_model: str | None,
    ) -> None:
        self.project = project
        self.now = now
        self.contents = contents
        self.embedding_model = embedding_model
        self._counter = counter
        self._staging = staging
        self._now = now
        # The parents and needed objects of the batch being written, by kind and id.
        self.rows: dict[str, dict[str, RowMapping]] = {}

    def looked_up(self, kind: str, object_id: str) -> RowMapping | None:
        return self.rows.get(kind, {}).get(object_id)

    def content_tokens(self, content: Sequence[message_pb2.MessageContent]) -> int:
        return content_tokens(self._counter, content)

    def run_ended_at(self, connection: Connection, run_id: str) -> int | None:
        staged = self._staging.find(_RUN, run_id)
        if staged is not None:
            return staged[2]
        # Read by an earlier import, which ended it: its row no longer has its deadline, so it
        # is the one CONTRACT §7 gives a run (created_at + 600), which is what OpenAI's were.
        row = repo.get_by_id(connection, repo.RUNS, run_id)
        if row is None or row["status"] != "expired":
            return None
        return deadline(row["created_at"], None, self._now)


class Writer:
    def __init__(
        self,
        database: Database,
        staging: Staging,
        summary: Summary,
        paths: Sequence[Path],
        contents: Contents,
        *,
        project: str,
        replace: bool,
        counter: TokenCounter,
        now: int,
        embedding_model: str | None = None,
        batch_size: int = 500,
        batch_bytes: int = 8 << 20,
        on_commit: Callable[[int], None] | None = None,
    ) -> None:
        self._database = database
        self._staging = staging
        self._summary = summary
        self._paths = paths
        self._sources = [str(path) for path in paths]
        self._contents = contents
        self._project = project
        self._replace = replace
        self._context = _Context(project, counter, staging, now, contents, embedding_model)
        self._batch_size = batch_size
        self._batch_bytes = batch_bytes
        self._on_commit = on_commit
        self.committed = 0
        self._written = 0
        crash_after = os.environ.get(CRASH_AFTER_ENV)
        self._crash_after = int(crash_after) if crash_after else None

    def write_all(self) -> None:
        batch: list[Staged] = []
        size = 0
        for staged in self._staging.in_order():
            batch.append(staged)
            size += len(staged.data) + staged.weight
            if len(batch) >= self._batch_size or size >= self._batch_bytes:
                self._commit(batch)
                batch, size = [], 0
        if batch:
            self._commit(batch)

    # -- transactions ------------------------------------------------------------------------

    def _commit(self, batch: list[Staged]) -> None:
        try:
            outcomes = self._attempt(batch)
        except (IntegrityError, DataError):
            outcomes = []
            for staged in batch:
                outcomes += self._commit_alone(staged)
        for outcome in outcomes:
            if outcome.problem is not None:
                self._summary.refuse(outcome.kind, outcome.problem)
            else:
                self._summary.count(outcome.kind, outcome.outcome)
        self.committed += len(batch)
        if self._on_commit is not None:
            self._on_commit(self.committed)

    def _commit_alone(self, staged: Staged) -> list[_Outcome]:
        try:
            return self._attempt([staged])
        except (IntegrityError, DataError) as error:
            kind = KINDS[staged.kind]
            reason = f"the database refused it: {_clip(str(error.orig))}"
            return [_Outcome(kind.object, "refused", self._problem(staged, "", reason))]

    def _attempt(self, batch: list[Staged]) -> list[_Outcome]:
        """One transaction of the batch, the Files' bytes fetched for it first."""
        refused = self._fetch(batch)
        try:
            try:
                outcomes = self._database.transaction_sync(lambda c: self._write(c, batch, refused))
            except BaseException:
                self._contents.rolled_back()
                raise
            self._contents.committed()
        finally:
            self._contents.release()
        return outcomes

    def _fetch(self, batch: list[Staged]) -> dict[int, Refused]:
        """Get what the batch's objects bring beside the dump (Files' bytes), outside the
        transaction; the objects that cannot have it, by `seq`."""
        wanted = [s for s in batch if KINDS[s.kind].fetches]
        if not wanted:
            return {}
        refused: dict[int, Refused] = {}
        by_kind: dict[int, list[Staged]] = {}
        for staged in wanted:
            by_kind.setdefault(staged.kind, []).append(staged)
        for position, group in by_kind.items():
            kind = KINDS[position]
            objects = [kind.message_type.FromString(s.data) for s in group]
            stored = self._database.transaction_sync(lambda c: kind.existing(c, objects))  # noqa: B023
            for staged, obj in zip(group, objects, strict=True):
                row = stored.get(kind.key(obj))
                if row is not None and kind.top_level and row["project"] != self._project:
                    continue  # refused in the transaction, with the reason
                try:
                    kind.fetch(obj, self._paths[staged.source], row, self._context)
                except Refused as refusal:
                    refused[staged.seq] = refusal
        return refused

    def _write(
        self, connection: Connection, batch: list[Staged], refused: dict[int, Refused]
    ) -> list[_Outcome]:
        self._contents.begin()
        outcomes: list[_Outcome] = []
        start = 0
        # The batch is in staging order: each type's objects are together, parents first.
        while start < len(batch):
            end = start
            while end < len(batch) and batch[end].kind == batch[start].kind:
                end += 1
            outcomes += self._write_kind(
                connection, KINDS[batch[start].kind], batch[start:end], refused
            )
            start = end
        return outcomes

    # -- one type ----------------------------------------------------------------------------

    def _write_kind(
        self,
        connection: Connection,
        kind: Kind,
        batch: Sequence[Staged],
        refused: dict[int, Refused],
    ) -> list[_Outcome]:
        objects = [kind.message_type.FromString(staged.data) for staged in batch]
        existing = kind.existing(connection, objects)
        threads: dict[str, tuple[str, str | None]] = {}
        if kind.under_thread:
            wanted = [o.thread_id for o in objects] + [r["thread_id"] for r in existing.values()]  # type: ignore[attr-defined]
            threads = repo.lock_threads_for_write(connection, wanted)
        # Parents (but threads, locked above) and needed objects, each kind looked up once.
        looked_up = [(kind.parent.field, kind.parent.kind)] if kind.parent is not None else []
        looked_up = [(f, k) for f, k in looked_up if k != "thread"] + list(kind.needs)
        rows: dict[str, dict[str, RowMapping]] = {}
        for field, other in looked_up:
            ids = [getattr(o, field) for o in objects]
            found = repo.rows_by_ids(connection, BY_OBJECT[other].table, ids)
            rows.setdefault(other, {}).update((row["id"], row) for row in found)
        self._context.rows = rows
        named = [list(kind.references(o)) for o in objects]
        references = self._references(connection, named)

        outcomes: list[_Outcome] = []
        inserts: list[dict[str, Any]] = []
        inserted: list[Message] = []
        for staged, obj, names in zip(batch, objects, named, strict=True):
            row = existing.get(kind.key(obj))
            where = self._placement(kind, obj, row, threads, rows, names, references)
            if where is None and staged.seq in refused:
                where = refused[staged.seq].field, refused[staged.seq].reason
            if where is not None:
                field, reason = where
                outcomes.append(
                    _Outcome(kind.object, "refused", self._problem(staged, field, reason))
                )
                continue
            prepared = kind.prepare(obj, connection, self._context)
            values = kind.values(prepared, self._context)
            self._written += 1
            if self._crash_after is not None and self._written >= self._crash_after:
                os.kill(os.getpid(), signal.SIGKILL)
            if row is not None and kind.same(row, values):
                outcomes.append(_Outcome(kind.object, "unchanged"))
                continue
            if row is not None and not self._replace:
                reason = "differs from the stored object with this id (--replace overwrites it)"
                outcomes.append(
                    _Outcome(kind.object, "refused", self._problem(staged, "id", reason))
                )
                continue
            try:
                kind.before_write(connection, prepared, row, self._context)
            except Refused as refusal:
                problem = self._problem(staged, refusal.field, refusal.reason)
                outcomes.append(_Outcome(kind.object, "refused", problem))
                continue
            if row is None:
                inserts.append(values)
                inserted.append(prepared)
                outcomes.append(_Outcome(kind.object, "imported"))
            else:
                kind.overwrite(connection, row, values)
                kind.written(connection, prepared, self._context, previous=row)
                outcomes.append(_Outcome(kind.object, "replaced"))
        repo.insert_rows(connection, kind.table, inserts)
        for obj in inserted:
            kind.written(connection, obj, self._context, previous=None)
        return outcomes

    def _references(
        self, connection: Connection, named: Sequence[list[tuple[str, str, str]]]
    ) -> dict[str, dict[str, str]]:
        """{kind: {id: project}} of the stored objects the batch refers to."""
        wanted: dict[str, set[str]] = {}
        for references in named:
            for _field, other, object_id in references:
                wanted.setdefault(other, set()).add(object_id)
        return {
            other: {
                row["id"]: row["project"]
                for row in repo.rows_by_ids(connection, BY_OBJECT[other].table, list(ids))
            }
            for other, ids in wanted.items()
        }

    def _placement(
        self,
        kind: Kind,
        obj: Any,
        row: RowMapping | None,
        threads: dict[str, tuple[str, str | None]],
        rows: dict[str, dict[str, RowMapping]],
        names: list[tuple[str, str, str]],
        references: dict[str, dict[str, str]],
    ) -> tuple[str, str] | None:
        """Why the object cannot go where it says (field, reason), or None if it can."""
        project = self._project
        if kind.top_level and row is not None and row["project"] != project:
            return "id", f"{obj.id} exists in another project ({row['project']!r})"
        if kind.parent is not None and kind.parent.kind != "thread":
            parent_id = getattr(obj, kind.parent.field)
            parent = rows[kind.parent.kind].get(parent_id)
            if parent is None:
                return kind.parent.field, self._missing(kind.parent.kind, parent_id)
            if "project" in parent and parent["project"] != project:
                return (
                    kind.parent.field,
                    f"{parent_id} is in another project ({parent['project']!r})",
                )
            if kind.under_thread and parent["thread_id"] != obj.thread_id:
                return "thread_id", (
                    f"{parent_id} is in thread {parent['thread_id']}, not in {obj.thread_id}"
                )
        for field, other in kind.needs:
            needed_id = getattr(obj, field)
            needed = rows[other].get(needed_id)
            if needed is None:
                return field, self._missing(other, needed_id)
            if needed["project"] != project:
                return field, f"{needed_id} is in another project ({needed['project']!r})"
            if other == "file" and not _live(needed, self._context.now):
                return field, f"{needed_id} has expired"
        if kind.under_thread:
            thread = threads.get(obj.thread_id)
            if thread is None:
                return "thread_id", self._missing("thread", obj.thread_id)
            thread_project, active_run = thread
            if thread_project != project:
                return "thread_id", f"{obj.thread_id} is in another project ({thread_project!r})"
            if row is not None and row["thread_id"] != obj.thread_id:
                return "id", f"{obj.id} exists in another thread ({row['thread_id']})"
            if active_run is not None:
                return "thread_id", (
                    f"{obj.thread_id} has an active run {active_run} here; import once it ended"
                )
        for field, other, value in names:
            owner = references[other].get(value)
            if owner is not None and owner != project:
                return field, f"{value} is in another project ({owner!r})"
        return None

    def _missing(self, kind_name: str, object_id: str) -> str:
        found = self._staging.find(POSITION[kind_name], object_id)
        if found is None:
            return f"{object_id} is neither in the database nor in this import"
        source, line, _ = found
        return f"{object_id} was not imported (see {self._sources[source]}:{line})"

    def _problem(self, staged: Staged, field: str, reason: str) -> Problem:
        return Problem(self._sources[staged.source], staged.line, field, reason)


def _live(row: RowMapping, now: int) -> bool:
    """A File not expired at `now` (as `store.files.live` says in SQL)."""
    return row["expires_at"] is None or row["expires_at"] > now


def _clip(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
