"""The database engine and the one way the rest of the server touches it.

SQLAlchemy's synchronous engine: measured on this kind of machine it commits about twice as fast
as aiosqlite. SQLite wants one writer anyway (concurrent writers spin in SQLite's busy backoff,
seen as a 1.3 s p99), and its transactions take a millisecond or two of CPU with no network
wait, so on SQLite they run right on the event loop, serialised by it: handing each one to a
thread cost more than the work (a GIL hand-off can wait out the 5 ms switch interval while the
loop is busy streaming). PostgreSQL transactions wait on the network, so they run on a small
pool of threads and connections.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.pool import ConnectionPoolEntry

from assistants_grpc.observability import metrics

log = logging.getLogger(__name__)

T = TypeVar("T")

_POSTGRES_THREADS = 8
_SQLITE_READERS = 2


def normalize_url(url: str) -> str:
    """Accept the common spellings of a PostgreSQL URL and pick the installed psycopg driver."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _prepare_sqlite_file(url: str) -> None:
    database = make_url(url).database
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)


def _set_sqlite_pragmas(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers run beside the writer; NORMAL syncs at checkpoints, which keeps
    # committed data through a process crash (only an OS crash may lose the last commits).
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


class Database:
    """An engine, plus the threads PostgreSQL calls run on."""

    def __init__(self, url: str) -> None:
        self.url = normalize_url(url)
        backend = make_url(self.url).get_backend_name()
        self._backend = backend
        # The transaction histogram's observe, once metrics are on (observability/metrics.py).
        self._observe: Callable[[float], None] | None = None
        self.is_sqlite = backend == "sqlite"
        self.is_postgresql = backend == "postgresql"
        self.sqlite_writer = threading.Lock()
        """On SQLite, held by the event loop's transactions and by a background writer thread's
        (ingestion): the loop waits for a batch to end, and goes on the moment it does, not after
        SQLite's busy handler's next sleep (1, 2, 5, 10… ms)."""
        self.last_loop_transaction = 0.0
        """time.monotonic() when the event loop's last SQLite transaction ended: a background
        writer lets the loop's bursts of writes (a run starting) pass first."""
        if self.is_sqlite:
            _prepare_sqlite_file(self.url)
            # The event loop's, the ingestion writer's, a vector-cache load's and the readers'.
            self.engine: Engine = create_engine(
                self.url, pool_size=3 + _SQLITE_READERS, max_overflow=0
            )
            event.listen(self.engine, "connect", _set_sqlite_pragmas)
            self._executor: ThreadPoolExecutor | None = None
            self._readers: ThreadPoolExecutor | None = ThreadPoolExecutor(
                max_workers=_SQLITE_READERS, thread_name_prefix="db-read"
            )
        else:
            self.engine = create_engine(
                self.url, pool_size=_POSTGRES_THREADS, max_overflow=0, pool_pre_ping=True
            )
            self._executor = ThreadPoolExecutor(
                max_workers=_POSTGRES_THREADS, thread_name_prefix="db"
            )
            self._readers = None

    async def transaction(
        self,
        work: Callable[[Connection], T],
        *,
        settle: Callable[[asyncio.Future[T]], None] | None = None,
    ) -> T:
        """Run `work` in one transaction: committed if it returns.

        `settle`, if given, is called with the outcome (result or error) once the transaction is
        over, even if the caller stops waiting first: on PostgreSQL the transaction goes on in
        its thread, and may commit, after its caller was cancelled."""
        loop = asyncio.get_running_loop()
        if self._executor is None:  # SQLite runs inline: nothing interrupts it
            if settle is None:
                try:
                    with self.sqlite_writer:
                        return self.transaction_sync(work)
                finally:
                    self.last_loop_transaction = time.monotonic()
            outcome: asyncio.Future[T] = loop.create_future()
            try:
                with self.sqlite_writer:
                    outcome.set_result(self.transaction_sync(work))
            except Exception as error:
                outcome.set_exception(error)
            self.last_loop_transaction = time.monotonic()
            settle(outcome)
            return outcome.result()
        future = loop.run_in_executor(self._executor, self.transaction_sync, work)
        if settle is None:
            return await future
        future.add_done_callback(settle)
        return await asyncio.shield(future)

    async def read(self, work: Callable[[Connection], T]) -> T:
        """Run `work`, which only reads and may take a while (a full-text search), in one
        transaction off the event loop: on SQLite on a reader thread (WAL readers run beside the
        writer, and sqlite3 lets go of the GIL), on PostgreSQL as any transaction."""
        if self._readers is None:
            return await self.transaction(work)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._readers, self.transaction_sync, work)

    def transaction_sync(self, work: Callable[[Connection], T]) -> T:
        observe = self._observe
        if observe is None:
            recorded = metrics.active()
            if recorded is None:
                with self.engine.begin() as connection:
                    return work(connection)
            observe = self._observe = recorded.db_transaction.labels(self._backend).observe
        started = time.perf_counter()
        try:
            with self.engine.begin() as connection:
                return work(connection)
        finally:
            observe(time.perf_counter() - started)

    def dispose(self) -> None:
        for executor in (self._executor, self._readers):
            if executor is not None:
                executor.shutdown(wait=True)
        self.engine.dispose()


__all__ = ["Database", "normalize_url"]
