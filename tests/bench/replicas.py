"""Several replicas on one PostgreSQL database (issue 5): complete runs/s with one, two and three
replicas, the time from a replica's death (SIGKILL) to its runs resuming elsewhere, and the delay
between an event produced on one replica and a watcher on another receiving it.

All replicas share this machine's two cores, so more replicas add coordination, not CPU: the
runs/s figures show what the coordination costs, not how far more machines would go.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable
from typing import Any

from assistants_grpc.contract.pb import run_pb2
from tests.bench.common import (
    BenchError,
    Plan,
    Stubs,
    closed_loop,
    create_assistant,
    create_thread,
    summary_ms,
    user_text,
)
from tests.bench.model_server import MODEL_FAST, MODEL_PACED, MODEL_SLOW
from tests.bench.processes import Child, Children

R = run_pb2
CALLERS = 32
# Short enough that the takeover measurement stays short; the default (10 s) behaves the same,
# only later.
LEASE_SECONDS = 3.0
POLL_SECONDS = 0.5
SLOW_RUNS = 6


async def measure(
    children: Children, model_port: int, database_url: str, plan: Plan, reset: Callable[[], Any]
) -> dict[str, Any]:
    extra = ["--run-lease-seconds", str(LEASE_SECONDS), "--claim-poll-interval", str(POLL_SECONDS)]
    out: dict[str, Any] = {"lease_seconds": LEASE_SECONDS, "claim_poll_seconds": POLL_SECONDS}
    throughput = []
    for count in (1, 2, 3):
        reset()
        replicas = [
            children.start_service(f"replica-{count}-{i}", database_url, model_port, extra)
            for i in range(count)
        ]
        try:
            throughput.append(await _throughput(replicas, plan))
        finally:
            for replica in replicas:
                children.stop(replica)
    out["throughput"] = throughput

    reset()
    replicas = [
        children.start_service(f"replica-{i}", database_url, model_port, extra) for i in range(3)
    ]
    try:
        out["cross_replica_delay"] = await _cross_replica_delay(replicas, plan)
        out["takeover"] = await _takeover(replicas)
    finally:
        for replica in replicas:
            children.stop(replica)
    return out


async def _throughput(replicas: list[Child], plan: Plan) -> dict[str, Any]:
    stubs = [Stubs.connect(replica.port) for replica in replicas]
    try:
        assistant = await create_assistant(stubs[0], MODEL_FAST)

        async def one_run(caller: int) -> None:
            target = stubs[caller % len(stubs)]
            request = R.CreateThreadAndRunRequest(
                assistant_id=assistant.id, thread=R.ThreadInput(messages=[user_text("hi")])
            )
            last = ""
            async for event in target.runs.CreateThreadAndRunStream(request):
                last = event.event if event.event != "done" else last
            if last != "thread.run.completed":
                raise BenchError(f"a run ended with {last}")

        result = await closed_loop(
            one_run,
            CALLERS,
            plan.run_seconds,
            plan.run_warmup,
            pids=[replica.pid for replica in replicas],
        )
        return {
            "replicas": len(replicas),
            "callers": CALLERS,
            "runs_per_s": result.rate,
            "run_ms": summary_ms(result.latencies),
        }
    finally:
        for stub in stubs:
            await stub.close()


async def _cross_replica_delay(replicas: list[Child], plan: Plan) -> dict[str, Any]:
    """A run executes on replica A; its own stream there is served from memory as events are
    produced, a watcher on replica B is woken through LISTEN/NOTIFY and reads the log. The delay
    of each event is B's receive time minus A's, both clocked here."""
    home, other = Stubs.connect(replicas[0].port), Stubs.connect(replicas[1].port)
    delays: list[float] = []
    try:
        assistant = await create_assistant(home, MODEL_PACED)
        for _ in range(3 if plan.quick else 6):
            thread = await create_thread(home, str(min(plan.paced_chunks, 100)))
            stream = home.runs.CreateRunStream(
                R.CreateRunRequest(thread_id=thread.id, assistant_id=assistant.id)
            )
            first = await anext(aiter(stream))
            local: dict[int, float] = {first.sequence: time.perf_counter()}
            remote: dict[int, float] = {}

            async def watch(run_id: str, thread_id: str, seen: dict[int, float]) -> None:
                call = other.runs.WatchRun(R.WatchRunRequest(thread_id=thread_id, run_id=run_id))
                async for event in call:
                    seen[event.sequence] = time.perf_counter()

            watcher = asyncio.create_task(watch(first.run.id, thread.id, remote))
            async for event in stream:
                local[event.sequence] = time.perf_counter()
            await asyncio.wait_for(watcher, 30)
            # The watcher's first events replay the log from its start; count only live ones.
            live = [s for s in local if s in remote and remote[s] >= local[s] - 0.0005]
            delays += [max(remote[s] - local[s], 0.0) for s in live[5:]]
        if not delays:
            raise BenchError("no events seen on both replicas")
        return {"events": len(delays), "delay_ms": summary_ms(delays)}
    finally:
        await home.close()
        await other.close()


async def _takeover(replicas: list[Child]) -> dict[str, Any]:
    """Kill the replica executing some slow runs; time until each run's next event, written by
    the replica that took it over (reported to a watcher on a third replica)."""
    victim, survivor = replicas[0], replicas[1]
    home, watch = Stubs.connect(victim.port), Stubs.connect(survivor.port)
    try:
        assistant = await create_assistant(home, MODEL_SLOW)
        runs = [
            await home.runs.CreateThreadAndRun(
                R.CreateThreadAndRunRequest(
                    assistant_id=assistant.id, thread=R.ThreadInput(messages=[user_text("go")])
                )
            )
            for _ in range(SLOW_RUNS)
        ]
        streaming: dict[str, asyncio.Event] = {run.id: asyncio.Event() for run in runs}
        resumed: dict[str, float] = {}
        killed_at: list[float] = []

        async def follow(run: R.Run) -> None:
            call = watch.runs.WatchRun(R.WatchRunRequest(thread_id=run.thread_id, run_id=run.id))
            async for event in call:
                if event.event == "thread.message.delta":
                    streaming[run.id].set()
                if killed_at and run.id not in resumed:
                    resumed[run.id] = time.perf_counter()
                if event.event == "done" and killed_at:
                    call.cancel()
                    return

        followers = [asyncio.create_task(follow(run)) for run in runs]
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in streaming.values())), 30)
        await asyncio.sleep(0.5)
        assert victim.process is not None
        victim.process.send_signal(signal.SIGKILL)
        killed_at.append(time.perf_counter())
        await asyncio.wait_for(asyncio.gather(*followers), LEASE_SECONDS + 30)
        times = [resumed[run.id] - killed_at[0] for run in runs if run.id in resumed]
        if len(times) != len(runs):
            raise BenchError("some runs were never taken over")
        return {"runs": len(runs), "resume_s": summary_ms(times)}
    finally:
        await home.close()
        await watch.close()
