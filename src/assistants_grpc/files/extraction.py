"""Runs text extraction in a child process with a time and memory cap.

A hostile file must not hurt the server: a PDF whose structure makes the parser loop, a zip bomb
or an XML bomb would otherwise take a core, or all the memory, for as long as they like. The
child (`files/_extract_child.py`) caps its own CPU time and address space with setrlimit before
it reads anything, and the parent kills it when the wall-clock limit passes. Whatever happens,
the outcome is text or an `ExtractionError` with OpenAI's code: `invalid_file` for a file that
broke a limit, `server_error` when the child died for another reason.

A process per file costs ~100 ms of start-up; the files are ingested in the background, so
that buys the isolation cheaply. Small plain-text files, which need no parser, skip it
(`extract`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Final, NoReturn

from assistants_grpc.files.extract import INVALID_FILE, ExtractionError, extract_text, kind_of

log = logging.getLogger(__name__)

SERVER_ERROR = "server_error"

__all__ = [
    "IN_PROCESS_TEXT_BYTES",
    "SERVER_ERROR",
    "ExtractionLimits",
    "extract",
    "extract_in_child",
]


@dataclass(frozen=True)
class ExtractionLimits:
    """What one extraction may take. Defaults fit a 512 MB file of ordinary text or PDF."""

    wall_seconds: float = 120.0
    cpu_seconds: int = 90
    memory_bytes: int = 2 * 1024 * 1024 * 1024


# Plain text up to this size is read in the server, on a thread: it needs no parser to guard
# against (a UTF-8 decode, bounded by the size), and a child per small file cost more than the
# file (its start-up, and on uvloop a fork of the whole server, on the event loop).
IN_PROCESS_TEXT_BYTES: Final = 4 * 1024 * 1024


async def extract(source: Path, filename: str, work_dir: Path, limits: ExtractionLimits) -> str:
    """The text of `source` (named `filename`): small plain text read here, anything else in a
    capped child process."""
    if kind_of(filename) == "text" and source.stat().st_size <= IN_PROCESS_TEXT_BYTES:
        return await asyncio.to_thread(extract_text, source, filename)
    return await extract_in_child(source, filename, work_dir, limits)


async def extract_in_child(
    source: Path, filename: str, work_dir: Path, limits: ExtractionLimits
) -> str:
    """The text of `source` (named `filename`), extracted in a capped child process."""
    target = work_dir / "text.out"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-I",
        "-m",
        "assistants_grpc.files._extract_child",
        str(source),
        filename,
        str(target),
        str(limits.cpu_seconds),
        str(limits.memory_bytes),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=work_dir,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), limits.wall_seconds)
    except TimeoutError:
        _kill(process)
        await process.wait()
        raise ExtractionError(
            INVALID_FILE, f"The file could not be parsed within {limits.wall_seconds:g} s."
        ) from None
    except BaseException:
        _kill(process)  # cancelled (lease lost, shutdown): the child goes too
        with contextlib.suppress(Exception):
            await asyncio.shield(process.wait())
        raise
    outcome = _outcome(stdout)
    if process.returncode == 0 and outcome is not None:
        if outcome.get("ok"):
            return target.read_text(encoding="utf-8")
        code = outcome.get("code")
        message = str(outcome.get("message", ""))
        if code == INVALID_FILE and message == "memory":
            message = "The file needs more memory to parse than the server allows."
        raise ExtractionError(str(code), message)
    _failure(process.returncode, stderr)


def _outcome(stdout: bytes) -> dict[str, object] | None:
    try:
        value = json.loads(stdout.decode("utf-8", "replace").strip().splitlines()[-1])
    except (ValueError, IndexError):
        return None
    return value if isinstance(value, dict) else None


def _failure(returncode: int | None, stderr: bytes) -> NoReturn:
    tail = stderr.decode("utf-8", "replace")[-2000:]
    if returncode in (-signal.SIGXCPU, -signal.SIGKILL) or "MemoryError" in tail:
        raise ExtractionError(
            INVALID_FILE, "The file needs more time or memory to parse than allowed."
        )
    if returncode in (-signal.SIGXFSZ,):
        raise ExtractionError(INVALID_FILE, "The file has more text than the server keeps.")
    log.warning("text extraction failed (exit %s): %s", returncode, tail.strip()[-500:])
    raise ExtractionError(SERVER_ERROR, "The server failed to extract the file's text.")


def _kill(process: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        process.kill()
