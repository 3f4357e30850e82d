"""Ingestion: every `in_progress` vector-store file is a job that ends `completed`, `failed` or
`cancelled`, exactly once, on whichever replica.

A job is claimed like a run (engine/scheduler.py): `SELECT … FOR UPDATE SKIP LOCKED` of files
nobody holds, then a lease (owner, expiry) that a heartbeat renews. A replica that dies leaves
its leases to lapse, and another one claims the file and starts it over: its first write
deletes whatever chunks the dead one wrote, and a unique (store, file, seq) index makes a
double write impossible anyway. Every write of a job names the lease it expects
(`lease_owner = me AND status = 'in_progress'`): a replica that lost the file (taken over,
cancelled, removed, its store deleted) learns it at its next write and stops, writing nothing.
A file whose ingestion was claimed MAX_ATTEMPTS times without ending (it keeps killing its
ingester) fails with `server_error`.

The work of a job: the File spooled to a temporary directory, its text extracted in a capped
child process (files/extraction.py), cut into token chunks on a worker thread
(files/chunking.py), embedded when the store was built with the server's embedding model, and
written CHUNK_BATCH chunks a transaction (IDLE_CHUNK_BATCH while the event loop is idle). On
SQLite those transactions run on one writer thread of the worker (sqlite3 and FTS5 work without
the GIL), not on the event loop, after the loop's own writes, and in small batches while it is
busy, so a lock the loop's writes meet is short: runs beside an ingestion keep their latency.

The same worker expires vector stores past their `expires_at` (by the injected clock) and
deletes their chunks.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import tempfile
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

from sqlalchemy import Connection, RowMapping, or_, select, update

from assistants_grpc.engine.tokens import COUNTING_ENCODING, TokenCounter
from assistants_grpc.files.chunking import Chunk, chunk_text
from assistants_grpc.files.embeddings import Embedder, to_bytes
from assistants_grpc.files.extract import INVALID_FILE, ExtractionError
from assistants_grpc.files.extraction import SERVER_ERROR, ExtractionLimits, extract
from assistants_grpc.store import repository as repo
from assistants_grpc.store import vector_stores as vs
from assistants_grpc.store.database import Database

log = logging.getLogger(__name__)

__all__ = [
    "CHUNK_BATCH",
    "IDLE_CHUNK_BATCH",
    "MAX_ATTEMPTS",
    "MAX_FILE_TOKENS",
    "FileContent",
    "IngestionWorker",
]

CHUNK_BATCH: Final = 4
# Chunks a transaction while the event loop has been idle for _LOOP_IDLE (and chunks an
# embedding request).
IDLE_CHUNK_BATCH: Final = 64
_LOOP_IDLE: Final = 0.05
# On SQLite a batch waits until the event loop has written nothing for this long (seconds),
# but never longer than _QUIET_WAIT_MAX: runs streaming back to back leave no such gap, and
# the ingestion (and its lease) must still move on, a small batch at a time.
_LOOP_QUIET: Final = 0.005
_QUIET_WAIT_MAX: Final = 0.05
MAX_ATTEMPTS: Final = 3
# The Assistants tools read up to 2M tokens of a file (CONTRACT.md §12).
MAX_FILE_TOKENS: Final = 2_000_000

_F = vs.VECTOR_STORE_FILES.c


class FileContent(Protocol):
    """Where a File's bytes come from (the Files storage)."""

    async def spool(self, file_id: str, directory: Path) -> Path:
        """Write the File's bytes to a file in `directory`; FileNotFoundError if it is gone."""
        ...


class LeaseLostError(Exception):
    """The job is no longer this replica's: taken over, cancelled, removed or deleted."""


@dataclass(frozen=True)
class _Job:
    store_id: str
    file_id: str
    filename: str
    max_tokens: int
    overlap_tokens: int
    attempts: int
    embedding_model: str | None


