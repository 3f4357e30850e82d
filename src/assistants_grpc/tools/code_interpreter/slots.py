"""Who a sandbox runs as, and the cgroup that holds it.

Uids. A kernel that bwrap runs as root is host root outside its namespaces, and RLIMIT_NPROC
counts the processes of a uid across every sandbox and namespace, so each live session gets a
uid of its own from a reserved range (`--code-interpreter-uid-base`, one slot per session).
A slot is taken with an exclusive `flock` on `<lock dir>/slot-<uid>.lock`, held as long as the
session lives: replicas on one host share the range without sharing a uid, and a slot whose
server died is free again (the kernel released the lock with it). Whoever takes a slot first
kills any process still running under its uid: nothing legitimate runs there but a sandbox,
and one left by a dead server must not share the new session's process count.
When the server is not root it cannot switch uids: every sandbox runs as the server's uid, and
the log says so at start-up.

Cgroups. Where the cgroup v1 memory controller is mounted and writable (as root), each slot
gets `<controller>/<our cgroup>/assistants-grpc-sandbox/slot-<uid>` with `memory.limit_in_bytes`
(and the pids controller's `pids.max` where mounted), joined by the sandbox before it executes
bwrap. Where instead the unified (v2) hierarchy has the memory controller (a host booted with
cgroup v2 only, or a delegated subtree), each slot gets `<our cgroup>/assistants-grpc-sandbox/
slot-<uid>` with `memory.max`, `memory.swap.max` 0 and `pids.max`, joined the same way (the
server opens `cgroup.procs` and the sandbox's shell writes to that descriptor: since Linux 5.16
a migration is checked against the opener's credentials). cgroup v2 enables a controller for a
cgroup's children only in a cgroup without processes of its own (the root excepted): a server
run in a non-root cgroup with its own processes there (a plain container) cannot, and says so;
systemd's `Delegate=yes` with the server in a leaf of its own, or a root-cgroup server, can.
Elsewhere rlimits are the bound, and the log says so.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

CGROUP_GROUP = "assistants-grpc-sandbox"


@dataclass
class Slot:
    uid: int
    gid: int
    lock_fd: int | None
    """The slot's flock, held while the session lives (None: not root, no slots)."""
    cgroup_procs: list[int]
    """Open `cgroup.procs` of the slot's cgroups, written by the sandbox's first process."""
    cgroup_dirs: list[Path]


def _uid_processes(uid: int) -> list[int]:
    """Pids of the live processes whose real uid is `uid` (from /proc). A process that has
    exited and not been reaped yet (a zombie: a killed sandbox's for a few milliseconds) holds
    nothing and is not counted."""
    pids: list[int] = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/status", "rb") as status:
                dead = False
                for line in status:
                    if line.startswith(b"State:"):
                        dead = line.split()[1] in (b"Z", b"X")
                    elif line.startswith(b"Uid:"):
                        if int(line.split()[1]) == uid and not dead:
                            pids.append(int(entry.name))
                        break
        except (OSError, ValueError, IndexError):
            continue
    return pids


def kill_uid(uid: int) -> int:
    """SIGKILL every process of `uid`; how many there were. Never for the server's own uid."""
    if uid == os.getuid() or uid == 0:
        return 0
    pids = _uid_processes(uid)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    return len(pids)


def _v1_controller(name: str) -> Path | None:
    """Where cgroup v1 controller `name` is mounted, joined with this process's own cgroup."""
    mount: Path | None = None
    try:
        with open("/proc/self/mountinfo") as mountinfo:
            for line in mountinfo:
                before, _, after = line.partition(" - ")
                fields, super_fields = before.split(), after.split()
                if super_fields and super_fields[0] == "cgroup":
                    options = super_fields[-1].split(",")
                    if name in options:
                        mount = Path(fields[4])
                        break
        if mount is None:
            return None
        with open("/proc/self/cgroup") as cgroups:
            for line in cgroups:
                _, controllers, path = line.rstrip("\n").split(":", 2)
                if name in controllers.split(","):
                    return mount / path.lstrip("/")
    except (OSError, ValueError):
        return None
    return mount


