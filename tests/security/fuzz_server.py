"""The fuzz's server: `assistants-grpc serve` in its own process, with a fake model process.

A separate process, not a thread: hypothesis drives it with blocking calls, generation and
serving then use both cores, and hypothesis does not mistake the server's use of `random` for
its own. Output goes to files (a pipe nobody reads would fill up and stall the server).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

_SERVING = re.compile(r"serving on [\d.]+:(\d+)")
_MODEL = re.compile(r"127\.0\.0\.1:(\d+)")


def _spawn(log: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "assistants_grpc", *args],
            env={**os.environ, **(env or {})},
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _wait_for(process: subprocess.Popen[bytes], log: Path, pattern: re.Pattern[str]) -> int:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if match := pattern.search(log.read_text(errors="replace")):
            return int(match.group(1))
        if process.poll() is not None:
            break
        time.sleep(0.05)
    process.kill()
    raise AssertionError(f"did not start:\n{log.read_text(errors='replace')}")


class ServerProcess:
    def __init__(self, folder: Path, database_url: str, **settings: Any) -> None:
        self.log = folder / "server.log"
        model_log = folder / "model.log"
        self._model = _spawn(model_log, "fake-model", "--port", "0")
        model_port = _wait_for(self._model, model_log, _MODEL)
        flags = [f"--{name.replace('_', '-')}={value}" for name, value in settings.items()]
        self._server = _spawn(
            self.log,
            "serve",
            "--host=127.0.0.1",
            "--port=0",
            f"--database-url={database_url}",
            "--model-max-retries=1",
            *flags,
            env={
                "OPENAI_BASE_URL": f"http://127.0.0.1:{model_port}/v1",
                "OPENAI_API_KEY": "fake",
            },
        )
        try:
            self.port = _wait_for(self._server, self.log, _SERVING)
        except BaseException:
            self._model.kill()
            raise

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def alive(self) -> bool:
        return self._server.poll() is None

    def stop(self) -> int:
        """SIGTERM both; the server's exit code."""
        for process in (self._server, self._model):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        try:
            code = self._server.wait(30)
        finally:
            for process in (self._server, self._model):
                if process.poll() is None:
                    process.kill()
                process.wait()
        return code


__all__ = ["ServerProcess"]
