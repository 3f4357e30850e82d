"""Streams at scale: 1,000 concurrent WatchRun streams on runs that stay in progress (their model
sends one chunk every half second). The server's resident memory before and after opening them,
and the spread of delivery: every watcher of a run receives the same events, and each receipt is
timed against the first watcher that got that event."""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass, field
from typing import Any, Final

import grpc
from assistants_grpc_client.v1 import run_pb2_grpc

from tests.bench.common import (
    CALL_TIMEOUT,
    CHANNEL_OPTIONS,
    BenchError,
    Plan,
    R,
    Stubs,
    create_assistant,
    create_thread,
    ms,
    percentile,
)
from tests.bench.model_server import MODEL_SLOW, SLOW_CHUNK_DELAY
from tests.bench.processes import HOST, cpu_seconds, rss_bytes

CHANNELS: Final = 8  # watchers spread over this many HTTP/2 connections
WAVE: Final = 100  # streams opened at once, each wave waiting for the previous to be open
OPEN_TIMEOUT: Final = 60.0
END_TIMEOUT: Final = 30.0
SETTLE: Final = 0.5
WATCH_TIMEOUT: Final = 300.0  # a deadline on each watcher: the bench never hangs on one
MB: Final = 1024 * 1024


@dataclass
class Watcher:
    run_index: int
    opened: asyncio.Event = field(default_factory=asyncio.Event)
    receipts: dict[int, float] = field(default_factory=dict)  # sequence -> receive time
    last_event: str = ""
    error: BaseException | None = None


async def _watch(
    runs: run_pb2_grpc.RunServiceStub, request: R.WatchRunRequest, watcher: Watcher
) -> None:
    try:
        async for event in runs.WatchRun(request, timeout=WATCH_TIMEOUT):
            watcher.receipts[event.sequence] = time.perf_counter()
            watcher.last_event = event.event
            watcher.opened.set()
    except grpc.aio.AioRpcError as error:
        watcher.error = error
    finally:
        watcher.opened.set()


async def measure(service_port: int, service_pid: int, plan: Plan) -> dict[str, Any]:
    stubs = Stubs.connect(service_port)
    channels = [
        grpc.aio.insecure_channel(f"{HOST}:{service_port}", options=CHANNEL_OPTIONS)
        for _ in range(CHANNELS)
    ]
    run_stubs = [run_pb2_grpc.RunServiceStub(channel) for channel in channels]
    tasks: list[asyncio.Task[None]] = []
    runs: list[tuple[str, str]] = []
    try:
        assistant = await create_assistant(stubs, MODEL_SLOW)
        for _ in range(plan.watched_runs):
            thread = await create_thread(stubs, "Talk slowly.")
            run = await stubs.runs.CreateRun(
                R.CreateRunRequest(thread_id=thread.id, assistant_id=assistant.id),
                timeout=CALL_TIMEOUT,
            )
            runs.append((thread.id, run.id))
        await _wait_streaming(stubs, runs)
        rss_before = rss_bytes(service_pid)

        watchers: list[Watcher] = []
        began = time.perf_counter()
        for start in range(0, plan.watchers, WAVE):
            wave = []
            for i in range(start, min(start + WAVE, plan.watchers)):
                watcher = Watcher(run_index=i % len(runs))
                thread_id, run_id = runs[watcher.run_index]
                request = R.WatchRunRequest(thread_id=thread_id, run_id=run_id, after_sequence=0)
                runs_stub = run_stubs[i % CHANNELS]
                tasks.append(asyncio.create_task(_watch(runs_stub, request, watcher)))
                wave.append(watcher)
            await asyncio.wait_for(asyncio.gather(*(w.opened.wait() for w in wave)), OPEN_TIMEOUT)
            watchers.extend(wave)
        open_seconds = time.perf_counter() - began
        failed = [w for w in watchers if w.error is not None]
        if failed:
            raise BenchError(f"{len(failed)} WatchRun streams failed to open: {failed[0].error}")
        await asyncio.sleep(SETTLE)  # let the server settle before reading its memory
        rss_after = rss_bytes(service_pid)

        measured_from = time.perf_counter()
        cpu_before = cpu_seconds(service_pid), cpu_seconds(os.getpid())
        await asyncio.sleep(plan.watch_seconds)
        server_cpu = cpu_seconds(service_pid) - cpu_before[0]
        client_cpu = cpu_seconds(os.getpid()) - cpu_before[1]
        delays, deliveries, missed, events = _spread(watchers, len(runs), measured_from)
        ended_early = [w for w in watchers if w.error is not None or w.last_event == "done"]
        if ended_early:
            raise BenchError(f"{len(ended_early)} WatchRun streams ended while being measured")
        if events == 0:
            raise BenchError("no event reached the watchers while they were measured")

        await _cancel(stubs, runs)
        runs_left, runs = runs, []
        _, pending = await asyncio.wait(tasks, timeout=END_TIMEOUT)
        finished = sum(1 for w in watchers if w.last_event == "done")
        return {
            "streams": len(watchers),
            "runs": len(runs_left),
            "channels": CHANNELS,
            "open_seconds": round(open_seconds, 2),
            "rss_before_mb": round(rss_before / MB, 1),
            "rss_with_streams_mb": round(rss_after / MB, 1),
            "rss_per_stream_kb": round((rss_after - rss_before) / len(watchers) / 1024, 1),
            "model_chunk_delay_ms": ms(SLOW_CHUNK_DELAY),
            "measured_seconds": plan.watch_seconds,
            "events_measured": events,
            "deliveries": deliveries,
            "missed_deliveries": missed,
            "spread_p50_ms": ms(percentile(delays, 50)),
            "spread_p99_ms": ms(percentile(delays, 99)),
            "spread_max_ms": ms(max(delays)) if delays else None,
            "server_cpu_pct": round(100 * server_cpu / plan.watch_seconds, 1),
            "server_cpu_us_per_delivery": round(server_cpu / deliveries * 1e6, 1),
            # The receive times are taken in the bench process, which gets every delivery.
            "bench_client_cpu_us_per_delivery": round(client_cpu / deliveries * 1e6, 1),
            "streams_ended_with_done": finished,
            "streams_still_open_after_cancel": len(pending),
        }
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if runs:
            await _cancel(stubs, runs)
        for channel in channels:
            await channel.close()
        await stubs.close()


