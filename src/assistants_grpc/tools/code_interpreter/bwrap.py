"""The bubblewrap backend: an ipykernel inside `bwrap`, one per session.

Every measure below was found necessary on this kind of machine (a root server, PostgreSQL
trusting local logins, 2 cores); `tests/integration/test_code_containment.py` tries each one.

- **Its own uid** (`slots.py`): bwrap itself is started as the slot's uid and gid with no
  supplementary groups and no capabilities (`setpriv`, see `_limited`): bwrap run as root
  gives a kernel that is host root outside its namespaces.
- **Nothing of the host but `/usr` and the sandbox's venv**, both read-only, the venv at
  `/opt/python` (the checkout's path is not shown either). Never `/`: a read-only `/` still
  reaches PostgreSQL's Unix socket in /var/run/postgresql (and this machine trusts local
  logins), `/etc/shadow`, the project's checkout. The root is a tmpfs made read-only at the end
  (`--remount-ro /`), so the code cannot replace `/mnt` or `/run` under the server's feet.
- **No network** (`--unshare-all`: net, pid, ipc, uts, cgroup and user namespaces; a new
  network namespace has not even a working loopback). The kernel's ZMQ sockets are `ipc://`
  files in `/run/kernel`, a small tmpfs, which the server reaches through
  `/proc/<init>/root`; each socket is opened `O_PATH | O_NOFOLLOW`, checked to be a socket, and
  connected as `/proc/self/fd/N`, so replacing it with a symlink (to PostgreSQL's socket, say)
  cannot redirect the server.
- **An empty environment** for bwrap itself: bwrap's pid 1 keeps its caller's environment in
  `/proc/1/environ` even with `--clearenv`, so `OPENAI_API_KEY` or a database URL would be
  readable there. The kernel's own variables are set with `--setenv`.
- **Sized tmpfs** for `/tmp`, `/dev/shm`, `/dev`, `/mnt/data` and `/run/kernel` (bwrap's
  `--size`; unsized, each could take half the host's memory). `/dev` is built by hand (a small
  tmpfs with null, zero, full, random, urandom, tty bound in, then read-only) because bwrap's
  `--dev` takes no size.
- `--die-with-parent`, `--new-session` (no TIOCSTI into a terminal), `--disable-userns` (with
  `--unshare-user`, which it requires: no nested user namespace, so no way back to
  capabilities), all present in Debian's bwrap 0.8.0.
- **rlimits** set in the child before it executes bwrap (address space and data, NPROC, FSIZE,
  NOFILE, CPU, no core dumps), so they hold for every process of the sandbox.
- **seccomp** (`seccomp.py`), loaded by bwrap from a pipe (`--seccomp FD`).
- **A memory cgroup** where the host allows one (`slots.py`), joined in the same child.
- **Death of the server kills the sandbox**: `--die-with-parent`, and, for the moment between
  bwrap's start and that flag taking effect (bwrap drops and changes credentials meanwhile,
  which clears a parent-death signal; seen here: a server killed then left its kernel
  running), the kernel's first code watches a pipe whose other end only the server holds and
  kills its whole pid namespace when it reads end-of-file.
- **The kernel process is watched** (a pidfd of bwrap): its heartbeat channel answers from its
  own thread, so a kernel whose main thread died would look alive.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import platform
import re
import resource
import secrets
import shutil
import signal
import stat
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from assistants_grpc.tools.code_interpreter import seccomp
from assistants_grpc.tools.code_interpreter.datadir import FdDataDir
from assistants_grpc.tools.code_interpreter.sandbox import (
    CHANNELS,
    MiB,
    SandboxLimits,
    SandboxStartError,
    SandboxUnavailableError,
)
from assistants_grpc.tools.code_interpreter.slots import Slot, SlotPool

log = logging.getLogger(__name__)

VENV_IN_SANDBOX = "/opt/python"
KERNEL_DIR = "/run/kernel"
CONNECTION_FILE = "/run/kernel.json"
DATA_DIR = "/mnt/data"

# Variables the kernel may have from the server's environment: OpenBLAS's CPU settings (on
# some processors older OpenBLAS builds compute wrong results without them). Nothing else.
PASSED_VARIABLES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
_DEVICES = ("null", "zero", "full", "random", "urandom", "tty")

# The kernel's first code, run by the sandbox's Python before ipykernel is imported:
# - a thread reads the server's pipe; at end-of-file (the server is gone) it kills every other
#   process of the pid namespace and exits, which ends the namespace;
# - matplotlib's font cache, built by `make sandbox`, is copied where matplotlib looks;
# - one byte on the ready pipe says the sandbox is set up (the server may now open
#   /proc/<init>/root: before this it could still be the host's root);
# - debugpy is made unimportable: ipykernel then runs without its debugger (no frontend here
#   could use it; it has no network to listen on) and the kernel starts about 150 ms sooner
#   (measured: importing debugpy's pydevd is most of ipykernel's own start-up) with less
#   memory.
LAUNCHER = r"""
import os, shutil, signal, sys, threading
watch, ready = int(sys.argv[1]), int(sys.argv[2])
def _watch(fd=watch, kill=os.kill, exit=os._exit, read=os.read):
    try:
        read(fd, 1)
    except BaseException:
        pass
    try:
        kill(-1, signal.SIGKILL)
    finally:
        exit(137)
