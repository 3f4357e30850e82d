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

    async def after(self, _run_id: str, after: int, limit: int) -> list[R.RunEvent]:
        self.reads += 1
        return [e for e in self.events if e.sequence > after][:limit]

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

    async def slow_after(_run_id: str, after: int, _limit: int) -> list[R.RunEvent]:
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


class Signals:
    """A stand-in for the replica signals, recording what the bus tells the others."""

    def __init__(self) -> None:
        self.written: list[str] = []
        self.deleted: list[str] = []

    def events_written(self, run_id: str) -> None:
        self.written.append(run_id)

    def run_deleted(self, run_id: str) -> None:
        self.deleted.append(run_id)


async def test_forget_tells_the_other_replicas_and_their_forget_does_not_echo() -> None:
    log = Log()
    signals = Signals()
    bus = EventBus(log.after, log.one, signals=signals)
    told = signals.deleted
    log.write(bus, _event(1))
    watcher = asyncio.create_task(_collect(bus, 0, "run"))
    await asyncio.sleep(0.01)
    bus.forgotten_elsewhere("run")  # another replica deleted the thread
    with pytest.raises(RunDeletedError):
        await asyncio.wait_for(watcher, 1)
    assert told == []
    bus.forget("run")  # deleted here: the others are told
    assert told == ["run"]
    assert signals.written == ["run"]  # the publish of event 1


async def test_a_long_log_is_replayed_in_pages() -> None:
    log = Log()
    bus = EventBus(log.after, log.one, page_size=3)
    names = ["thread.message.delta"] * 9 + ["thread.run.completed", "done"]
    log.write(bus, *(_event(i + 1, name) for i, name in enumerate(names)), publish=False)
    assert await _collect(bus, 0, "run") == list(range(1, 12))
    assert log.reads == 4  # 3 + 3 + 3 + 2 events, one page per read
    log.reads = 0
    assert await _collect(bus, 7, "run") == [8, 9, 10, 11]
    assert log.reads == 2


async def test_memory_holds_a_run_only_while_a_segment_is_written_here_or_read() -> None:
    log = Log()
    bus = EventBus(log.after, log.one)
    assert bus.channel_count == 0
    log.write(bus, _event(1, "thread.run.created"), _event(2, "thread.run.step.delta"))
    assert bus.channel_count == 1  # a segment written here: a stream opened now reads memory
    log.write(bus, _event(3, "thread.run.requires_action"), _event(4, "done"))
    assert bus.channel_count == 0  # paused, nobody reading: continued elsewhere, nothing stays
    # Continued here: the new segment is held until its done, then the run is gone.
    log.write(bus, _event(5, "thread.run.queued"), _event(6, "thread.run.in_progress"))
    assert bus.channel_count == 1
    log.write(bus, _event(7, "thread.run.completed"), _event(8, "done"))
    assert bus.channel_count == 0


async def test_a_subscriber_keeps_the_channel_and_takes_it_when_it_leaves() -> None:
    log = Log()
    bus = EventBus(log.after, log.one)
    log.write(bus, _event(1, "thread.run.created"))
    watcher = asyncio.create_task(_collect(bus, 0, "run"))
    await asyncio.sleep(0.01)
    log.write(bus, _event(2, "thread.run.requires_action"), _event(3, "done"))
    assert bus.channel_count == 1  # the whole-run watcher still reads it
    # Another replica continues the run; the watcher follows it from the log.
    names = ["thread.run.queued", "thread.run.completed", "done"]
    log.write(bus, *(_event(i + 4, name) for i, name in enumerate(names)), publish=False)
    bus.wake("run")
    assert await asyncio.wait_for(watcher, 1) == [1, 2, 3, 4, 5, 6]
    assert bus.channel_count == 0


async def test_a_write_elsewhere_releases_a_segment_started_here() -> None:
    """Tool outputs submitted here queue the run; another replica claims and writes it: the
    events this replica published are not kept for it."""
    log = Log()
    bus = EventBus(log.after, log.one)
    log.write(bus, _event(1, "thread.run.step.completed"), _event(2, "thread.run.queued"))
    assert bus.channel_count == 1
    log.write(bus, _event(3, "thread.run.in_progress"), publish=False)
    bus.wake("run")
    assert bus.channel_count == 0
    log.write(bus, _event(4, "thread.run.step.completed"))
    bus.wake_all()  # the listening connection was re-made: the same holds for every run
    assert bus.channel_count == 0
