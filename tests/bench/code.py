"""The "code" section: the python tool's sandbox, measured in-process against real kernels.

- the first call of a thread (`print(1)`), p50 and p99, two ways: with the warm pool the
  server runs by default (`--code-interpreter-warm 1`: the call gets a kernel started ahead,
  and the pool is refilled before the next thread comes), and without it (`0`: the call waits
  for bwrap, Python and ipykernel's imports); plus where a kernel start's time goes (the
  sandbox up with its sockets bound, i.e. Python and ipykernel's imports, then the first
  `kernel_info` answer);
- a later call's overhead beyond the code's own run time: `print(1)` through the executor
  (arguments decoded, inputs checked, the kernel round trip, /mnt/data scanned, the result
  built), p50 and p99;
- memory per idle session, summed over the processes of its uid (bwrap's two and the
  kernel): RSS, PSS (shared pages split between the sessions sharing them: the sandbox's
  libraries are shared by all of them) and USS (pages only this session has: what one more
  session costs), medians over the idle sessions left by the first-call loop; the same for a
  session that imported numpy, pandas and matplotlib;
- a typical first call, `import numpy, pandas, matplotlib.pyplot` then `print(1)`, with the
  pool, without and with `--code-interpreter-preload numpy,pandas,matplotlib.pyplot` (the
  imports then happen while the pool kernel starts), and an idle preloaded session's memory;
- how many sessions this machine holds by memory: (MemTotal - 4 GiB kept for the system, the
  server and the database) / PSS of an idle session, / PSS of one with those imports, and /
  the per-session memory limit (every session at its cap). Idle sessions cost no CPU; the two
  cores bound how many *execute* at full speed at once (two).
"""

from __future__ import annotations

import math
import os
import statistics
import time
from pathlib import Path
from typing import Any

from assistants_grpc.clock import ManualClock
from assistants_grpc.tools.code_interpreter.bwrap import BwrapSandbox
from assistants_grpc.tools.code_interpreter.executor import CodeInterpreterExecutor
from assistants_grpc.tools.code_interpreter.files import MemoryFiles
from assistants_grpc.tools.code_interpreter.kernel import KernelClient
from assistants_grpc.tools.code_interpreter.sandbox import GiB, SandboxLimits
from assistants_grpc.tools.code_interpreter.sessions import SessionManager, SessionSettings
from tests.bench.common import Plan
from tests.sandbox.conftest import Harness, make_harness, new_thread

RESERVED = 4 * GiB
MiB_F = 1024.0 * 1024.0


def _memory_of_uid(uid: int) -> dict[str, int]:
    """RSS, PSS and USS (bytes) of every process of `uid`, from /proc/<pid>/smaps_rollup."""
    total = {"rss": 0, "pss": 0, "uss": 0}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.stat(f"/proc/{entry}").st_uid != uid:
                continue
            for line in Path(f"/proc/{entry}/smaps_rollup").read_text().splitlines():
                name, _, rest = line.partition(":")
                if name in ("Rss", "Pss", "Private_Clean", "Private_Dirty"):
                    kib = int(rest.split()[0]) * 1024
                    key = {"Rss": "rss", "Pss": "pss"}.get(name, "uss")
                    total[key] += kib
        except (OSError, ValueError, IndexError):
            continue
    return total


def _uid(harness: Harness, thread: str) -> int:
    session = harness.sessions.session_of(thread)
    assert session is not None
    return int(session.kernel.description.split()[1].rstrip(","))


def _ms(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, math.ceil(len(ordered) * 0.99) - 1)]
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 2),
        "p99_ms": round(p99 * 1000, 2),
        "n": len(ordered),
    }


def _mib(values: list[int]) -> float:
    return round(statistics.median(values) / MiB_F, 1)


TYPICAL = "import numpy as np, pandas as pd, matplotlib.pyplot as plt\nprint(1)"
PRELOAD = ("numpy", "pandas", "matplotlib.pyplot")


def _preloading_harness(slots: int, uid_base: int) -> Harness:
    sandbox = BwrapSandbox(slots=slots, uid_base=uid_base, preload=PRELOAD)
    sandbox.check()
    clock = ManualClock()
    sessions = SessionManager(sandbox, clock, replica="bench", settings=SessionSettings(warm=1))
    files = MemoryFiles()
    return Harness(CodeInterpreterExecutor(sessions, files), sessions, files, clock)


async def _first_calls(
    harness: Harness, starts: int, *, pooled: bool, code: str = "print(1)"
) -> tuple[list[float], list[str]]:
    times: list[float] = []
    threads: list[str] = []
    before = harness.sessions.handed_out
    for _ in range(starts):
        if pooled:
            # A thread arriving after the pool refilled (new threads less often than one per
            # kernel start): the steady state of --code-interpreter-warm.
            harness.sessions.start_pool()
            await harness.sessions.wait_warm()
            assert harness.sessions.warm >= 1
        thread = new_thread()
        began = time.perf_counter()
        result = await harness.run(thread, code)
        times.append(time.perf_counter() - began)
        assert harness.logs(result) == "1", result.output
        threads.append(thread)
    expected = starts if pooled else 0
    assert harness.sessions.handed_out - before == expected, harness.sessions.handed_out
    return times, threads


