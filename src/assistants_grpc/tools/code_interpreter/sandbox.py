"""What a sandbox backend is: a way to start an isolated Jupyter kernel and reach it.

The session manager and the kernel client only know this interface, so a gVisor or microVM
backend can replace bubblewrap (`bwrap.py`) without touching them. A started sandbox gives:

- `urls`: the ZMQ addresses of the kernel's five channels, and `key` (the HMAC key of its
  messages);
- `data`: the session's `/mnt/data` (`DataDir`), which the server fills with input files and
  reads output files from, never following a link the sandboxed code made;
- `exited`: a future set when the kernel process is gone (its heartbeat channel would keep
  answering from its own thread after the kernel's main thread died, so the process is
  watched instead);
- `interrupt()` (SIGINT to the kernel) and `kill()` (every process of the sandbox, at once).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Protocol

GiB = 1024 * 1024 * 1024
MiB = 1024 * 1024

CHANNELS = ("shell", "iopub", "stdin", "control", "hb")


class SandboxUnavailableError(Exception):
    """The sandbox cannot start here (bwrap missing or refused, the environment not built)."""


class SandboxStartError(Exception):
    """One sandbox failed to start (it timed out, or its kernel died while starting)."""


@dataclass(frozen=True, slots=True)
class SandboxLimits:
    """What one session may use. Each is a `--code-interpreter-*` flag (README)."""

    memory_bytes: int = 1 * GiB
    """The memory cgroup's limit where one can be made; also each process's address space."""
    processes: int = 128
    """Processes and threads of the session's uid (RLIMIT_NPROC; a pids cgroup where allowed)."""
    file_bytes: int = 256 * MiB
    """The largest file the code may write (RLIMIT_FSIZE)."""
    data_bytes: int = 512 * MiB
    """The size of `/mnt/data` (a tmpfs): input files and everything written there."""
    tmp_bytes: int = 256 * MiB
    """The size of `/tmp` (and 64 MiB at most for `/dev/shm`)."""
    open_files: int = 1024
    cpu_seconds: int = 3600
    """CPU time of any one process of the session (RLIMIT_CPU); the wall-time limit per call is
    the session manager's."""

    @property
    def shm_bytes(self) -> int:
        return min(64 * MiB, self.tmp_bytes)


@dataclass(frozen=True, slots=True)
class DataEntry:
    """A regular file under `/mnt/data`, as last seen."""

    path: str
    """Relative to /mnt/data, `/`-separated."""
    size: int
    mtime_ns: int
    inode: int


class DataDir(Protocol):
    """The session's `/mnt/data`, seen from the server."""

    async def write(self, name: str, parts: AsyncIterator[bytes]) -> int:
        """Create (or replace) the file `name` directly under /mnt/data from `parts`; its size.
        OSError (ENOSPC past the quota) if it does not fit; nothing is left half-written."""
        ...

    async def scan(self) -> dict[str, DataEntry]:
        """Every regular file under /mnt/data (links and special files are ignored)."""
        ...

    async def read(self, path: str, max_bytes: int) -> bytes | None:
        """The content of the regular file at `path` (relative), or None if it is not one any
        more or is larger than `max_bytes`."""
        ...


class SandboxedKernel(Protocol):
    @property
    def urls(self) -> Mapping[str, str]: ...

    @property
    def key(self) -> bytes: ...

    @property
    def data(self) -> DataDir: ...

    @property
    def exited(self) -> asyncio.Future[int]: ...

    @property
    def description(self) -> str:
        """How it is isolated, for the log (uid, cgroup...)."""
        ...

    def interrupt(self) -> None: ...

    async def kill(self) -> None:
        """End every process of the sandbox and release what it held (idempotent)."""
        ...


class Sandbox(Protocol):
    """A backend: starts kernels, says whether it works here."""

    def check(self) -> None:
        """Raise SandboxUnavailableError (with the reason) if no kernel can start here."""
        ...

    async def start(self) -> SandboxedKernel: ...

    @property
    def capacity(self) -> int:
        """How many kernels it can hold at once (uid slots)."""
        ...


__all__ = [
    "CHANNELS",
    "DataDir",
    "DataEntry",
    "GiB",
    "MiB",
    "Sandbox",
    "SandboxLimits",
    "SandboxStartError",
    "SandboxUnavailableError",
    "SandboxedKernel",
]
