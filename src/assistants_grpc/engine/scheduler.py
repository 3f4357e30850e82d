"""Runs the run workers of one replica: a bounded number of turns at once, leases so that any
number of replicas share one database safely, cancel and expiry delivered to the turn executing
the run, and an orderly stop.

Every active run reaches an end:
- a queued run is executed by the replica that created it, or claimed by any replica with spare
  capacity (`SELECT … FOR UPDATE SKIP LOCKED`, so two replicas never claim the same run);
- a claimed run carries a lease (owner, expiry) that a heartbeat renews; when a replica dies, its
  leases lapse and another replica claims the runs and continues them (or fails them, when the
  dead replica was half-way through writing a step);
- a run nobody executes (queued, waiting for tool outputs, cancelling) is ended by a worker or by
  the expiry sweep.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import secrets
import socket
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any

from sqlalchemy import ColumnElement, Connection, bindparam, or_, select, update

from assistants_grpc.clock import Clock, SystemClock
from assistants_grpc.engine import transitions as tr
from assistants_grpc.engine.deps import Dependencies
from assistants_grpc.engine.executor import RunControl, RunExecutor, Started
from assistants_grpc.events.bus import EventBus
from assistants_grpc.events.log import LeaseLostError
from assistants_grpc.observability import logs, metrics
from assistants_grpc.store import repository as repo
from assistants_grpc.store.run_states import ACTIVE, CLAIMABLE, RunStatus

log = logging.getLogger(__name__)

RunEvent = tr.RunEvent

SendCancel = Callable[[str], Coroutine[Any, Any, None]]
"""Tells the other replicas a run was cancelled (the one executing it interrupts it)."""


def replica_name() -> str:
    """A lease owner name unique to this process: readable in the database, never reused."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class RunScheduler:
    def __init__(
        self,
        deps: Dependencies,
        executor: RunExecutor,
        bus: EventBus,
        *,
        max_concurrent: int,
        lease_seconds: float = 10.0,
        poll_interval: float = 0.5,
        sweep_interval: float = 0.25,
        owner: str | None = None,
        send_cancel: SendCancel | None = None,
        lease_clock: Clock | None = None,
    ) -> None:
        self._deps = deps
        # Leases are wall-clock times every replica compares: injected, so tests move them.
        self._lease_clock: Clock = lease_clock if lease_clock is not None else SystemClock()
        self._executor = executor
        self._bus = bus
        self._max_concurrent = max_concurrent
        self._lease_seconds = lease_seconds
        self._poll_interval = poll_interval
        self._sweep_interval = sweep_interval
        self.owner = owner or replica_name()
        self.send_cancel = send_cancel
        # Run ids to execute, or runs already started by their creating transaction.
        self._queue: asyncio.Queue[str | tuple[RunControl, Started]] = asyncio.Queue()
        self._queued: set[str] = set()
        self._running: dict[str, RunControl] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._accepting = False

    async def start(self) -> None:
        """Start the workers, the heartbeat, the claim poll (which also picks up what a previous
        process left active) and the expiry sweep."""
        if self._deps.database.is_sqlite:
            # SQLite serves one process: leases left in the file belong to a dead predecessor.
            await self._deps.database.transaction(_release_all_leases)
        self._accepting = True
        await self._claim_available()
        self._tasks = [
            asyncio.create_task(self._work(), name=f"run-worker-{i}")
            for i in range(self._max_concurrent)
        ]
        for loop, name in (
            (self._heartbeat, "run-lease-heartbeat"),
            (self._poll, "run-claim-poll"),
            (self._sweep, "run-expiry-sweep"),
        ):
            self._tasks.append(asyncio.create_task(self._forever(loop, name), name=name))

    def enqueue(self, run_id: str) -> None:
        """Ask for a turn of `run_id` (queued) or for its end (cancelling). While stopping, runs
        stay queued in the database for another replica or the next start."""
        if self._accepting and run_id not in self._queued:
            self._queued.add(run_id)
            self._queue.put_nowait(run_id)

    def reserve(self, run_id: str) -> Reservation | None:
        """Keep a worker for a run about to be queued (created, or given its tool outputs), if
        one is free: the queuing transaction then starts the run itself (see Reservation). None
        when every worker is taken or the replica is stopping: the run is queued and waits its
        turn."""
        if not self._accepting or self._free_workers() <= 0 or run_id in self._running:
            return None
        control = RunControl(
            run_id,
            owner=self.owner,
            lease_seconds=self._lease_seconds,
            project=logs.current().get("project"),
        )
        # Registered at once, so a cancel arriving before the worker takes it still reaches it.
        self._running[run_id] = control
        return Reservation(self, self._executor, control, self._lease_clock)

    def metric_values(self) -> dict[str, float]:
        """The scheduler's live gauges (observability/metrics.py LIVE)."""
        return {
            "assistants_turns_queued": self._queue.qsize(),
            "assistants_turns_running": len(self._running),
            "assistants_workers_free": max(self._free_workers(), 0),
        }

    def _free_workers(self) -> int:
        """Workers neither executing nor promised to a run waiting in the queue."""
        return self._max_concurrent - len(self._running) - self._queue.qsize()

    def _hand_over(self, control: RunControl, started: Started) -> None:
        self._queue.put_nowait((control, started))

    def _release(self, control: RunControl) -> None:
        if self._running.get(control.run_id) is control:
            del self._running[control.run_id]

    def cancel(self, run_id: str) -> None:
        """The run went to `cancelling`: stop the turn executing it, wherever it executes."""
        control = self._running.get(run_id)
        if control is not None:
            control.interrupt("cancel")
            return
        if self.send_cancel is not None:
            task = asyncio.create_task(self.send_cancel(run_id))
            task.add_done_callback(_log_failure)
        # If nobody executes it (queued, waiting for tool outputs), a worker here ends it; if
        # another replica holds its lease, the worker leaves it to that replica.
        self.enqueue(run_id)

    def on_cancel(self, run_id: str) -> None:
        """Another replica cancelled a run: interrupt it if it executes here."""
        control = self._running.get(run_id)
        if control is not None:
            control.interrupt("cancel")

    def on_deleted(self, run_id: str) -> None:
        """The run went with its thread (deleted here or on another replica): stop its turn if
        it executes here, so its model stream closes now rather than at the next chunk."""
        control = self._running.get(run_id)
        if control is not None:
            control.interrupt("deleted")

    # --- workers ----------------------------------------------------------------------------

    async def _work(self) -> None:
        while True:
            item = await self._queue.get()
            if isinstance(item, tuple):
                control, started = item
                run_id = control.run_id
                turn = self._executor.continue_started(started, control)
            else:
                run_id = item
                self._queued.discard(run_id)
                if run_id in self._running:
                    continue
                control = RunControl(run_id, owner=self.owner, lease_seconds=self._lease_seconds)
                self._running[run_id] = control
                turn = self._executor.execute(run_id, control)
            # Every line of the run's turn carries its ids (observability.logs).
            with logs.bound(rpc=None, run_id=run_id, thread_id=None, project=control.project):
                await self._execute(run_id, turn)

    async def _execute(self, run_id: str, turn: Awaitable[None]) -> None:
        try:
            try:
                await turn
            except asyncio.CancelledError:
                raise
            except LeaseLostError:
                # The run's row is no longer this replica's to write: its thread was deleted, or
                # this replica was taken for dead (its heartbeat failed) and the run continues
                # where it was taken over. Either way nothing more is written from here.
                if await self._deps.database.transaction(
                    functools.partial(tr.load_run, run_id=run_id)
                ):
                    if (recorded := metrics.active()) is not None:
                        recorded.leases_lost.inc()
                    log.warning(
                        "lost the lease of run %s to another replica; stopped its turn", run_id
                    )
                else:
                    log.info("run %s was deleted with its thread; stopped its turn", run_id)
            except Exception:
                log.exception("run %s failed with an unexpected error", run_id)
                await self._end(
                    run_id,
                    tr.failed(
                        "server_error", "The server hit an unexpected error running this run."
                    ),
                )
        finally:
            self._running.pop(run_id, None)

    async def _end(self, run_id: str, ending: tr.Ending) -> None:
        wall = self._lease_clock.now()
        try:
            events = await self._deps.database.transaction(
                lambda c: tr.end_if_active(c, run_id, ending, self._deps.now(), self.owner, wall)
            )
        except Exception:
            log.exception("could not end run %s", run_id)
            return
        self._bus.publish(run_id, events)

    # --- the periodic loops -----------------------------------------------------------------

    async def _forever(self, step: Callable[[], Awaitable[None]], name: str) -> None:
        interval = {
            "run-lease-heartbeat": self._lease_seconds / 3,
            "run-claim-poll": self._poll_interval,
            "run-expiry-sweep": self._sweep_interval,
        }[name]
        while True:
            await asyncio.sleep(interval)
            try:
                await step()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s failed; retrying", name)

    async def _heartbeat(self) -> None:
        """Renew the leases of the runs this replica holds, and deliver the cancels that did not
        arrive: a held run found `cancelling` is interrupted here, so a cancel whose signal was
        lost (the replica's LISTEN connection dropped) still stops it within a third of a lease.
        The renewal returns each run's status, so this costs no extra query."""
        until = self._lease_clock.now() + self._lease_seconds
        held = await self._deps.database.transaction(
            functools.partial(_renew_leases, owner=self.owner, until=until)
        )
        for run_id, status in held:
            control = self._running.get(run_id)
            if status == RunStatus.CANCELLING and control is not None and control.reason is None:
                log.info("run %s is cancelling: stopping it (its cancel signal was lost)", run_id)
                control.interrupt("cancel")

    async def _poll(self) -> None:
        await self._claim_available()

    async def _claim_available(self) -> None:
        """Claim runs nobody holds (queued here or elsewhere, or left by a dead replica), as many
        as there are free workers."""
        free = self._free_workers()
        if free <= 0 or not self._accepting:
            return
        now = self._lease_clock.now()
        claimed = await self._deps.database.transaction(
            functools.partial(
                _claim,
                owner=self.owner,
                now=now,
                until=now + self._lease_seconds,
                limit=free,
            )
        )
        for run_id, thread_id, previous in claimed:
            if previous is not None and previous != self.owner:
                # A lease that lapsed: its replica died or stopped renewing (observability.logs).
                # Counted here, once the claim has committed.
                if (recorded := metrics.active()) is not None:
                    recorded.lease_takeovers.inc()
                log.warning(
                    "took over run %s from %s (its lease lapsed)",
                    run_id,
                    previous,
                    extra={"run_id": run_id, "thread_id": thread_id, "previous_owner": previous},
                )
            self.enqueue(run_id)

    async def _sweep(self) -> None:
        """Expire active runs past `expires_at` (CONTRACT.md §11.7), by the injected clock."""
        expired = await self._deps.database.transaction(
            functools.partial(_expired_run_ids, now=self._deps.now())
        )
        for run_id in expired:
            control = self._running.get(run_id)
            if control is not None:
                control.interrupt("expire")
            else:
                await self._end(run_id, tr.EXPIRED)

    # --- stopping ---------------------------------------------------------------------------

    async def stop(self, grace: float) -> None:
        """Stop taking runs, let executing turns finish within `grace`, then hand back the rest
        (their leases are released, so another replica takes them over at once)."""
        self._accepting = False
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while self._running and loop.time() < deadline:
            await asyncio.sleep(0.05)
        for control in list(self._running.values()):
            control.interrupt("handback")
        while self._running and loop.time() < deadline + 5:
            await asyncio.sleep(0.02)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        # Runs claimed but not started yet go back too.
        await self._deps.database.transaction(functools.partial(_release_leases, owner=self.owner))


