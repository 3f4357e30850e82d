"""The examples run as scripts against a real server and the fake model."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from assistants_grpc.fake_model import ToolCallsReply
from tests.conftest import RunningServer

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


async def run_example(name: str, target: str) -> str:
    env = {**os.environ, "ASSISTANTS_TARGET": target}
    env.pop("ASSISTANTS_API_KEY", None)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(EXAMPLES / name),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    return out.decode()


async def test_streamed_run(running: RunningServer) -> None:
    output = await run_example("streamed_run.py", running.target)
    lines = output.splitlines()
    assert lines[0] == "You said: Say hello in French."
    assert lines[1].startswith("run run_") and lines[1].endswith(": RUN_STATUS_COMPLETED")


async def test_tool_runner(running: RunningServer) -> None:
    running.model.push(ToolCallsReply([("get_weather", '{"city": "Paris"}')]))
    output = await run_example("tool_runner.py", running.target)
    lines = output.splitlines()
    assert lines[0] == '-> get_weather({"city": "Paris"})'
    assert lines[1] == (
        'Tool results: {"city": "Paris", "temperature": 21, "unit": "celsius", "sky": "sunny"}'
    )
    assert lines[2].endswith(": RUN_STATUS_COMPLETED")


async def test_async_tool_runner(running: RunningServer) -> None:
    running.model.push(
        ToolCallsReply([("get_weather", '{"city": "Lisbon"}'), ("get_time", '{"city": "Lisbon"}')])
    )
    output = await run_example("async_tool_runner.py", running.target)
    assert "[thread.run.requires_action]" in output
    assert "Tool results: Sunny and 21 C in Lisbon.; " in output
    assert output.splitlines()[-1].endswith(": RUN_STATUS_COMPLETED")
