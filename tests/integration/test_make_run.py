"""A first start as a newcomer makes it (README "Start"): `make run MODEL=fake`, then the streamed
example, on a machine with no model endpoint configured; and what `serve` says at start-up about
the model endpoints it will call."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_SERVING = re.compile(r"serving on [\d.]+:(\d+)")
_CORE_LINE = re.compile(r"[IWEF]\d{4} ")
# Variables a developer's shell may hold that would make this no first start.
_MODEL_ENV = ("OPENAI_BASE_URL", "OPENAI_API_KEY", "ASSISTANTS_MODELS_CONFIG")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _fresh_env(tmp_path: Path, **more: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _MODEL_ENV}
    env.update(
        ASSISTANTS_PORT="0",
        ASSISTANTS_HTTP_PORT="0",
        ASSISTANTS_DATABASE_URL=f"sqlite:///{tmp_path / 'first.db'}",
        ASSISTANTS_CODE_INTERPRETER="off",
        **more,
    )
    return env


class _Output:
    """The merged output of a process, read on a thread so its pipe never fills."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self._process = process
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._read, args=(process,), daemon=True)
        self._thread.start()

    def _read(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            with self._changed:
                self.lines.append(line)
                self._changed.notify_all()
        with self._changed:
            self.lines.append("")  # end of output
            self._changed.notify_all()

    def wait_for(self, pattern: re.Pattern[str], timeout: float = 90) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for line in self.lines:
                    if match := pattern.search(line):
                        return match
                if self.lines and self.lines[-1] == "":
                    raise AssertionError("the process ended:\n" + "".join(self.lines))
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("not seen:\n" + "".join(self.lines))
                self._changed.wait(left)

    @property
    def text(self) -> str:
        return "".join(self.lines)

    def close(self) -> None:
        """Once the process ended: the rest of its output read, the pipe closed."""
        self._thread.join(timeout=30)
        assert self._process.stdout is not None
        self._process.stdout.close()


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_run_model_fake_streams_the_first_run(tmp_path: Path) -> None:
    fake_port = _free_port()
    # -o: the environment is installed already; make would otherwise reinstall it when a
    # checkout's pyproject.toml is newer than the stamp.
    command = [
        "make",
        "--no-print-directory",
        "-o",
        ".venv/.installed",
        "-o",
        ".sandbox/venv/.installed",
        "run",
        "MODEL=fake",
        f"FAKE_MODEL_PORT={fake_port}",
    ]
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env=_fresh_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    output = _Output(process)
    try:
        port = int(output.wait_for(_SERVING).group(1))
        # The start-up log names the endpoint runs will call, and no warning about it.
        assert f"model endpoint http://127.0.0.1:{fake_port}/v1" in output.text
        assert "no usable model endpoint" not in output.text
        example = subprocess.run(
            [sys.executable, str(ROOT / "examples" / "streamed_run.py")],
            env={**_fresh_env(tmp_path), "ASSISTANTS_TARGET": f"127.0.0.1:{port}"},
            capture_output=True,
            text=True,
            timeout=90,
        )
        assert example.returncode == 0, example.stderr
        lines = example.stdout.splitlines()
        assert lines[0] == "You said: Say hello in French."
        assert lines[1].endswith(": RUN_STATUS_COMPLETED")
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        output.close()
    # The fake model went with the server.
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", fake_port)) != 0


def test_serve_without_a_model_endpoint_warns_and_points_at_fake_model(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "assistants_grpc", "serve", "--log-format", "json"],
        env=_fresh_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output = _Output(process)
    try:
        output.wait_for(_SERVING)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
        output.close()
    warning = output.wait_for(re.compile(r".*no usable model endpoint.*")).group(0)
    assert '"level": "WARNING"' in warning
    # Every line is one JSON object (but gRPC's C core's own, written past Python's logging).
    lines = [line for line in output.lines if line.strip() and not _CORE_LINE.match(line)]
    assert {json.loads(line)["logger"] for line in lines} >= {
        "assistants_grpc.runtime",
        "assistants_grpc.server",
    }
    assert "assistants-grpc fake-model" in warning and "make run MODEL=fake" in warning


def test_serve_names_its_endpoints_without_their_keys(tmp_path: Path) -> None:
    config = tmp_path / "models.toml"
    config.write_text(
        "[[endpoints]]\n"
        'base_url = "http://127.0.0.1:9/v1"\n'
        'api_key = "sk-local-secret-0123456789"\n'
        'models = ["llama-*"]\n'
    )
    env = _fresh_env(tmp_path, OPENAI_API_KEY="sk-openai-secret-0123456789")
    process = subprocess.Popen(
        [sys.executable, "-m", "assistants_grpc", "serve", "--models-config", str(config)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output = _Output(process)
    try:
        output.wait_for(_SERVING)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
        output.close()
    text = output.text
    assert "model endpoint http://127.0.0.1:9/v1 for llama-*" in text
    assert "model endpoint https://api.openai.com/v1 for other models (OPENAI_API_KEY set)" in text
    assert "secret" not in text and "no usable model endpoint" not in text