class IngestionWorker:
    def __init__(
        self,
        database: Database,
        tokens: TokenCounter,
        content: FileContent,
        *,
        owner: str,
        now: Callable[[], int],
        embedder: Embedder | None = None,
        limits: ExtractionLimits | None = None,
        concurrency: int = 2,
        lease_seconds: float = 10.0,
        poll_interval: float = 0.5,
        expiry_interval: float = 5.0,
    ) -> None:
        self._database = database
        self._tokens = tokens
        self._content = content
        self.owner = owner
        self._now = now
        self.embedder = embedder
        self._limits = limits or ExtractionLimits()
        self._concurrency = concurrency
        self._lease_seconds = lease_seconds
        self._poll_interval = poll_interval
        self._expiry_interval = expiry_interval
        self._wake = asyncio.Event()
        self._jobs: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._accepting = False
        self._writer: ThreadPoolExecutor | None = None
        self.on_change: Callable[[str], None] | None = None
        """Called with a store id whenever its chunks changed (completed, expired)."""

    async def start(self) -> None:
        if self._database.is_sqlite:
            # One process serves SQLite: leases in the file belong to a dead predecessor.
            await self._database.transaction(_release_all)
        self._accepting = True
        if self._database.is_sqlite and self._writer is None:
            self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest-write")
        self._tasks = [
            asyncio.create_task(self._forever(self._claim_loop, 0.0), name="ingest-claims"),
            asyncio.create_task(
                self._forever(self._heartbeat, self._lease_seconds / 3), name="ingest-heartbeat"
            ),
            asyncio.create_task(
                self._forever(self.expire_now, self._expiry_interval), name="vector-store-expiry"
            ),
        ]
        self.wake()

    def wake(self) -> None:
        """New files to ingest: look now rather than at the next poll."""
        self._wake.set()

    async def stop(self) -> None:
        """Stop claiming, cancel the jobs in hand and release their leases, so another replica
        (or the next start) takes them at once."""
        self._accepting = False
        for task in [*self._tasks, *self._jobs.values()]:
            task.cancel()
        for task in [*self._tasks, *self._jobs.values()]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        self._jobs.clear()
        writer, self._writer = self._writer, None
        if writer is not None:  # a batch in flight ends before the leases are released
            await asyncio.to_thread(writer.shutdown, wait=True)
        await self._database.transaction(functools.partial(_release, owner=self.owner))

    async def idle(self, timeout: float = 30.0) -> bool:
        """Wait until no job runs here (tests)."""
        deadline = time.monotonic() + timeout
        while self._jobs:
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.02)
        return True

    # --- loops ------------------------------------------------------------------------------

    async def _forever(self, step: Callable[[], Awaitable[None]], interval: float) -> None:
        while True:
            if interval:
                await asyncio.sleep(interval)
            try:
                await step()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("vector-store %s failed; retrying", step.__name__)
                await asyncio.sleep(1.0)

    async def _claim_loop(self) -> None:
        # Not asyncio.wait_for: on Python 3.11 it swallows a cancel that arrives as the event is
        # set (the wake of start(), then stop() at once), and stop() then waits forever.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._poll_interval):
                await self._wake.wait()
        self._wake.clear()
        free = self._concurrency - len(self._jobs)
        if free <= 0 or not self._accepting:
            return
        now = time.time()
        jobs = await self._database.transaction(
            functools.partial(
                _claim, owner=self.owner, now=now, until=now + self._lease_seconds, limit=free
            )
        )
        for job in jobs:
            key = (job.store_id, job.file_id)
            task = asyncio.create_task(self._run(job), name=f"ingest-{job.file_id}")
            self._jobs[key] = task
            task.add_done_callback(functools.partial(self._done, key))

    def _done(self, key: tuple[str, str], _task: asyncio.Task[None]) -> None:
        self._jobs.pop(key, None)
        self.wake()  # a slot is free

    async def _heartbeat(self) -> None:
        until = time.time() + self._lease_seconds
        await self._database.transaction(functools.partial(_renew, owner=self.owner, until=until))

    async def expire_now(self) -> None:
        """Expire the stores past their expires_at (by the injected clock): status expired,
        chunks deleted."""
        now = self._now()

        def work(connection: Connection) -> list[str]:
            ids = vs.expired_store_ids(connection, now)
            for store_id in ids:
                connection.execute(
                    update(vs.VECTOR_STORES)
                    .where(
                        vs.VECTOR_STORES.c.id == store_id, vs.VECTOR_STORES.c.expired_at.is_(None)
                    )
                    .values(expired_at=now)
                )
                vs.delete_chunks(connection, store_id)
                vs.bump_version(connection, store_id)
            return ids

        for store_id in await self._database.transaction(work):
            log.info("vector store %s expired", store_id)
            self._changed(store_id)

    def _changed(self, store_id: str) -> None:
        if self.on_change is not None:
            self.on_change(store_id)

    # --- one job ----------------------------------------------------------------------------

    async def _run(self, job: _Job) -> None:
        try:
            if job.attempts > MAX_ATTEMPTS:
                await self._fail(job, SERVER_ERROR, "Ingestion kept failing; add the file again.")
                return
            await self._ingest(job)
        except LeaseLostError:
            log.info("file %s of %s is no longer ours; stopped", job.file_id, job.store_id)
        except ExtractionError as error:
            with contextlib.suppress(LeaseLostError):
                await self._fail(job, error.code, error.message)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("ingesting file %s into %s failed", job.file_id, job.store_id)
            with contextlib.suppress(LeaseLostError):
                await self._fail(job, SERVER_ERROR, "The server failed to process the file.")

    async def _ingest(self, job: _Job) -> None:
        # Start over: a replica that died half-way may have written some chunks.
        await self._write(job, lambda c: vs.delete_chunks(c, job.store_id, job.file_id))
        with tempfile.TemporaryDirectory(prefix="assistants-ingest-") as tmp:
            directory = Path(tmp)
            try:
                source = await self._content.spool(job.file_id, directory)
            except FileNotFoundError:
                raise ExtractionError(INVALID_FILE, "The file no longer exists.") from None
            text = await extract(source, job.filename, directory, self._limits)
        encoding = self._tokens.encoding(COUNTING_ENCODING)
        chunks = await asyncio.to_thread(
            chunk_text, encoding, text, job.max_tokens, job.overlap_tokens
        )
        del text
        total_tokens = chunks[-1].token_end if chunks else 0
        if total_tokens > MAX_FILE_TOKENS:
            raise ExtractionError(
                INVALID_FILE, f"The file has more than {MAX_FILE_TOKENS:,} tokens of text."
            )
        embedder = self.embedder
        if embedder is None or embedder.model != job.embedding_model:
            embedder = None
        usage = 0
        for start in range(0, len(chunks), IDLE_CHUNK_BATCH):
            group = chunks[start : start + IDLE_CHUNK_BATCH]
            vectors = await embedder.embed([c.text for c in group]) if embedder else None
            rows = [_chunk_row(job, chunk, vectors, i) for i, chunk in enumerate(group)]
            usage += sum(len(row["text"].encode()) + len(row["embedding"] or b"") for row in rows)
            while rows:
                # Small batches while the event loop is busy (its writes wait for a batch's
                # lock), big ones while it is idle (FTS5 indexes a big batch for less a chunk).
                size = IDLE_CHUNK_BATCH if self._loop_idle() else CHUNK_BATCH
                batch, rows = rows[:size], rows[size:]
                write = functools.partial(repo.insert_rows, table=vs.CHUNKS, rows=batch)
                await self._write(job, write)
                await asyncio.sleep(0)  # let the loop serve others between batches

        def complete(connection: Connection) -> None:
            _finish(connection, job, self.owner, {"status": "completed", "usage_bytes": usage})
            vs.bump_version(connection, job.store_id)
            vs.touch_stores(connection, [job.store_id], self._now())

        await self._database.transaction(complete)
        self._changed(job.store_id)

    async def _write(self, job: _Job, work: Callable[[Connection], Any]) -> None:
        """One transaction of the job, if the job is still this replica's.

        On SQLite, on the worker's one writer thread: indexing a chunk for FTS5 costs a few
        hundred microseconds, all inside sqlite3 (which lets go of the GIL), so a batch on the
        event loop held it ~10 ms, and runs beside an ingestion waited that long at every turn.
        On the thread, the loop only waits when one of its own writes meets a batch's lock."""

        def guarded(connection: Connection) -> None:
            _hold(connection, job, self.owner, time.time() + self._lease_seconds)
            work(connection)

        writer = self._writer
        if writer is None:
            await self._database.transaction(guarded)
            return
        waited_until = time.monotonic() + _QUIET_WAIT_MAX
        while (
            time.monotonic() - self._database.last_loop_transaction < _LOOP_QUIET
            and time.monotonic() < waited_until
        ):
            await asyncio.sleep(_LOOP_QUIET)

        def locked() -> None:
            with self._database.sqlite_writer:
                self._database.transaction_sync(guarded)

        await asyncio.get_running_loop().run_in_executor(writer, locked)

    def _loop_idle(self) -> bool:
        """No event-loop transaction for _LOOP_IDLE (SQLite; always on PostgreSQL, where
        transactions run on threads)."""
        if not self._database.is_sqlite:
            return True
        return time.monotonic() - self._database.last_loop_transaction >= _LOOP_IDLE

    async def _fail(self, job: _Job, code: str, message: str) -> None:
        log.info("file %s of %s failed: %s", job.file_id, job.store_id, code)

        def work(connection: Connection) -> None:
            _finish(
                connection,
                job,
                self.owner,
                {"status": "failed", "last_error": {"code": code, "message": message}},
            )
            vs.delete_chunks(connection, job.store_id, job.file_id)

        await self._database.transaction(work)


