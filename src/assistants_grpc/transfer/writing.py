"""Writing staged objects into the database, a bounded batch per transaction.

A batch is at most `batch_size` objects and `batch_bytes` of them, committed as one
transaction, and counted only once committed: a crash or a failure loses at most the batch in
flight, never what was already reported, and a rerun of the same command skips what is there
(`unchanged`) and writes the rest. Per batch, each type costs a handful of statements whatever
its size: one look-up of the ids already stored, one of the parents (the threads locked as
`lock_thread_for_write` locks one, so a run cannot start on a thread while it is written to),
one `executemany` insert.

An object already stored is compared with what the import would store (both rendered as OpenAI
JSON through the same mapping): equal is `unchanged`; different is refused, or written over with
`--replace`. An id stored in another project, or under another parent, is refused either way.

A batch the database rejects as a whole (a constraint no check here foresaw) is retried one
object per transaction, so only the objects at fault are refused, each with its line.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from google.protobuf.message import Message
from sqlalchemy import Connection, RowMapping
from sqlalchemy.exc import DataError, IntegrityError

from assistants_grpc.contract.openai_json import render
from assistants_grpc.contract.pb import message_pb2
from assistants_grpc.engine.tokens import TokenCounter
from assistants_grpc.services.messages import content_tokens
from assistants_grpc.store import repository as repo
from assistants_grpc.store.database import Database
from assistants_grpc.transfer.kinds import BY_OBJECT, KINDS, POSITION, Kind
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

    def __init__(self, project: str, counter: TokenCounter, staging: Staging, now: int) -> None:
        self.project = project
        self._counter = counter
        self._staging = staging
        self._now = now

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
        sources: Sequence[str],
        *,
        project: str,
        replace: bool,
        counter: TokenCounter,
        now: int,
        batch_size: int = 500,
        batch_bytes: int = 8 << 20,
        on_commit: Callable[[int], None] | None = None,
    ) -> None:
        self._database = database
        self._staging = staging
        self._summary = summary
        self._sources = sources
        self._project = project
        self._replace = replace
        self._context = _Context(project, counter, staging, now)
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
            size += len(staged.data)
            if len(batch) >= self._batch_size or size >= self._batch_bytes:
                self._commit(batch)
                batch, size = [], 0
        if batch:
            self._commit(batch)

    # -- transactions ------------------------------------------------------------------------

    def _commit(self, batch: list[Staged]) -> None:
        try:
            outcomes = self._database.transaction_sync(lambda c: self._write(c, batch))
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
            return self._database.transaction_sync(lambda c: self._write(c, [staged]))
        except (IntegrityError, DataError) as error:
            kind = KINDS[staged.kind]
            reason = f"the database refused it: {_clip(str(error.orig))}"
            return [_Outcome(kind.object, "refused", self._problem(staged, "", reason))]

    def _write(self, connection: Connection, batch: list[Staged]) -> list[_Outcome]:
        outcomes: list[_Outcome] = []
        start = 0
        # The batch is in staging order: each type's objects are together, parents first.
        while start < len(batch):
            end = start
            while end < len(batch) and batch[end].kind == batch[start].kind:
                end += 1
            outcomes += self._write_kind(connection, KINDS[batch[start].kind], batch[start:end])
            start = end
        return outcomes

    # -- one type ----------------------------------------------------------------------------

    def _write_kind(
        self, connection: Connection, kind: Kind, batch: Sequence[Staged]
    ) -> list[_Outcome]:
        objects = [kind.message_type.FromString(staged.data) for staged in batch]
        existing = {
            row["id"]: row
            for row in repo.rows_by_ids(connection, kind.table, [o.id for o in objects])  # type: ignore[attr-defined]
        }
        threads: dict[str, tuple[str, str | None]] = {}
        if kind.under_thread:
            wanted = [o.thread_id for o in objects] + [r["thread_id"] for r in existing.values()]  # type: ignore[attr-defined]
            threads = repo.lock_threads_for_write(connection, wanted)
        parents: dict[str, RowMapping] = {}
        if kind.parent is not None and kind.parent.kind != "thread":
            parent_kind = BY_OBJECT[kind.parent.kind]
            parent_ids = [getattr(o, kind.parent.field) for o in objects]
            rows = repo.rows_by_ids(connection, parent_kind.table, parent_ids)
            parents = {row["id"]: row for row in rows}
        references: dict[str, dict[str, str]] = {}
        for field, ref in kind.soft_references:
            ids = [getattr(o, field) for o in objects if getattr(o, field)]
            rows = repo.rows_by_ids(connection, BY_OBJECT[ref].table, ids)
            references[field] = {row["id"]: row["project"] for row in rows}

        outcomes: list[_Outcome] = []
        inserts: list[dict[str, Any]] = []
        inserted: list[Message] = []
        for staged, obj in zip(batch, objects, strict=True):
            row = existing.get(obj.id)  # type: ignore[attr-defined]
            where = self._placement(kind, obj, row, threads, parents, references)
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
            if row is None:
                inserts.append(values)
                inserted.append(prepared)
                outcomes.append(_Outcome(kind.object, "imported"))
            elif _rendered(kind, row) == _rendered(kind, values):
                outcomes.append(_Outcome(kind.object, "unchanged"))
            elif self._replace:
                repo.update_by_id(connection, kind.table, obj.id, values)  # type: ignore[attr-defined]
                kind.written(connection, prepared, replaced=True)
                outcomes.append(_Outcome(kind.object, "replaced"))
            else:
                reason = "differs from the stored object with this id (--replace overwrites it)"
                outcomes.append(
                    _Outcome(kind.object, "refused", self._problem(staged, "id", reason))
                )
        repo.insert_rows(connection, kind.table, inserts)
        for obj in inserted:
            kind.written(connection, obj, replaced=False)
        return outcomes

    def _placement(
        self,
        kind: Kind,
        obj: Any,
        row: RowMapping | None,
        threads: dict[str, tuple[str, str | None]],
        parents: dict[str, RowMapping],
        references: dict[str, dict[str, str]],
    ) -> tuple[str, str] | None:
        """Why the object cannot go where it says (field, reason), or None if it can."""
        project = self._project
        if kind.top_level and row is not None and row["project"] != project:
            return "id", f"{obj.id} exists in another project ({row['project']!r})"
        if kind.parent is not None and kind.parent.kind != "thread":
            parent_id = getattr(obj, kind.parent.field)
            parent = parents.get(parent_id)
            if parent is None:
                return kind.parent.field, self._missing(kind.parent.kind, parent_id)
            if kind.under_thread and parent["thread_id"] != obj.thread_id:
                return "thread_id", (
                    f"{parent_id} is in thread {parent['thread_id']}, not in {obj.thread_id}"
                )
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
        for field, _ref in kind.soft_references:
            value = getattr(obj, field)
            owner = references[field].get(value) if value else None
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


def _rendered(kind: Kind, row: Any) -> dict[str, Any]:
    """The OpenAI JSON of a row (stored, or about to be): the same mapping on both sides, so
    equal means the import would change nothing anyone can see."""
    return render(kind.from_row(row))


def _clip(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
