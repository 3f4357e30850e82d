"""Writes `results.json` (everything measured) and `results.md` (the targets with pass/fail, then
one table per measurement, with the date, the machine and the versions)."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from tests.bench.processes import REPO_ROOT

PACKAGES = (
    "grpcio",
    "protobuf",
    "openai",
    "SQLAlchemy",
    "uvloop",
    "psycopg",
    "tiktoken",
)


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "os": f"{platform.system()} {platform.release()}",
    }


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def commit() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "src"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + (" (src/ modified)" if dirty else "")


@dataclass(frozen=True)
class Target:
    name: str
    path: tuple[str, ...]  # where the value is in the sections
    unit: str
    goal: str
    passes: Callable[[float], bool]


def _ratio(method: str, share: float) -> Target:
    return Target(
        f"{method} at 16 in flight, share of echo calls/s",
        ("unary", "methods", method, "16", "ratio_to_echo"),
        "x",
        f"≥ {share:.2f}",
        lambda v: v >= share,
    )


def _search(backend: str, kind: str, quantile: str) -> Target:
    """SearchVectorStore over 100,000 chunks: p50 < 20 ms and p99 < 60 ms, each backend."""
    bound = 20 if quantile == "p50" else 60
    section = "files" if backend == "SQLite" else "files_postgres"
    where = "" if backend == "SQLite" else ", PostgreSQL"
    return Target(
        f"SearchVectorStore over 100,000 chunks, {kind}{where}, {quantile}",
        (section, f"search_{kind}", f"{quantile}_ms"),
        "ms",
        f"< {bound}",
        lambda v: v < bound,
    )


TARGETS = (
    _ratio("GetAssistant", 0.40),
    Target(
        "HTTP GetAssistant at 16 in flight, share of gRPC calls/s",
        ("http", "get_assistant", "ratio_to_grpc"),
        "x",
        "≥ 0.70",
        lambda v: v >= 0.70,
    ),
    Target(
        "Added latency to first delta over SSE vs gRPC, median",
        ("http", "first_delta", "added_p50_ms"),
        "ms",
        "≤ 1",
        lambda v: v <= 1,
    ),
    _ratio("CreateMessage", 0.25),
    Target(
        "Added latency to first delta, median",
        ("runs", "first_delta", "added_p50_ms"),
        "ms",
        "< 5",
        lambda v: v < 5,
    ),
    Target(
        "Added latency to first delta, p99",
        ("runs", "first_delta", "added_p99_ms"),
        "ms",
        "< 25",
        lambda v: v < 25,
    ),
    Target(
        "First delta with Nagle on the model server, median, minus without",
        ("runs", "nagle", "vs_nodelay", "first_delta_p50_ms"),
        "ms",
        "< 2",
        lambda v: v < 2,
    ),
    Target(
        "Complete runs/s, SQLite, 32 callers",
        ("runs", "throughput", "cells", "32", "runs_per_s"),
        "runs/s",
        "≥ 100",
        lambda v: v >= 100,
    ),
    Target(
        "Server resident memory with 1,000 open streams",
        ("streams", "rss_with_streams_mb"),
        "MB",
        "< 300",
        lambda v: v < 300,
    ),
    *(
        _search(backend, kind, q)
        for backend in ("SQLite", "PostgreSQL")
        for kind in ("lexical", "hybrid")
        for q in ("p50", "p99")
    ),
    Target(
        "Ingestion of plain text, SQLite",
        ("files", "ingest", "chunks_per_s"),
        "chunks/s",
        "≥ 1,000",
        lambda v: v >= 1000,
    ),
    Target(
        "Ingestion beside a run caller: its first-delta median, added",
        ("files", "ingest_beside_runs", "first_delta_p50_added_ms"),
        "ms",
        "≤ 1",
        lambda v: v <= 1,
    ),
    Target(
        "Prompt of a 10,000-message thread (build_prompt)",
        ("prompt", "in_process", "build_ms_p50"),
        "ms",
        "< 50",
        lambda v: v < 50,
    ),
    Target(
        "Same, with a 100,000-token message in it (shortened)",
        ("prompt", "in_process", "document_first", "build_ms_p50"),
        "ms",
        "< 20",
        lambda v: v < 20,
    ),
    Target(
        "Metrics on: server CPU per GetAssistant over metrics off (paced)",
        ("observability", "unary", "metrics_cpu_overhead", "pooled"),
        "x",
        "< +0.05",
        lambda v: v < 0.05,
    ),
    Target(
        "Metrics on: server CPU per run over metrics off (paced)",
        ("observability", "runs", "metrics_cpu_overhead", "pooled"),
        "x",
        "< +0.05",
        lambda v: v < 0.05,
    ),
    Target(
        "Traces on (OTLP export): server CPU per run over metrics off (paced)",
        ("observability", "runs", "tracing_cpu_overhead", "pooled"),
        "x",
        "< +0.10",
        lambda v: v < 0.10,
    ),
    Target(
        "Traces on (OTLP export): server CPU per GetAssistant over metrics off (paced)",
        ("observability", "unary", "tracing_cpu_overhead", "pooled"),
        "x",
        "< +0.10",
        lambda v: v < 0.10,
    ),
    Target(
        "code: first call of a thread (warm pool, the default), median",
        ("code", "first_call", "p50_ms"),
        "ms",
        "< 700",
        lambda v: v < 700,
    ),
    Target(
        "code: the same without the warm pool (--code-interpreter-warm 0), median",
        ("code", "first_call_no_pool", "p50_ms"),
        "ms",
        "< 700",
        lambda v: v < 700,
    ),
    Target(
        "code: a later call's overhead (print(1)), median",
        ("code", "later_call_print1", "p50_ms"),
        "ms",
        "< 15",
        lambda v: v < 15,
    ),
)


def _get(sections: dict[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = sections
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def evaluate(sections: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for target in TARGETS:
        value = _get(sections, target.path)
        out.append(
            {
                "figure": target.name,
                "value": value,
                "unit": target.unit,
                "target": target.goal,
                "pass": None if value is None else bool(target.passes(float(value))),
            }
        )
    return out


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if value >= 100:
            return f"{value:,.0f}"
        return f"{value:.3g}" if value < 10 else f"{value:.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_fmt(c) for c in row) + " |" for row in rows]
    return [*lines, ""]


def markdown(results: dict[str, Any]) -> str:
    s = results["sections"]
    m, v = results["machine"], results["versions"]
    lines = [
        "# Benchmark results",
        "",
        f"{results['date']} · `{results['command']}` ({results['mode']} mode, "
        f"{results['duration_s']:.0f} s) · commit {results['commit']}",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['os']}. "
        + ", ".join(f"{k} {val}" for k, val in v.items())
        + (f", {results['postgresql']}" if results.get("postgresql") else "")
        + ".",
        "",
        "Everything runs on this machine over 127.0.0.1: the service (`assistants-grpc serve`), "
        "the model server (the project's fake model in its own process), the bare grpc.aio echo "
        "server, and the bench client (grpc.aio), so client and servers share the cores. Compare "
        "ratios, not absolute numbers.",
        "",
        "## Targets",
        "",
    ]
    rows = []
    for t in results["targets"]:
        verdict = {True: "pass", False: "**FAIL**", None: "not measured"}[t["pass"]]
        rows.append([t["figure"], f"{_fmt(t['value'])} {t['unit']}", t["target"], verdict])
    lines += _table(["Figure", "Measured", "Target", ""], rows)
    lines += _load(results.get("cpu") or {})
    if results.get("errors"):
        lines += ["## Errors", ""]
        lines += [f"- **{name}**: {error}" for name, error in results["errors"].items()]
        lines.append("")
    if "unary" in s:
        lines += _unary(s["unary"])
    if "runs" in s or "postgres" in s:
        lines += _runs(s)
    if "http" in s:
        lines += _http(s["http"])
    if "tools" in s:
        lines += _tools(s["tools"])
    if "streams" in s:
        lines += _streams(s["streams"])
    if "prompt" in s:
        lines += _prompt(s["prompt"])
    if "files" in s:
        lines += _files(s["files"], s.get("files_postgres"))
    if "observability" in s:
        lines += _observability(s["observability"])
    if "replicas" in s:
        lines += _replicas(s["replicas"])
    if "import" in s:
        lines += _import(s["import"])
    return "\n".join(lines).rstrip() + "\n"


def _observability(o: dict[str, Any]) -> list[str]:
    u, r = o["unary"], o["runs"]
    lines = [
        "## Operating: metrics and traces",
        "",
        "Three service processes (SQLite each), in slices that take turns: metrics off "
        "(`--metrics-port 0`), metrics on (scraped at the end: it counted every run), and traces "
        f"on with the OTLP/HTTP exporter (to a sink in the bench process: {o['otlp_exports']} "
        f"exports, {o['otlp_bytes']:,} bytes). GetAssistant at {u['in_flight']} in flight, "
        f"CreateThreadAndRunStream (the fast model) at {r['in_flight']}, in {r['rounds']} "
        "rounds of each kind. Paced (the figures): every variant at the same rate, "
        f"{u.get('paced_per_s', '-')} GetAssistant/s and {r.get('paced_per_s', '-')} runs/s "
        "(70% of the slowest variant's saturated rate), so the CPU per call compares like with "
        "like; saturated: as fast as the callers go, for the rates (a closed loop's CPU per call "
        'also measures how busy its callers kept the service). "vs off" is the CPU per call '
        "over metrics off's, pooled over the rounds (then round by round). A scrape is "
        f"{o['scrape_bytes']:,} bytes.",
        "",
    ]
    rows = []
    for what, cells in (("GetAssistant", u), ("run", r)):
        for load, group in (("paced", cells), ("saturated", cells.get("saturated"))):
            if group is None:
                continue
            for name in ("metrics_off", "metrics_on", "traced"):
                cell = group[name]
                overhead = {
                    "metrics_off": None,
                    "metrics_on": group["metrics_cpu_overhead"],
                    "traced": group["tracing_cpu_overhead"],
                }[name]
                shown = None
                if overhead is not None and overhead["pooled"] is not None:
                    each = ", ".join(f"{x:+.0%}" for x in overhead["rounds"])
                    shown = f"{overhead['pooled']:+.1%} ({each})"
                rows.append(
                    [what, load, name.replace("_", " "), cell["count"], cell["per_s"],
                     cell["server_cpu_ms"], shown]
                )  # fmt: skip
    return lines + _table(
        ["call", "load", "variant", "count", "per s", "server CPU ms per call", "vs off"], rows
    )


def _files(f: dict[str, Any], pg: dict[str, Any] | None = None) -> list[str]:
    i = f["ingest"]
    lines = [
        "## Files and vector stores",
        "",
        f"Ingestion (SQLite, plain text, auto chunking 800/400): {i['files']} files, "
        f"{i['chunks']:,} chunks in {i['seconds']} s. Search: one caller, one query at a time, "
        f"over one store of {f['chunks']:,} chunks (hybrid: with 256-float vectors, the fake "
        "model's /v1/embeddings for the query).",
        "",
    ]
    b = f.get("ingest_beside_runs")
    if b is not None:
        lines += [
            f"Beside it, {b['files']} other files ({b['chunks']:,} chunks) ingested while one "
            "caller streams runs back to back (fast model): its time to the first delta then, "
            "against alone (half the samples before the ingestion, half after).",
            "",
        ]
    rows = [
        ["ingestion, chunks/s", i["chunks_per_s"], "", ""],
        *([["ingestion beside runs, chunks/s", b["chunks_per_s"], "", ""],
           ["first delta, runs alone", b["first_delta_alone"]["n"],
            b["first_delta_alone"]["p50_ms"], b["first_delta_alone"]["p99_ms"]],
           ["first delta, runs beside the ingestion", b["first_delta_beside"]["n"],
            b["first_delta_beside"]["p50_ms"], b["first_delta_beside"]["p99_ms"]]]
          if b is not None else []),
        ["SearchVectorStore, lexical", f["search_lexical"]["n"],
         f["search_lexical"]["p50_ms"], f["search_lexical"]["p99_ms"]],
        ["SearchVectorStore, hybrid", f["search_hybrid"]["n"],
         f["search_hybrid"]["p50_ms"], f["search_hybrid"]["p99_ms"]],
        *([[f"SearchVectorStore, {kind}, PostgreSQL", pg[key]["n"],
            pg[key]["p50_ms"], pg[key]["p99_ms"]]
           for kind, key in (("lexical", "search_lexical"), ("hybrid", "search_hybrid"))
           if key in pg] if pg else []),
    ]  # fmt: skip
    run = f.get("file_search_run")
    if run is not None:
        # The service's added time over the run's two model turns (the model server's own time
        # for them, made directly, taken off), the search included.
        rows.append(
            ["run with one file_search round, service's added time", run["n"],
             run["service_p50_ms"], run["service_p99_ms"]]
        )  # fmt: skip
    return lines + _table(["", "n / value", "p50 ms", "p99 ms"], rows)


def _http(h: dict[str, Any]) -> list[str]:
    g, d, b = h["get_assistant"], h["first_delta"], h["grpc_beside_busy_http"]
    lines = [
        "## The HTTP face beside gRPC",
        "",
        "The same service process serves both faces. GetAssistant at "
        f"{g['in_flight']} in flight over HTTP (a keep-alive connection per caller) and over "
        "gRPC, in alternating slices; the first `thread.message.delta` of a run streamed over "
        "SSE and over CreateRunStream, one run of each in turn; gRPC latency (1 in flight) "
        f"alone and while {b['http_callers']} HTTP callers keep the HTTP face busy.",
        "",
    ]
    rows = [
        ["GetAssistant over HTTP", g["http"]["calls_per_s"], g["http"]["p50_ms"],
         g["http"]["p99_ms"], g["http"]["server_cpu_ms"]],
        ["GetAssistant over gRPC", g["grpc"]["calls_per_s"], g["grpc"]["p50_ms"],
         g["grpc"]["p99_ms"], g["grpc"]["server_cpu_ms"]],
    ]  # fmt: skip
    lines += _table(["Calls", "calls/s", "p50 ms", "p99 ms", "server CPU ms/call"], rows)
    lines += [
        f"HTTP/gRPC: {_fmt(g['ratio_to_grpc'])} by calls/s, "
        f"{_fmt(g.get('cpu_ratio_to_grpc'))} by the service's CPU per call.",
        "",
    ]
    rows = [
        ["First delta over SSE", d["http_sse"]["p50_ms"], d["http_sse"]["p99_ms"]],
        ["First delta over gRPC", d["grpc"]["p50_ms"], d["grpc"]["p99_ms"]],
        ["gRPC GetAssistant alone", b["grpc_alone"]["p50_ms"], b["grpc_alone"]["p99_ms"]],
        [
            f"gRPC GetAssistant beside {b['http_calls_per_s']:.0f} HTTP calls/s",
            b["grpc_beside_busy_http"]["p50_ms"],
            b["grpc_beside_busy_http"]["p99_ms"],
        ],
    ]
    lines += _table(["Latency", "p50 ms", "p99 ms"], rows)
    return lines


def _replicas(r: dict[str, Any]) -> list[str]:
    lines = ["## Several replicas on one PostgreSQL", ""]
    if "skipped" in r:
        return [*lines, f"Skipped: {r['skipped']}", ""]
    lines += [
        "Replica processes of the service on one PostgreSQL database, all on this machine's two "
        f"cores (so more replicas add coordination, not CPU). Runs are created round-robin over "
        f"the replicas by {r['throughput'][0]['callers']} callers, each a CreateThreadAndRunStream "
        "to `done` with the model that answers at once.",
        "",
    ]
    rows = [
        [t["replicas"], round(t["runs_per_s"], 1), t["run_ms"]["p50_ms"], t["run_ms"]["p99_ms"]]
        for t in r["throughput"]
    ]
    lines += _table(["Replicas", "runs/s", "run p50 ms", "run p99 ms"], rows)
    delay = r.get("cross_replica_delay")
    if delay:
        d = delay["delay_ms"]
        lines += [
            "",
            "Delay between an event reaching the run's own stream on the replica executing it and "
            "a WatchRun on another replica (LISTEN/NOTIFY, then a log read), over "
            f"{delay['events']} events: **p50 {_fmt(d['p50_ms'])} ms, p99 {_fmt(d['p99_ms'])} ms** "
            f"(max {_fmt(d['max_ms'])} ms).",
        ]
    takeover = r.get("takeover")
    if takeover:
        t = takeover["resume_s"]
        lines += [
            "",
            f"A replica killed with SIGKILL while executing {takeover['runs']} runs: time from the "
            "kill to each run's next event, written by the replica that took it over "
            f"(lease {r['lease_seconds']} s, claim poll {r['claim_poll_seconds']} s): "
            f"**p50 {_fmt(t['p50_ms'] / 1000)} s, max {_fmt(t['max_ms'] / 1000)} s**.",
        ]
    return [*lines, ""]


NOISY_PCT = 10.0


def _load(cpu: dict[str, dict[str, float]]) -> list[str]:
    if not cpu:
        return []
    parts = [
        f"{name} {c['machine_busy_pct']:.0f}% busy ({c['other_processes_pct']:.0f}% other)"
        for name, c in cpu.items()
    ]
    lines = [
        'Machine load per section (all cores; "other" is CPU used by processes outside the '
        "benchmark, PostgreSQL's own included): " + ", ".join(parts) + ".",
        "",
    ]
    noisy = [n for n, c in cpu.items() if c["other_processes_pct"] >= NOISY_PCT]
    if noisy:
        lines += [
            f"**Noisy:** other processes used ≥ {NOISY_PCT:.0f}% of the machine during "
            f"{', '.join(noisy)}; rerun on a quiet machine for stable figures.",
            "",
        ]
    return lines


def _unary(u: dict[str, Any]) -> list[str]:
    lines = [
        "## Unary calls",
        "",
        "Closed loop: N callers on one channel each send the next call when the previous one "
        "returns. Each cell alternates in short slices with the echo server at the same N (one "
        "message-sized payload); the ratio is to those echo slices. The CPU ratio is echo "
        "server CPU per call over service CPU per call: the same comparison, steadier when "
        "other processes share the machine.",
        "",
    ]
    rows = []
    for method, cells in u["methods"].items():
        for n, c in cells.items():
            rows.append(
                [
                    method,
                    int(n),
                    c["calls_per_s"],
                    c["p50_ms"],
                    c["p99_ms"],
                    _us(c.get("server_cpu_ms")),
                    c.get("echo_calls_per_s"),
                    c.get("ratio_to_echo"),
                    c.get("cpu_ratio_to_echo"),
                ]
            )
    header = [
        "Call",
        "In flight",
        "calls/s",
        "p50 ms",
        "p99 ms",
        "server CPU us/call",
        "echo calls/s",
        "ratio to echo",
        "CPU ratio",
    ]
    return lines + _table(header, rows)


def _us(value_ms: float | None) -> float | None:
    return None if value_ms is None else round(value_ms * 1000)


_NAGLE_ROW = " (Nagle on)"
_STORAGES = (("SQLite", "runs"), ("PostgreSQL", "postgres"))


def _variants(s: dict[str, Any]) -> list[tuple[str, dict[str, Any], dict[str, Any] | None]]:
    """(row label, figures, figures of the usual variant to compare with or None), for each
    storage measured and each model server variant."""
    out: list[tuple[str, dict[str, Any], dict[str, Any] | None]] = []
    for storage, key in _STORAGES:
        if key not in s:
            continue
        out.append((storage, s[key], None))
        if "nagle" in s[key]:
            out.append((storage + _NAGLE_ROW, s[key]["nagle"], s[key]))
    return out


def _minus(value: float | None, usual: float | None) -> float | None:
    return None if value is None or usual is None else round(value - usual, 3)


def _runs(s: dict[str, Any]) -> list[str]:
    lines = [
        "## Runs",
        "",
        "A model server that answers at once with 50 text chunks. Each caller loops "
        "CreateThreadAndRunStream to `done` (the run `completed`).",
        "",
    ]
    rows = []
    for storage, key in _STORAGES:
        if key not in s:
            continue
        for n, c in s[key]["throughput"]["cells"].items():
            rows.append(
                [
                    storage,
                    int(n),
                    c["runs_per_s"],
                    c["p50_ms"],
                    c["p99_ms"],
                    c.get("first_delta_p50_ms"),
                    c["server_cpu_ms"],
                    c.get("model_server_cpu_ms"),
                    c.get("bench_client_cpu_ms"),
                ]
            )
    header = [
        "Storage",
        "Callers",
        "runs/s",
        "run p50 ms",
        "run p99 ms",
        "first delta p50 ms",
        "service CPU ms/run",
        "model server CPU ms/run",
        "bench client CPU ms/run",
    ]
    lines += _table(header, rows)
    lines += [
        "Added latency to the first `thread.message.delta`, one run at a time: the time from "
        "sending CreateRunStream (thread already made) to its first message delta, minus the "
        "median time the model server itself takes to its first content chunk (the same "
        "request made directly with `openai.AsyncOpenAI` on the service's HTTP client, "
        "stream=True, alternating with the runs). Rows marked "
        f"*{_NAGLE_ROW.strip()}*: the same model server with Nagle's algorithm left on (no "
        "`TCP_NODELAY`, each SSE chunk its own write, as simple servers do), reached over the "
        "service's reused connections, taking turns with the usual one; *Δ* is their time to "
        "the first delta minus the usual row's (issue 18: a client that delays its ACKs waits "
        "~40 ms there, in some runs or all, so the mean shows it best).",
        "",
    ]
    rows = []
    for label, figures, usual in _variants(s):
        f = figures["first_delta"]
        service, base = f["service_to_first_delta"], None
        if usual is not None:
            base = usual["first_delta"]["service_to_first_delta"]
        rows.append(
            [
                label,
                f["samples"],
                service["p50_ms"],
                service["p99_ms"],
                _minus(service["p50_ms"], base and base["p50_ms"]),
                _minus(service["mean_ms"], base and base["mean_ms"]),
                f["model_to_first_chunk"]["p50_ms"],
                f["model_to_first_chunk"]["p99_ms"],
                f["added_p50_ms"],
                f["added_p99_ms"],
            ]
        )
    header = [
        "Storage",
        "runs",
        "service p50 ms",
        "service p99 ms",
        "Δ p50 ms",
        "Δ mean ms",
        "model p50 ms",
        "model p99 ms",
        "added p50 ms",
        "added p99 ms",
    ]
    lines += _table(header, rows)
    for label, figures, usual in _variants(s):
        plain = figures.get("plain_sdk_to_first_chunk")
        if plain and usual is not None:
            lines += [
                f"{label}: a plain `openai.AsyncOpenAI` (the SDK's default HTTP client) over "
                f"its reused connection gets the first content chunk after {plain['p50_ms']:.1f} "
                f"ms (median of {plain['n']}; p99 {plain['p99_ms']:.1f} ms), against "
                f"{figures['first_delta']['model_to_first_chunk']['p50_ms']:.1f} ms with the "
                "service's HTTP client.",
                "",
            ]
    lines += _nagle_mixed(s)
    for storage, key in (("SQLite", "runs"), ("PostgreSQL", "postgres")):
        timeline = s.get(key, {}).get("first_delta", {}).get("timeline_p50_ms")
        if timeline:
            steps = ", ".join(f"`{name}` {t:.1f}" for name, t in timeline.items())
            lines += [f"{storage}, when each event reaches the caller (median ms): {steps}.", ""]
    one = s.get("runs", {}).get("one_stream")
    if one:
        per_run = s["runs"]["throughput"].get("events_per_run_p50")
        rate = s["runs"]["first_delta"].get("stream_events_per_s_p50")
        lines += [
            "Events on one stream: a 50-chunk run streams "
            f"{_fmt(per_run)} events (deltas are coalesced), at {_fmt(rate)} events/s from its "
            f"first event to `done`. A run whose model paces {one['model_chunks']} chunks "
            f"{one['model_chunk_delay_ms']:.0f} ms apart (each becomes its own event) streams "
            f"{one['events']} events live at {_fmt(one['live_events_per_s'])} events/s (the "
            "model's pace); replaying that whole log with WatchRun(after_sequence=0) delivers "
            f"**{_fmt(one['replay_events_per_s'])} events/s** on one stream "
            f"({one['replay_ms_p50']:.1f} ms for {one['events']} events).",
            "",
        ]
    return lines


def _nagle_mixed(s: dict[str, Any]) -> list[str]:
    rows = []
    concurrency = None
    for storage, key in _STORAGES:
        mixed = s.get(key, {}).get("nagle", {}).get("mixed")
        if not mixed:
            continue
        concurrency = mixed["concurrency"]
        halves = mixed["variants"]
        for name, label in (("nodelay", storage), ("nagle", storage + _NAGLE_ROW)):
            half = halves[name]
            usual = halves["nodelay"] if name == "nagle" else None
            rows.append(
                [
                    label,
                    half["runs"],
                    half["first_delta_p50_ms"],
                    half["first_delta_p99_ms"],
                    _minus(half["first_delta_p50_ms"], usual and usual["first_delta_p50_ms"]),
                    _minus(half["first_delta_mean_ms"], usual and usual["first_delta_mean_ms"]),
                    half.get("in_progress_to_first_delta_p50_ms"),
                    _minus(
                        half.get("in_progress_to_first_delta_mean_ms"),
                        usual and usual.get("in_progress_to_first_delta_mean_ms"),
                    ),
                    half["run_p50_ms"],
                ]
            )
    if not rows:
        return []
    header = [
        "Model server",
        "runs",
        "first delta p50 ms",
        "p99 ms",
        "Δ p50 ms",
        "Δ mean ms",
        "from in_progress p50 ms",
        "Δ mean ms",
        "run p50 ms",
    ]
    return [
        f"{concurrency} callers at once, every other one on the model server with Nagle left on: "
        "both halves share the queue and the machine, which at this load make most of the time "
        "to the first delta. *From in_progress*: from the run's `thread.run.in_progress` (a "
        "worker has it; the model call comes next) to its first delta, without the queue.",
        "",
        *_table(header, rows),
    ]


def _tools(t: dict[str, Any]) -> list[str]:
    mdl = t["model_server"]
    lines = [
        "## Tool rounds",
        "",
        f"A run with {t['rounds']} function-tool rounds ({t['model_turns']} model turns: two "
        "tool calls, then the answer), driven through "
        f"{t['via']}. The service's part is the end-to-end time minus the model server's own "
        "time for the same three turns (called directly, median) minus the client's tool "
        "functions; it includes the client library's own work.",
        "",
    ]
    rows = [["model server alone (3 turns)", mdl["n"], mdl["p50_ms"], mdl["p99_ms"], "", ""]]
    for key, label in (("runner", "tool runner"), ("raw_stubs", "raw stubs")):
        if key in t:
            e = t[key]["end_to_end"]
            rows.append(
                [
                    f"{label}: end to end",
                    e["n"],
                    e["p50_ms"],
                    e["p99_ms"],
                    t[key]["service_p50_ms"],
                    t[key]["service_p99_ms"],
                ]
            )
    header = ["", "runs", "p50 ms", "p99 ms", "service p50 ms", "service p99 ms"]
    lines += _table(header, rows)
    lines += [
        f"Service time per model turn (p50): {t['service_per_model_turn_p50_ms']:.1f} ms.",
        "",
    ]
    return lines


def _streams(w: dict[str, Any]) -> list[str]:
    lines = [
        "## Streams at scale",
        "",
        f"{w['streams']:,} WatchRun streams over {w['channels']} connections on {w['runs']} runs "
        f"in progress (the model sends a chunk every {w['model_chunk_delay_ms']:.0f} ms). "
        "Memory is the server's VmRSS before and after opening them; the spread is, for each "
        "event, each watcher's receipt time minus the first watcher's (client-side receive "
        f"time, so it includes the bench client's own work), over {w['measured_seconds']:.1f} s.",
        "",
    ]
    rows = [
        ["streams opened in (s)", w["open_seconds"]],
        ["server RSS before (MB)", w["rss_before_mb"]],
        ["server RSS with the streams (MB)", w["rss_with_streams_mb"]],
        ["RSS per stream (KB)", w["rss_per_stream_kb"]],
        ["events x watchers delivered", w["deliveries"]],
        ["missed deliveries", w["missed_deliveries"]],
        ["delivery spread p50 (ms)", w["spread_p50_ms"]],
        ["delivery spread p99 (ms)", w["spread_p99_ms"]],
        ["delivery spread max (ms)", w["spread_max_ms"]],
        ["server CPU while delivering (% of a core)", w.get("server_cpu_pct")],
        ["server CPU per delivery (us)", w.get("server_cpu_us_per_delivery")],
        ["bench client CPU per delivery (us)", w.get("bench_client_cpu_us_per_delivery")],
    ]
    return lines + _table(["", ""], rows)


def _prompt(p: dict[str, Any]) -> list[str]:
    i, d = p["in_process"], p["from_database"]
    lines = [
        "## Long threads",
        "",
        f"A {i['messages_in_thread']:,}-message thread, `auto` truncation for gpt-4o "
        f"(128k window, 4,096 kept for the answer): {i['messages_kept']:,} messages kept, "
        f"{i['prompt_tokens']:,} prompt tokens. `build_prompt` in process; then from the "
        f"SQLite file the server wrote (the thread made by one CreateThread in "
        f"{p['create_thread_seconds']:.1f} s): `load_turn_context` + `build_prompt`.",
        "",
    ]
    rows = [
        ["build_prompt (stored token counts)", i["repeats"], i["build_ms_p50"]],
        *(
            [
                f"build_prompt, a {doc['document_tokens']:,}-token message {where} "
                f"({doc['shortened']} shortened, {doc['messages_kept']:,} kept)",
                i["repeats"],
                doc["build_ms_p50"],
            ]
            for where, doc in (
                ("as the opening", i.get("document_first")),
                ("10th from the end", i.get("document_recent")),
            )
            if doc
        ),
        [
            f"load_turn_context (SQLite, {d.get('messages_read', '?')} messages read)",
            d["repeats"],
            d["load_ms_p50"],
        ],
        ["load_turn_context + build_prompt", d["repeats"], d["load_and_build_ms_p50"]],
    ]
    return lines + _table(["", "repeats", "median ms"], rows)


def _import(r: dict[str, Any]) -> list[str]:
    lines = [
        "## Import and export",
        "",
        f"`assistants-grpc import` of a JSON Lines dump of {r['threads']:,} threads of "
        f"{r['messages_per_thread']} messages ({r['dump_mb']} MB) into an empty database, the "
        "same import again (everything unchanged), then `export` of it all. Each command is its "
        "own process, timed from start to exit (interpreter, migrations and tokenizer included).",
        "",
    ]
    rows = []
    for name, label in (("sqlite", "SQLite"), ("postgresql", "PostgreSQL")):
        b = r.get(name)
        if b is None:
            continue
        if "skipped" in b:
            rows.append([label, b["skipped"], "-", "-", "-", "-"])
            continue
        rows.append(
            [
                label,
                b["objects_per_s"],
                b["import_seconds"],
                b["peak_rss_mb"],
                b["reimport_objects_per_s"],
                b["export_objects_per_s"],
            ]
        )
    header = ["", "import objects/s", "import s", "peak RSS MB", "re-import objects/s"]
    return lines + _table([*header, "export objects/s"], rows)


def write(results: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / "results.json"
    md_path = out_dir / "results.md"
    json_path.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    md_path.write_text(markdown(results))
    return md_path, json_path


__all__ = ["evaluate", "machine", "markdown", "versions", "write"]