class Reservation:
    """A worker kept for a run being created, or continued with its tool outputs. The
    transaction that queues the run writes it in progress too, with this replica's lease (its
    `in_progress` event right after `queued`), and loads its turn's context; the worker takes
    it from there. One transaction and one hand-off fewer before the model is called, which is
    most of what a caller waits for before the first token. Exactly one of `hand_over` (after
    the commit) or `release` follows."""

    def __init__(
        self,
        scheduler: RunScheduler,
        executor: RunExecutor,
        control: RunControl,
        lease_clock: Clock,
    ) -> None:
        self._scheduler = scheduler
        self._executor = executor
        self.control = control
        self._lease_clock = lease_clock

    def lease_values(self) -> dict[str, Any]:
        """The run's lease, held by this replica."""
        return self.control.lease_values(self._lease_clock.now())

    def load(self, connection: Connection, run_row: Mapping[Any, Any]) -> Started:
        """In the creating transaction, once the run and its messages are written."""
        return run_row, self._executor.load_context(connection, run_row)

    def hand_over(self, started: Started) -> None:
        self._scheduler._hand_over(self.control, started)

    def release(self) -> None:
        self._scheduler._release(self.control)


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("could not tell other replicas about a cancel: %s", task.exception())


def _lease_free(now: float) -> ColumnElement[bool]:
    return or_(repo.RUNS.c.lease_owner.is_(None), repo.RUNS.c.lease_expires_at < now)