def _v2_cgroup(
    mountinfo: str = "/proc/self/mountinfo", cgroups: str = "/proc/self/cgroup"
) -> Path | None:
    """This process's own cgroup in the unified (v2) hierarchy, where one is mounted."""
    mount: Path | None = None
    try:
        with open(mountinfo) as lines:
            for line in lines:
                before, _, after = line.partition(" - ")
                fields, super_fields = before.split(), after.split()
                if super_fields and super_fields[0] == "cgroup2" and len(fields) > 4:
                    mount = Path(fields[4])
                    break
        if mount is None:
            return None
        with open(cgroups) as lines:
            for line in lines:
                number, _, path = line.rstrip("\n").split(":", 2)
                if number == "0":
                    return mount / path.lstrip("/")
    except (OSError, ValueError):
        return None
    return None


def _controllers(directory: Path, name: str) -> set[str]:
    try:
        return set((directory / name).read_text().split())
    except OSError:
        return set()


def v2_group(own: Path, wanted: tuple[str, ...] = ("memory", "pids")) -> tuple[Path | None, str]:
    """`<own>/assistants-grpc-sandbox`, made with `wanted`'s controllers enabled for its
    children (the slots), or None; and what to log either way."""
    available = _controllers(own, "cgroup.controllers")
    if "memory" not in available:
        return None, f"cgroup v2 at {own} has no memory controller"
    enable = [c for c in wanted if c in available]
    try:
        enabled = _controllers(own, "cgroup.subtree_control")
        missing = [c for c in enable if c not in enabled]
        if missing:
            (own / "cgroup.subtree_control").write_text(" ".join(f"+{c}" for c in missing))
        group = own / CGROUP_GROUP
        group.mkdir(exist_ok=True)
        (group / "cgroup.subtree_control").write_text(" ".join(f"+{c}" for c in enable))
    except OSError as error:
        why = error.strerror or str(error)
        if error.errno == errno.EBUSY:
            why = (
                "its own processes are in it, and cgroup v2 enables controllers only for a "
                "cgroup without them (run the server in a leaf cgroup of a delegated subtree, "
                "e.g. systemd Delegate=yes)"
            )
        return None, f"cgroup v2 at {own} not usable for sessions: {why}"
    return group, f"memory cgroups (v2) under {group}"