async def _breakdown(repeats: int) -> dict[str, float]:
    sandbox = BwrapSandbox(slots=1, uid_base=990690)
    sandbox.check()
    up: list[float] = []
    ready: list[float] = []
    for _ in range(repeats):
        began = time.perf_counter()
        kernel = await sandbox.start()
        started = time.perf_counter()
        client = KernelClient(kernel.urls, kernel.key)
        try:
            await client.wait_ready(60)
            ready.append(time.perf_counter() - started)
            up.append(started - began)
        finally:
            client.close()
            await kernel.kill()
    return {
        "sandbox_and_imports_p50_ms": round(statistics.median(up) * 1000, 1),
        "first_kernel_info_p50_ms": round(statistics.median(ready) * 1000, 1),
        "n": repeats,
    }


def _mem_total() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return 0


async def measure(plan: Plan) -> dict[str, Any]:
    starts = 4 if plan.quick else 12
    typical_starts = 3 if plan.quick else 6
    calls = 50 if plan.quick else 300
    results: dict[str, Any] = {}

    cold = make_harness(settings=SessionSettings(warm=0), slots=starts + 1, uid_base=990600)
    try:
        times, _ = await _first_calls(cold, starts, pooled=False)
        results["first_call_no_pool"] = _ms(times)
    finally:
        await cold.sessions.close()
    results["kernel_start"] = await _breakdown(3 if plan.quick else 6)

    harness = make_harness(
        settings=SessionSettings(warm=1), slots=starts + typical_starts + 2, uid_base=990640
    )
    try:
        times, threads = await _first_calls(harness, starts, pooled=True)
        results["first_call"] = _ms(times)
        later: list[float] = []
        for _ in range(calls):
            began = time.perf_counter()
            await harness.run(threads[0], "print(1)")
            later.append(time.perf_counter() - began)
        results["later_call_print1"] = _ms(later)

        idle = [_memory_of_uid(_uid(harness, thread)) for thread in threads[1:]]
        used_thread = threads[0]
        imported = await harness.run(
            used_thread, "import numpy, pandas, matplotlib.pyplot as plt\nprint(1)"
        )
        assert harness.logs(imported) == "1", imported.output
        used = _memory_of_uid(_uid(harness, used_thread))
        limit = SandboxLimits().memory_bytes
        room = max(0, _mem_total() - RESERVED)
        idle_pss = statistics.median(m["pss"] for m in idle)
        results["memory_per_idle_session_mib"] = {
            "rss": _mib([m["rss"] for m in idle]),
            "pss": _mib([m["pss"] for m in idle]),
            "uss": _mib([m["uss"] for m in idle]),
            "sessions_measured": len(idle),
        }
        results["memory_after_numpy_pandas_matplotlib_mib"] = {
            "rss": round(used["rss"] / MiB_F, 1),
            "pss": round(used["pss"] / MiB_F, 1),
            "uss": round(used["uss"] / MiB_F, 1),
        }
        typical, _ = await _first_calls(harness, typical_starts, pooled=True, code=TYPICAL)
        results["first_call_with_imports"] = _ms(typical)
        results["sessions_this_machine_holds"] = {
            "machine_memory_gib": round(_mem_total() / GiB, 1),
            "kept_for_the_rest_gib": RESERVED // GiB,
            "idle": int(room // idle_pss) if idle_pss else 0,
            "with_numpy_pandas_matplotlib": int(room // used["pss"]) if used["pss"] else 0,
            "each_at_its_memory_limit": int(room // limit),
            "cores": os.cpu_count(),
        }
    finally:
        await harness.sessions.close()

    preloading = _preloading_harness(typical_starts + 3, 990670)
    try:
        typical, threads = await _first_calls(preloading, typical_starts, pooled=True, code=TYPICAL)
        results["first_call_with_imports_preloaded"] = _ms(typical)
        idle = [_memory_of_uid(_uid(preloading, thread)) for thread in threads]
        results["memory_per_idle_preloaded_session_mib"] = {
            "rss": _mib([m["rss"] for m in idle]),
            "pss": _mib([m["pss"] for m in idle]),
            "uss": _mib([m["uss"] for m in idle]),
            "sessions_measured": len(idle),
        }
        preloaded_pss = statistics.median(m["pss"] for m in idle)
        room = max(0, _mem_total() - RESERVED)
        holds = results["sessions_this_machine_holds"]
        holds["idle_preloaded"] = int(room // preloaded_pss) if preloaded_pss else 0
    finally:
        await preloading.sessions.close()
    return results
