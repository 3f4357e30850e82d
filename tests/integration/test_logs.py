"""Structured logs (README "Logs"): JSON lines that parse, carry the call's and the run's ids
from context variables, name a run's start and end and a model endpoint's errors, and never hold
message text or API keys."""

from __future__ import annotations

import contextlib
import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import grpc
import httpx2

from assistants_grpc.clock import ManualClock
from assistants_grpc.contract.pb import run_pb2, thread_pb2
from assistants_grpc.fake_model import ErrorReply, FakeModelServer, TextReply
from assistants_grpc.observability import logs
from tests.conftest import serving
from tests.integration.runs_helpers import collect, make_assistant, make_thread, names
from tests.security.conftest import make_keys
from tests.security.helpers import expect_code, stubs

R = run_pb2
SECRET_TEXT = "PURPLE-ELEPHANT-7731 my password is hunter2"


@contextlib.contextmanager
def captured(log_format: str = "json", level: int = logging.DEBUG) -> Iterator[io.StringIO]:
    """Every log line of the block, as the server writes them with `--log-format`."""
    out = io.StringIO()
    handler = logs.handler(log_format, out)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(level)
    try:
        yield out
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


def parsed(out: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.getvalue().splitlines() if line.strip()]


async def test_json_lines_carry_the_ids_and_never_the_text_or_the_key(
    database_url: str, fake_model: FakeModelServer
) -> None:
    keys = make_keys(database_url, int(ManualClock().now()))
    with captured() as out:
        async with serving(database_url, fake_model, auth="required", http=True) as running:
            fake_model.push(TextReply("the answer, which is no secret either"))
            s = stubs(running.target, keys.alpha)
            assistant = await make_assistant(s)
            thread = await make_thread(s, SECRET_TEXT)
            events = await collect(
                s.runs.CreateRunStream(
                    R.CreateRunRequest(thread_id=thread.id, assistant_id=assistant.id)
                )
            )
            assert names(events)[-2:] == ["thread.run.completed", "done"]
            run = events[-2].run
            # A refused call logs (at DEBUG) inside its RPC: the line names the RPC.
            # The HTTP face too: a message with the secret text, the key as a bearer token.
            base = f"http://127.0.0.1:{running.server.http_port}/v1"
            async with httpx2.AsyncClient(base_url=base) as http:
                answer = await http.post(
                    f"/threads/{thread.id}/messages",
                    json={"role": "user", "content": SECRET_TEXT},
                    headers={"authorization": f"Bearer {keys.alpha}"},
                )
                assert answer.status_code == 200, answer.text
                refused = await http.get(
                    f"/threads/{thread.id}", headers={"authorization": f"Bearer {keys.revoked}"}
                )
                assert refused.status_code == 401
            refused_stubs = stubs(running.target, keys.revoked)
            await expect_code(
                refused_stubs.threads.CreateThread(thread_pb2.CreateThreadRequest()),
                grpc.StatusCode.UNAUTHENTICATED,
            )
            await refused_stubs.channel.close()
            await s.channel.close()
    text = out.getvalue()
    lines = parsed(out)  # every line is one JSON object
    assert lines and all({"time", "level", "logger", "message"} <= line.keys() for line in lines)
    for secret in (keys.alpha, keys.revoked, SECRET_TEXT, "hunter2", "PURPLE-ELEPHANT"):
        assert secret not in text
    started = [line for line in lines if line["message"] == "run in progress"]
    assert [line["run_id"] for line in started] == [run.id]
    assert started[0]["thread_id"] == thread.id
    ended = [line for line in lines if line["message"] == "run ended"]
    assert len(ended) == 1 and ended[0]["level"] == "INFO"
    assert ended[0]["run_id"] == run.id and ended[0]["thread_id"] == thread.id
    assert ended[0]["status"] == "completed"
    assert ended[0]["prompt_tokens"] == run.usage.prompt_tokens > 0
    assert ended[0]["completion_tokens"] == run.usage.completion_tokens > 0
    assert isinstance(ended[0]["duration_s"], int)
    # The run's start was committed by the CreateRunStream call: its line names the RPC and
    # the caller's project.
    assert started[0]["rpc"] == "/assistants.v1.RunService/CreateRunStream"
    assert started[0]["project"] == "alpha"
    refused = [line["rpc"] for line in lines if "refused a call" in line["message"]]
    assert refused == ["GET /v1/threads/{thread_id}", "/assistants.v1.ThreadService/CreateThread"]


async def test_a_failing_model_endpoint_logs_warnings_with_the_endpoint(
    database_url: str, fake_model: FakeModelServer
) -> None:
    with captured(level=logging.INFO) as out:
        async with serving(database_url, fake_model) as running:
            fake_model.push(ErrorReply(500), ErrorReply(500))
            s = running.stubs
            assistant = await make_assistant(s)
            thread = await make_thread(s, SECRET_TEXT)
            events = await collect(
                s.runs.CreateRunStream(
                    R.CreateRunRequest(thread_id=thread.id, assistant_id=assistant.id)
                )
            )
            assert names(events)[-2:] == ["thread.run.failed", "done"]
            run_id = events[-2].run.id
    lines = parsed(out)
    assert SECRET_TEXT not in out.getvalue() and "test-key" not in out.getvalue()
    answered = [line for line in lines if line["message"] == "model endpoint answered 500"]
    # model_max_retries is 1 in the tests: the first request and one retry.
    assert [line["retry"] for line in answered] == [0, 1]
    assert all(line["level"] == "WARNING" for line in answered)
    assert all(line["endpoint"].startswith(fake_model.base_url) for line in answered)
    assert all(line["run_id"] == run_id for line in answered)
    failed = [line for line in lines if line["message"] == "model request failed: server_error"]
    assert len(failed) == 1 and failed[0]["endpoint"] == fake_model.base_url.rstrip("/")
    assert failed[0]["run_id"] == run_id and failed[0]["thread_id"] == thread.id
    assert failed[0]["reason"] == "model endpoint returned HTTP 500"
    ended = [line for line in lines if line["message"] == "run ended"]
    assert len(ended) == 1 and ended[0]["level"] == "WARNING"
    assert (ended[0]["status"], ended[0]["error_code"]) == ("failed", "server_error")


def test_text_lines_show_the_context_fields_and_mask_keys() -> None:
    out = io.StringIO()
    logger = logging.getLogger("tests.logs.text")
    handler = logs.handler("text", out)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        with logs.bound(run_id="run_1", thread_id="thread_1", project="p"):
            logger.info("a line with %s", "sk-" + "a" * 40)
        logger.info("outside")
    finally:
        logger.removeHandler(handler)
    first, second = out.getvalue().splitlines()
    assert first.endswith("a line with sk-*** [run_id=run_1 thread_id=thread_1 project=p]")
    assert second.endswith("tests.logs.text: outside")
    assert logs.current() == {}
