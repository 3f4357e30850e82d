"""Runs against a model server that answers at once with 50 text chunks: complete runs per second
at 1, 8 and 32 concurrent callers; the service's added latency to the first
`thread.message.delta` (next to the model server's own time to first chunk, measured directly
with the `openai` client in the same run); events per second on one stream.

The first delta again against the same model server with Nagle's algorithm left on
(`FakeModelServer(nodelay=False)`, as simple servers do), under `nagle`: over the service's
reused model connections it should be where it is without Nagle (issue 18;
`engine/model_http.py`), which `vs_nodelay` reports. One run at a time, the two variants take
turns; at 32 callers, every other caller uses each (`mixed`), so both always see the same
machine. `plain_sdk_to_first_chunk` is the Nagle-on server called with a plain
`openai.AsyncOpenAI`: what a client without the fix waits.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Final

import openai

from assistants_grpc.engine.model_http import model_http_client
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
from tests.bench.model_server import (
    FAST_CHUNKS,
    MODEL_FAST,
    MODEL_FAST_NAGLE,
    MODEL_PACED,
    PACED_CHUNK_DELAY,
)
from tests.bench.processes import HOST

CONCURRENCY: Final = (1, 8, 32)
MIXED_CONCURRENCY: Final = 32
PLAIN_SDK_SAMPLES: Final = 20
PROMPT: Final = "Say fifty words."
FIRST_DELTA: Final = "thread.message.delta"
IN_PROGRESS: Final = "thread.run.in_progress"


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


@dataclass
class Variant:
    """One model server variant: the assistant whose model the service sends there, and a
    direct client to it. The direct client uses the service's own HTTP client
    (`model_http_client`), so "the model's own time" is the server's, not a client's stall."""

    name: str
    assistant_id: str
    model: str
    direct: openai.AsyncOpenAI
    service: list[float] = field(default_factory=list)
    direct_samples: list[float] = field(default_factory=list)
    stream_rates: list[float] = field(default_factory=list)
    arrivals: dict[str, list[float]] = field(default_factory=dict)


def _direct_client(port: int, *, plain: bool = False) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        base_url=f"http://{HOST}:{port}/v1",
        api_key="x",
        max_retries=0,
        timeout=CALL_TIMEOUT,
        http_client=None if plain else model_http_client(),
    )


async def measure(
    service_port: int,
    service_pid: int,
    model_port: int,
    model_pid: int,
    plan: Plan,
    *,
    nagle_port: int | None = None,
    full: bool = True,
) -> dict[str, Any]:
    """`full=False` (the PostgreSQL pass) skips the long-run events/s figure. With `nagle_port`
    (the model server's Nagle-on port, reached by the service as `MODEL_FAST_NAGLE`) both
    variants are measured."""
    stubs = Stubs.connect(service_port)
    clients = [_direct_client(model_port)]
    try:
        pids = (service_pid, model_pid, os.getpid())
        assistant = await create_assistant(stubs, MODEL_FAST)
        variants = [Variant("nodelay", assistant.id, MODEL_FAST, clients[0])]
        if nagle_port is not None:
            clients.append(_direct_client(nagle_port))
            nagle_assistant = await create_assistant(stubs, MODEL_FAST_NAGLE)
            variants.append(Variant("nagle", nagle_assistant.id, MODEL_FAST_NAGLE, clients[1]))
        out: dict[str, Any] = {
            "throughput": await _throughput(stubs, assistant.id, plan, pids, CONCURRENCY)
        }
        if nagle_port is not None:
            mixed = await _mixed(stubs, variants, plan, pids)
        first = await _first_delta(stubs, variants, plan)
        out["first_delta"] = first["nodelay"]
        if nagle_port is not None:
            plain = _direct_client(nagle_port, plain=True)
            clients.append(plain)
            out["nagle"] = _compare(
                out["first_delta"],
                first["nagle"],
                mixed,
                await _plain_sdk(plain, MODEL_FAST_NAGLE),
            )
        if full:
            out["one_stream"] = await _one_stream(stubs, plan)
        return out
    finally:
        for client in clients:
            await client.close()
        await stubs.close()


def _compare(
    first_delta: dict[str, Any],
    nagle_first_delta: dict[str, Any],
    mixed: dict[str, Any],
    plain_sdk: dict[str, float],
) -> dict[str, Any]:
    """The Nagle-on figures, and how far they are from the usual ones (positive: slower). The
    mean shows a stall that hits only some runs (before issue 18's fix, about half of them
    here) better than the median, which can sit either side of it."""
    usual, nagle = (
        first_delta["service_to_first_delta"],
        nagle_first_delta["service_to_first_delta"],
    )
    at = mixed["variants"]
    return {
        "first_delta": nagle_first_delta,
        "mixed": mixed,
        "plain_sdk_to_first_chunk": plain_sdk,
        "vs_nodelay": {
            "first_delta_p50_ms": round(nagle["p50_ms"] - usual["p50_ms"], 3),
            "first_delta_mean_ms": round(nagle["mean_ms"] - usual["mean_ms"], 3),
            "first_delta_p99_ms": round(nagle["p99_ms"] - usual["p99_ms"], 3),
            f"first_delta_p50_ms_at_{mixed['concurrency']}": round(
                at["nagle"]["first_delta_p50_ms"] - at["nodelay"]["first_delta_p50_ms"], 3
            ),
            f"first_delta_mean_ms_at_{mixed['concurrency']}": round(
                at["nagle"]["first_delta_mean_ms"] - at["nodelay"]["first_delta_mean_ms"], 3
            ),
            f"in_progress_to_first_delta_p50_ms_at_{mixed['concurrency']}": round(
                at["nagle"]["in_progress_to_first_delta_p50_ms"]
                - at["nodelay"]["in_progress_to_first_delta_p50_ms"],
                3,
            ),
            f"in_progress_to_first_delta_mean_ms_at_{mixed['concurrency']}": round(
                at["nagle"]["in_progress_to_first_delta_mean_ms"]
                - at["nodelay"]["in_progress_to_first_delta_mean_ms"],
                3,
            ),
        },
    }


async def _mixed(
    stubs: Stubs, variants: list[Variant], plan: Plan, pids: tuple[int, int, int]
) -> dict[str, Any]:
    """`MIXED_CONCURRENCY` callers, every other one on each variant, so both halves share the
    same queue and machine: at this load the time to the first delta is mostly waiting for a
    worker (hundreds of ms, moving by tens between bench runs), and only a comparison inside
    one measurement can show a few milliseconds."""
    # (when the run began, its first delta, that minus its in_progress event, its end)
    samples: dict[str, list[tuple[float, float, float, float]]] = {v.name: [] for v in variants}

    async def one_run(index: int) -> None:
        variant = variants[index % len(variants)]
        request = R.CreateThreadAndRunRequest(
            assistant_id=variant.assistant_id, thread=R.ThreadInput(messages=[user_text(PROMPT)])
        )
        began = time.perf_counter()
        stats = await consume(
            stubs.runs.CreateThreadAndRunStream(request, timeout=CALL_TIMEOUT), began
        )
        check_completed(stats, "CreateThreadAndRunStream")
        started = stats.arrivals.get(IN_PROGRESS)
        if stats.first_delta is not None and started is not None:
            sample = (began, stats.first_delta, stats.first_delta - started, stats.last_event)
            samples[variant.name].append(sample)

    window = time.perf_counter() + plan.run_warmup
    result = await closed_loop(
        one_run, MIXED_CONCURRENCY, plan.run_seconds, plan.run_warmup, pids=pids
    )
    halves = {}
    for name, runs in samples.items():
        measured = [sample[1:] for sample in runs if sample[0] >= window]
        deltas = [delta for delta, _, _ in measured]
        executing = [since for _, since, _ in measured]
        halves[name] = {
            "runs": len(measured),
            "first_delta_p50_ms": ms(percentile(deltas, 50)),
            "first_delta_p99_ms": ms(percentile(deltas, 99)),
            "first_delta_mean_ms": ms(sum(deltas) / len(deltas)) if deltas else None,
            # From the run's `thread.run.in_progress` (a worker has it, the model call is next)
            # to its first delta: the same without the wait in the queue, so less noisy.
            "in_progress_to_first_delta_p50_ms": ms(percentile(executing, 50)),
            "in_progress_to_first_delta_mean_ms": (
                ms(sum(executing) / len(executing)) if executing else None
            ),
            "run_p50_ms": ms(percentile([total for _, _, total in measured], 50)),
        }
    return {
        "concurrency": MIXED_CONCURRENCY,
        "runs_per_s": round(result.rate, 1),
        "server_cpu_ms": result.cpu_per_call_ms(pids[0]),
        "variants": halves,
    }


async def _throughput(
    stubs: Stubs,
    assistant_id: str,
    plan: Plan,
    pids: tuple[int, int, int],
    concurrencies: tuple[int, ...],
) -> dict[str, Any]:
    service_pid, model_pid, client_pid = pids
    request = R.CreateThreadAndRunRequest(
        assistant_id=assistant_id, thread=R.ThreadInput(messages=[user_text(PROMPT)])
    )
    events: list[int] = []
    first_deltas: list[tuple[float, float]] = []  # (when the run began, its first delta)

    async def one_run(_index: int) -> None:
        began = time.perf_counter()
        stats = await consume(
            stubs.runs.CreateThreadAndRunStream(request, timeout=CALL_TIMEOUT), began
        )
        check_completed(stats, "CreateThreadAndRunStream")
        events.append(len(stats.names))
        if stats.first_delta is not None:
            first_deltas.append((began, stats.first_delta))

    cells = {}
    for concurrency in concurrencies:
        first_deltas.clear()
        window = time.perf_counter() + plan.run_warmup
        result = await closed_loop(
            one_run, concurrency, plan.run_seconds, plan.run_warmup, pids=pids
        )
        measured = [delta for began, delta in first_deltas if began >= window]
        cells[str(concurrency)] = result.as_dict("runs_per_s") | {
            # Time to the first message delta under this load (runs begun in the window).
            "first_delta_p50_ms": ms(percentile(measured, 50)),
            "first_delta_p99_ms": ms(percentile(measured, 99)),
            # CPU per run: what a run costs each process, however busy the machine was. The
            # three share this machine's cores, so their sum bounds the runs per second.
            "server_cpu_ms": result.cpu_per_call_ms(service_pid),
            "model_server_cpu_ms": result.cpu_per_call_ms(model_pid),
            "bench_client_cpu_ms": result.cpu_per_call_ms(client_pid),
        }
    return {
        "cells": cells,
        "events_per_run_p50": percentile(events, 50),
        "model_chunks": FAST_CHUNKS,
    }


async def _first_delta(
    stubs: Stubs, variants: list[Variant], plan: Plan
) -> dict[str, dict[str, Any]]:
    """One run at a time; each run is paired with one direct model call, in alternating order,
    and the variants take turns (in alternating order too), so all see the same machine."""
    # Warm every path (connections, first-call costs) outside the samples.
    for _ in range(3):
        for v in variants:
            await _direct_first_chunk(v.direct, v.model)
            await _service_first_delta(stubs, v.assistant_id)
    for i in range(plan.latency_samples):
        for v in variants if i % 2 == 0 else variants[::-1]:
            if i % 2:
                v.direct_samples.append(await _direct_first_chunk(v.direct, v.model))
            stats = await _service_first_delta(stubs, v.assistant_id)
            v.service.append(stats.first_delta or 0.0)
            v.stream_rates.append(stats.events_per_second)
            for name, seconds in stats.arrivals.items():
                v.arrivals.setdefault(name, []).append(seconds)
            if not i % 2:
                v.direct_samples.append(await _direct_first_chunk(v.direct, v.model))
    return {v.name: _first_delta_figures(v) for v in variants}


def _first_delta_figures(v: Variant) -> dict[str, Any]:
    baseline = percentile(v.direct_samples, 50)
    added = [s - baseline for s in v.service]
    return {
        "samples": len(v.service),
        "service_to_first_delta": summary_ms(v.service),
        "model_to_first_chunk": summary_ms(v.direct_samples),
        "added_p50_ms": ms(percentile(added, 50)),
        "added_p99_ms": ms(percentile(added, 99)),
        "stream_events_per_s_p50": round(percentile(v.stream_rates, 50), 1),
        # When each event of the stream reaches the caller (median ms after the call): where
        # the time to the first delta goes.
        "timeline_p50_ms": {
            name: ms(percentile(times, 50))
            for name, times in sorted(v.arrivals.items(), key=lambda item: percentile(item[1], 50))
        },
    }


async def _plain_sdk(client: openai.AsyncOpenAI, model: str) -> dict[str, float]:
    """A plain SDK client's time to the first content chunk over its reused connection."""
    await _direct_first_chunk(client, model)  # the connection, made outside the samples
    return summary_ms([await _direct_first_chunk(client, model) for _ in range(PLAIN_SDK_SAMPLES)])


async def _service_first_delta(stubs: Stubs, assistant_id: str) -> StreamStats:
    thread = await create_thread(stubs, PROMPT)
    request = R.CreateRunRequest(thread_id=thread.id, assistant_id=assistant_id)
    began = time.perf_counter()
    stats = await consume(stubs.runs.CreateRunStream(request, timeout=CALL_TIMEOUT), began)
    check_completed(stats, "CreateRunStream")
    if stats.first_delta is None:
        raise BenchError("CreateRunStream: no thread.message.delta")
    return stats


async def _direct_first_chunk(client: openai.AsyncOpenAI, model: str) -> float:
    """The model server's own time from the request to the first content chunk."""
    began = time.perf_counter()
    first: float | None = None
    stream = await client.chat.completions.create(
        model=model,
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
