"""Runs against a model server that answers at once with 50 text chunks: complete runs per second
at 1, 8 and 32 concurrent callers; the service's added latency to the first
`thread.message.delta` (next to the model server's own time to first chunk, measured directly
with the `openai` client in the same run); events per second on one stream."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Final

import openai

from tests.bench.common import (
    CALL_TIMEOUT,
    BenchError,
    Plan,
    R,
    Stubs,
    closed_loop,
    create_assistant,
    create_thread,
    ms,
    percentile,
    summary_ms,
    user_text,
)
from tests.bench.model_server import FAST_CHUNKS, MODEL_FAST, MODEL_PACED, PACED_CHUNK_DELAY
from tests.bench.processes import HOST

CONCURRENCY: Final = (1, 8, 32)
PROMPT: Final = "Say fifty words."
FIRST_DELTA: Final = "thread.message.delta"


@dataclass
class StreamStats:
    """What one run stream delivered, timed from the call."""

    names: list[str]
    first_delta: float | None  # seconds from the call to the first message delta
    first_event: float
    last_event: float
    arrivals: dict[str, float]  # seconds from the call to the first event of each name

    @property
    def events_per_second(self) -> float:
        span = self.last_event - self.first_event
        return (len(self.names) - 1) / span if span > 0 else 0.0


async def consume(stream: AsyncIterator[R.RunEvent], began: float) -> StreamStats:
    """Read a run stream to its end, timing the first message delta."""
    names: list[str] = []
    arrivals: dict[str, float] = {}
    first_event = last_event = 0.0
    async for event in stream:
        now = time.perf_counter()
        if not names:
            first_event = now
        last_event = now
        arrivals.setdefault(event.event, now - began)
        names.append(event.event)
    return StreamStats(
        names, arrivals.get(FIRST_DELTA), first_event - began, last_event - began, arrivals
    )


def check_completed(stats: StreamStats, what: str) -> None:
    """Fail loudly unless the stream ended with the run completed."""
    if stats.names[-2:] != ["thread.run.completed", "done"]:
        raise BenchError(f"{what}: the run did not complete; events: {stats.names[-6:]}")


async def measure(
    service_port: int,
    service_pid: int,
    model_port: int,
    model_pid: int,
    plan: Plan,
    *,
    full: bool = True,
) -> dict[str, Any]:
    """`full=False` (the PostgreSQL pass) skips the long-run events/s figure."""
    stubs = Stubs.connect(service_port)
    model = openai.AsyncOpenAI(
        base_url=f"http://{HOST}:{model_port}/v1",
        api_key="x",
        max_retries=0,
        timeout=CALL_TIMEOUT,
    )
    try:
        assistant = await create_assistant(stubs, MODEL_FAST)
        out: dict[str, Any] = {
            "throughput": await _throughput(stubs, assistant.id, plan, service_pid, model_pid),
            "first_delta": await _first_delta(stubs, model, assistant.id, plan),
        }
        if full:
            out["one_stream"] = await _one_stream(stubs, plan)
        return out
    finally:
        await model.close()
        await stubs.close()


async def _throughput(
    stubs: Stubs, assistant_id: str, plan: Plan, service_pid: int, model_pid: int
) -> dict[str, Any]:
    request = R.CreateThreadAndRunRequest(
        assistant_id=assistant_id, thread=R.ThreadInput(messages=[user_text(PROMPT)])
    )
    events: list[int] = []

    async def one_run(_index: int) -> None:
        began = time.perf_counter()
        stats = await consume(
            stubs.runs.CreateThreadAndRunStream(request, timeout=CALL_TIMEOUT), began
        )
        check_completed(stats, "CreateThreadAndRunStream")
        events.append(len(stats.names))

    cells = {}
    for concurrency in CONCURRENCY:
        result = await closed_loop(
            one_run,
            concurrency,
            plan.run_seconds,
            plan.run_warmup,
            pids=(service_pid, model_pid, os.getpid()),
        )
        cells[str(concurrency)] = result.as_dict("runs_per_s") | {
            # CPU per run: what a run costs each process, however busy the machine was. The
            # three share this machine's cores, so their sum bounds the runs per second.
            "server_cpu_ms": result.cpu_per_call_ms(service_pid),
            "model_server_cpu_ms": result.cpu_per_call_ms(model_pid),
            "bench_client_cpu_ms": result.cpu_per_call_ms(os.getpid()),
        }
    return {
        "cells": cells,
        "events_per_run_p50": percentile(events, 50),
        "model_chunks": FAST_CHUNKS,
    }


async def _first_delta(
    stubs: Stubs, model: openai.AsyncOpenAI, assistant_id: str, plan: Plan
) -> dict[str, Any]:
    """One run at a time; each run is paired with one direct model call, in alternating order,
    so both see the same machine."""
    service: list[float] = []
    direct: list[float] = []
    stream_rates: list[float] = []
    arrivals: dict[str, list[float]] = {}
    # Warm both paths (connections, first-call costs) outside the samples.
    for _ in range(3):
        await _direct_first_chunk(model)
        await _service_first_delta(stubs, assistant_id)
    for i in range(plan.latency_samples):
        if i % 2:
            direct.append(await _direct_first_chunk(model))
        stats = await _service_first_delta(stubs, assistant_id)
        service.append(stats.first_delta or 0.0)
        stream_rates.append(stats.events_per_second)
        for name, seconds in stats.arrivals.items():
            arrivals.setdefault(name, []).append(seconds)
        if not i % 2:
            direct.append(await _direct_first_chunk(model))
    baseline = percentile(direct, 50)
    added = [s - baseline for s in service]
    return {
        "samples": len(service),
        "service_to_first_delta": summary_ms(service),
        "model_to_first_chunk": summary_ms(direct),
        "added_p50_ms": ms(percentile(added, 50)),
        "added_p99_ms": ms(percentile(added, 99)),
        "stream_events_per_s_p50": round(percentile(stream_rates, 50), 1),
        # When each event of the stream reaches the caller (median ms after the call): where
        # the time to the first delta goes.
        "timeline_p50_ms": {
            name: ms(percentile(times, 50))
            for name, times in sorted(arrivals.items(), key=lambda item: percentile(item[1], 50))
        },
    }


async def _service_first_delta(stubs: Stubs, assistant_id: str) -> StreamStats:
    thread = await create_thread(stubs, PROMPT)
    request = R.CreateRunRequest(thread_id=thread.id, assistant_id=assistant_id)
    began = time.perf_counter()
    stats = await consume(stubs.runs.CreateRunStream(request, timeout=CALL_TIMEOUT), began)
    check_completed(stats, "CreateRunStream")
    if stats.first_delta is None:
        raise BenchError("CreateRunStream: no thread.message.delta")
    return stats


async def _direct_first_chunk(model: openai.AsyncOpenAI) -> float:
    """The model server's own time from the request to the first content chunk."""
    began = time.perf_counter()
    first: float | None = None
    stream = await model.chat.completions.create(
        model=MODEL_FAST,
        messages=[{"role": "user", "content": PROMPT}],
        stream=True,
        stream_options={"include_usage": True},
    )
    async with stream:
        async for chunk in stream:
            if first is None and chunk.choices and chunk.choices[0].delta.content:
                first = time.perf_counter() - began
    if first is None:
        raise BenchError("the model server sent no content")
    return first


