"""What operating costs (README "Operating"): the service's CPU per unary call (GetAssistant, 16
in flight) and per run (CreateThreadAndRunStream against the fast model, 8 in flight) with
metrics off (`--metrics-port 0`), with metrics on (and scraped), and with traces on exported
over OTLP/HTTP (to a sink in the bench process that reads and discards them).

Three service processes, each on its own SQLite file, measured in the same bench run in short
slices that take turns (their order rotating each round), so a burst of load from anything else
on the machine hits all three alike. The figures are CPU per call, which a busy machine changes
far less than calls per second.

Two kinds of rounds. Saturated: each variant as fast as its callers go (a closed loop), for its
calls per second. Paced: each variant at the same steady rate (70% of the slowest variant's
saturated rate), for the figures: on two cores shared by the callers, the services and the OTLP
sink, a closed loop's CPU per call also measures how busy the callers kept the service (one kept
less busy batches less per event-loop turn and spends more per call), so only at equal load is
the difference between variants what the variant costs."""

from __future__ import annotations

import threading
import time
import urllib.request
from collections.abc import Awaitable, Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Final

from assistants_grpc_client.v1 import assistant_pb2

from tests.bench.common import (
    CALL_TIMEOUT,
    BenchError,
    LoadResult,
    Plan,
    R,
    Stubs,
    closed_loop,
    create_assistant,
    paced_loop,
    percentile,
    user_text,
)
from tests.bench.model_server import MODEL_FAST
from tests.bench.processes import HOST, Child, Children, free_port
from tests.bench.runs import check_completed, consume

VARIANTS: Final = ("metrics_off", "metrics_on", "traced")
UNARY_IN_FLIGHT: Final = 16
RUNS_IN_FLIGHT: Final = 8
# The paced rounds' rate: this share of the slowest variant's saturated calls per second.
PACED_SHARE: Final = 0.7


class _Sink:
    """An OTLP/HTTP endpoint that accepts every export and keeps only a count of the bytes."""

    def __init__(self) -> None:
        self.requests = 0
        self.bytes = 0
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                size = int(self.headers.get("content-length", "0"))
                self.rfile.read(size)
                sink.requests += 1
                sink.bytes += size
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer((HOST, 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def endpoint(self) -> str:
        return f"http://{HOST}:{self.server.server_port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://{HOST}:{port}/metrics", timeout=10) as response:
        return str(response.read().decode())


def _metric(text: str, name: str) -> float:
    """The sum of `name`'s samples in a scrape."""
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name + "{") or line.startswith(name + " ")
    )


def _merge(results: list[LoadResult], pid: int) -> dict[str, Any]:
    calls = sum(r.calls for r in results)
    seconds = sum(r.seconds for r in results)
    cpu = sum(r.cpu.get(pid, 0.0) for r in results)
    return {
        "count": calls,
        "per_s": round(calls / seconds, 1) if seconds else None,
        "server_cpu_ms": round(cpu / calls * 1000, 3) if calls else None,
    }


async def measure(children: Children, model_port: int, tmp: Path, plan: Plan) -> dict[str, Any]:
    sink = _Sink()
    metrics_port = free_port()
    services: dict[str, Child] = {}
    try:
        services["metrics_off"] = children.start_service(
            "service-metrics-off", f"sqlite:///{tmp / 'obs-off.db'}", model_port
        )
        services["metrics_on"] = children.start_service(
            "service-metrics-on",
            f"sqlite:///{tmp / 'obs-on.db'}",
            model_port,
            ["--metrics-port", str(metrics_port)],
        )
        services["traced"] = children.start_service(
            "service-traced",
            f"sqlite:///{tmp / 'obs-traced.db'}",
            model_port,
            env={
                "OTEL_EXPORTER_OTLP_ENDPOINT": sink.endpoint,
                "OTEL_SERVICE_NAME": "assistants-grpc-bench",
                # Exports as a deployment makes them, by the batch of 512 spans (the SDK's
                # default; about every half second at the paced GetAssistant rate), with the
                # timer at 1 s rather than 5 s so the runs' few spans are exported within
                # the slice that made them, most of them: their CPU counted where it is due.
                "OTEL_BSP_SCHEDULE_DELAY": "1000",
            },
        )
        return await _measure(services, metrics_port, sink, plan)
    finally:
        for child in services.values():
            children.stop(child)
        sink.close()


