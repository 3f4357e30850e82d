"""Handing a queued run to the engine survives the caller going away: the transaction that
queues it may still commit (on PostgreSQL it runs on a thread), and then the kept worker must
get the run, or it would hold its thread until it expired."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from assistants_grpc.services.runs import RunService


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


class SlowDatabase:
    """A transaction that finishes only when told to, as a PostgreSQL one on its thread."""

    def __init__(self) -> None:
        self.finish = asyncio.Event()
        self.started = asyncio.Event()

    async def transaction(self, work: Any) -> Any:
        self.started.set()
        await self.finish.wait()
        return work(None)


class Bus:
    def __init__(self) -> None:
        self.published: list[tuple[str, list[str]]] = []

    def publish(self, run_id: str, events: list[str]) -> None:
        self.published.append((run_id, events))


def _service(scheduler: Scheduler) -> tuple[RunService, SlowDatabase, Bus]:
    database, bus = SlowDatabase(), Bus()
    deps = SimpleNamespace(database=database)
    service = RunService(deps, None, scheduler, bus, expires_in=600)  # type: ignore[arg-type]
    return service, database, bus


@pytest.mark.parametrize("kept", [True, False])
async def test_a_caller_gone_mid_transaction_still_hands_the_run_over(kept: bool) -> None:
    slot = Slot() if kept else None
    scheduler = Scheduler(slot)
    service, database, bus = _service(scheduler)
    work = lambda _connection, got: (("the run", "started from here"), ["queued"])  # noqa: E731
    caller = asyncio.create_task(service._queue_run("run_1", work))
    await database.started.wait()
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    database.finish.set()  # ... and the transaction commits after all
    await asyncio.sleep(0.01)
    assert bus.published == [("run_1", ["queued"])]
    if slot is not None:
        assert slot.handed == ["started from here"] and not slot.released
    else:
        assert scheduler.enqueued == ["run_1"]


async def test_a_failed_transaction_gives_the_worker_back() -> None:
    slot = Slot()
    service, database, bus = _service(Scheduler(slot))

    def work(_connection: Any, _slot: Any) -> Any:
        raise LookupError("no such thread")

    database.finish.set()
    with pytest.raises(LookupError):
        await service._queue_run("run_1", work)
    await asyncio.sleep(0)
    assert slot.released and not slot.handed and not bus.published