async def _one_stream(stubs: Stubs, plan: Plan) -> dict[str, Any]:
    """A run whose model paces its chunks just above the flush interval, so each becomes an
    event: its live stream, then WatchRun replays of its whole log from sequence 0."""
    assistant = await create_assistant(stubs, MODEL_PACED)
    thread = await create_thread(stubs, str(plan.paced_chunks))
    request = R.CreateRunRequest(thread_id=thread.id, assistant_id=assistant.id)
    began = time.perf_counter()
    events: list[R.RunEvent] = []
    async for event in stubs.runs.CreateRunStream(request, timeout=CALL_TIMEOUT):
        events.append(event)
    live_seconds = time.perf_counter() - began
    names = [e.event for e in events]
    if names[-2:] != ["thread.run.completed", "done"]:
        raise BenchError(f"paced run did not complete: {names[-6:]}")
    run_id = events[0].run.id
    replays: list[float] = []
    count = 0
    for _ in range(plan.replay_repeats):
        began = time.perf_counter()
        watch = R.WatchRunRequest(thread_id=thread.id, run_id=run_id, after_sequence=0)
        count = 0
        async for _event in stubs.runs.WatchRun(watch, timeout=CALL_TIMEOUT):
            count += 1
        replays.append(time.perf_counter() - began)
    if count != len(events):
        raise BenchError(f"WatchRun replayed {count} events, the run stream had {len(events)}")
    best = percentile(replays, 50)
    return {
        "events": len(events),
        "model_chunks": plan.paced_chunks,
        "model_chunk_delay_ms": ms(PACED_CHUNK_DELAY),
        "live_events_per_s": round(len(events) / live_seconds, 1),
        "replay_events_per_s": round(count / best, 1),
        "replay_ms_p50": ms(best),
    }


__all__ = ["CONCURRENCY", "StreamStats", "check_completed", "consume", "measure"]