async def _measure(
    services: dict[str, Child], metrics_port: int, sink: _Sink, plan: Plan
) -> dict[str, Any]:
    stubs = {name: Stubs.connect(child.port) for name, child in services.items()}
    try:
        assistants = {name: await create_assistant(s, MODEL_FAST) for name, s in stubs.items()}

        def unary(name: str) -> Any:
            request = assistant_pb2.GetAssistantRequest(assistant_id=assistants[name].id)

            async def call(_index: int) -> None:
                await stubs[name].assistants.GetAssistant(request, timeout=CALL_TIMEOUT)

            return call

        def run(name: str) -> Any:
            request = R.CreateThreadAndRunRequest(
                assistant_id=assistants[name].id,
                thread=R.ThreadInput(messages=[user_text("Say fifty words.")]),
            )

            async def call(_index: int) -> None:
                began = time.perf_counter()
                stats = await consume(
                    stubs[name].runs.CreateThreadAndRunStream(request, timeout=CALL_TIMEOUT),
                    began,
                )
                check_completed(stats, f"{name}: CreateThreadAndRunStream")

            return call

        scrape_before = _scrape(metrics_port)
        # Many short rounds, each measuring the three variants back to back (in a rotating
        # order): a busy machine's load changes between rounds more than within one.
        # Slices of a second or more: /proc counts CPU in 10 ms ticks.
        rounds = 2 if plan.quick else 6
        unary_seconds = max(plan.unary_seconds / 2, 0.5)
        run_seconds = max(plan.run_seconds / 3, 0.5)
        kinds = (
            ("unary", unary, UNARY_IN_FLIGHT, unary_seconds),
            ("runs", run, RUNS_IN_FLIGHT, run_seconds),
        )

        async def in_rounds(
            measure: Callable[[str, Any, int, float, int], Awaitable[LoadResult]],
        ) -> dict[str, dict[str, list[LoadResult]]]:
            """{kind: {variant: one result a round}}: `measure(kind, call, in flight,
            seconds, pid)` of each kind and variant, the variants' order rotating."""
            out: dict[str, dict[str, list[LoadResult]]] = {
                kind: {name: [] for name in VARIANTS} for kind, *_ in kinds
            }
            for index in range(rounds):
                order = VARIANTS[index % 3 :] + VARIANTS[: index % 3]
                for kind, make, in_flight, seconds in kinds:
                    for name in order:
                        result = await measure(
                            kind, make(name), in_flight, seconds, services[name].pid
                        )
                        out[kind][name].append(result)
            return out

        saturated = await in_rounds(
            lambda _kind, call, in_flight, seconds, pid: closed_loop(
                call, in_flight, seconds, plan.unary_warmup, pids=(pid,)
            )
        )
        rates = {
            kind: PACED_SHARE * min(sum(r.calls for r in got) / sum(r.seconds for r in got)
                                    for got in saturated[kind].values())
            for kind, *_ in kinds
        }  # fmt: skip
        paced = await in_rounds(
            lambda kind, call, in_flight, seconds, pid: paced_loop(
                call,
                rates[kind],
                seconds,
                plan.unary_warmup,
                max_in_flight=4 * in_flight,
                pids=(pid,),
            )
        )
        # A scrape, as Prometheus would make: it must count what was done.
        scrape_after = _scrape(metrics_port)
        runs_counted = _metric(scrape_after, "assistants_runs_finished_total") - _metric(
            scrape_before, "assistants_runs_finished_total"
        )
        runs_made = sum(r.calls for r in saturated["runs"]["metrics_on"])
        runs_made += sum(r.calls for r in paced["runs"]["metrics_on"])
        if runs_counted < runs_made:
            raise BenchError(f"/metrics counted {runs_counted} runs of {runs_made} finished")
    finally:
        for s in stubs.values():
            await s.close()

    def over_off(results: dict[str, list[LoadResult]], name: str) -> dict[str, Any]:
        """The variant's CPU per call over metrics off's: pooled over the rounds (the figure),
        and round by round (a round's three slices saw about the same machine)."""
        off_pid, pid = services["metrics_off"].pid, services[name].pid
        pooled_off = _merge(results["metrics_off"], off_pid)["server_cpu_ms"]
        pooled = _merge(results[name], pid)["server_cpu_ms"]
        rounds = []
        for off, other in zip(results["metrics_off"], results[name], strict=True):
            off_ms, other_ms = off.cpu_per_call_ms(off_pid), other.cpu_per_call_ms(pid)
            if off_ms and other_ms:
                rounds.append(round(other_ms / off_ms - 1, 4))
        return {
            "pooled": round(pooled / pooled_off - 1, 4) if pooled and pooled_off else None,
            "median_of_rounds": round(percentile(rounds, 50), 4) if rounds else None,
            "rounds": rounds,
        }

    def cells(kind: str) -> dict[str, Any]:
        got, sat = paced[kind], saturated[kind]
        return {
            **{name: _merge(got[name], services[name].pid) for name in VARIANTS},
            "paced_per_s": round(rates[kind], 1),
            "metrics_cpu_overhead": over_off(got, "metrics_on"),
            "tracing_cpu_overhead": over_off(got, "traced"),
            "saturated": {
                **{name: _merge(sat[name], services[name].pid) for name in VARIANTS},
                "metrics_cpu_overhead": over_off(sat, "metrics_on"),
                "tracing_cpu_overhead": over_off(sat, "traced"),
            },
        }

    return {
        "unary": {"method": "GetAssistant", "in_flight": UNARY_IN_FLIGHT, "rounds": rounds}
        | cells("unary"),
        "runs": {"in_flight": RUNS_IN_FLIGHT, "rounds": rounds} | cells("runs"),
        "scrape_bytes": len(scrape_after.encode()),
        "otlp_exports": sink.requests,
        "otlp_bytes": sink.bytes,
    }
