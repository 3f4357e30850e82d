"""A sandbox's `/mnt/data`, reached from the server through a directory descriptor.

`/mnt/data` is a size-capped tmpfs inside the sandbox's mount namespace, so the server reaches
it through `/proc/<sandbox init>/root`, opened once right after the sandbox signalled it was
set up (before that, the same path still shows the host's root) and before any model-written
code ran. The sandboxed code owns everything under /mnt/data, and is hostile: it may replace a
file with a symlink to `/etc/shadow` or a FIFO, or nest directories forever. So every path is
walked one component at a time from the directory descriptor with `O_NOFOLLOW` (an absolute
symlink would otherwise resolve against the *server's* root), only regular files are read
(`O_NONBLOCK` so a FIFO never blocks the open), the walk is bounded in depth and entries, and
files are created with `O_EXCL`. The copying runs on a thread: a tmpfs is fast, but a 500 MB
file is still half a second.

A file the server creates there must belong to the sandbox's uid: the tmpfs was mounted in the
sandbox's user namespace, where host root has no mapping, and creating an inode whose owner
cannot be mapped fails (EOVERFLOW). So a root server creates them with its thread's filesystem
uid set to the sandbox's (`setfsuid` is per thread, unlike `setuid`), and back at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import os
import stat
from collections.abc import AsyncIterator

from assistants_grpc.tools.code_interpreter.sandbox import DataEntry

MAX_DEPTH = 8
MAX_ENTRIES = 2000
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_CHUNK = 1024 * 1024
_LIBC = ctypes.CDLL(None, use_errno=True)


def _create_as(owner: tuple[int, int] | None, dir_fd: int, name: str) -> int:
    """Create `name` (exclusively, never through a link) with its owner's filesystem ids."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    if owner is None:
        return os.open(name, flags, 0o644, dir_fd=dir_fd)
    old_gid = _LIBC.setfsgid(owner[1])
    old_uid = _LIBC.setfsuid(owner[0])
    try:
        return os.open(name, flags, 0o644, dir_fd=dir_fd)
    finally:
        _LIBC.setfsuid(old_uid)
        _LIBC.setfsgid(old_gid)


class FdDataDir:
    """`DataDir` over an open descriptor of the directory (owned: `close` closes it)."""

    def __init__(self, fd: int, owner: tuple[int, int] | None = None) -> None:
        self._fd = fd
        self._owner = owner
        """The sandbox's (uid, gid) when the server is root and they differ from its own."""

    def close(self) -> None:
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = -1

    # --- writing ------------------------------------------------------------------------

    async def write(self, name: str, parts: AsyncIterator[bytes]) -> int:
        if "/" in name or name in ("", ".", ".."):
            raise ValueError(f"not a plain file name: {name!r}")
        await asyncio.to_thread(self._replace, name)
        fd = await asyncio.to_thread(_create_as, self._owner, self._fd, name)
        size = 0
        try:
            async for data in parts:
                await asyncio.to_thread(_write_all, fd, data)
                size += len(data)
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(name, dir_fd=self._fd)
            raise
        os.close(fd)
        return size

    def _replace(self, name: str) -> None:
        """Remove whatever the code left under `name` (a file or a link; a directory stays and
        the create then fails)."""
        with contextlib.suppress(FileNotFoundError, IsADirectoryError, PermissionError):
            os.unlink(name, dir_fd=self._fd)

    # --- reading ------------------------------------------------------------------------

    async def scan(self) -> dict[str, DataEntry]:
        return await asyncio.to_thread(self._scan)

    def _scan(self) -> dict[str, DataEntry]:
        found: dict[str, DataEntry] = {}
        budget = [MAX_ENTRIES]

        def walk(directory: int, prefix: str, depth: int) -> None:
            try:
                entries = os.listdir(directory)
            except OSError:
                return
            for name in sorted(entries):
                if budget[0] <= 0:
                    return
                budget[0] -= 1
                try:
                    info = os.stat(name, dir_fd=directory, follow_symlinks=False)
                except OSError:
                    continue
                path = f"{prefix}{name}"
                if stat.S_ISREG(info.st_mode):
                    found[path] = DataEntry(path, info.st_size, info.st_mtime_ns, info.st_ino)
                elif stat.S_ISDIR(info.st_mode) and depth < MAX_DEPTH:
                    try:
                        child = os.open(name, _DIR_FLAGS, dir_fd=directory)
                    except OSError:
                        continue
                    try:
                        walk(child, f"{path}/", depth + 1)
                    finally:
                        os.close(child)

        walk(self._fd, "", 0)
        return found

    async def read(self, path: str, max_bytes: int) -> bytes | None:
        return await asyncio.to_thread(self._read, path, max_bytes)

    def _read(self, path: str, max_bytes: int) -> bytes | None:
        parts = path.split("/")
        if any(part in ("", ".", "..") for part in parts) or len(parts) > MAX_DEPTH + 1:
            return None
        opened: list[int] = []
        try:
            directory = self._fd
            for part in parts[:-1]:
                directory = os.open(part, _DIR_FLAGS, dir_fd=directory)
                opened.append(directory)
            fd = os.open(parts[-1], _READ_FLAGS, dir_fd=directory)
            opened.append(fd)
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or info.st_size > max_bytes:
                return None
            chunks: list[bytes] = []
            total = 0
            while chunk := os.read(fd, _CHUNK):
                total += len(chunk)
                if total > max_bytes:  # it grew while read
                    return None
                chunks.append(chunk)
            return b"".join(chunks)
        except OSError as error:
            if error.errno in (errno.ENOENT, errno.ELOOP, errno.ENOTDIR, errno.EACCES):
                return None
            raise
        finally:
            for fd in reversed(opened):
                os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


__all__ = ["MAX_DEPTH", "MAX_ENTRIES", "FdDataDir"]
