"""Runs the run workers: a bounded number of turns at once, cancel and expiry delivered to the
turn that is executing, start-up recovery, and an orderly stop.

Every active run reaches an end: queued runs wait in the queue for a worker; a run being executed
is interrupted in place; a run nobody executes (queued, waiting for tool outputs, cancelling) is
ended by a worker or the expiry sweep; runs left active by a crash are picked up at start-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging

from sqlalchemy import Connection, select

from assistants_grpc.engine import transitions as tr
from assistants_grpc.engine.executor import RunControl, RunExecutor
from assistants_grpc.events.bus import EventBus
from assistants_grpc.services.deps import Dependencies
from assistants_grpc.store import repository as repo
from assistants_grpc.store.tables import ACTIVE_RUN_STATUSES

log = logging.getLogger(__name__)

RunEvent = tr.RunEvent


class RunScheduler:
    def __init__(
        self,
        deps: Dependencies,
        executor: RunExecutor,
        bus: EventBus,
        *,
        max_concurrent: int,
        sweep_interval: float = 0.25,
    ) -> None:
        self._deps = deps
        self._executor = executor
        self._bus = bus
        self._max_concurrent = max_concurrent
        self._sweep_interval = sweep_interval
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._queued: set[str] = set()
        self._running: dict[str, RunControl] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._accepting = False

    async def start(self) -> None:
        """Recover what a previous process left active, then start the workers and the sweep."""
        self._accepting = True
        recovered = await self._deps.database.transaction(_active_run_ids)
        for run_id in recovered:
            self.enqueue(run_id)
        if recovered:
            log.info("recovered %d active runs", len(recovered))
        self._tasks = [
            asyncio.create_task(self._work(), name=f"run-worker-{i}")
            for i in range(self._max_concurrent)
        ]
        self._tasks.append(asyncio.create_task(self._sweep(), name="run-expiry-sweep"))

    def enqueue(self, run_id: str) -> None:
        """Ask for a turn of `run_id` (queued) or for its end (cancelling). While stopping, runs
        stay queued in the database for the next start (or another replica)."""
        if self._accepting and run_id not in self._queued:
            self._queued.add(run_id)
            self._queue.put_nowait(run_id)

    def cancel(self, run_id: str) -> None:
        """The run went to `cancelling`: stop the turn executing it, or have a worker end it."""
        control = self._running.get(run_id)
        if control is not None:
            control.interrupt("cancel")
        else:
            self.enqueue(run_id)

    @property
    def running(self) -> int:
        return len(self._running)

    async def _work(self) -> None:
        while True:
            run_id = await self._queue.get()
            self._queued.discard(run_id)
            if run_id in self._running:
                continue
            control = RunControl(run_id)
            self._running[run_id] = control
            try:
                await self._executor.execute(run_id, control)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("run %s failed with an unexpected error", run_id)
                await self._fail(run_id)
            finally:
                self._running.pop(run_id, None)

    async def _fail(self, run_id: str) -> None:
        ending = tr.failed("server_error", "The server hit an unexpected error running this run.")
        await self._end(run_id, ending)

    async def _end(self, run_id: str, ending: tr.Ending) -> None:
        def work(connection: Connection) -> list[RunEvent]:
            row = tr.load_run(connection, run_id, lock=True)
            if row is None or row["status"] in tr.TERMINAL_STATUSES:
                return []
            return tr.finish_run(connection, row, ending, self._deps.now())

        try:
            events = await self._deps.database.transaction(work)
        except Exception:
            log.exception("could not end run %s", run_id)
            return
        self._bus.publish(run_id, events)

    async def _sweep(self) -> None:
        """Expire active runs past `expires_at` (CONTRACT.md §11.7), by the injected clock."""
        while True:
            await asyncio.sleep(self._sweep_interval)
            now = self._deps.now()
            try:
                expired = await self._deps.database.transaction(
                    functools.partial(_expired_run_ids, now=now)
                )
            except Exception:
                log.exception("expiry sweep failed")
                continue
            for run_id in expired:
                control = self._running.get(run_id)
                if control is not None:
                    control.interrupt("expire")
                else:
                    await self._end(run_id, tr.EXPIRED)

    async def stop(self, grace: float) -> None:
        """Let executing turns finish within `grace`, then interrupt the rest and stop."""
        self._accepting = False
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while self._running and loop.time() < deadline:
            await asyncio.sleep(0.05)
        for control in list(self._running.values()):
            control.interrupt("shutdown")
        while self._running and loop.time() < deadline + 2:
            await asyncio.sleep(0.05)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []


def _active_run_ids(connection: Connection) -> list[str]:
    query = (
        select(repo.RUNS.c.id)
        .where(repo.RUNS.c.status.in_(("queued", "in_progress", "cancelling")))
        .order_by(repo.RUNS.c.pk)
    )
    return list(connection.execute(query).scalars())


def _expired_run_ids(connection: Connection, now: int) -> list[str]:
    query = select(repo.RUNS.c.id).where(
        repo.RUNS.c.status.in_(ACTIVE_RUN_STATUSES), repo.RUNS.c.expires_at <= now
    )
    return list(connection.execute(query).scalars())


__all__ = ["RunScheduler"]