threading.Thread(target=_watch, name="server-watch", daemon=True).start()
os.makedirs("/tmp/matplotlib", exist_ok=True)
for name in os.listdir("/opt/python/share/matplotlib"):
    shutil.copyfile("/opt/python/share/matplotlib/" + name, "/tmp/matplotlib/" + name)
os.write(ready, b"r")
os.close(ready)
sys.argv = ["ipykernel", "-f", "/run/kernel.json"] + sys.argv[3:]
sys.modules["debugpy"] = None
from ipykernel import kernelapp
kernelapp.launch_new_instance()
"""

KERNEL_ARGUMENTS = (
    # No history database in $HOME, plain tracebacks without colours, no banner noise.
    "--HistoryManager.enabled=False",
    "--InteractiveShell.colors=nocolor",
    "--InteractiveShell.xmode=Plain",
    "--IPKernelApp.quiet=True",
    "--Application.log_level=WARN",
)


_MODULE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


def preload_arguments(modules: Sequence[str]) -> list[str]:
    """The kernel's options that import `modules` while it starts (after its shell exists, so
    `matplotlib.pyplot` still gets the inline backend's hooks), into `sys.modules` only: the
    user's namespace stays empty (the loop variable is deleted). A module that fails to import
    is reported on the kernel's own stderr and the kernel starts anyway. ValueError for a name
    that is not a dotted Python identifier (they become code)."""
    for name in modules:
        if not _MODULE.fullmatch(name):
            raise ValueError(f"not a Python module name: {name!r}")
    if not modules:
        return []
    names = ", ".join(repr(name) for name in modules)
    return [
        f"--IPKernelApp.exec_lines=for _preload in ({names},): __import__(_preload)",
        "--IPKernelApp.exec_lines=del _preload",
    ]


def default_venv() -> Path:
    """`.sandbox/venv` of the checkout this package runs from (make sandbox builds it)."""
    return Path(__file__).resolve().parents[4] / ".sandbox" / "venv"


class BwrapKernel:
    """One running sandbox (`SandboxedKernel`)."""

    def __init__(
        self,
        *,
        process: subprocess.Popen[bytes],
        slot: Slot,
        pool: SlotPool,
        key: bytes,
        watch_fd: int,
        description: str,
    ) -> None:
        self._process = process
        self._slot = slot
        self._pool = pool
        self.key = key
        self._watch_fd = watch_fd
        self.description = description
        self.urls: dict[str, str] = {}
        self._fds: list[int] = []
        self._init_pidfd = -1
        self._kernel_pidfd = -1
        self.data: FdDataDir = FdDataDir(-1)
        loop = asyncio.get_running_loop()
        self.exited: asyncio.Future[int] = loop.create_future()
        self._pidfd = os.pidfd_open(process.pid)
        loop.add_reader(self._pidfd, self._on_exit)
        self._killed = False

    def _on_exit(self) -> None:
        loop = asyncio.get_running_loop()
        loop.remove_reader(self._pidfd)
        code = self._process.wait()
        if not self.exited.done():
            self.exited.set_result(code)

    @property
    def alive(self) -> bool:
        return not self.exited.done()

    async def attach(self, init_pid: int, ready_fd: int, timeout: float) -> None:
        """After bwrap started: wait until the sandbox is set up and the kernel has bound its
        sockets, then open everything the server reaches it by."""
        deadline = time.monotonic() + timeout
        await self._until(lambda: _readable(ready_fd), deadline, "set up")
        if os.read(ready_fd, 1) != b"r":
            raise SandboxStartError("the sandbox's kernel exited while starting")
        # The sandbox is set up: /proc/<init>/root is its root now, and no model code ran yet.
        self._init_pidfd = os.pidfd_open(init_pid)
        root = os.open(f"/proc/{init_pid}/root", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        self._fds.append(root)
        owner = None if self._slot.lock_fd is None else (self._slot.uid, self._slot.gid)
        self.data = FdDataDir(
            os.open(DATA_DIR.lstrip("/"), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=root),
            owner,
        )
        kernel_dir = os.open(
            KERNEL_DIR.lstrip("/"), os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=root
        )
        self._fds.append(kernel_dir)
        children = _children(init_pid)
        if len(children) == 1:
            self._kernel_pidfd = os.pidfd_open(children[0])
        names = {channel: f"k-{index}" for index, channel in enumerate(CHANNELS, 1)}
        await self._until(
            lambda: set(names.values()) <= set(os.listdir(f"/proc/self/fd/{kernel_dir}")),
            deadline,
            "bind its sockets",
        )
        for channel, name in names.items():
            fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=kernel_dir)
            self._fds.append(fd)
            if not stat.S_ISSOCK(os.fstat(fd).st_mode):
                raise SandboxStartError(f"the kernel's {channel} channel is not a socket")
            self.urls[channel] = f"ipc:///proc/self/fd/{fd}"

    async def _until(self, ready: Callable[[], bool], deadline: float, what: str) -> None:
        delay = 0.002
        while not ready():
            if not self.alive:
                raise SandboxStartError(
                    f"the sandbox exited ({self.exited.result()}) before it could {what}"
                )
            if time.monotonic() > deadline:
                raise SandboxStartError(f"the sandbox did not {what} in time")
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 0.02)

    def interrupt(self) -> None:
        if self._kernel_pidfd >= 0 and self.alive:
            with contextlib.suppress(ProcessLookupError, OSError):
                signal.pidfd_send_signal(self._kernel_pidfd, signal.SIGINT)

    async def kill(self) -> None:
        if self._killed:
            return
        self._killed = True
        # The sandbox's init first: its pid namespace ends with it, every process in it too.
        for pidfd in (self._init_pidfd, self._kernel_pidfd):
            if pidfd >= 0:
                with contextlib.suppress(ProcessLookupError, OSError):
                    signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            self._process.kill()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(self.exited), 5.0)
        if not self.exited.done():
            log.warning("sandbox %s did not exit after SIGKILL", self.description)
        self.data.close()
        for fd in (*self._fds, self._init_pidfd, self._kernel_pidfd, self._watch_fd):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._fds = []
        self._init_pidfd = self._kernel_pidfd = self._watch_fd = -1
        # Whatever escaped the namespace's end (nothing should) goes with the uid and cgroup.
        await asyncio.to_thread(self._pool.release, self._slot)
        if self.exited.done():
            with contextlib.suppress(OSError, ValueError):
                asyncio.get_running_loop().remove_reader(self._pidfd)
                os.close(self._pidfd)


def _readable(fd: int) -> bool:
    import select

    readable, _, _ = select.select([fd], [], [], 0)
    return bool(readable)


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as children:
            return [int(p) for p in children.read().split()]
    except (OSError, ValueError):
        return []


class BwrapSandbox:
    """Starts kernels in bubblewrap (`Sandbox`)."""

    def __init__(
        self,
        *,
        limits: SandboxLimits | None = None,
        bwrap: str = "bwrap",
        venv: Path | None = None,
        slots: int = 32,
        uid_base: int = 990000,
        start_timeout: float = 30.0,
        lock_dir: Path | None = None,
        environ: Mapping[str, str] | None = None,
        preload: Sequence[str] = (),
    ) -> None:
        self.limits = limits or SandboxLimits()
        self._preload = preload_arguments(preload)
        """Every kernel imports these while it starts (`--code-interpreter-preload`): pool and
        on-demand kernels alike, so a pool kernel is still the same as a fresh one."""
        self._bwrap_name = bwrap
        self.venv = venv or default_venv()
        self._slots_count = slots
        self._uid_base = uid_base
        self._start_timeout = start_timeout
        self._lock_dir = lock_dir
        self._pool: SlotPool | None = None
        self._seccomp = seccomp.program()
        host = os.environ if environ is None else environ
        self._passed = {name: host[name] for name in PASSED_VARIABLES if name in host}
        self.notes: list[str] = []

    @property
    def capacity(self) -> int:
        return self._slots_count

    @property
    def memory_cgroup(self) -> str | None:
        """ "v1" or "v2" when each session has a memory cgroup (after `check`); None: rlimits."""
        return None if self._pool is None else self._pool.memory_cgroup

    def check(self) -> None:
        """Everything a start needs is there (a quick look; `start` is the real test)."""
        bwrap = shutil.which(self._bwrap_name)
        if bwrap is None:
            raise SandboxUnavailableError(
                f"bubblewrap not found ({self._bwrap_name!r}): install it (Debian/Ubuntu: "
                "apt-get install bubblewrap)"
            )
        self._bwrap = bwrap
        for tool in (_SHELL, _PRLIMIT, _SETPRIV):
            if not os.access(tool, os.X_OK):
                raise SandboxUnavailableError(
                    f"{tool} not found: the sandbox is started through it (Debian: bash, "
                    "util-linux)"
                )
        python = self.venv / "bin" / "python"
        if not (python.exists() and (self.venv / ".installed").exists()):
            raise SandboxUnavailableError(
                f"the sandbox's Python environment is not built at {self.venv} (make sandbox)"
            )
        target = Path(os.path.realpath(python))
        if not target.is_relative_to("/usr"):
            raise SandboxUnavailableError(
                f"the sandbox's Python {target} is not under /usr, the only host directory a "
                "sandbox sees (make sandbox builds it with /usr/bin/python3)"
            )
        if self._pool is None:
            self._pool = SlotPool(
                uid_base=self._uid_base,
                count=self._slots_count,
                memory_bytes=self.limits.memory_bytes,
                processes=self.limits.processes,
                lock_dir=self._lock_dir,
            )
            self.notes = list(self._pool.notes)
            if self._seccomp is None:
                self.notes.append(f"no seccomp filter for {platform.machine()}")
            else:
                self.notes.append("seccomp filter loaded")

    def _arguments(self, fds: dict[str, int]) -> list[str]:
        limits = self.limits
        args = [
            self._bwrap,
            "--unshare-all",
            "--unshare-user",
            "--disable-userns",
            "--die-with-parent",
            "--new-session",
            "--hostname",
            "sandbox",
            "--ro-bind",
            "/usr",
            "/usr",
        ]
        for link in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
            if Path(f"/{link}").is_symlink() and (Path("/usr") / link).exists():
                args += ["--symlink", f"usr/{link}", f"/{link}"]
        args += ["--ro-bind", str(self.venv), VENV_IN_SANDBOX, "--proc", "/proc"]
        args += ["--size", str(1 * MiB), "--perms", "0755", "--tmpfs", "/dev"]
        for device in _DEVICES:
            args += ["--dev-bind", f"/dev/{device}", f"/dev/{device}"]
        for name, source in (
            ("fd", "/proc/self/fd"),
            ("stdin", "/proc/self/fd/0"),
            ("stdout", "/proc/self/fd/1"),
            ("stderr", "/proc/self/fd/2"),
        ):
            args += ["--symlink", source, f"/dev/{name}"]
        args += ["--size", str(limits.shm_bytes), "--perms", "1777", "--tmpfs", "/dev/shm"]
        args += ["--remount-ro", "/dev"]
        args += ["--size", str(limits.tmp_bytes), "--perms", "1777", "--tmpfs", "/tmp"]
        args += ["--size", str(limits.data_bytes), "--perms", "0755", "--tmpfs", DATA_DIR]
        args += ["--size", str(1 * MiB), "--perms", "0700", "--tmpfs", KERNEL_DIR]
        args += ["--ro-bind-data", str(fds["connection"]), CONNECTION_FILE]
        args += ["--remount-ro", "/"]
        if "seccomp" in fds:
            args += ["--seccomp", str(fds["seccomp"])]
        args += ["--info-fd", str(fds["info"]), "--chdir", DATA_DIR, "--clearenv"]
        variables = {
            "HOME": "/tmp",
            "USER": "sandbox",
            "PATH": f"{VENV_IN_SANDBOX}/bin:/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "MPLBACKEND": "module://matplotlib_inline.backend_inline",
            "MPLCONFIGDIR": "/tmp/matplotlib",
            "FONTCONFIG_FILE": f"{VENV_IN_SANDBOX}/etc/fonts.conf",
            "JUPYTER_RUNTIME_DIR": "/tmp/jupyter",
            "IPYTHONDIR": "/tmp/ipython",
            "JUPYTER_PLATFORM_DIRS": "1",
            "PYDEVD_DISABLE_FILE_VALIDATION": "1",
            # One core's worth of threads each: sessions share the host's cores.
            "OMP_NUM_THREADS": "1",
            "OPENBLAS_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
            # Fewer malloc arenas: less address space per thread under RLIMIT_AS.
            "MALLOC_ARENA_MAX": "2",
            **self._passed,
        }
        for name, value in variables.items():
            args += ["--setenv", name, value]
        args += [
            "--",
            f"{VENV_IN_SANDBOX}/bin/python",
            "-I",
            "-c",
            LAUNCHER,
            str(fds["watch"]),
            str(fds["ready"]),
            *KERNEL_ARGUMENTS,
            *self._preload,
        ]
        return args

    def _rlimits(self, slot: Slot) -> list[tuple[int, int]]:
        limits = self.limits
        processes = limits.processes
        if slot.lock_fd is None:
            # No uid of its own: RLIMIT_NPROC counts everything the server's uid runs.
            processes += _thread_count(os.getuid())
        memory = limits.memory_bytes
        return [
            (resource.RLIMIT_AS, memory),
            (resource.RLIMIT_DATA, memory),
            (resource.RLIMIT_NPROC, processes),
            (resource.RLIMIT_FSIZE, limits.file_bytes),
            (resource.RLIMIT_NOFILE, limits.open_files),
            (resource.RLIMIT_CPU, limits.cpu_seconds),
            (resource.RLIMIT_CORE, 0),
        ]

    async def start(self) -> BwrapKernel:
        self.check()
        assert self._pool is not None
        slot = await asyncio.to_thread(self._pool.acquire)
        if slot is None:
            raise SandboxStartError("every sandbox uid slot is taken")
        try:
            return await self._start(slot)
        except BaseException:
            await asyncio.to_thread(self._pool.release, slot)
            raise

    async def _start(self, slot: Slot) -> BwrapKernel:
        assert self._pool is not None
        key = secrets.token_hex(32).encode()
        connection = {
            "transport": "ipc",
            "ip": f"{KERNEL_DIR}/k",
            "key": key.decode(),
            "signature_scheme": "hmac-sha256",
            "kernel_name": "python3",
            **{f"{channel}_port": index for index, channel in enumerate(CHANNELS, 1)},
        }
        pipes: list[int] = []

        def pipe_with(data: bytes | None = None) -> tuple[int, int]:
            read_end, write_end = os.pipe()
            pipes.extend((read_end, write_end))
            if data is not None:
                os.write(write_end, data)  # small: fits the pipe's buffer
                os.close(write_end)
                pipes.remove(write_end)
            return read_end, write_end

        try:
            connection_r, _ = pipe_with(json.dumps(connection).encode())
            info_r, info_w = pipe_with()
            ready_r, ready_w = pipe_with()
            watch_r, watch_w = pipe_with()
            fds = {"connection": connection_r, "info": info_w, "ready": ready_w, "watch": watch_r}
            if self._seccomp is not None:
                fds["seccomp"], _ = pipe_with(self._seccomp)
            rlimits = self._rlimits(slot)
            cgroups = list(slot.cgroup_procs)

            # No user=/group= here: with them subprocess must fork() instead of vfork(), and
            # the forked child of the threaded server runs gRPC's atfork handlers, which
            # segfaulted there now and then (bwrap "said nothing", exit -11). setpriv switches.
            process = subprocess.Popen(
                _limited(
                    self._arguments(fds),
                    rlimits,
                    cgroups,
                    (slot.uid, slot.gid) if slot.lock_fd is not None else None,
                ),
                env={},
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                pass_fds=(*fds.values(), *cgroups),
                cwd="/",
                process_group=None,
            )
            for fd in (connection_r, info_w, ready_w, watch_r, fds.get("seccomp", -1)):
                if fd >= 0:
                    os.close(fd)
                    pipes.remove(fd)
            kernel = BwrapKernel(
                process=process,
                slot=slot,
                pool=self._pool,
                key=key,
                watch_fd=watch_w,
                description=f"uid {slot.uid}, bwrap pid {process.pid}",
            )
            pipes.remove(watch_w)
            try:
                info = await _read_to_end(info_r, kernel.exited, self._start_timeout)
                init_pid = int(json.loads(info)["child-pid"])
                await kernel.attach(init_pid, ready_r, self._start_timeout)
            except BaseException:
                await kernel.kill()
                raise
            return kernel
        except (ValueError, KeyError) as error:
            raise SandboxStartError(
                f"bwrap said nothing usable about its sandbox ({error})"
            ) from None
        finally:
            for fd in pipes:
                with contextlib.suppress(OSError):
                    os.close(fd)


# The uid, the limits and the cgroups are applied by a shell, setpriv and prlimit between
# spawn and bwrap, not by a `preexec_fn` nor subprocess's user=/group=: code run in the forked
# child of a threaded process (the server has database, gRPC and executor threads) can crash or
# deadlock on a lock another thread held at fork (seen here: a segfault in
# `threading._after_fork`, and one in the atfork handlers gRPC registers, which fork() runs
# in the child). With none of those, subprocess spawns with vfork(), which runs no handler.
# bash, not sh: dash redirects only fds 0-9, and the cgroup fds are numbered higher.
_SHELL = "/bin/bash"
_SETPRIV = "/usr/bin/setpriv"
_PRLIMIT = "/usr/bin/prlimit"
_PRLIMIT_OPTIONS = {
    resource.RLIMIT_AS: "--as",
    resource.RLIMIT_DATA: "--data",
    resource.RLIMIT_NPROC: "--nproc",
    resource.RLIMIT_FSIZE: "--fsize",
    resource.RLIMIT_NOFILE: "--nofile",
    resource.RLIMIT_CPU: "--cpu",
    resource.RLIMIT_CORE: "--core",
}


def _limited(
    argv: list[str],
    rlimits: list[tuple[int, int]],
    cgroup_fds: list[int],
    user: tuple[int, int] | None = None,
) -> list[str]:
    """`argv` started by a shell that first joins the slot's cgroups (a "0" written to each
    `cgroup.procs` fd the server opened moves the writer itself; the fd is closed right after,
    so the sandbox never inherits it), then by setpriv, which becomes `user` (uid, gid; no
    supplementary groups, no capabilities left), then by prlimit, which sets the rlimits on
    itself and execs bwrap: the limits hold before bwrap forks anything."""
    joins = "".join(f"printf 0 >&{fd} || exit 126; exec {fd}>&-; " for fd in cgroup_fds)
    limits = [f"{_PRLIMIT_OPTIONS[which]}={value}:{value}" for which, value in rlimits]
    switch = (
        [_SETPRIV, f"--reuid={user[0]}", f"--regid={user[1]}", "--clear-groups", "--"]
        if user is not None
        else []
    )
    # `exec -c`: setpriv, prlimit and bwrap get an empty environment, not the shell's own
    # PWD/SHLVL (bwrap's pid 1 keeps its caller's environment, readable in /proc/1/environ).
    return [_SHELL, "-c", joins + 'exec -c "$0" "$@"', *switch, _PRLIMIT, *limits, "--", *argv]


async def _read_to_end(fd: int, exited: asyncio.Future[int], timeout: float) -> bytes:
    """Everything written to the pipe `fd` until its writer closes it (bwrap's --info-fd)."""
    os.set_blocking(fd, False)
    loop = asyncio.get_running_loop()
    data = b""
    done: asyncio.Future[None] = loop.create_future()

    def on_readable() -> None:
        nonlocal data
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            return
        if chunk:
            data += chunk
            if len(data) > 65536 and not done.done():
                done.set_exception(SandboxStartError("bwrap's info is too long"))
        elif not done.done():
            done.set_result(None)

    loop.add_reader(fd, on_readable)
    try:
        waited: set[asyncio.Future[Any]] = {done, exited}
        finished, _ = await asyncio.wait(
            waited, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
        if done in finished:
            done.result()
            return data
        if exited in finished:
            raise SandboxStartError(f"bwrap exited ({exited.result()}) while starting")
        raise SandboxStartError("bwrap did not start the sandbox in time")
    finally:
        loop.remove_reader(fd)


def _thread_count(uid: int) -> int:
    """Tasks (processes and threads) the uid runs now: what RLIMIT_NPROC already counts."""
    count = 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if os.stat(entry.path).st_uid == uid:
                    count += len(os.listdir(f"{entry.path}/task"))
    return count


__all__ = [
    "CONNECTION_FILE",
    "DATA_DIR",
    "KERNEL_ARGUMENTS",
    "LAUNCHER",
    "PASSED_VARIABLES",
    "BwrapKernel",
    "BwrapSandbox",
    "default_venv",
    "preload_arguments",
]
