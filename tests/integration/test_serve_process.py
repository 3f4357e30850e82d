"""`assistants-grpc` as a process: serve with flags and environment, health, reflection, a
graceful SIGTERM, and the migrate and fake-model commands."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from assistants_grpc.contract.pb import assistant_pb2, assistant_pb2_grpc

_SERVING = re.compile(r"serving on ([\d.]+):(\d+)")


def _spawn(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "assistants_grpc", *args],
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait_for(process: subprocess.Popen[str], pattern: re.Pattern[str]) -> re.Match[str]:
    assert process.stdout is not None
    deadline = time.monotonic() + 30
    lines = []
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        if match := pattern.search(line):
            return match
    process.kill()
    process.communicate()
    raise AssertionError("server did not start:\n" + "".join(lines))


@pytest.fixture
def server_process(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], int]]:
    # The port comes from the environment and the database from a flag: both paths are used.
    process = _spawn(
        "serve",
        "--database-url",
        f"sqlite:///{tmp_path / 'data' / 'a.db'}",
        env={"ASSISTANTS_PORT": "0", "ASSISTANTS_LOG_LEVEL": "INFO"},
    )
    match = _wait_for(process, _SERVING)
    try:
        yield process, int(match.group(2))
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()


def test_serve_health_reflection_and_sigterm(
    server_process: tuple[subprocess.Popen[str], int], tmp_path: Path
) -> None:
    process, port = server_process
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "assistants.v1.RunService"):
            answer = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            assert answer.status == health_pb2.HealthCheckResponse.SERVING
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        replies = reflection.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5
        )
        names = {s.name for reply in replies for s in reply.list_services_response.service}
        assert {
            "assistants.v1.AssistantService",
            "assistants.v1.ThreadService",
            "assistants.v1.MessageService",
            "assistants.v1.RunService",
            "grpc.health.v1.Health",
        } <= names
        stub = assistant_pb2_grpc.AssistantServiceStub(channel)
        stub.CreateAssistant(assistant_pb2.CreateAssistantRequest(model="m"), timeout=5)
    assert (tmp_path / "data" / "a.db").exists()  # the folder was created
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=20)
    assert process.returncode == 0, output
    assert "shutting down" in output and "Traceback" not in output


def test_migrate_and_fake_model_commands(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'm.db'}"
    result = subprocess.run(
        [sys.executable, "-m", "assistants_grpc", "migrate", "--database-url", database],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "database at revision" in result.stderr

    fake = _spawn("fake-model", "--port", "0")
    try:
        match = _wait_for(fake, re.compile(r"127\.0\.0\.1:(\d+)"))
        with urllib.request.urlopen(f"http://127.0.0.1:{match.group(1)}/v1/models", timeout=5) as r:
            assert r.status == 200
    finally:
        fake.terminate()
        fake.communicate(timeout=10)


def test_bad_configuration_is_a_clear_error() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "assistants_grpc", "serve"],
        env={**os.environ, "ASSISTANTS_PORT": "not-a-number"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "ASSISTANTS_PORT" in result.stderr and "Traceback" not in result.stderr