def _claim(
    connection: Connection, *, owner: str, now: float, until: float, limit: int
) -> list[tuple[str, str, str | None]]:
    """The runs claimed: (id, thread id, the lease owner before, whose lease lapsed)."""
    query = (
        select(repo.RUNS.c.id, repo.RUNS.c.thread_id, repo.RUNS.c.lease_owner)
        .where(repo.run_status_in(CLAIMABLE), _lease_free(now))
        .order_by(repo.RUNS.c.pk)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    claimed = [(row[0], row[1], row[2]) for row in connection.execute(query)]
    ids = [run_id for run_id, _, _ in claimed]
    if ids:
        connection.execute(
            update(repo.RUNS)
            .where(repo.RUNS.c.id.in_(ids))
            .values(lease_owner=owner, lease_expires_at=until)
        )
    return claimed


_RENEW = (
    update(repo.RUNS)
    .where(repo.RUNS.c.lease_owner == bindparam("_owner"))
    .values(lease_expires_at=bindparam("_until"))
    .returning(repo.RUNS.c.id, repo.RUNS.c.status)
)


def _renew_leases(connection: Connection, *, owner: str, until: float) -> list[tuple[str, str]]:
    """Renew `owner`'s leases; the runs held, with their status."""
    rows = connection.execute(_RENEW, {"_owner": owner, "_until": until})
    return [(row.id, row.status) for row in rows]


def _release_leases(connection: Connection, *, owner: str) -> None:
    connection.execute(
        update(repo.RUNS)
        .where(repo.RUNS.c.lease_owner == owner)
        .values(lease_owner=None, lease_expires_at=None)
    )


def _release_all_leases(connection: Connection) -> None:
    connection.execute(
        update(repo.RUNS)
        .where(repo.RUNS.c.lease_owner.is_not(None))
        .values(lease_owner=None, lease_expires_at=None)
    )


def _expired_run_ids(connection: Connection, now: int) -> list[str]:
    query = select(repo.RUNS.c.id).where(repo.run_status_in(ACTIVE), repo.RUNS.c.expires_at <= now)
    return list(connection.execute(query).scalars())


__all__ = ["Reservation", "RunScheduler", "replica_name"]
