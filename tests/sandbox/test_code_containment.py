"""Hostile code in the sandbox: each attempt is contained, bounded in time, and the host and
the other sessions are unaffected (a neighbour session keeps its state throughout)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from assistants_grpc.tools.code_interpreter.sandbox import SandboxLimits
from tests.sandbox.conftest import Harness, make_harness, new_thread

pytestmark = pytest.mark.timeout(180)

CHECKOUT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
async def hostile() -> AsyncIterator[Harness]:
    from assistants_grpc.tools.code_interpreter.executor import ExecutionLimits

    h = make_harness(
        limits=SandboxLimits(
            memory_bytes=384 * 1024 * 1024,
            processes=48,
            file_bytes=32 * 1024 * 1024,
            data_bytes=48 * 1024 * 1024,
            tmp_bytes=48 * 1024 * 1024,
        ),
        execution=ExecutionLimits(wall_seconds=4.0),
        slots=4,
        uid_base=990300,
    )
    yield h
    await h.sessions.close()


@pytest.fixture(scope="module")
async def neighbour(hostile: Harness) -> str:
    thread = new_thread()
    await hostile.run(thread, "kept = 'still here'")
    return thread


async def still_fine(h: Harness, neighbour: str) -> None:
    assert h.logs(await h.run(neighbour, "kept")) == "'still here'"


async def test_runs_as_an_unprivileged_uid_with_nothing_of_the_host(
    hostile: Harness, neighbour: str
) -> None:
    thread = new_thread()
    code = textwrap.dedent(
        f"""
        import os
        print(os.getuid(), os.getgid(), os.getgroups())
        print(sorted(os.listdir('/')))
        for path in ('/etc/shadow', '/etc/passwd', {str(CHECKOUT)!r},
                     {str(CHECKOUT / "pyproject.toml")!r},
                     '/var/run/postgresql', '/run/postgresql', '/root'):
            print(path, os.path.exists(path))
        print('environ1', open('/proc/1/environ').read() == '')
        names = ('KEY', 'DATABASE', 'ASSISTANTS', 'OPENAI')
        print('secrets', [k for k in os.environ if any(n in k for n in names)])
        """
    )
    logs = hostile.logs(await hostile.run(thread, code))
    lines = logs.splitlines()
    uid = int(lines[0].split()[0])
    assert uid >= 990300 and lines[0].endswith("[]")
    assert (
        lines[1]
        == "['bin', 'dev', 'lib', 'lib64', 'mnt', 'opt', 'proc', 'run', 'sbin', 'tmp', 'usr']"
    )
    assert all(line.endswith("False") for line in lines[2:9]), logs
    assert "environ1 True" in logs and "secrets []" in logs
    await still_fine(hostile, neighbour)


async def test_no_network_to_the_hosts_ports_or_postgres(hostile: Harness, neighbour: str) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    try:
        code = textwrap.dedent(
            f"""
            import socket
            for port in ({port}, 5432):
                s = socket.socket()
                s.settimeout(1)
                try:
                    s.connect(('127.0.0.1', port))
                    print(port, 'connected')
                except OSError as e:
                    print(port, 'refused', type(e).__name__)
            for path in ('/var/run/postgresql/.s.PGSQL.5432', '/run/postgresql/.s.PGSQL.5432'):
                u = socket.socket(socket.AF_UNIX)
                try:
                    u.connect(path)
                    print(path, 'connected')
                except OSError as e:
                    print(path, 'refused')
            """
        )
        logs = hostile.logs(await hostile.run(new_thread(), code))
        assert "connected" not in logs and logs.count("refused") == 4, logs
        listener.settimeout(0.1)
        with pytest.raises(TimeoutError):
            listener.accept()
    finally:
        listener.close()
    await still_fine(hostile, neighbour)


async def test_setuid_unshare_ptrace_and_mount_are_refused(
    hostile: Harness, neighbour: str
) -> None:
    code = textwrap.dedent(
        """
        import ctypes, os
        libc = ctypes.CDLL(None, use_errno=True)
        def check(result):
            if result < 0:
                raise OSError(ctypes.get_errno(), 'refused')
        for name, call in [
            ('setuid', lambda: os.setuid(0)),
            ('unshare', lambda: check(libc.unshare(0x10000000))),
            ('ptrace', lambda: check(libc.ptrace(16, 1, 0, 0))),
            ('mount', lambda: check(libc.mount(b'none', b'/tmp', b'tmpfs', 0, None))),
            ('clone-newns', lambda: check(libc.syscall(56, 0x00020000 | 17, 0, 0, 0, 0))),
        ]:
            try:
                call()
                print(name, 'ALLOWED')
            except OSError as e:
                print(name, 'refused', e.errno)
        """
    )
    logs = hostile.logs(await hostile.run(new_thread(), code))
    assert "ALLOWED" not in logs and logs.count("refused") == 5, logs
    await still_fine(hostile, neighbour)


async def test_a_fork_bomb_is_contained(hostile: Harness, neighbour: str) -> None:
    code = textwrap.dedent(
        """
        import os
        count = 0
        errors = 0
        children = []
        for _ in range(500):
            try:
                pid = os.fork()
            except OSError:
                errors += 1
                break
            if pid == 0:
                import time
                time.sleep(30)
                os._exit(0)
            children.append(pid)
        print('forked', len(children), 'then refused', errors)
        """
    )
    started = time.monotonic()
    logs = hostile.logs(await hostile.run(new_thread(), code))
    assert "then refused 1" in logs, logs
    assert int(logs.split()[1]) < 48
    assert time.monotonic() - started < 30
    await still_fine(hostile, neighbour)


async def test_a_memory_hog_is_contained(hostile: Harness, neighbour: str) -> None:
    thread = new_thread()
    result = await hostile.run(thread, "hog = bytearray(2 * 1024 ** 3)")
    assert "MemoryError" in hostile.logs(result)
    growing = await hostile.run(
        thread, "chunks = []\nwhile True:\n    chunks.append(bytearray(16 * 1024 * 1024))"
    )
    logs = hostile.logs(growing)
    assert "MemoryError" in logs or "kernel died" in logs, logs
    await still_fine(hostile, neighbour)


async def test_a_memory_hog_split_across_processes_is_contained(
    hostile: Harness, neighbour: str
) -> None:
    """Four processes of 128 MiB each stay under the per-process address-space limit (384
    MiB): only the session's memory cgroup bounds their sum. Where the host gives one, it
    kills at least one of them (or the kernel); where it does not (rlimits only), the log said
    so at start-up and the processes are each still bounded by the rlimit."""
    code = textwrap.dedent(
        """
        import os, time
        children = []
        for _ in range(4):
            pid = os.fork()
            if pid == 0:
                try:
                    block = bytearray(128 * 1024 * 1024)
                    for i in range(0, len(block), 4096):
                        block[i] = 1
                    time.sleep(1.5)
                    os._exit(0)
                except MemoryError:
                    os._exit(3)
            children.append(pid)
        statuses = [os.waitpid(pid, 0)[1] for pid in children]
        print("killed", sum(os.WIFSIGNALED(s) and os.WTERMSIG(s) == 9 for s in statuses),
              "refused", sum(os.WIFEXITED(s) and os.WEXITSTATUS(s) == 3 for s in statuses))
        """
    )
    sandbox = hostile.sessions.sandbox
    cgroup = getattr(sandbox, "memory_cgroup", None)
    thread = new_thread()
    logs = hostile.logs(await hostile.run(thread, code))
    if cgroup is not None:
        killed = logs.startswith("killed ") and int(logs.split()[1]) >= 1
        assert killed or "kernel died" in logs, logs
    else:
        assert logs.startswith("killed "), logs
    with_big_one = await hostile.run(thread, "big = bytearray(1024 ** 3)")
    assert "MemoryError" in hostile.logs(with_big_one)
    await still_fine(hostile, neighbour)


async def test_an_infinite_loop_is_interrupted(hostile: Harness, neighbour: str) -> None:
    thread = new_thread()
    await hostile.run(thread, "before = 1")
    started = time.monotonic()
    result = await hostile.run(thread, "while True:\n    pass")
    assert time.monotonic() - started < 4.0 + 3.0
    logs = hostile.logs(result)
    assert "KeyboardInterrupt" in logs and "timed out after 4 seconds" in logs
    assert hostile.logs(await hostile.run(thread, "before")) == "1"  # the kernel survived
    await still_fine(hostile, neighbour)


async def test_a_loop_that_ignores_sigint_is_killed(hostile: Harness, neighbour: str) -> None:
    thread = new_thread()
    started = time.monotonic()
    result = await hostile.run(
        thread, "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass"
    )
    assert time.monotonic() - started < 4.0 + 2.0 + 5.0
    assert "did not stop when interrupted" in hostile.logs(result)
    after = await hostile.run(thread, "1 + 1")
    assert after.output.startswith("Code execution state reset.")
    assert hostile.logs(after) == "2"
    await still_fine(hostile, neighbour)


async def test_a_1gb_write_is_contained(hostile: Harness, neighbour: str) -> None:
    code = textwrap.dedent(
        """
        chunk = b'0' * (1024 * 1024)
        for target in ('/mnt/data/big.bin', '/tmp/big.bin', '/dev/shm/big.bin'):
            written = 0
            try:
                with open(target, 'wb') as f:
                    for _ in range(1024):
                        f.write(chunk)
                        written += 1
            except OSError as e:
                print(target, 'stopped at', written, 'MiB:', e.strerror)
        import os
        for target in ('/mnt/data/big.bin', '/tmp/big.bin', '/dev/shm/big.bin'):
            os.remove(target)
        try:
            open('/dev/big', 'wb')
        except OSError as e:
            print('/dev', e.strerror)
        """
    )
    logs = hostile.logs(await hostile.run(new_thread(), code))
    assert logs.count("stopped at") == 3, logs
    assert "/dev Read-only file system" in logs
    for line in logs.splitlines()[:3]:
        assert int(line.split("stopped at ")[1].split()[0]) <= 48
    await still_fine(hostile, neighbour)


async def test_a_symlink_in_mnt_data_never_leaks_host_files(
    hostile: Harness, neighbour: str
) -> None:
    result = await hostile.run(
        new_thread(),
        "import os\nos.symlink('/etc/shadow', '/mnt/data/shadow.txt')\nos.mkfifo('/mnt/data/pipe')",
    )
    assert result.files == ()
    await still_fine(hostile, neighbour)


def test_a_killed_server_leaves_no_sandbox_process(tmp_path: Path) -> None:
    script = tmp_path / "server.py"
    script.write_text(
        textwrap.dedent(
            """
            import asyncio, sys
            from assistants_grpc.tools.code_interpreter.bwrap import BwrapSandbox
            from assistants_grpc.tools.code_interpreter.kernel import Execution, KernelClient
            async def main():
                sandbox = BwrapSandbox(slots=1, uid_base=990400)
                kernel = await sandbox.start()
                client = KernelClient(kernel.urls, kernel.key)
                await client.wait_ready(60)
                print("started", flush=True)
                code = "import os, time\\nif os.fork() == 0:\\n    time.sleep(600)\\n"
                code += "time.sleep(600)"
                await client.execute(code, Execution(100, 1))
            asyncio.run(main())
            """
        )
    )
    process = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, text=True, cwd=CHECKOUT
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "started"
        time.sleep(0.5)
        assert _processes_of(990400), "the sandbox should be running"
        process.kill()
        process.wait(10)
        deadline = time.monotonic() + 10
        while _processes_of(990400) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _processes_of(990400)
    finally:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        process.wait(10)
        if process.stdout is not None:
            process.stdout.close()


def _processes_of(uid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                status = Path(f"/proc/{entry}/status").read_text()
                line = next(li for li in status.splitlines() if li.startswith("Uid:"))
                if int(line.split()[1]) == uid and "State:\tZ" not in status:
                    found.append(int(entry))
    return found
