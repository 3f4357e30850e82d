"""Handing a queued run to the engine survives the caller going away: on PostgreSQL the
transaction that queues it runs on a thread and may commit after its caller was cancelled, and
then the kept worker must get the run (or it would hold its thread until it expired), or get
freed if the transaction failed. The transactions here run on a thread as they do there."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from assistants_grpc.services.runs import RunService
from assistants_grpc.store.database import Database


class Slot:
    def __init__(self) -> None:
        self.handed: list[Any] = []
        self.released = False

    def hand_over(self, started: Any) -> None:
        self.handed.append(started)

    def release(self) -> None:
        self.released = True


class Scheduler:
    def __init__(self, slot: Slot | None) -> None:
        self.slot = slot
        self.enqueued: list[str] = []

    def reserve(self, _run_id: str) -> Slot | None:
        return self.slot

    def enqueue(self, run_id: str) -> None:
        self.enqueued.append(run_id)


class Bus:
    def __init__(self) -> None:
        self.published: list[tuple[str, list[str]]] = []

    def publish(self, run_id: str, events: list[str]) -> None:
        self.published.append((run_id, events))


class SlowWork:
    """A transaction's work that holds its thread until released, then returns or fails."""

    def __init__(self, error: Exception | None = None) -> None:
        self.started = threading.Event()
        self.go_on = threading.Event()
        self.error = error

    def __call__(self, _connection: Any, _slot: Any) -> Any:
        self.started.set()
        self.go_on.wait(10)
        if self.error is not None:
            raise self.error
        return ("the run", "started from here"), ["queued"]


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'runs.db'}")
    database._executor = ThreadPoolExecutor(1)  # transactions on a thread, as on PostgreSQL
    yield database
    database.dispose()


def _service(database: Database, scheduler: Scheduler, bus: Bus) -> RunService:
    deps = SimpleNamespace(database=database)
    return RunService(deps, None, scheduler, bus, expires_in=600)  # type: ignore[arg-type]


async def _cancel_mid_transaction(service: RunService, work: SlowWork) -> None:
    caller = asyncio.create_task(service._queue_run("run_1", work))
    await asyncio.to_thread(work.started.wait, 10)
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    work.go_on.set()  # ... and the transaction goes on to its end
    await asyncio.sleep(0.1)


@pytest.mark.parametrize("kept", [True, False])
async def test_a_caller_gone_mid_transaction_still_hands_the_run_over(
    database: Database, kept: bool
) -> None:
    slot, bus = (Slot() if kept else None), Bus()
    scheduler = Scheduler(slot)
    await _cancel_mid_transaction(_service(database, scheduler, bus), SlowWork())
    assert bus.published == [("run_1", ["queued"])]
    if slot is not None:
        assert slot.handed == ["started from here"] and not slot.released
    else:
        assert scheduler.enqueued == ["run_1"]


async def test_a_transaction_failing_after_its_caller_left_gives_the_worker_back(
    database: Database,
) -> None:
    slot, bus = Slot(), Bus()
    await _cancel_mid_transaction(
        _service(database, Scheduler(slot), bus), SlowWork(LookupError("no such thread"))
    )
    assert slot.released and not slot.handed and not bus.published


async def test_a_failed_transaction_gives_the_worker_back(database: Database) -> None:
    slot, bus = Slot(), Bus()
    work = SlowWork(LookupError("no such thread"))
    work.go_on.set()
    with pytest.raises(LookupError):
        await _service(database, Scheduler(slot), bus)._queue_run("run_1", work)
    assert slot.released and not slot.handed and not bus.published
