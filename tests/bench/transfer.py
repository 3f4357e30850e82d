"""Bench section "import": `assistants-grpc import` of a dump of N threads of 10 messages each
(OpenAI JSON Lines, as `model_dump_json()` writes them), into an empty SQLite file and an empty
PostgreSQL database, then `export` of the result. Each command is its own process, measured
from start to exit (interpreter start, migrations and the tokenizer load included), with its
peak resident memory from the kernel's accounting of that child (`wait4`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.bench.processes import REPO_ROOT

MESSAGES_PER_THREAD = 10
_T = 1_714_000_000
_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def _id(prefix: str, n: int) -> str:
    chars = []
    for _ in range(24):
        n, digit = divmod(n * 2_654_435_761 + 97, 62)
        chars.append(_ALPHABET[digit])
    return prefix + "".join(chars)


def write_dump(path: Path, threads: int) -> int:
    """A dump of `threads` threads of 10 messages (user and assistant in turn); the objects."""
    count = 0
    with path.open("w") as out:
        for t in range(threads):
            thread_id = _id("thread_", t)
            created = _T + t * 60
            thread = {
                "id": thread_id,
                "object": "thread",
                "created_at": created,
                "metadata": {"customer": f"c-{t % 977}"},
                "tool_resources": {"code_interpreter": None, "file_search": None},
            }
            out.write(json.dumps(thread, separators=(",", ":")) + "\n")
            count += 1
            for m in range(MESSAGES_PER_THREAD):
                role = "user" if m % 2 == 0 else "assistant"
                text = (
                    f"Question {m} about order {t}: where is my parcel, and when will it arrive?"
                    if role == "user"
                    else f"Answer {m}: your order {t} left the warehouse and arrives on Tuesday. "
                    "You can follow it from the link in your confirmation e-mail."
                )
                message = {
                    "id": _id("msg_", t * MESSAGES_PER_THREAD + m),
                    "object": "thread.message",
                    "created_at": created + m,
                    "assistant_id": None,
                    "attachments": [],
                    "completed_at": created + m,
                    "content": [{"type": "text", "text": {"value": text, "annotations": []}}],
                    "incomplete_at": None,
                    "incomplete_details": None,
                    "metadata": {},
                    "role": role,
                    "run_id": None,
                    "status": "completed",
                    "thread_id": thread_id,
                }
                out.write(json.dumps(message, separators=(",", ":")) + "\n")
                count += 1
    return count


def _timed(argv: list[str]) -> tuple[float, float, str]:
    """Seconds, peak RSS in MB and stderr of one command, its own process."""
    started = time.monotonic()
    child = subprocess.Popen(
        argv, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    assert child.stderr is not None
    errors = child.stderr.read()
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.monotonic() - started
    if child.returncode != 0:
        raise RuntimeError(f"{argv[3]} exited {child.returncode}: {errors[-2000:]}")
    return seconds, usage.ru_maxrss / 1024, errors  # ru_maxrss is in KiB on Linux


def _one(url: str, dump: Path, objects: int, out: Path) -> dict[str, Any]:
    command = [sys.executable, "-m", "assistants_grpc"]
    seconds, rss, _ = _timed(
        [*command, "import", str(dump), "--database-url", url, "--progress-seconds", "3600"]
    )
    again, _, _ = _timed(
        [*command, "import", str(dump), "--database-url", url, "--progress-seconds", "3600"]
    )
    export_seconds, export_rss, _ = _timed(
        [*command, "export", str(out), "--database-url", url, "--progress-seconds", "3600"]
    )
    return {
        "objects": objects,
        "import_seconds": round(seconds, 2),
        "objects_per_s": round(objects / seconds),
        "peak_rss_mb": round(rss, 1),
        "reimport_seconds": round(again, 2),
        "reimport_objects_per_s": round(objects / again),
        "export_seconds": round(export_seconds, 2),
        "export_objects_per_s": round(objects / export_seconds),
        "export_peak_rss_mb": round(export_rss, 1),
    }


def measure(
    tmp: Path, threads: int, postgres_url: str | None, reset_postgres: Callable[[], object]
) -> dict[str, Any]:
    dump = tmp / "import-dump.jsonl"
    objects = write_dump(dump, threads)
    result: dict[str, Any] = {
        "threads": threads,
        "messages_per_thread": MESSAGES_PER_THREAD,
        "dump_mb": round(dump.stat().st_size / 2**20, 1),
        "sqlite": _one(
            f"sqlite:///{tmp / 'import.db'}", dump, objects, tmp / "export-sqlite.jsonl"
        ),
    }
    if postgres_url is not None:
        try:
            reset_postgres()
        except Exception as error:
            result["postgresql"] = {"skipped": f"PostgreSQL not reachable: {error}"}
        else:
            result["postgresql"] = _one(postgres_url, dump, objects, tmp / "export-pg.jsonl")
    return result