class SlotPool:
    """The uid slots of this host, and the cgroups that go with them."""

    def __init__(
        self,
        *,
        uid_base: int,
        count: int,
        memory_bytes: int,
        processes: int,
        lock_dir: Path | None = None,
    ) -> None:
        self.count = count
        self._uid_base = uid_base
        self._memory_bytes = memory_bytes
        self._processes = processes
        self.privileged = os.geteuid() == 0
        self._lock_dir = lock_dir or Path("/run/assistants-grpc-sandbox")
        self._memory_root: Path | None = None
        self._pids_root: Path | None = None
        self._v2_root: Path | None = None
        self.notes: list[str] = []
        v2_note: str | None = None
        if self.privileged:
            self._lock_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._memory_root = self._cgroup_root("memory")
            if self._memory_root is not None:
                self._pids_root = self._cgroup_root("pids")
            else:
                own = _v2_cgroup()
                if own is not None:
                    self._v2_root, v2_note = v2_group(own)
            self.notes.append(f"uids {uid_base}..{uid_base + count - 1}, one per session")
        else:
            self.notes.append(
                f"not root: every sandbox runs as the server's uid {os.getuid()}, and the process "
                "limit counts the server's own processes too"
            )
        if self._memory_root is not None:
            self.notes.append(f"memory cgroups (v1) under {self._memory_root}")
        elif self._v2_root is not None and v2_note is not None:
            self.notes.append(v2_note)
        else:
            reason = f" ({v2_note})" if v2_note else ""
            self.notes.append(f"no writable memory cgroup{reason}: memory bound by rlimits")

    @property
    def memory_cgroup(self) -> str | None:
        """ "v1" or "v2" when each session gets a memory cgroup; None: rlimits only."""
        if self._memory_root is not None:
            return "v1"
        return "v2" if self._v2_root is not None else None

    def _cgroup_root(self, controller: str) -> Path | None:
        base = _v1_controller(controller)
        if base is None:
            return None
        root = base / CGROUP_GROUP
        try:
            root.mkdir(exist_ok=True)
        except OSError as error:
            log.info("cgroup %s not usable at %s (%s)", controller, root, error)
            return None
        return root

    def acquire(self) -> Slot | None:
        """A free slot, or None when all are taken (on this host, by any replica)."""
        if not self.privileged:
            uid, gid = os.getuid(), os.getgid()
            return Slot(uid, gid, None, [], [])
        for index in range(self.count):
            uid = self._uid_base + index
            path = self._lock_dir / f"slot-{uid}.lock"
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            left = kill_uid(uid)
            if left:
                log.warning("killed %d process(es) a dead server left under uid %d", left, uid)
            try:
                return self._with_cgroups(uid, fd)
            except BaseException:
                os.close(fd)
                raise
        return None

    def _with_cgroups(self, uid: int, lock_fd: int) -> Slot:
        slot = Slot(uid, uid, lock_fd, [], [])
        try:
            for root, settings in (
                (self._memory_root, self._memory_settings()),
                (self._pids_root, [("pids.max", str(self._processes))]),
                (self._v2_root, self._v2_settings()),
            ):
                if root is None:
                    continue
                directory = root / f"slot-{uid}"
                _empty_cgroup(directory)
                directory.mkdir(exist_ok=True)
                for name, value in settings:
                    target = directory / name
                    if target.exists():
                        target.write_text(value)
                slot.cgroup_dirs.append(directory)
                slot.cgroup_procs.append(
                    os.open(directory / "cgroup.procs", os.O_WRONLY | os.O_CLOEXEC)
                )
        except BaseException:
            self.release(slot)
            raise
        return slot

    def _memory_settings(self) -> list[tuple[str, str]]:
        limit = str(self._memory_bytes)
        # memsw (memory + swap) must stay >= the memory limit: set after it, equal to it, so
        # swap cannot extend the limit either.
        return [("memory.limit_in_bytes", limit), ("memory.memsw.limit_in_bytes", limit)]

    def _v2_settings(self) -> list[tuple[str, str]]:
        # No swap (it would extend the limit); the pids controller's cap where it is enabled.
        return [
            ("memory.max", str(self._memory_bytes)),
            ("memory.swap.max", "0"),
            ("pids.max", str(self._processes)),
        ]

    def release(self, slot: Slot) -> None:
        """After the sandbox was killed: empty and remove its cgroups, free the uid."""
        for fd in slot.cgroup_procs:
            with contextlib.suppress(OSError):
                os.close(fd)
        slot.cgroup_procs = []
        if slot.lock_fd is not None:
            kill_uid(slot.uid)
        for directory in slot.cgroup_dirs:
            _empty_cgroup(directory)
        slot.cgroup_dirs = []
        if slot.lock_fd is not None:
            os.close(slot.lock_fd)
            slot.lock_fd = None


def _empty_cgroup(directory: Path) -> None:
    """Kill what is left in a cgroup and remove it (a removed cgroup must be empty; a killed
    process leaves it within milliseconds)."""
    if not directory.exists():
        return
    deadline = time.monotonic() + 2.0
    with contextlib.suppress(OSError):  # cgroup v2 (Linux 5.14+): every process in it, at once
        if (directory / "cgroup.kill").exists():
            (directory / "cgroup.kill").write_text("1")
    while True:
        try:
            pids = [int(p) for p in (directory / "cgroup.procs").read_text().split()]
        except OSError:
            pids = []
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        try:
            directory.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            if time.monotonic() > deadline:
                log.warning("could not remove cgroup %s", directory)
                return
            time.sleep(0.01)


__all__ = ["CGROUP_GROUP", "Slot", "SlotPool", "kill_uid", "v2_group"]
