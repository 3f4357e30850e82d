"""`assistants-grpc serve` serves both faces; SIGTERM drains the HTTP face in the runtime's
order (uvicorn's own signal handling never takes over): an open stream ends with an `error`
event and `done`, and the process exits 0 within the grace."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import sys
from pathlib import Path

import httpx2

from assistants_grpc.fake_model import FakeModelServer, HangReply

_HTTP = re.compile(r"HTTP face on http://127\.0\.0\.1:(\d+)/v1")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_sigterm_drains_the_http_face(tmp_path: Path, fake_model: FakeModelServer) -> None:
    fake_model.reset()
    fake_model.push(HangReply(60))
    port = _free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "assistants_grpc", "serve",
        "--port", "0", "--http-port", str(port), "--shutdown-grace", "1",
        "--database-url", f"sqlite:///{tmp_path / 'a.db'}", "--auth", "disabled",
        env={
            **os.environ,
            "OPENAI_BASE_URL": fake_model.base_url,
            "OPENAI_API_KEY": "test-key",
            "ASSISTANTS_LOG_LEVEL": "INFO",
        },
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    assert process.stdout is not None
    output = ""
    try:
        while not _HTTP.search(output):
            line = await asyncio.wait_for(process.stdout.readline(), 60)
            assert line, f"the server did not start:\n{output}"
            output += line.decode()
        base = f"http://127.0.0.1:{port}/v1"
        async with httpx2.AsyncClient(base_url=base, timeout=30) as raw:
            assistant = (await raw.post("/assistants", json={"model": "gpt-4o"})).json()
            body = {
                "assistant_id": assistant["id"],
                "stream": True,
                "thread": {"messages": [{"role": "user", "content": "hang"}]},
            }
            text = ""
            async with raw.stream("POST", "/threads/runs", json=body) as answer:
                assert answer.status_code == 200
                chunks = answer.aiter_text()
                async for chunk in chunks:
                    text += chunk
                    if "thread.run.in_progress" in text:
                        break
                process.send_signal(signal.SIGTERM)
                async for chunk in chunks:
                    text += chunk
        assert text.endswith("event: done\ndata: [DONE]\n\n")
        assert "event: error\n" in text and "shutting down" in text
        rest, _ = await asyncio.wait_for(process.communicate(), 20)
        output += rest.decode()
        assert process.returncode == 0, output
        assert "Traceback" not in output and "Exception in ASGI" not in output
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