def _chunk_row(job: _Job, chunk: Chunk, vectors: Any, index: int) -> dict[str, Any]:
    return {
        "vector_store_id": job.store_id,
        "file_id": job.file_id,
        "seq": chunk.seq,
        "text": chunk.text,
        "char_start": chunk.char_start,
        "char_end": chunk.char_end,
        "token_start": chunk.token_start,
        "token_end": chunk.token_end,
        "embedding": to_bytes(vectors[index]) if vectors is not None else None,
    }


def _mine(job: _Job, owner: str) -> list[Any]:
    return [
        _F.vector_store_id == job.store_id,
        _F.id == job.file_id,
        _F.lease_owner == owner,
        _F.status == "in_progress",
    ]


def _hold(connection: Connection, job: _Job, owner: str, until: float) -> None:
    """Renew the job's lease, or raise LeaseLostError if it is not ours any more. On PostgreSQL
    the row stays locked until the transaction ends, so a cancel or delete waits for it."""
    result = connection.execute(
        update(vs.VECTOR_STORE_FILES).where(*_mine(job, owner)).values(lease_expires_at=until)
    )
    if result.rowcount != 1:
        raise LeaseLostError(job.file_id)


def _finish(connection: Connection, job: _Job, owner: str, values: dict[str, Any]) -> None:
    result = connection.execute(
        update(vs.VECTOR_STORE_FILES)
        .where(*_mine(job, owner))
        .values(lease_owner=None, lease_expires_at=None, **values)
    )
    if result.rowcount != 1:
        raise LeaseLostError(job.file_id)


