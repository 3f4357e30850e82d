"""The "code" section: the python tool's sandbox, measured in-process against real kernels.

- the first call of a thread, kernel start included (bwrap, the kernel's imports, the first
  `print(1)`), p50 and p95;
- a later call's overhead beyond the code's own run time: `print(1)` through the executor
  (arguments decoded, inputs checked, the kernel round trip, /mnt/data scanned, the result
  built), p50 and p95;
- memory per idle session (the proportional set size of a session's processes, from
  /proc/<pid>/smaps_rollup, so shared library pages count once per session share), and how
  many idle sessions a 2-core 24 GiB machine holds by memory alone (leaving 4 GiB to the rest).
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path
from typing import Any

from tests.bench.common import Plan
from tests.sandbox.conftest import make_harness, new_thread


def _pss_of_uid(uid: int) -> int:
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.stat(f"/proc/{entry}").st_uid != uid:
                continue
            for line in Path(f"/proc/{entry}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


def _ms(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 2),
        "p95_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))] * 1000, 2),
        "n": len(ordered),
    }


async def measure(plan: Plan) -> dict[str, Any]:
    starts = 3 if plan.quick else 10
    calls = 50 if plan.quick else 300
    harness = make_harness(slots=starts + 1, uid_base=990600)
    try:
        first: list[float] = []
        threads = []
        for _ in range(starts):
            thread = new_thread()
            began = time.perf_counter()
            result = await harness.run(thread, "print(1)")
            first.append(time.perf_counter() - began)
            assert harness.logs(result) == "1", result.output
            threads.append(thread)
        later: list[float] = []
        for _ in range(calls):
            began = time.perf_counter()
            await harness.run(threads[0], "print(1)")
            later.append(time.perf_counter() - began)
        session = harness.sessions.session_of(threads[-1])
        assert session is not None
        uid = int(session.kernel.description.split()[1].rstrip(","))
        pss = _pss_of_uid(uid)
        per_session_mb = pss / 1024 / 1024
        holds = int((20 * 1024) / per_session_mb) if per_session_mb else 0
        return {
            "first_call": _ms(first),
            "later_call_print1": _ms(later),
            "idle_session_pss_mb": round(per_session_mb, 1),
            "idle_sessions_in_20_gib": holds,
        }
    finally:
        await harness.sessions.close()