async def _wait_streaming(stubs: Stubs, runs: list[tuple[str, str]]) -> None:
    """Until every run has sent its first message delta (it is executing, not queued)."""

    async def first_delta(thread_id: str, run_id: str) -> None:
        request = R.WatchRunRequest(thread_id=thread_id, run_id=run_id, after_sequence=0)
        call = stubs.runs.WatchRun(request)
        try:
            async for event in call:
                if event.event == "thread.message.delta":
                    return
                if event.event == "done":
                    raise BenchError(f"slow run {run_id} ended before streaming")
        finally:
            call.cancel()

    await asyncio.wait_for(asyncio.gather(*(first_delta(t, r) for t, r in runs)), OPEN_TIMEOUT)


def _spread(
    watchers: list[Watcher], run_count: int, measured_from: float
) -> tuple[list[float], int, int, int]:
    """Each event first received after `measured_from`: every watcher's receipt minus the first
    receipt of it. Returns the delays, deliveries, missed deliveries and events counted."""
    by_run: list[list[Watcher]] = [[] for _ in range(run_count)]
    for watcher in watchers:
        by_run[watcher.run_index].append(watcher)
    delays: list[float] = []
    deliveries = missed = events = 0
    for group in by_run:
        sequences = {s for w in group for s in w.receipts}
        for sequence in sorted(sequences):
            times = [w.receipts[sequence] for w in group if sequence in w.receipts]
            first = min(times)
            if first < measured_from:
                continue
            # The latest events may still be on their way to some watchers: skip the tail.
            if first > time.perf_counter() - 0.2:
                continue
            events += 1
            deliveries += len(times)
            missed += len(group) - len(times)
            delays.extend(t - first for t in times)
    return delays, deliveries, missed, events


async def _cancel(stubs: Stubs, runs: list[tuple[str, str]]) -> None:
    for thread_id, run_id in runs:
        try:
            request = R.CancelRunRequest(thread_id=thread_id, run_id=run_id)
            await stubs.runs.CancelRun(request, timeout=CALL_TIMEOUT)
        except grpc.aio.AioRpcError as error:
            if error.code() != grpc.StatusCode.FAILED_PRECONDITION:  # already finished
                raise


__all__ = ["measure"]
