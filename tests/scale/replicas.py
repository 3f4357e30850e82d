"""Real server processes sharing one PostgreSQL database, for the multi-replica tests."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

import grpc

from tests.conftest import Stubs, stubs_for

_SERVING = re.compile(r"serving on [\d.]+:(\d+)")


@dataclass
class Replica:
    """One `assistants-grpc serve` process and a channel to it."""

    name: str
    process: subprocess.Popen[str]
    port: int
    log: list[str] = field(default_factory=list)
    channel: grpc.aio.Channel | None = None

    @property
    def stubs(self) -> Stubs:
        if self.channel is None:
            self.channel = grpc.aio.insecure_channel(f"127.0.0.1:{self.port}")
        return stubs_for(self.channel)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def terminate(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=30)

    async def close(self) -> None:
        if self.channel is not None:
            await self.channel.close()
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


def start_replica(
    name: str, database_url: str, model_url: str, *extra: str, grace: float = 2.0
) -> Replica:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "assistants_grpc",
            "serve",
            "--port",
            "0",
            "--database-url",
            database_url,
            "--run-lease-seconds",
            "2",
            "--claim-poll-interval",
            "0.2",
            "--shutdown-grace",
            str(grace),
            "--model-max-retries",
            "0",
            *extra,
        ],
        env={**os.environ, "OPENAI_BASE_URL": model_url, "OPENAI_API_KEY": "x"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        if match := _SERVING.search(line):
            replica = Replica(name, process, int(match.group(1)), lines)
            # Keep draining the log so the pipe never fills and blocks the server.
            threading.Thread(target=_drain, args=(process, lines), daemon=True).start()
            return replica
    process.kill()
    process.wait()
    process.stdout.close()
    raise AssertionError(f"replica {name} did not start:\n" + "".join(lines))


def _drain(process: subprocess.Popen[str], lines: list[str]) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        lines.append(line)
    process.stdout.close()
