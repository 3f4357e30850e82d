"""Child processes of the benchmark: start them on loopback, wait until they answer, and always
stop them (terminate, then kill) however the benchmark ends."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self, TypeVar

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

HOST = "127.0.0.1"
REPO_ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0

T = TypeVar("T")
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def run_event_loop(main: Coroutine[Any, Any, T]) -> T:
    """Run `main` on uvloop when installed (as `assistants-grpc serve` does), else on asyncio."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


def free_port() -> int:
    """A port nobody listens on right now (the child binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def rss_bytes(pid: int) -> int:
    """Resident memory of `pid` (VmRSS in /proc/<pid>/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def _cpu_jiffies(pid: int) -> int:
    """User + system CPU of `pid` (all its threads) in clock ticks; 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds `pid` has used so far."""
    return _cpu_jiffies(pid) / _CLOCK_TICKS


def _machine_jiffies() -> tuple[int, int]:
    """(busy, total) clock ticks of all cores since boot (/proc/stat)."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    user, nice, system, idle, iowait, irq, softirq, steal = values
    busy = user + nice + system + irq + softirq + steal
    return busy, busy + idle + iowait


def machine_busy_pct(seconds: float) -> float:
    """How busy all cores were over the next `seconds` (blocks)."""
    busy0, total0 = _machine_jiffies()
    time.sleep(seconds)
    busy, total = _machine_jiffies()
    return 100 * (busy - busy0) / max(total - total0, 1)


class CpuMeter:
    """How busy the machine was over an interval, and how much of it was the benchmark's own
    processes: other work on a shared machine makes the figures noisy, and the report says so."""

    def __init__(self, pids: Callable[[], list[int]]) -> None:
        self._pids = pids
        self._start: tuple[int, int, dict[int, int]] | None = None

    def start(self) -> None:
        busy, total = _machine_jiffies()
        self._start = (busy, total, {pid: _cpu_jiffies(pid) for pid in self._pids()})

    def stop(self) -> dict[str, float]:
        if self._start is None:
            raise RuntimeError("CpuMeter.stop before start")
        busy0, total0, ours0 = self._start
        busy, total = _machine_jiffies()
        ours = sum(max(_cpu_jiffies(pid) - before, 0) for pid, before in ours0.items())
        elapsed = max(total - total0, 1)
        return {
            "machine_busy_pct": round(100 * (busy - busy0) / elapsed, 1),
            "bench_processes_pct": round(100 * ours / elapsed, 1),
            "other_processes_pct": round(100 * max(busy - busy0 - ours, 0) / elapsed, 1),
        }


class ChildFailedError(RuntimeError):
    """A child process died or never became ready."""


@dataclass
class Child:
    """One child process with its output in a log file."""

    name: str
    argv: list[str]
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    port: int = 0
    second_port: int = 0  # the model server's Nagle-on variant
    process: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = None

    @property
    def pid(self) -> int:
        if self.process is None:
            raise RuntimeError(f"{self.name} is not started")
        return self.process.pid

    def start(self) -> None:
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            self.argv,
            cwd=REPO_ROOT,
            env={**os.environ, **self.env},
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C in the terminal reaches only the benchmark
        )

    def check_alive(self, grace: float = 0.0) -> None:
        """Raise if the process has exited (waiting up to `grace` seconds to find out: a
        process whose sockets just closed may not have been reaped yet)."""
        if self.process is None:
            return
        if grace > 0:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(grace)
        if self.process.poll() is not None:
            raise ChildFailedError(
                f"{self.name} exited with {self.process.returncode}:\n{self.log_tail()}"
            )

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        """SIGTERM, wait, then SIGKILL; never raises for a process already gone."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                process.wait(STOP_TIMEOUT)
        if self._log is not None:
            self._log.close()
            self._log = None


class Children:
    """Owns every child process the benchmark starts and stops them all on exit."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self._children: list[Child] = []

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop_all()

    def stop_all(self) -> None:
        while self._children:
            child = self._children.pop()
            try:
                child.stop()
            except Exception as error:  # keep stopping the others
                print(f"bench: could not stop {child.name}: {error!r}", file=sys.stderr)

    def pids(self) -> list[int]:
        """The benchmark's own process and its running children."""
        return [os.getpid()] + [c.pid for c in self._children if c.process is not None]

    def stop(self, child: Child) -> None:
        if child in self._children:
            self._children.remove(child)
        child.stop()

    def _start(self, name: str, argv: Sequence[str], port: int, env: dict[str, str]) -> Child:
        child = Child(name, list(argv), self.log_dir / f"{name}.log", env=env, port=port)
        self._children.append(child)  # registered first: stopped even if start fails half-way
        child.start()
        return child

    def start_model_server(self) -> Child:
        """The model server, on `port` and (Nagle left on) on `second_port`."""
        port = nagle_port = free_port()
        while nagle_port == port:
            nagle_port = free_port()
        argv = [sys.executable, "-m", "tests.bench.model_server", "--port", str(port)]
        argv += ["--nagle-port", str(nagle_port)]
        child = self._start("model-server", argv, port, {})
        child.second_port = nagle_port
        _wait_http(child, "/health")
        _wait_http(child, "/health", nagle_port)
        return child

    def start_echo_server(self) -> Child:
        port = free_port()
        argv = [sys.executable, "-m", "tests.bench.echo_server", "--port", str(port)]
        child = self._start("echo-server", argv, port, {})
        _wait_echo(child)
        return child

    def start_service(
        self,
        name: str,
        database_url: str,
        model_port: int,
        extra: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
    ) -> Child:
        port = free_port()
        argv = [
            str(BIN / "assistants-grpc"),
            "serve",
            "--port",
            str(port),
            "--database-url",
            database_url,
            "--log-level",
            "WARNING",
            "--shutdown-grace",
            "2",
            # No HTTP face and no metrics unless a section asks (`extra` wins: the last flag
            # counts).
            "--http-port",
            "0",
            "--metrics-port",
            "0",
            *extra,
        ]
        environment = {
            "OPENAI_BASE_URL": f"http://{HOST}:{model_port}/v1",
            "OPENAI_API_KEY": "x",
            **(env or {}),
        }
        child = self._start(name, argv, port, environment)
        _wait_grpc_health(child)
        return child


def _wait_grpc_health(child: Child) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    with grpc.insecure_channel(f"{HOST}:{child.port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            child.check_alive()
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1.0)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            if time.monotonic() > deadline:
                raise ChildFailedError(f"{child.name} not SERVING:\n{child.log_tail()}")
            time.sleep(0.1)


def _wait_echo(child: Child) -> None:
    from tests.bench.echo_server import METHOD

    deadline = time.monotonic() + START_TIMEOUT
    with grpc.insecure_channel(f"{HOST}:{child.port}") as channel:
        echo = channel.unary_unary(METHOD)
        while True:
            child.check_alive()
            try:
                if echo(b"ping", timeout=1.0) == b"ping":
                    return
            except grpc.RpcError:
                pass
            if time.monotonic() > deadline:
                raise ChildFailedError(f"{child.name} not answering:\n{child.log_tail()}")
            time.sleep(0.1)


def _wait_http(child: Child, path: str, port: int | None = None) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        child.check_alive()
        connection = http.client.HTTPConnection(HOST, port or child.port, timeout=1.0)
        try:
            connection.request("GET", path)
            if connection.getresponse().status == 200:
                return
        except OSError:
            pass
        finally:
            connection.close()
        if time.monotonic() > deadline:
            raise ChildFailedError(f"{child.name} not answering:\n{child.log_tail()}")
        time.sleep(0.1)


__all__ = [
    "HOST",
    "Child",
    "ChildFailedError",
    "Children",
    "CpuMeter",
    "cpu_seconds",
    "free_port",
    "machine_busy_pct",
    "rss_bytes",
    "run_event_loop",
]
