"""The event bus: live delivery from memory, replay from the log, gaps, wake-ups from other
replicas, the first-text wait, and the end of the streams of a deleted run."""

from __future__ import annotations

import asyncio

import pytest

from assistants_grpc.contract.pb import run_pb2
from assistants_grpc.events.bus import EventBus, RunDeletedError

R = run_pb2


def _event(sequence: int, name: str = "thread.message.delta") -> R.RunEvent:
    return R.RunEvent(event=name, sequence=sequence)


class Log:
    """A stand-in for the database log, counting reads."""

    def __init__(self) -> None:
        self.events: list[R.RunEvent] = []
        self.reads = 0

    async def after(self, _run_id: str, after: int) -> list[R.RunEvent]:
        self.reads += 1
        return [e for e in self.events if e.sequence > after]

    async def one(self, _run_id: str, sequence: int) -> R.RunEvent | None:
        return next((e for e in self.events if e.sequence == sequence), None)

    def write(self, bus: EventBus, *events: R.RunEvent, publish: bool = True) -> None:
        self.events += events
        if publish:
            bus.publish("run", list(events))


async def _collect(bus: EventBus, after: int, until: str = "segment") -> list[int]:
    return [e.sequence async for e in bus.subscribe("run", after, until)]  # type: ignore[arg-type]


async def test_live_events_come_from_memory() -> None:
    log = Log()
    bus = EventBus(log.after, log.one)
    log.write(bus, _event(1), _event(2))
    task = asyncio.create_task(_collect(bus, 0))
    await asyncio.sleep(0.01)
    reads = log.reads
    log.write(bus, _event(3))
    log.write(bus, _event(4, "done"))
    assert await asyncio.wait_for(task, 1) == [1, 2, 3, 4]
    assert log.reads == reads  # nothing read from the log once live


async def test_replay_resume_and_run_end() -> None:
    log = Log()
    bus = EventBus(log.after, log.one)
    names = ["thread.run.requires_action", "done", "thread.run.completed", "done"]
    log.write(bus, *(_event(i + 1, name) for i, name in enumerate(names)))
    assert await _collect(bus, 0) == [1, 2]  # a segment ends at the first done
    assert await _collect(bus, 0, "run") == [1, 2, 3, 4]  # the run at the final one
    assert await _collect(bus, 3, "run") == [4]  # resumed between terminal event and done


async def test_writes_elsewhere_are_read_from_the_log_on_wake() -> None:
    log = Log()
    bus = EventBus(log.after, log.one)
    task = asyncio.create_task(_collect(bus, 0))
    await asyncio.sleep(0.01)
    log.write(bus, _event(1), _event(2, "done"), publish=False)  # another replica wrote it
    bus.wake("run")
    assert await asyncio.wait_for(task, 1) == [1, 2]


async def test_a_gap_in_memory_falls_back_to_the_log() -> None:
    log = Log()
    bus = EventBus(log.after, log.one)
    task = asyncio.create_task(_collect(bus, 0))
    await asyncio.sleep(0.01)
    log.write(bus, _event(1), publish=False)  # committed, its publish not arrived yet
    log.write(bus, _event(2, "done"))
    assert await asyncio.wait_for(task, 1) == [1, 2]


async def test_delivered_waits_for_subscribers_then_returns() -> None:
    log = Log()
    bus = EventBus(log.after, log.one)
    await bus.delivered("run", 5, timeout=1)  # nobody subscribed: returns at once
    log.write(bus, _event(1))
    stream = bus.subscribe("run", 0, "segment")
    first = await anext(stream)  # the subscriber has handed on nothing yet
    assert first.sequence == 1
    loop = asyncio.get_running_loop()
    began = loop.time()
    await bus.delivered("run", 1, timeout=0.05)  # not delivered: times out
    assert loop.time() - began >= 0.04
    pending = asyncio.create_task(bus.delivered("run", 1, timeout=1))
    log.write(bus, _event(2, "done"))
    assert (await anext(stream)).sequence == 2  # handing on event 1 moves the subscriber
    await asyncio.wait_for(pending, 0.5)
    await stream.aclose()


async def test_forget_ends_every_subscriber_of_the_run() -> None:
    log = Log()
    bus = EventBus(log.after, log.one)
    log.write(bus, _event(1))
    segment = asyncio.create_task(_collect(bus, 0))
    whole_run = asyncio.create_task(_collect(bus, 0, "run"))
    await asyncio.sleep(0.01)  # both have event 1 and wait for more
    log.events.clear()  # the thread's delete took the log with it
    bus.forget("run")
    for task in (segment, whole_run):
        with pytest.raises(RunDeletedError):
            await asyncio.wait_for(task, 1)


async def test_forget_while_a_subscriber_reads_the_log() -> None:
    """`forget` lands while the subscriber is away reading the log: it ends without waiting
    for a wake-up that nobody will send a forgotten channel."""
    reading = asyncio.Event()
    release = asyncio.Event()
    events = [_event(1)]

    async def slow_after(_run_id: str, after: int) -> list[R.RunEvent]:
        reading.set()
        await release.wait()
        return [e for e in events if e.sequence > after]

    async def one(_run_id: str, _sequence: int) -> R.RunEvent | None:
        return None

    bus = EventBus(slow_after, one)
    stream = bus.subscribe("run", 0, "run")
    task = asyncio.create_task(anext(stream))
    await asyncio.wait_for(reading.wait(), 1)
    bus.forget("run")  # the log read already under way returns the event from before the delete
    release.set()
    assert (await asyncio.wait_for(task, 1)).sequence == 1
    events.clear()
    with pytest.raises(RunDeletedError):
        await asyncio.wait_for(anext(stream), 1)


async def test_forget_tells_the_other_replicas_and_their_forget_does_not_echo() -> None:
    log = Log()
    bus = EventBus(log.after, log.one)
    told: list[str] = []
    bus.on_forget = told.append
    log.write(bus, _event(1))
    watcher = asyncio.create_task(_collect(bus, 0, "run"))
    await asyncio.sleep(0.01)
    bus.forgotten_elsewhere("run")  # another replica deleted the thread
    with pytest.raises(RunDeletedError):
        await asyncio.wait_for(watcher, 1)
    assert told == []
    bus.forget("run")  # deleted here: the others are told
    assert told == ["run"]