def _claim(
    connection: Connection, *, owner: str, now: float, until: float, limit: int
) -> list[_Job]:
    query = (
        select(vs.VECTOR_STORE_FILES)
        .where(
            _F.status == "in_progress",
            or_(_F.lease_owner.is_(None), _F.lease_expires_at < now),
        )
        .order_by(_F.pk)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    rows: list[RowMapping] = list(connection.execute(query).mappings())
    if not rows:
        return []
    models = {
        row["id"]: row["embedding_model"]
        for row in vs.stores_by_id(connection, list({r["vector_store_id"] for r in rows}))
    }
    jobs = []
    for row in rows:
        connection.execute(
            update(vs.VECTOR_STORE_FILES)
            .where(_F.pk == row["pk"])
            .values(lease_owner=owner, lease_expires_at=until, attempts=_F.attempts + 1)
        )
        jobs.append(
            _Job(
                store_id=row["vector_store_id"],
                file_id=row["id"],
                filename=row["filename"],
                max_tokens=row["chunk_max_tokens"],
                overlap_tokens=row["chunk_overlap_tokens"],
                attempts=row["attempts"] + 1,
                embedding_model=models.get(row["vector_store_id"]),
            )
        )
    return jobs


def _renew(connection: Connection, *, owner: str, until: float) -> None:
    connection.execute(
        update(vs.VECTOR_STORE_FILES)
        .where(_F.lease_owner == owner, _F.status == "in_progress")
        .values(lease_expires_at=until)
    )


def _release(connection: Connection, *, owner: str) -> None:
    # Handed back, not failed: the claim does not count as an attempt.
    connection.execute(
        update(vs.VECTOR_STORE_FILES)
        .where(_F.lease_owner == owner, _F.status == "in_progress")
        .values(lease_owner=None, lease_expires_at=None, attempts=_F.attempts - 1)
    )


def _release_all(connection: Connection) -> None:
    connection.execute(
        update(vs.VECTOR_STORE_FILES)
        .where(_F.lease_owner.is_not(None))
        .values(lease_owner=None, lease_expires_at=None)
    )
