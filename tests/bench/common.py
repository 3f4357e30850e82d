"""What the measuring modules share: the service's stubs, percentiles, and a closed-loop driver
(N callers, each calling again as soon as its previous call returns, for a fixed time)."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
from assistants_grpc_client.v1 import (
    assistant_pb2,
    assistant_pb2_grpc,
    message_pb2,
    message_pb2_grpc,
    run_pb2,
    run_pb2_grpc,
    thread_pb2,
    thread_pb2_grpc,
)

from tests.bench.processes import HOST, cpu_seconds

R = run_pb2
# Big enough for a 10,000-message CreateThread.
CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
]


# Every call has a deadline, so a stuck server fails the bench instead of hanging it.
CALL_TIMEOUT = 60.0


class BenchError(RuntimeError):
    """A measurement could not be made (a run did not complete, a stream broke...)."""


@dataclass
class Stubs:
    channel: grpc.aio.Channel
    assistants: assistant_pb2_grpc.AssistantServiceStub
    threads: thread_pb2_grpc.ThreadServiceStub
    messages: message_pb2_grpc.MessageServiceStub
    runs: run_pb2_grpc.RunServiceStub

    @classmethod
    def connect(cls, port: int) -> Stubs:
        channel = grpc.aio.insecure_channel(f"{HOST}:{port}", options=CHANNEL_OPTIONS)
        return cls(
            channel=channel,
            assistants=assistant_pb2_grpc.AssistantServiceStub(channel),
            threads=thread_pb2_grpc.ThreadServiceStub(channel),
            messages=message_pb2_grpc.MessageServiceStub(channel),
            runs=run_pb2_grpc.RunServiceStub(channel),
        )

    async def close(self) -> None:
        await self.channel.close()


def user_text(text: str) -> message_pb2.MessageInput:
    return message_pb2.MessageInput(
        role=message_pb2.MESSAGE_ROLE_USER,
        content=[message_pb2.MessageContentInput(text=text)],
    )


async def create_assistant(stubs: Stubs, model: str, **fields: Any) -> assistant_pb2.Assistant:
    request = assistant_pb2.CreateAssistantRequest(model=model, name=f"bench {model}", **fields)
    assistant: assistant_pb2.Assistant = await stubs.assistants.CreateAssistant(
        request, timeout=CALL_TIMEOUT
    )
    return assistant


async def create_thread(stubs: Stubs, *texts: str) -> thread_pb2.Thread:
    request = thread_pb2.CreateThreadRequest(messages=[user_text(t) for t in texts])
    thread: thread_pb2.Thread = await stubs.threads.CreateThread(request, timeout=CALL_TIMEOUT)
    return thread


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100), linearly interpolated between closest ranks."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def summary_ms(values: Sequence[float]) -> dict[str, float]:
    """n, p50, p99, mean and max of durations in seconds, as milliseconds."""
    return {
        "n": len(values),
        "p50_ms": ms(percentile(values, 50)),
        "p99_ms": ms(percentile(values, 99)),
        "mean_ms": ms(sum(values) / len(values)) if values else math.nan,
        "max_ms": ms(max(values)) if values else math.nan,
    }


@dataclass
class LoadResult:
    concurrency: int
    calls: int
    seconds: float
    latencies: list[float]
    # CPU seconds each watched process used during the measured window (pid -> seconds).
    cpu: dict[int, float] = field(default_factory=dict)

    def cpu_per_call_ms(self, pid: int) -> float | None:
        """CPU `pid` spent per call counted: what a call costs it, however busy the machine."""
        if pid not in self.cpu or not self.calls:
            return None
        return round(self.cpu[pid] / self.calls * 1000, 3)

    @property
    def rate(self) -> float:
        return self.calls / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self, unit: str = "calls_per_s") -> dict[str, Any]:
        return {
            "concurrency": self.concurrency,
            "count": self.calls,
            "seconds": round(self.seconds, 3),
            unit: round(self.rate, 1),
            **{k: v for k, v in summary_ms(self.latencies).items() if k != "n"},
        }


class _Window:
    """The measured window of a load loop: what a call inside it counts for, and the CPU the
    watched processes use during it."""

    def __init__(self, warmup: float, duration: float, pids: Sequence[int]) -> None:
        self.loop = asyncio.get_running_loop()
        self.begin = self.loop.time()
        self.start = self.begin + warmup
        self.end = self.start + duration
        self.latencies: list[float] = []
        self.finished = 0
        self.cpu: dict[int, float] = {}
        self._pids = pids

    async def timed(self, call: Callable[[int], Awaitable[object]], index: int) -> None:
        """One call: its latency kept if it started inside the window, counted if it finished
        inside it."""
        began = self.loop.time()  # uvloop's clock ticks in milliseconds: windows only
        timer = time.perf_counter()
        await call(index)
        latency = time.perf_counter() - timer
        done = self.loop.time()
        if began >= self.start:
            self.latencies.append(latency)
        if self.start <= done < self.end:
            self.finished += 1

    async def sample_cpu(self) -> None:
        await asyncio.sleep(max(self.start - self.loop.time(), 0))
        before = {pid: cpu_seconds(pid) for pid in self._pids}
        await asyncio.sleep(max(self.end - self.loop.time(), 0))
        self.cpu.update({pid: cpu_seconds(pid) - before[pid] for pid in self._pids})

    def result(self, concurrency: int, seconds: float) -> LoadResult:
        return LoadResult(concurrency, self.finished, seconds, self.latencies, self.cpu)


async def closed_loop(
    call: Callable[[int], Awaitable[object]],
    concurrency: int,
    duration: float,
    warmup: float,
    max_calls: int = 1_000_000,
    pids: Sequence[int] = (),
) -> LoadResult:
    """`concurrency` callers call `call(caller_index)` back to back for `warmup + duration`
    seconds. The rate counts the calls that finish inside the measured window; the latencies
    are those of the calls that start inside it. The first exception is raised."""
    window = _Window(warmup, duration, pids)
    loop = window.loop
    calls = 0

    async def caller(index: int) -> None:
        nonlocal calls
        while calls < max_calls and loop.time() < window.end:
            calls += 1
            await window.timed(call, index)

    tasks = [asyncio.create_task(caller(i)) for i in range(concurrency)]
    tasks.append(asyncio.create_task(window.sample_cpu()))
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return window.result(concurrency, min(loop.time(), window.end) - window.start)


async def paced_loop(
    call: Callable[[int], Awaitable[object]],
    rate: float,
    duration: float,
    warmup: float,
    max_in_flight: int = 64,
    pids: Sequence[int] = (),
) -> LoadResult:
    """Calls started at a steady `rate` a second for `warmup + duration` seconds (at most
    `max_in_flight` at once: past that a start waits, and the pace slips). Every variant of a
    comparison paced alike sees the same load, so its CPU per call is what a call costs it:
    under a closed loop a server kept less busy (its client slowed by anything) batches less
    per event-loop turn and spends more per call for it. Counted and timed as `closed_loop`."""
    window = _Window(warmup, duration, pids)
    loop = window.loop
    slots = asyncio.Semaphore(max_in_flight)
    failures: list[BaseException] = []

    async def one(index: int) -> None:
        try:
            await window.timed(call, index)
        except BaseException as error:  # the first is raised once the loop ends
            failures.append(error)
        finally:
            slots.release()

    sampling = asyncio.create_task(window.sample_cpu())
    calls: set[asyncio.Task[None]] = set()
    try:
        index = 0
        while not failures:
            due = window.begin + index / rate
            if due >= window.end:
                break
            if due > loop.time():
                await asyncio.sleep(due - loop.time())
            await slots.acquire()
            task = asyncio.create_task(one(index))
            calls.add(task)
            task.add_done_callback(calls.discard)
            index += 1
        await sampling
        if calls:
            await asyncio.gather(*calls)
    finally:
        for task in (*calls, sampling):
            task.cancel()
        await asyncio.gather(*calls, sampling, return_exceptions=True)
    if failures:
        raise failures[0]
    return window.result(max_in_flight, duration)


@dataclass(frozen=True)
class Plan:
    """How much of each measurement to do (the default run, or `--quick`)."""

    quick: bool
    unary_seconds: float  # per cell, split into slices that alternate with the echo server
    unary_slices: int
    unary_warmup: float  # per slice
    run_seconds: float
    run_warmup: float
    latency_samples: int
    paced_chunks: int
    replay_repeats: int
    tool_samples: int
    watchers: int
    watched_runs: int
    watch_seconds: float
    prompt_messages: int
    prompt_repeats: int
    prompt_db_repeats: int
    import_threads: int  # threads of 10 messages in the "import" section's dump
    search_chunks: int = 100_000
    search_queries: int = 200
    ingest_files: int = 8
    ingest_run_samples: int = 100  # first deltas alone, half before and half after

    @classmethod
    def default(cls) -> Plan:
        return cls(
            quick=False,
            unary_seconds=3.0,
            unary_slices=3,
            unary_warmup=0.3,
            run_seconds=6.0,
            run_warmup=1.0,
            latency_samples=200,
            paced_chunks=400,
            replay_repeats=5,
            tool_samples=30,
            watchers=1000,
            watched_runs=10,
            watch_seconds=5.0,
            prompt_messages=10_000,
            prompt_repeats=30,
            prompt_db_repeats=5,
            import_threads=10_000,
        )

    @classmethod
    def short(cls) -> Plan:
        return cls(
            quick=True,
            unary_seconds=0.4,
            unary_slices=2,
            unary_warmup=0.1,
            run_seconds=1.0,
            run_warmup=0.3,
            latency_samples=30,
            paced_chunks=60,
            replay_repeats=2,
            tool_samples=8,
            watchers=1000,
            watched_runs=10,
            watch_seconds=1.5,
            prompt_messages=10_000,
            prompt_repeats=10,
            prompt_db_repeats=2,
            import_threads=2_000,
            search_chunks=20_000,
            search_queries=40,
            ingest_files=2,
            ingest_run_samples=20,
        )


__all__ = [
    "CALL_TIMEOUT",
    "CHANNEL_OPTIONS",
    "BenchError",
    "LoadResult",
    "Plan",
    "R",
    "Stubs",
    "closed_loop",
    "create_assistant",
    "create_thread",
    "ms",
    "percentile",
    "summary_ms",
    "user_text",
]
